"""Searches running while other threads add and delete documents never fail nor see a half-applied change."""

from __future__ import annotations

import threading

from lorag.retrieval import HybridRetriever
from tests.retrieval.retrieval_data import CORPUS, IDS, METADATAS


def test_concurrent_search_add_delete(tiny_embedder) -> None:
    hybrid = HybridRetriever.from_texts(CORPUS, tiny_embedder, ids=IDS, metadatas=METADATAS)
    extra = [f"Extra fox document number {i} about Paris." for i in range(20)]
    errors: list[BaseException] = []
    stop = threading.Event()

    def searcher() -> None:
        try:
            while not stop.is_set():
                for hit in hybrid.search("fox Paris", k=5, filter={"topic": ["animals", "geography", "new"]}):
                    assert hit.text and (hit.id in IDS or hit.id.startswith("x"))
                    assert set(hit.component_scores) == {"bm25", "dense"}
        except BaseException as err:  # surfaced in the main thread
            errors.append(err)

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for round_ in range(5):
            ids = [f"x{round_}-{i}" for i in range(len(extra))]
            hybrid.add(extra, ids=ids, metadatas=[{"topic": "new"}] * len(extra))
            hybrid.delete(ids)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    assert len(hybrid) == len(CORPUS) == len(hybrid.dense)
    assert hybrid.bm25.docs.ids == hybrid.dense.docs.ids == IDS
