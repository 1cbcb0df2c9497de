"""The BM25 tokenizer: lowercase, regex words, stopwords, Snowball stemming; its settings travel with the index.

The settings are plain JSON so a saved index can refuse to load under a different tokenizer: query tokens that are
stemmed differently from the indexed ones silently match nothing, which is worse than an error.

"Tokenizer" means three things in lorag; here, and in ``tokenizer=`` of ``BM25Index``, ``TfidfIndex`` and the saved
``"tokenizer"`` setting, it is this word tokenizer (text to stemmed words). A model's Hugging Face tokenizer (text to
token ids: ``Engine.tokenizer``, ``Embedder.tokenizer``, ``lorag.chunking.load_tokenizer``) is the second; the
splitters' ``tokenizer=`` is the third, a way to measure chunk length (``None`` for characters, a model or its
tokenizer for tokens: ``lorag.chunking.make_length``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import cache
from importlib import resources
from typing import Any, Protocol, runtime_checkable

#: Languages with a stopword list shipped in ``lorag/retrieval/stopwords/`` and a Snowball stemmer.
LANGUAGES = ("english", "spanish")

#: scikit-learn's and bm25s's word pattern: runs of two or more word characters.
DEFAULT_PATTERN = r"(?u)\b\w\w+\b"


@runtime_checkable
class TextTokenizer(Protocol):
    """Anything that turns texts into token lists and describes itself as JSON (for saving with an index)."""

    def tokenize(self, text: str) -> list[str]: ...

    def settings(self) -> dict[str, Any]: ...


@cache
def load_stopwords(language: str) -> frozenset[str]:
    """The stopword list shipped for ``language`` (one of ``LANGUAGES``)."""
    if language not in LANGUAGES:
        raise ValueError(f"no stopword list for language {language!r}; choose one of {list(LANGUAGES)}")
    text = resources.files("lorag.retrieval").joinpath(f"stopwords/{language}.txt").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


class Tokenizer:
    """The default BM25 tokenizer.

    Args:
        language: ``"english"`` (default) or ``"spanish"``; picks the stopword list and the Snowball stemmer.
        lowercase: fold case before matching.
        pattern: regex whose matches are the words.
        stopwords: ``True`` for the language's list, ``False`` for none, or an explicit collection of words.
        stem: apply the Snowball stemmer of ``language`` (PyStemmer).
    """

    def __init__(
        self,
        language: str = "english",
        *,
        lowercase: bool = True,
        pattern: str = DEFAULT_PATTERN,
        stopwords: bool | Iterable[str] = True,
        stem: bool = True,
    ) -> None:
        if language not in LANGUAGES:
            raise ValueError(f"unknown tokenizer language {language!r}; choose one of {list(LANGUAGES)}")
        self.language = language
        self.lowercase = lowercase
        self.pattern = pattern
        self._regex = re.compile(pattern)
        if stopwords is True:
            self.stopwords: frozenset[str] = load_stopwords(language)
        elif stopwords is False:
            self.stopwords = frozenset()
        else:
            self.stopwords = frozenset(stopwords)  # type: ignore[arg-type]
        self.stem = stem
        self._stemmer = None
        if stem:
            import Stemmer  # PyStemmer, a core dependency

            self._stemmer = Stemmer.Stemmer(language)
        self._cache: dict[str, str] = {}

    def tokenize(self, text: str) -> list[str]:
        """The tokens of one text, in order (duplicates kept: BM25 counts them)."""
        if self.lowercase:
            text = text.lower()
        words = [w for w in self._regex.findall(text) if w not in self.stopwords]
        if self._stemmer is None:
            return words
        # Stemming dominates tokenization time; a word -> stem memo makes repeated words free.
        out = []
        memo = self._cache
        for w in words:
            s = memo.get(w)
            if s is None:
                s = memo[w] = self._stemmer.stemWord(w)
            out.append(s)
        return out

    def tokenize_many(self, texts: Sequence[str]) -> list[list[str]]:
        return [self.tokenize(t) for t in texts]

    def __call__(self, text: str) -> list[str]:
        return self.tokenize(text)

    def settings(self) -> dict[str, Any]:
        """Everything that changes the tokens: saved with an index and compared when it is loaded."""
        return {
            "type": "lorag.Tokenizer",
            "language": self.language,
            "lowercase": self.lowercase,
            "pattern": self.pattern,
            "stopwords": sorted(self.stopwords),
            "stem": self.stem,
        }

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> Tokenizer:
        """Rebuild the tokenizer that ``settings()`` described."""
        if settings.get("type") != "lorag.Tokenizer":
            raise ValueError(f"cannot rebuild a tokenizer of type {settings.get('type')!r}; pass it explicitly")
        return cls(
            settings["language"],
            lowercase=settings["lowercase"],
            pattern=settings["pattern"],
            stopwords=settings["stopwords"],
            stem=settings["stem"],
        )
