"""lorag's tests: each folder is a package mirroring a part of the code (tests/llm for lorag.llm, ...)."""
