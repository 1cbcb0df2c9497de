"""How chunk length is measured: characters, or tokens of a Hugging Face tokenizer.

Token lengths count the tokens of the text alone (no special tokens such as ``[CLS]``), which is what a chunk
costs inside an embedder's or LLM's window; ``for_embedder`` subtracts the special tokens from the window.

The splitters' ``tokenizer=`` argument names this measure (``make_length``): a model's Hugging Face tokenizer, never
``lorag.retrieval.Tokenizer``, which is BM25's word tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lorag._imports import require
from lorag.models import ModelNotAvailableError, resolve_model

Offsets = list[tuple[int, int]]

#: Characters per ``TokenLength.many`` tokenizer call.
BATCH_CHARS = 1 << 18


class CharacterLength:
    """Length in characters (Python ``str`` code points)."""

    unit = "characters"

    def __call__(self, text: str) -> int:
        return len(text)

    def many(self, texts: Sequence[str]) -> list[int]:
        return [len(t) for t in texts]

    def __repr__(self) -> str:
        return "CharacterLength()"


class TokenLength:
    """Length in tokens of a Hugging Face tokenizer, counted without special tokens.

    Args:
        tokenizer: a model reference for ``lorag.models.resolve_model`` (short name, local directory, hub id), a
            ``transformers`` tokenizer, or a ``tokenizers.Tokenizer``.

    Raises:
        ModelNotAvailableError: the reference cannot be resolved or holds no loadable tokenizer.
    """

    unit = "tokens"

    def __init__(self, tokenizer: Any) -> None:
        self.name = str(tokenizer) if isinstance(tokenizer, (str, Path)) else _tokenizer_name(tokenizer)
        if isinstance(tokenizer, (str, Path)):
            tokenizer = load_tokenizer(tokenizer)
        self.tokenizer = tokenizer
        self._backend = _fast_backend(tokenizer)

    @property
    def has_offsets(self) -> bool:
        return self._backend is not None

    def __call__(self, text: str) -> int:
        if self._backend is not None:
            return len(self._backend.encode(text, add_special_tokens=False).ids)
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def many(self, texts: Sequence[str]) -> list[int]:
        """Token counts of ``texts``, encoded in batches of about ``BATCH_CHARS`` characters.

        A tokenizer holds every encoding of a batch at once (about 150 bytes per character of input), so one
        batch of a whole 50 MB file would need gigabytes.
        """
        if self._backend is None:
            return [self(t) for t in texts]
        counts: list[int] = []
        batch: list[str] = []
        chars = 0
        for text in texts:
            batch.append(text)
            chars += len(text)
            if chars >= BATCH_CHARS:
                counts += [len(e.ids) for e in self._backend.encode_batch(batch, add_special_tokens=False)]
                batch, chars = [], 0
        if batch:
            counts += [len(e.ids) for e in self._backend.encode_batch(batch, add_special_tokens=False)]
        return counts

    def offsets(self, text: str) -> Offsets:
        """Character offsets of each token of ``text`` (needs a fast tokenizer)."""
        if self._backend is None:
            raise ValueError(
                f"tokenizer {self.name!r} is a slow (Python) tokenizer without offset mapping; "
                "token windows need a fast tokenizer (tokenizers library)"
            )
        return list(self._backend.encode(text, add_special_tokens=False).offsets)

    def num_special_tokens(self) -> int:
        """Special tokens the tokenizer adds around one sequence (e.g. 2 for BERT's [CLS] ... [SEP])."""
        count = getattr(self.tokenizer, "num_special_tokens_to_add", None)
        return int(count(pair=False)) if callable(count) else 0

    def __repr__(self) -> str:
        return f"TokenLength({self.name!r})"


LengthFunction = CharacterLength | TokenLength


def load_tokenizer(ref: str | Path) -> Any:
    """Load a ``transformers`` tokenizer from a lorag model reference, with a clear error when that fails."""
    transformers = require("transformers", purpose="token-based chunk lengths")
    try:
        path = resolve_model(str(ref))
        return transformers.AutoTokenizer.from_pretrained(path)
    except ModelNotAvailableError as err:
        raise ModelNotAvailableError(f"cannot load tokenizer {str(ref)!r}: {err}") from err
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelNotAvailableError(
            f"cannot load tokenizer {str(ref)!r}: {type(err).__name__}: {err}. Give a lorag short name "
            "(minilm, mpnet, smollm2-135m-instruct), a local directory with tokenizer files, or a hub id."
        ) from err


def make_length(tokenizer: Any = None) -> LengthFunction:
    """``CharacterLength`` when ``tokenizer`` is None, else ``TokenLength(tokenizer)``; length objects pass through."""
    if tokenizer is None:
        return CharacterLength()
    if isinstance(tokenizer, (CharacterLength, TokenLength)):
        return tokenizer
    return TokenLength(tokenizer)


def _tokenizer_name(tokenizer: Any) -> str:
    return str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)


def _fast_backend(tokenizer: Any) -> Any:
    """A copy of the Rust tokenizer without truncation or padding, or None for slow tokenizers.

    Copied because model tokenizers often ship with truncation at the model's window switched on, which would
    silently cap every length at that window.
    """
    tokenizers = require("tokenizers", purpose="token-based chunk lengths")
    is_backend = isinstance(tokenizer, tokenizers.Tokenizer)
    backend = tokenizer if is_backend else getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    backend = tokenizers.Tokenizer.from_str(backend.to_str())
    backend.no_truncation()
    backend.no_padding()
    return backend
