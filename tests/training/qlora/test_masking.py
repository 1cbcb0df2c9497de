"""Completion-only labels, checked token by token against an independent tokenisation of each part."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lorag.training.sft_data import IGNORE_INDEX, SFTCollator, SFTRecord, tokenize_records


@pytest.fixture(scope="module")
def tokenizer(tiny_llm_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llm_dir)


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_chat_labels_cover_assistant_turns_only(tokenizer) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And Spain?"},
        {"role": "assistant", "content": "Madrid."},
    ]
    (ex,), report = tokenize_records(tokenizer, [SFTRecord(line=1, messages=messages)], max_length=512)
    # The ChatML parts, tokenised one by one: special tokens split them, so they concatenate exactly.
    parts = [
        ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nCapital of France?<|im_end|>\n", False),
        ("<|im_start|>assistant\n", False),
        ("Paris.<|im_end|>\n", True),
        ("<|im_start|>user\nAnd Spain?<|im_end|>\n<|im_start|>assistant\n", False),
        ("Madrid.<|im_end|>\n", True),
    ]
    expected_ids: list[int] = []
    expected_labels: list[int] = []
    for text, trained in parts:
        piece = ids(tokenizer, text)
        expected_ids += piece
        expected_labels += piece if trained else [IGNORE_INDEX] * len(piece)
    assert ex.input_ids == expected_ids
    assert ex.labels == expected_labels
    assert report.n_kept == 1 and report.n_truncated == 0


def test_plain_prompt_completion_trains_completion_and_eos(tokenizer) -> None:
    record = SFTRecord(line=1, prompt="Q: capital of France?\nA:", completion=" Paris")
    (ex,), _ = tokenize_records(tokenizer, [record], max_length=512)
    full = ids(tokenizer, "Q: capital of France?\nA: Paris")
    n_completion = len(full) - len(ids(tokenizer, "Q: capital of France?\nA:"))
    assert ex.input_ids == [*full, tokenizer.eos_token_id]
    n_prompt = len(full) - n_completion
    assert ex.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert ex.labels[n_prompt:] == ex.input_ids[n_prompt:]
    assert tokenizer.decode([t for t in ex.labels if t != IGNORE_INDEX]) == " Paris<|im_end|>"


def test_conversational_prompt_completion_masks_earlier_assistant_turns(tokenizer) -> None:
    prompt = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "capital of Spain?"},
    ]
    record = SFTRecord(line=1, prompt=prompt, completion=[{"role": "assistant", "content": "Madrid"}])
    (ex,), _ = tokenize_records(tokenizer, [record], max_length=512)
    trained = tokenizer.decode([t for t in ex.labels if t != IGNORE_INDEX])
    assert trained == "Madrid<|im_end|>\n"
    kept = [i for i, lab in enumerate(ex.labels) if lab != IGNORE_INDEX]
    assert kept == list(range(len(ex.input_ids) - len(kept), len(ex.input_ids)))


def test_collator_pads_right_and_ignores_padding(tokenizer) -> None:
    rows = [{"input_ids": [5, 6, 7], "labels": [IGNORE_INDEX, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    batch = SFTCollator(pad_token_id=0)(rows)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, 7], [8, IGNORE_INDEX, IGNORE_INDEX]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["input_ids"].dtype == torch.long
