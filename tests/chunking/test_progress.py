"""``reporting_progress``: a caller sees packing move through one long text, whatever the splitter."""

from __future__ import annotations

import pytest

from lorag.chunking import make_splitter, reporting_progress
from lorag.chunking.packing import BATCH


@pytest.mark.parametrize("method", ["recursive", "sentence", "markdown"])
def test_offsets_reached_grow_through_a_long_text_and_stop_at_its_end(method: str) -> None:
    text = "# Title\n\n" + " ".join(f"Word{i} ends here." for i in range(4 * BATCH))
    reached: list[int] = []
    with reporting_progress(reached.append):
        chunks = make_splitter(method, chunk_size=200).split(text)
    assert len(reached) >= 3, "one report a batch of atoms, several batches in this text"
    assert reached == sorted(reached) and reached[-1] == chunks[-1].end == len(text.rstrip())


def test_nothing_is_reported_outside_the_block() -> None:
    reached: list[int] = []
    with reporting_progress(reached.append):
        pass
    make_splitter("recursive", chunk_size=50).split("some words " * 1000)
    assert reached == []
