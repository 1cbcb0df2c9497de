"""Chunking with exact offsets: recursive, token, sentence, markdown and semantic splitters.

Whitespace rule: chunks are stripped of surrounding whitespace and their offsets point at the stripped text, so
``source[chunk.start:chunk.end] == chunk.text`` always holds; together the chunks cover every non-whitespace
character of the source, in order.
"""

from __future__ import annotations

from lorag.chunking.base import Splitter
from lorag.chunking.chunk import Chunk
from lorag.chunking.factory import SPLITTERS, for_embedder, make_splitter
from lorag.chunking.length import CharacterLength, TokenLength, load_tokenizer, make_length
from lorag.chunking.markdown import MarkdownSplitter
from lorag.chunking.packing import reporting_progress
from lorag.chunking.recursive import SEPARATORS, RecursiveSplitter
from lorag.chunking.semantic import THRESHOLDS, SemanticSplitter
from lorag.chunking.sentence import SentenceSplitter
from lorag.chunking.sentence_boundaries import sentence_spans
from lorag.chunking.token import TokenSplitter

__all__ = [
    "SEPARATORS",
    "SPLITTERS",
    "THRESHOLDS",
    "CharacterLength",
    "Chunk",
    "MarkdownSplitter",
    "RecursiveSplitter",
    "SemanticSplitter",
    "SentenceSplitter",
    "Splitter",
    "TokenLength",
    "TokenSplitter",
    "for_embedder",
    "load_tokenizer",
    "make_length",
    "make_splitter",
    "reporting_progress",
    "sentence_spans",
]
