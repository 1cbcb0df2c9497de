"""Long inputs: streamed packing gives what packing all atoms at once gives, and huge runs are capped and covered."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest

from lorag.chunking import RecursiveSplitter, TokenLength, TokenSplitter, make_splitter
from lorag.chunking.base import MAX_CHARS_PER_TOKEN
from lorag.chunking.packing import BATCH, pack

WORDS = ["alpha", "beta", "gamma", "delta.", "epsilon", "zeta!", "eta", "theta\n", "iota\n\n", "kappa"]


def _prose(words: int, seed: int = 0) -> str:
    rnd = random.Random(seed)
    return " ".join(rnd.choice(WORDS) for _ in range(words))


@pytest.mark.parametrize(("size", "overlap"), [(100, 0), (100, 40), (7, 3)])
def test_streamed_packing_equals_packing_every_atom_at_once(size: int, overlap: int) -> None:
    text = _prose(6 * BATCH)  # many batches of atoms
    splitter = RecursiveSplitter(size, overlap)
    batches = list(splitter.atoms(text, 0, len(text)))
    assert len(batches) > 3
    starts, ends = (list(itertools.chain.from_iterable(b[k] for b in batches)) for k in range(2))
    whole = [(starts[i], ends[j]) for i, j in pack(text, starts, ends, size=size, overlap=overlap)]
    assert [(c.start, c.end) for c in splitter.split(text)] == whole


def test_streamed_token_packing_equals_packing_every_atom_at_once(tiny_tokens: TokenLength) -> None:
    text = _prose(2 * BATCH)
    splitter = RecursiveSplitter(24, 6, tokenizer=tiny_tokens)
    batches = list(splitter.atoms(text, 0, len(text)))
    starts, ends, lengths = (list(itertools.chain.from_iterable(b[k] for b in batches)) for k in range(3))
    groups = pack(text, starts, ends, size=24, overlap=6, lengths=lengths, measure=tiny_tokens)
    assert [(c.start, c.end) for c in splitter.split(text)] == [(starts[i], ends[j]) for i, j in groups]


@pytest.mark.parametrize("method", ["recursive", "sentence", "markdown", "token"])
def test_a_run_without_whitespace_is_cut_at_the_character_cap(
    check_chunks: Callable[..., None], tiny_st_dir: object, method: str
) -> None:
    # WordPiece maps any word over 100 characters to one [UNK]: by tokens alone this would be one 40 kB chunk.
    text = "intro words here. " + "x" * 40_000 + " and an ending."
    length = TokenLength(str(tiny_st_dir))
    chunks = make_splitter(method, 16, 4, tokenizer=length).split(text)
    check_chunks(text, chunks, 16, 4, length)
    assert max(len(c) for c in chunks) <= 16 * MAX_CHARS_PER_TOKEN
    assert len(chunks) >= 40_000 // (16 * MAX_CHARS_PER_TOKEN)


def test_token_windows_across_segments_keep_the_contract(
    check_chunks: Callable[..., None], tiny_tokens: TokenLength
) -> None:
    text = _prose(3000, seed=3)  # about 20 segments of 8 * MAX_CHARS_PER_TOKEN characters
    chunks = TokenSplitter(8, 3, tokenizer=tiny_tokens).split(text)
    check_chunks(text, chunks, 8, 3, tiny_tokens)
    assert sum(c.token_count < 6 for c in chunks) < len(chunks) // 10, "windows stay (nearly) full across segments"


@pytest.mark.parametrize(
    ("method", "text"),
    [
        ("sentence", "!" * 200_000),  # a run of marks with no space after: quadratic with a naive regex
        ("markdown", "# title" + " " * 200_000 + "x\n\ntext"),  # a header with a long space run
        ("markdown", "| a |\n|---" + " " * 200_000 + "x\n"),  # a table delimiter row that fails late
    ],
)
def test_pathological_lines_split_in_linear_time(method: str, text: str) -> None:
    # Each took about 8 s at 20 000 characters before (quadratic): about 800 s here.
    chunks = make_splitter(method, 1000, 0).split(text)
    assert "".join("".join(c.text.split()) for c in chunks) == "".join(text.split())
