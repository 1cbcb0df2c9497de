"""``BM25SparseEncoder``: lorag's BM25 as sparse vectors, for a store that fuses sparse and dense search itself.

A store such as Qdrant ranks sparse vectors by their dot product and can weight each dimension by its IDF over the
collection (``SparseVectorParams(modifier=Modifier.IDF)``), ``ln(1 + (N - n + 0.5) / (n + 0.5))``: Lucene's BM25 IDF,
the one ``BM25Index(method="lucene")`` uses. The encoder supplies the rest of the formula, so the store's sparse
ranking is lorag's BM25 (Robertson et al., "Okapi at TREC-3", 1994; Lucene's variant without the ``k1 + 1``
factor, as in Kamphuis et al., "Which BM25 Do You Mean?", ECIR 2020):

- a document's weight for term ``t`` is ``tf / (tf + k1 * (1 - b + b * dl / avgdl))``, with lorag's tokens (stemmed,
  stopwords removed) and ``dl`` their count;
- a query has weight 1 on each distinct term.

Two differences from lorag's own index, both fixed when documents are written: ``avgdl`` is a constant (``fit``
measures it on a corpus; the store cannot recompute it as documents come and go), and terms are hashed to 32-bit
dimensions (CRC-32), so two terms may share one (about one pair in 10,000 for a 100,000-term vocabulary).
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple

from lorag.retrieval.tokenization import TextTokenizer, Tokenizer

#: ``avgdl`` when none is measured: the length of a short abstract in lorag tokens.
DEFAULT_AVG_LENGTH = 100.0


class SparseVector(NamedTuple):
    """Sorted unique dimensions and their weights."""

    indices: list[int]
    values: list[float]


def term_dimension(term: str) -> int:
    """The sparse dimension of a token: its CRC-32, stable across processes and machines (unlike ``hash``)."""
    return zlib.crc32(term.encode("utf-8"))


def _vector(weights: dict[int, float]) -> SparseVector:
    indices = sorted(weights)
    return SparseVector(indices, [weights[i] for i in indices])


class BM25SparseEncoder:
    """Texts to BM25 sparse vectors whose dot product with a query's, times the store's IDF, is the BM25 score.

    Args:
        tokenizer: lorag's ``Tokenizer`` by default (the one ``BM25Index`` uses).
        k1: term-frequency saturation (``BM25Index``'s default, 1.5).
        b: document-length normalisation (0.75).
        avg_length: ``avgdl`` in tokens; ``fit`` measures it on the corpus.
    """

    def __init__(
        self,
        tokenizer: TextTokenizer | None = None,
        *,
        k1: float = 1.5,
        b: float = 0.75,
        avg_length: float = DEFAULT_AVG_LENGTH,
    ) -> None:
        if k1 < 0 or not 0 <= b <= 1:
            raise ValueError(f"need k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        if avg_length <= 0:
            raise ValueError(f"avg_length must be positive, got {avg_length}")
        self.tokenizer = tokenizer or Tokenizer()
        self.k1 = float(k1)
        self.b = float(b)
        self.avg_length = float(avg_length)

    @classmethod
    def fit(cls, texts: Sequence[str], tokenizer: TextTokenizer | None = None, **kwargs: Any) -> BM25SparseEncoder:
        """An encoder whose ``avg_length`` is the mean token count of ``texts`` (``kwargs``: ``k1``, ``b``)."""
        if not texts:
            raise ValueError("fit needs at least one text to measure the average length")
        tokenizer = tokenizer or Tokenizer()
        average = sum(len(tokenizer.tokenize(t)) for t in texts) / len(texts)
        return cls(tokenizer, avg_length=max(average, 1.0), **kwargs)

    def encode_document(self, text: str) -> SparseVector:
        tokens = self.tokenizer.tokenize(text)
        norm = self.k1 * (1.0 - self.b + self.b * len(tokens) / self.avg_length)
        weights: dict[int, float] = {}
        for term, tf in Counter(tokens).items():
            dim = term_dimension(term)
            weights[dim] = weights.get(dim, 0.0) + tf / (tf + norm)
        return _vector(weights)

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        return [self.encode_document(t) for t in texts]

    def encode_query(self, text: str) -> SparseVector:
        weights: dict[int, float] = {}
        for term in set(self.tokenizer.tokenize(text)):
            dim = term_dimension(term)
            weights[dim] = weights.get(dim, 0.0) + 1.0
        return _vector(weights)

    def settings(self) -> dict[str, Any]:
        return {
            "encoder": "bm25",
            "k1": self.k1,
            "b": self.b,
            "avg_length": self.avg_length,
            "tokenizer": self.tokenizer.settings(),
        }
