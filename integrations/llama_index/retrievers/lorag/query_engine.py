"""Moved to ``llama_index.query_engine.lorag``; kept so that ``from llama_index.retrievers.lorag import
create_query_engine`` (and this module's old path) still work."""

from llama_index.query_engine.lorag import LoragQueryEngine, NumberedSources, create_query_engine, source_label

__all__ = ["LoragQueryEngine", "NumberedSources", "create_query_engine", "source_label"]
