"""Supervised fine-tuning data: JSONL records to token ids whose labels cover only what the model must write.

Two record shapes are read, the ones TRL's SFT datasets use:

* ``{"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}, ...]}``, rendered
  with the tokenizer's chat template; the loss covers every assistant turn (its text and the template's
  end-of-turn tokens), never the system or user turns.
* ``{"prompt": ..., "completion": ...}``: two strings are joined as plain text (the end-of-sequence token is
  appended to the completion); two message lists are rendered with the chat template. The loss covers the
  completion only.

Labels are assigned by character spans, not by re-tokenising pieces: the full conversation is tokenised once
with offsets, and a token is trained on when it starts inside an assistant span. Tokenising a prefix alone can
merge differently at the boundary, which would shift a piece-wise mask by a token.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lorag.fingerprint import file_sha256 as file_sha256  # the one home; still importable here

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
"""Label of a token the loss skips (PyTorch's cross-entropy default)."""

Overflow = Literal["truncate", "skip"]
_MAX_LISTED_ERRORS = 20


class DataFormatError(ValueError):
    """A training file with lines that cannot be used; the message lists them by line number."""

    def __init__(self, path: str | Path, problems: Sequence[tuple[int, str]]) -> None:
        self.path = str(path)
        self.problems = list(problems)
        shown = "\n".join(f"  line {n}: {what}" for n, what in self.problems[:_MAX_LISTED_ERRORS])
        more = len(self.problems) - _MAX_LISTED_ERRORS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(
            f"{self.path}: {len(self.problems)} unusable line(s); each line must be one JSON object with "
            f'"messages" (a list of {{"role", "content"}} with at least one assistant turn) or '
            f'"prompt" and "completion":\n{shown}{tail}'
        )


@dataclass(frozen=True)
class SFTRecord:
    """One training example as read from the file, before tokenisation."""

    line: int
    messages: list[dict[str, str]] | None = None
    prompt: str | list[dict[str, str]] | None = None
    completion: str | list[dict[str, str]] | None = None


@dataclass
class TokenizedExample:
    """Token ids and labels of one example (``IGNORE_INDEX`` where no loss is taken)."""

    input_ids: list[int]
    labels: list[int]
    line: int


@dataclass
class DataReport:
    """What happened to the file's examples: how many were kept, truncated or skipped for length."""

    n_records: int = 0
    n_kept: int = 0
    n_truncated: int = 0
    n_skipped_too_long: int = 0
    truncated_lines: list[int] = field(default_factory=list)
    skipped_lines: list[int] = field(default_factory=list)
    max_length: int = 0
    overflow: str = "truncate"

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_records": self.n_records,
            "n_kept": self.n_kept,
            "n_truncated": self.n_truncated,
            "n_skipped_too_long": self.n_skipped_too_long,
            "max_length": self.max_length,
            "overflow": self.overflow,
        }


def _check_messages(value: Any, what: str) -> str | None:
    if not isinstance(value, list) or not value:
        return f"{what} must be a non-empty list of messages"
    for i, msg in enumerate(value):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str) or not isinstance(msg.get("content"), str):
            return f'{what}[{i}] must be an object with string "role" and "content"'
    return None


def _parse_record(obj: Any, line: int) -> SFTRecord | str:
    """The record, or a description of what is wrong with it."""
    if not isinstance(obj, dict):
        return f"expected a JSON object, got {type(obj).__name__}"
    if "messages" in obj:
        problem = _check_messages(obj["messages"], '"messages"')
        if problem:
            return problem
        if not any(m["role"] == "assistant" for m in obj["messages"]):
            return '"messages" has no assistant turn, so there is nothing to learn'
        return SFTRecord(line=line, messages=obj["messages"])
    if "prompt" in obj and "completion" in obj:
        prompt, completion = obj["prompt"], obj["completion"]
        if isinstance(prompt, str) and isinstance(completion, str):
            if not completion:
                return '"completion" is empty'
            return SFTRecord(line=line, prompt=prompt, completion=completion)
        problem = _check_messages(prompt, '"prompt"') or _check_messages(completion, '"completion"')
        if problem:
            return f'{problem} (or make "prompt" and "completion" both strings)'
        return SFTRecord(line=line, prompt=prompt, completion=completion)
    keys = ", ".join(sorted(obj)) or "none"
    return f'needs "messages" or "prompt" + "completion" (keys found: {keys})'


def read_sft_jsonl(path: str | Path) -> list[SFTRecord]:
    """Read and validate every line of a JSONL training file.

    All problems are collected before raising, so one run shows every bad line instead of one per attempt.

    Raises:
        FileNotFoundError: the file does not exist.
        DataFormatError: some lines are empty, not JSON, or not a usable record; or the file holds none.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"training data {str(p)!r} does not exist")
    records: list[SFTRecord] = []
    problems: list[tuple[int, str]] = []
    with open(p, encoding="utf-8") as f:
        for n, raw in enumerate(f, start=1):
            text = raw.strip()
            if not text:
                problems.append((n, "empty line"))
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as err:
                problems.append((n, f"not valid JSON ({err.msg} at column {err.colno})"))
                continue
            parsed = _parse_record(obj, n)
            if isinstance(parsed, str):
                problems.append((n, parsed))
            else:
                records.append(parsed)
    if problems:
        raise DataFormatError(p, problems)
    if not records:
        raise DataFormatError(p, [(0, "the file holds no records")])
    return records


def _chat_text_and_spans(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its assistant turns.

    An assistant turn spans from the end of the rendering of everything before it (with the generation
    prompt) to the end of the rendering that includes it, so the template's end-of-turn tokens are learned
    too and the model learns to stop.
    """
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    spans: list[tuple[int, int]] = []
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        before = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True) if i else ""
        through = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not (through.startswith(before) and full.startswith(through)):
            raise ValueError(
                "the tokenizer's chat template does not render conversations prefix by prefix "
                "(it rewrites earlier turns), so assistant tokens cannot be located; "
                'use "prompt"/"completion" records with a single assistant reply instead'
            )
        spans.append((len(before), len(through)))
    return full, spans


def render(tokenizer: Any, record: SFTRecord) -> tuple[str, list[tuple[int, int]], bool]:
    """Text of a record, the character spans the loss covers, and whether the text still needs an EOS token."""
    if record.messages is not None:
        text, spans = _chat_text_and_spans(tokenizer, record.messages)
        return text, spans, False
    if isinstance(record.prompt, str) and isinstance(record.completion, str):
        text = record.prompt + record.completion
        return text, [(len(record.prompt), len(text))], True
    assert isinstance(record.prompt, list) and isinstance(record.completion, list)
    messages = record.prompt + record.completion
    text, spans = _chat_text_and_spans(tokenizer, messages)
    start = len(tokenizer.apply_chat_template(record.prompt, tokenize=False, add_generation_prompt=True))
    return text, [(max(a, start), b) for a, b in spans if b > start], False


def tokenize_records(
    tokenizer: Any,
    records: Sequence[SFTRecord],
    *,
    max_length: int,
    overflow: Overflow = "truncate",
) -> tuple[list[TokenizedExample], DataReport]:
    """Token ids and completion-only labels for each record.

    A sequence longer than ``max_length`` is cut on the right (``overflow="truncate"``) or dropped
    (``"skip"``). A truncated example whose completion is cut away entirely is dropped too, since it would
    train on nothing. Both are counted in the report.
    """
    if overflow not in ("truncate", "skip"):
        raise ValueError(f"overflow must be 'truncate' or 'skip', got {overflow!r}")
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2, got {max_length}")
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("completion-only masking needs a fast tokenizer (one with offset mappings)")
    report = DataReport(n_records=len(records), max_length=max_length, overflow=overflow)
    examples: list[TokenizedExample] = []
    for record in records:
        text, spans, add_eos = render(tokenizer, record)
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids: list[int] = list(enc["input_ids"])
        labels = [
            tok if any(a <= start < b for a, b in spans) else IGNORE_INDEX
            for tok, (start, _end) in zip(ids, enc["offset_mapping"], strict=True)
        ]
        if add_eos and tokenizer.eos_token_id is not None:
            ids.append(tokenizer.eos_token_id)
            labels.append(tokenizer.eos_token_id)
        if len(ids) > max_length:
            if overflow == "skip":
                report.n_skipped_too_long += 1
                report.skipped_lines.append(record.line)
                continue
            ids, labels = ids[:max_length], labels[:max_length]
            # Position 0 is never predicted, so a label there alone trains nothing.
            if all(lab == IGNORE_INDEX for lab in labels[1:]):
                report.n_skipped_too_long += 1
                report.skipped_lines.append(record.line)
                continue
            report.n_truncated += 1
            report.truncated_lines.append(record.line)
        examples.append(TokenizedExample(input_ids=ids, labels=labels, line=record.line))
    report.n_kept = len(examples)
    if report.n_truncated or report.n_skipped_too_long:
        logger.warning(
            "lorag: %d of %d examples exceed max_length=%d: %d truncated (lines %s), %d skipped (lines %s)",
            report.n_truncated + report.n_skipped_too_long,
            report.n_records,
            max_length,
            report.n_truncated,
            _short_list(report.truncated_lines),
            report.n_skipped_too_long,
            _short_list(report.skipped_lines),
        )
    return examples, report


def _short_list(lines: list[int], limit: int = 10) -> str:
    shown = ", ".join(map(str, lines[:limit]))
    return shown + (", ..." if len(lines) > limit else "") if lines else "none"


class SFTCollator:
    """Pads a batch on the right; padded positions get ``IGNORE_INDEX`` labels and a zero attention mask."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for row, f in enumerate(features):
            n = len(f["input_ids"])
            ids[row, :n] = torch.tensor(f["input_ids"], dtype=torch.long)
            labels[row, :n] = torch.tensor(f["labels"], dtype=torch.long)
            mask[row, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}
