"""Read a questions file for ``lorag eval-rag`` and check all of it before anything is indexed or loaded.

One JSON object a line::

    {"id": "q1", "question": "...", "answers": ["gold", ...], "supporting": ["guide/cors.md"]}

``answers`` empty means the documents do not answer the question. ``id`` is a non-empty string, or an integer
(taken as its decimal string, so ``1`` and ``"1"`` are the same id). ``supporting`` is optional (default none):
file names relative to the documents folder, as ``lorag ask`` reports sources. Other keys are ignored, so a file
can carry notes. Every unusable line is reported at once, by number, so one run finds every mistake.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lorag.evaluation.answers import QAQuestion, normalize_answer
from lorag.rag.loaders import SUPPORTED_SUFFIXES, Exclusion

_MAX_LISTED = 20
_SHAPE = (
    'each line must be one JSON object with "id" (a string or integer), "question" (a string), "answers" (a list '
    'of strings; [] when the documents do not answer it) and optionally "supporting" (a list of file names '
    "relative to the documents folder)"
)


class QuestionsFileError(ValueError):
    """A questions file with unusable lines; the message lists them by line number (up to 20, then a count)."""

    def __init__(self, path: str | Path, problems: Sequence[tuple[int, str]]) -> None:
        self.path = str(path)
        self.problems = list(problems)
        shown = "\n".join(f"  line {n}: {what}" if n else f"  {what}" for n, what in self.problems[:_MAX_LISTED])
        more = len(self.problems) - _MAX_LISTED
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"{self.path}: {len(self.problems)} problem(s); fix them and rerun ({_SHAPE}):\n{shown}{tail}")


def _string_list(obj: dict[str, Any], key: str) -> list[str] | str:
    """The list of non-blank strings under ``key``, or what is wrong with it."""
    value = obj.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        return f'"{key}" must be a list of non-empty strings, got {json.dumps(value, ensure_ascii=False)[:80]}'
    return value


def _parse(obj: Any) -> QAQuestion | str:
    """The question on one line, or what is wrong with it."""
    if not isinstance(obj, dict):
        return f"expected a JSON object, got {type(obj).__name__}"
    missing = [key for key in ("id", "question", "answers") if key not in obj]
    if missing:
        return "missing " + ", ".join(f'"{key}"' for key in missing)
    qid = obj["id"]
    if isinstance(qid, int) and not isinstance(qid, bool):
        qid = str(qid)
    if not isinstance(qid, str) or not qid.strip():
        return f'"id" must be a non-empty string or an integer, got {json.dumps(qid)[:80]}'
    if not isinstance(obj["question"], str) or not obj["question"].strip():
        return '"question" must be a non-empty string'
    if not isinstance(obj["answers"], list):
        return '"answers" must be a list of strings ([] when the documents do not answer the question)'
    answers = _string_list(obj, "answers")
    if isinstance(answers, str):
        return answers
    unscorable = [a for a in answers if not normalize_answer(a)]
    if unscorable:
        return f"answer {unscorable[0]!r} is only articles or punctuation, which scoring removes"
    supporting = _string_list(obj, "supporting")
    if isinstance(supporting, str):
        return supporting
    return QAQuestion(qid, obj["question"], answers, [posixpath.normpath(s.strip()) for s in supporting])


def _check_docs(docs_dir: Path) -> None:
    if not docs_dir.is_dir():
        raise FileNotFoundError(f"document folder {str(docs_dir)!r} does not exist or is not a directory")
    for path in docs_dir.rglob("*"):
        rel = path.relative_to(docs_dir)
        if path.suffix.lower() in SUPPORTED_SUFFIXES and not any(p.startswith(".") for p in rel.parts):
            return
    raise ValueError(
        f"document folder {str(docs_dir)!r} holds no {', '.join(sorted(SUPPORTED_SUFFIXES))} files to answer from"
    )


def _supporting_problem(docs_dir: Path, name: str) -> str | None:
    """Why ``name`` cannot be a supporting file of ``docs_dir``: the index would never hold a passage from it."""
    if posixpath.isabs(name) or name.split("/")[0] == "..":
        return f"supporting file {name!r} must be a path relative to {str(docs_dir)!r}"
    if not (docs_dir / name).is_file():
        return f"supporting file {name!r} is not in {str(docs_dir)!r}"
    if Path(name).suffix.lower() not in SUPPORTED_SUFFIXES or any(p.startswith(".") for p in name.split("/")):
        return f"supporting file {name!r} is not indexed (hidden, or not a {'/'.join(sorted(SUPPORTED_SUFFIXES))} file)"
    return None


def load_questions(
    path: str | Path, docs_dir: str | Path | None = None, *, exclude: Sequence[str] = ()
) -> list[QAQuestion]:
    """The questions of a JSONL file, in file order; with ``docs_dir``, supporting files must be in it and not
    left out by an ``exclude`` pattern (the index would never hold them, and the scores would say nothing).

    Raises:
        FileNotFoundError: the file or ``docs_dir`` does not exist.
        ValueError: ``docs_dir`` holds no document lorag can index.
        QuestionsFileError: lines that are not JSON, not a usable question, repeat an earlier id or name a
            supporting file missing from ``docs_dir`` or excluded; or the file holds no question.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"questions file {str(p)!r} does not exist")
    docs = Path(docs_dir).expanduser() if docs_dir is not None else None
    if docs is not None:
        _check_docs(docs)
    excluded, exclude_patterns = Exclusion(exclude), [p for p in exclude if p.strip()]
    questions: list[QAQuestion] = []
    problems: list[tuple[int, str]] = []
    first_line: dict[str, int] = {}
    for n, raw in enumerate(p.read_bytes().splitlines(), start=1):
        try:
            text = raw.decode("utf-8-sig").strip()
        except UnicodeDecodeError as err:
            problems.append((n, f"not UTF-8 text ({err.reason} at byte {err.start})"))
            continue
        if not text:
            problems.append((n, "empty line"))
            continue
        try:
            parsed = _parse(json.loads(text))
        except json.JSONDecodeError as err:
            parsed = f"not valid JSON ({err.msg} at column {err.colno})"
        if isinstance(parsed, str):
            problems.append((n, parsed))
            continue
        if parsed.id in first_line:
            problems.append((n, f"id {parsed.id!r} repeats line {first_line[parsed.id]}"))
            continue
        first_line[parsed.id] = n
        if docs is not None:
            problems += [(n, why) for name in parsed.supporting if (why := _supporting_problem(docs, name))]
            problems += [
                (n, f"supporting file {name!r} is left out by --exclude {exclude_patterns}")
                for name in parsed.supporting
                if excluded(name)
            ]
        questions.append(parsed)
    if not problems and not questions:
        problems.append((0, "the file holds no questions"))
    if problems:
        raise QuestionsFileError(p, problems)
    return questions
