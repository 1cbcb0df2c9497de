"""Save -> load is identical; saves are atomic; contradicting settings or damaged directories fail clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lorag.retrieval import (
    BM25Index,
    DenseIndex,
    HybridRetriever,
    IndexFormatError,
    SettingsMismatchError,
    Tokenizer,
    persistence,
)
from tests.retrieval.retrieval_data import CORPUS, IDS, METADATAS

QUERIES = ["fox and dog", "capital city of France", "programming language", "museum in Paris"]


def _results(index: object, **kw: object) -> list:
    return [index.search(q, k=5, **kw) for q in QUERIES]  # type: ignore[attr-defined]


@pytest.mark.parametrize("method", ["lucene", "okapi", "bm25l", "bm25plus"])
def test_bm25_save_load_identical(tmp_path: Path, method: str) -> None:
    index = BM25Index.from_texts(CORPUS, ids=IDS, metadatas=METADATAS, method=method, k1=1.2, b=0.7)
    index.save(tmp_path / "idx")
    loaded = BM25Index.load(tmp_path / "idx")
    assert loaded.settings() == index.settings()
    assert _results(loaded) == _results(index)
    assert _results(loaded, filter={"topic": "animals"}) == _results(index, filter={"topic": "animals"})


def test_spanish_tokenizer_is_restored_on_load(tmp_path: Path) -> None:
    index = BM25Index.from_texts(["los gatos corren", "el perro duerme"], tokenizer=Tokenizer("spanish"))
    index.save(tmp_path / "es")
    loaded = BM25Index.load(tmp_path / "es")
    assert loaded.tokenizer.settings() == Tokenizer("spanish").settings()
    assert [h.id for h in loaded.search("corriendo gato")] == ["0"]


def test_loading_with_another_tokenizer_is_an_error(tmp_path: Path) -> None:
    BM25Index.from_texts(CORPUS).save(tmp_path / "idx")
    with pytest.raises(SettingsMismatchError, match=r"tokenizer.*language"):
        BM25Index.load(tmp_path / "idx", tokenizer=Tokenizer("spanish"))


def test_dense_and_hybrid_save_load_identical(tmp_path: Path, tiny_embedder) -> None:
    hybrid = HybridRetriever.from_texts(CORPUS, tiny_embedder, ids=IDS, metadatas=METADATAS)
    hybrid.save(tmp_path / "h")
    loaded = HybridRetriever.load(tmp_path / "h", tiny_embedder)
    assert loaded.settings() == hybrid.settings()
    assert _results(loaded) == _results(hybrid)
    hybrid.dense.save(tmp_path / "d")
    dense = DenseIndex.load(tmp_path / "d", tiny_embedder)
    assert _results(dense) == _results(hybrid.dense)
    np.testing.assert_array_equal(dense.vectors(), hybrid.dense.vectors())


def test_loading_with_another_embedder_is_an_error(tmp_path: Path, tiny_embedder) -> None:
    class OtherEmbedder:
        dimension = tiny_embedder.dimension

        def embed_documents(self, texts):
            return tiny_embedder.embed_documents(texts)

        def embed_query(self, text):
            return tiny_embedder.embed_query(text)

        def settings(self):
            return {**tiny_embedder.settings(), "model": "another-model", "fingerprint": "0" * 16}

    DenseIndex.from_texts(CORPUS, tiny_embedder).save(tmp_path / "d")
    with pytest.raises(SettingsMismatchError, match=r"embedder.*fingerprint"):
        DenseIndex.load(tmp_path / "d", OtherEmbedder())


def test_interrupted_save_leaves_previous_index_loadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = BM25Index.from_texts(CORPUS, ids=IDS)
    index.save(tmp_path / "idx")
    before = _results(BM25Index.load(tmp_path / "idx"))
    index.add(["an extra document about foxes"], ids=["extra"])

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(persistence, "write_manifest", crash)
    with pytest.raises(KeyboardInterrupt):
        index.save(tmp_path / "idx")
    monkeypatch.undo()
    assert _results(BM25Index.load(tmp_path / "idx")) == before
    assert [p.name for p in (tmp_path / "idx").iterdir() if p.name.startswith("snap-")].__len__() == 1
    index.save(tmp_path / "idx")  # a later save succeeds and replaces it
    assert "extra" in BM25Index.load(tmp_path / "idx").docs


@pytest.mark.parametrize("damage", ["truncate_counts", "flip_byte", "drop_vocab", "garbage_manifest", "no_current"])
def test_damaged_directory_is_a_clear_error(tmp_path: Path, damage: str) -> None:
    BM25Index.from_texts(CORPUS).save(tmp_path / "idx")
    snap = persistence.live_snapshot(tmp_path / "idx")
    if damage == "truncate_counts":
        data = (snap / "counts.npz").read_bytes()
        (snap / "counts.npz").write_bytes(data[: len(data) // 2])
    elif damage == "flip_byte":
        data = bytearray((snap / "documents.json").read_bytes())
        data[10] ^= 0xFF
        (snap / "documents.json").write_bytes(bytes(data))
    elif damage == "drop_vocab":
        (snap / "vocab.json").unlink()
    elif damage == "garbage_manifest":
        (snap / "manifest.json").write_text("{not json")
    else:
        (tmp_path / "idx" / "CURRENT").unlink()
    with pytest.raises(IndexFormatError, match=r"truncated|corrupted|missing|not a saved"):
        BM25Index.load(tmp_path / "idx")


def test_loading_a_bm25_directory_as_dense_names_the_kind(tmp_path: Path, tiny_embedder) -> None:
    BM25Index.from_texts(CORPUS).save(tmp_path / "idx")
    with pytest.raises(IndexFormatError, match=r"'lorag\.bm25' index, expected 'lorag\.dense'"):
        DenseIndex.load(tmp_path / "idx", tiny_embedder)


WORDS = st.sampled_from([f"w{i}" for i in range(10)])


@pytest.mark.parametrize("method", ["lucene", "okapi", "bm25l", "bm25plus"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    docs=st.lists(st.lists(WORDS, min_size=0, max_size=8).map(" ".join), min_size=1, max_size=10),
    queries=st.lists(st.lists(WORDS, min_size=1, max_size=3).map(" ".join), min_size=1, max_size=4),
)
def test_bm25_save_load_property(tmp_path: Path, method: str, docs: list[str], queries: list[str]) -> None:
    index = BM25Index.from_texts(docs, method=method, tokenizer=Tokenizer(stem=False, stopwords=False))
    target = tmp_path / f"prop-{method}"
    index.save(target)
    loaded = BM25Index.load(target)
    for q in queries:
        assert loaded.search(q, k=len(docs)) == index.search(q, k=len(docs))
        np.testing.assert_array_equal(loaded.get_scores(q), index.get_scores(q))


@pytest.mark.parametrize("damage", ["truncate_faiss", "drop_bm25_counts"])
def test_damaged_hybrid_directory_is_a_clear_error(tmp_path: Path, tiny_embedder, damage: str) -> None:
    hybrid = HybridRetriever.from_texts(CORPUS, tiny_embedder, ids=IDS)
    hybrid.save(tmp_path / "h")
    snap = persistence.live_snapshot(tmp_path / "h")
    if damage == "truncate_faiss":
        data = (snap / "dense" / "index.faiss").read_bytes()
        (snap / "dense" / "index.faiss").write_bytes(data[:100])
    else:
        (snap / "bm25" / "counts.npz").unlink()
    with pytest.raises(IndexFormatError, match=r"truncated|corrupted"):
        HybridRetriever.load(tmp_path / "h", tiny_embedder)
