"""With the real minilm model, the dense side finds a paraphrase BM25 cannot, and hybrid keeps both kinds of match."""

from __future__ import annotations

import pytest

from lorag.embedding import Embedder
from lorag.retrieval import HybridRetriever

TEXTS = [
    "The automobile would not start because its battery was flat.",
    "Preheat the oven before baking the bread.",
    "Stock markets fell sharply after the interest rate decision.",
    "ISO 27001 certification requires an information security management system.",
]


@pytest.mark.real_model
def test_paraphrase_found_by_dense_and_exact_code_by_bm25() -> None:
    hybrid = HybridRetriever.from_texts(TEXTS, Embedder("minilm", device="cpu"), ids=["car", "oven", "stocks", "iso"])
    car = hybrid.search("my vehicle is dead, I think the accumulator is empty", k=1)[0]
    assert car.id == "car" and car.component_ranks["dense"] == 1 and car.component_ranks["bm25"] is None
    iso = hybrid.search("27001", k=1)[0]
    assert iso.id == "iso" and iso.component_ranks["bm25"] == 1
