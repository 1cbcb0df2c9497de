"""One entry point for every splitter, shared by the LangChain and LlamaIndex adapters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lorag.chunking.base import Splitter
from lorag.chunking.length import TokenLength, load_tokenizer
from lorag.chunking.markdown import MarkdownSplitter
from lorag.chunking.recursive import RecursiveSplitter
from lorag.chunking.semantic import SemanticSplitter
from lorag.chunking.sentence import SentenceSplitter
from lorag.chunking.token import TokenSplitter
from lorag.models import resolve_model

SPLITTERS: dict[str, type[Splitter]] = {
    cls.method: cls for cls in (RecursiveSplitter, TokenSplitter, SentenceSplitter, MarkdownSplitter, SemanticSplitter)
}

#: The default recipe, chosen from benchmarks/results/chunking.md (BM25 on SQuAD articles): recursive at 256 tokens
#: with 1/8 overlap had the best answer recall of the 256-token splitters and returned the fewest tokens; 512 tokens
#: gained 2 points of recall for 2.2x the prompt tokens, 128 lost 4 points. 1000 characters is ~256 English tokens.
DEFAULT_METHOD = "recursive"
DEFAULT_CHUNK_SIZE = {"tokens": 256, "characters": 1000}
DEFAULT_OVERLAP_SHARE = 8  # overlap = chunk_size // 8


def make_splitter(
    method: str = DEFAULT_METHOD,
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    tokenizer: Any = None,
    **kwargs: Any,
) -> Splitter:
    """Build a splitter by name.

    Args:
        method: one of ``recursive``, ``token``, ``sentence``, ``markdown``, ``semantic``.
        chunk_size: maximum chunk length; default 256 tokens with a tokenizer, else 1000 characters.
        chunk_overlap: maximum length repeated between consecutive chunks; default ``chunk_size // 8`` (0 for
            ``semantic``, which does not overlap).
        tokenizer: ``None`` (characters), a model reference (``"minilm"``), a tokenizer or a ``TokenLength``.
        **kwargs: the method's own options (``preset``, ``overlap_sentences``, ``embedder``, ``threshold``, ...).
    """
    if method not in SPLITTERS:
        raise ValueError(f"unknown chunking method {method!r}; choose one of {sorted(SPLITTERS)}")
    if chunk_size is None:
        chunk_size = DEFAULT_CHUNK_SIZE["characters" if tokenizer is None else "tokens"]
    if chunk_overlap is None:
        valid = isinstance(chunk_size, int) and chunk_size > 0
        chunk_overlap = chunk_size // DEFAULT_OVERLAP_SHARE if valid and method != "semantic" else 0
    return SPLITTERS[method](chunk_size=chunk_size, chunk_overlap=chunk_overlap, tokenizer=tokenizer, **kwargs)


def for_embedder(model: Any, method: str = "token", chunk_overlap: int = 0, **kwargs: Any) -> Splitter:
    """A splitter whose chunks fill the embedding model's window, measured in that model's own tokens.

    The size is the model's ``max_seq_length`` (what sentence-transformers truncates at) minus the special tokens
    the tokenizer adds, so no chunk is silently truncated when embedded.

    Args:
        model: a ``lorag.embedding.Embedder``, a ``SentenceTransformer``, or a model reference (``"minilm"``).
        method: any ``make_splitter`` method; ``token`` by default.
        chunk_overlap: in tokens.
        **kwargs: passed to ``make_splitter``.
    """
    if isinstance(model, (str, Path)):
        tokenizer = load_tokenizer(model)
        window = _max_seq_length(Path(resolve_model(str(model))), tokenizer)
    else:
        tokenizer, window = model.tokenizer, int(model.max_seq_length)
    length = TokenLength(tokenizer)
    size = window - length.num_special_tokens()
    return make_splitter(method, chunk_size=size, chunk_overlap=chunk_overlap, tokenizer=length, **kwargs)


def _max_seq_length(path: Path, tokenizer: Any) -> int:
    config = path / "sentence_bert_config.json"
    if config.is_file():
        value = json.loads(config.read_text()).get("max_seq_length")
        if value:
            return int(value)
    limit = int(getattr(tokenizer, "model_max_length", 0) or 0)
    if 0 < limit < 1_000_000:  # transformers uses a huge sentinel when the limit is unknown
        return limit
    raise ValueError(f"cannot tell the maximum sequence length of {str(path)!r}; use make_splitter with chunk_size")
