"""A LlamaIndex query engine answering through lorag's RAG composition: gates, a window-fitted cited prompt, the
loop guard and citations, as ``lorag ask`` answers."""

from llama_index.query_engine.lorag.base import LoragQueryEngine, NumberedSources, create_query_engine, source_label

__all__ = ["LoragQueryEngine", "NumberedSources", "create_query_engine", "source_label"]
