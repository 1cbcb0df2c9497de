"""Load a folder of Markdown, text and PDF files into documents, reporting (not failing on) files it cannot read."""

from __future__ import annotations

import bisect
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from lorag._imports import require

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".rst"})
PDF_SUFFIXES = frozenset({".pdf"})
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | PDF_SUFFIXES


@dataclass(frozen=True)
class SourceDocument:
    """One file's text. ``page_starts`` holds each PDF page's first character offset (empty for text files)."""

    source: str
    text: str
    kind: str
    sha256: str
    page_starts: tuple[int, ...] = ()

    def page_at(self, offset: int) -> int | None:
        """1-based PDF page of a character offset, or None for non-PDF documents."""
        if not self.page_starts:
            return None
        return bisect.bisect_right(self.page_starts, offset)


@dataclass
class LoadReport:
    """What ``load_folder`` read, and every file it skipped with the reason."""

    documents: list[SourceDocument] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    if b"\x00" in raw[:8192]:
        raise ValueError("binary content (NUL bytes)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"not UTF-8 text ({err.reason} at byte {err.start})") from err


def _read_pdf(path: Path) -> tuple[str, tuple[int, ...]]:
    pypdf = require("pypdf", purpose="reading PDF files")
    try:
        reader = pypdf.PdfReader(str(path))
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except Exception as err:  # pypdf raises many types for damaged files
        raise ValueError(f"unreadable PDF ({type(err).__name__}: {err})") from err
    starts, parts, offset = [], [], 0
    for text in pages:
        starts.append(offset)
        parts.append(text)
        offset += len(text) + 2
    joined = "\n\n".join(parts)
    if not joined.strip():
        raise ValueError("PDF has no extractable text (scanned images need OCR first)")
    return joined, tuple(starts)


def load_file(path: Path, root: Path) -> SourceDocument:
    """Read one supported file; raises ValueError naming what is wrong with it."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ValueError(
            f"unsupported file type {suffix or '(none)'}; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"
        )
    try:
        if suffix in PDF_SUFFIXES:
            text, page_starts = _read_pdf(path)
        else:
            text, page_starts = _read_text(path), ()
    except OSError as err:
        raise ValueError(f"cannot read file ({err.strerror or err})") from err
    if not text.strip():
        raise ValueError("empty file")
    digest = hashlib.sha256(text.encode()).hexdigest()
    kind = "pdf" if suffix in PDF_SUFFIXES else ("markdown" if suffix in {".md", ".markdown"} else "text")
    return SourceDocument(path.relative_to(root).as_posix(), text, kind, digest, page_starts)


def load_folder(folder: str | Path) -> LoadReport:
    """Every supported file under ``folder`` (recursively, hidden paths excluded), sorted by path.

    Raises:
        FileNotFoundError: ``folder`` does not exist or is not a directory.
        ValueError: the folder holds no readable document (the message lists what was skipped).
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"document folder {str(folder)!r} does not exist or is not a directory")
    report = LoadReport()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        try:
            report.documents.append(load_file(path, root))
        except ValueError as err:
            report.skipped.append((rel.as_posix(), str(err)))
            logger.warning("skipped %s: %s", rel.as_posix(), err)
    if not report.documents:
        detail = "; ".join(f"{p}: {why}" for p, why in report.skipped) or "the folder is empty"
        raise ValueError(f"no readable documents in {str(folder)!r} ({detail})")
    return report
