"""Load a folder of Markdown, text and PDF files into documents, reporting (not failing on) files it cannot read.

Nothing outside the folder is read unless asked: a symlink that resolves outside it is skipped and reported
(``follow_links=True`` reads it). Files over ``max_file_mb`` are skipped and reported before they are read. Paths that
match an ``exclude`` pattern are not read at all (gitignore rules, by pathspec: ``release-notes.md`` anywhere,
``reference/`` a folder, ``/CHANGELOG.md`` the top level only, ``**/drafts/*.md``).
Text is checked whole: a NUL byte anywhere makes a file binary, and code points that cannot be encoded (lone
surrogates, from CESU-8 files or broken PDF font maps) or must not be interchanged (noncharacters) are replaced
with U+FFFD, counted in the report; left in, they fail the tokenizer at every query and sync.
"""

from __future__ import annotations

import bisect
import codecs
import hashlib
import io
import logging
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

from lorag._imports import require

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".rst"})
PDF_SUFFIXES = frozenset({".pdf"})
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | PDF_SUFFIXES

#: Files larger than this many megabytes (10^6 bytes) are skipped unless the caller raises the limit.
DEFAULT_MAX_FILE_MB = 100.0

_SURROGATE = re.compile("[\ud800-\udfff]")
_NONCHARACTER = re.compile(
    "[\ufdd0-\ufdef" + "".join(chr(plane * 0x10000 + low) for plane in range(17) for low in (0xFFFE, 0xFFFF)) + "]"
)
_WIDE_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE)  # UTF-32 LE starts like UTF-16 LE


@dataclass(frozen=True)
class SourceDocument:
    """One file's text. ``page_starts`` holds each PDF page's first character offset (empty for text files)."""

    source: str
    text: str
    kind: str
    sha256: str
    page_starts: tuple[int, ...] = ()
    #: Code points replaced with U+FFFD at load (lone surrogates, noncharacters).
    replaced: int = 0

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
    #: Paths an ``exclude`` pattern matched (a folder's with a trailing ``/``; nothing under it is listed).
    excluded: list[str] = field(default_factory=list)
    #: ``exclude`` patterns that matched nothing (a typo, an absolute path), also logged as warnings.
    unmatched: list[str] = field(default_factory=list)

    @property
    def replaced(self) -> list[tuple[str, int]]:
        """``(source, count)`` of each document whose invalid code points were replaced."""
        return [(d.source, d.replaced) for d in self.documents if d.replaced]


def clean_text(text: str) -> tuple[str, int]:
    """``text`` with lone surrogates and noncharacters replaced by U+FFFD, and how many were replaced.

    A surrogate pair (two halves of one character, as CESU-8 writes it) is joined into its character, not replaced.
    """
    count = 0
    if _SURROGATE.search(text):
        before = text.count("\ufffd")
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        count += text.count("\ufffd") - before
    text, nonchars = _NONCHARACTER.subn("\ufffd", text)
    return text, count + nonchars


def _decode(raw: bytes) -> str:
    """UTF-8 text (a BOM allowed); any NUL byte, wherever it is, means binary content."""
    nul = raw.find(b"\x00")
    if nul >= 0:
        if raw.startswith(_WIDE_BOMS):
            raise ValueError("UTF-16 or UTF-32 text: convert it to UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)")
        raise ValueError(f"binary content (NUL byte at byte {nul})")
    try:
        # surrogatepass: encoded surrogates (CESU-8) decode, and clean_text then joins or replaces them.
        return raw.decode("utf-8-sig", errors="surrogatepass")
    except UnicodeDecodeError as err:
        raise ValueError(f"not UTF-8 text ({err.reason} at byte {err.start})") from err


def _read_pdf(raw: bytes) -> tuple[str, tuple[int, ...]]:
    pypdf = require("pypdf", purpose="reading PDF files")
    try:
        reader = pypdf.PdfReader(io.BytesIO(raw))
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


def _read_bytes(path: Path, max_bytes: int, follow: bool) -> bytes:
    """The file's bytes, checking size and type on the open file (a file swapped for a link or FIFO is refused)."""
    flags = os.O_RDONLY | (0 if follow else getattr(os, "O_NOFOLLOW", 0))
    try:
        fd = os.open(path, flags)
    except OSError as err:
        raise ValueError(f"cannot read file ({err.strerror or err})") from err
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_size > max_bytes:
            raise ValueError(
                f"{info.st_size / 1e6:.3g} MB, over the {max_bytes / 1e6:g} MB limit per file "
                "(raise it with --max-file-mb / max_file_mb)"
            )
        data = handle.read(info.st_size + 1)
    if len(data) > info.st_size:
        raise ValueError("the file grew while it was read: index again once it is written")
    return data


def load_file(
    path: Path, root: Path, *, max_file_mb: float = DEFAULT_MAX_FILE_MB, follow_links: bool = False
) -> SourceDocument:
    """Read one supported file; raises ValueError naming what is wrong with it."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ValueError(
            f"unsupported file type {suffix or '(none)'}; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"
        )
    raw = _read_bytes(path, int(max_file_mb * 1e6), follow_links)
    if suffix in PDF_SUFFIXES:
        text, page_starts = _read_pdf(raw)
    else:
        text, page_starts = _decode(raw), ()
    del raw
    text, replaced = clean_text(text)
    if not text.strip():
        raise ValueError("empty file")
    digest = hashlib.sha256(text.encode()).hexdigest()
    kind = "pdf" if suffix in PDF_SUFFIXES else ("markdown" if suffix in {".md", ".markdown"} else "text")
    return SourceDocument(path.relative_to(root).as_posix(), text, kind, digest, page_starts, replaced)


class Exclusion:
    """``exclude`` patterns (gitignore rules) matched against paths relative to the folder, each remembering whether
    it matched anything, so a pattern that excludes nothing (a typo, an absolute path) can be told."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = [p for p in patterns if p.strip()]
        self._specs = [pathspec.GitIgnoreSpec.from_lines([p]) for p in self.patterns]
        self.used = [False] * len(self.patterns)

    def __call__(self, rel: str) -> bool:
        hits = [spec.match_file(rel) for spec in self._specs]
        self.used = [u or h for u, h in zip(self.used, hits, strict=True)]
        return any(hits)

    def unused(self) -> list[str]:
        return [p for p, u in zip(self.patterns, self.used, strict=True) if not u]


def _walk(root: Path, follow_links: bool, report: LoadReport, exclusion: Exclusion) -> Iterator[Path]:
    """Files under ``root`` (hidden names and ``exclusion``'s paths left out) that may be read; links and special
    files judged here.

    A link is read when it resolves inside ``root`` (a file), or anywhere with ``follow_links`` (a file or a
    folder, each real folder entered once, so a link cycle ends).
    """
    skipped = report.skipped
    real_root = root.resolve()
    entered = {real_root}
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as err:
            skipped.append((folder.relative_to(root).as_posix(), f"cannot list folder ({err.strerror or err})"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            rel = path.relative_to(root).as_posix()
            if exclusion.patterns:
                shown = rel + "/" if entry.is_dir() else rel  # a trailing slash: gitignore's "folder/" matches
                if exclusion(shown):
                    report.excluded.append(shown)
                    continue
            if entry.is_symlink():
                target = path.resolve()
                inside = target == real_root or real_root in target.parents
                if not target.exists():
                    skipped.append((rel, "broken symlink"))
                elif not (inside or follow_links):
                    skipped.append((rel, f"symlink to {target}, outside the folder (--follow-links to read it)"))
                elif target.is_dir():
                    if inside or target in entered:
                        skipped.append((rel, "symlink to a folder already read"))
                    else:
                        entered.add(target)
                        pending.append(path)
                elif target.is_file():
                    yield path
                else:
                    skipped.append((rel, "not a regular file"))
            elif entry.is_dir(follow_symlinks=False):
                real = path.resolve()
                if real in entered:  # reached again through a followed link
                    skipped.append((rel, "folder already read"))
                else:
                    entered.add(real)
                    pending.append(path)
            elif entry.is_file(follow_symlinks=False):
                yield path
            else:
                skipped.append((rel, "not a regular file"))


def load_folder(
    folder: str | Path,
    *,
    follow_links: bool = False,
    max_file_mb: float = DEFAULT_MAX_FILE_MB,
    exclude: Sequence[str] = (),
) -> LoadReport:
    """Every supported file under ``folder`` (recursively, hidden paths excluded), sorted by path.

    Args:
        folder: the documents folder.
        follow_links: also read symlinks that resolve outside ``folder`` (skipped and reported otherwise).
        max_file_mb: skip (and report) files larger than this many megabytes.
        exclude: gitignore patterns of paths (relative to ``folder``) not to read; one that matches nothing is
            logged as a warning.

    Raises:
        FileNotFoundError: ``folder`` does not exist or is not a directory.
        ValueError: the folder holds no readable document (the message lists what was skipped), or
            ``max_file_mb`` is not positive.
    """
    if not max_file_mb > 0:
        raise ValueError(f"max_file_mb must be a positive number of megabytes, got {max_file_mb!r}")
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"document folder {str(folder)!r} does not exist or is not a directory")
    report = LoadReport()
    exclusion = Exclusion(exclude)
    for path in sorted(_walk(root, follow_links, report, exclusion)):
        rel = path.relative_to(root).as_posix()
        try:
            doc = load_file(path, root, max_file_mb=max_file_mb, follow_links=follow_links or path.is_symlink())
        except ValueError as err:
            report.skipped.append((rel, str(err)))
            continue
        report.documents.append(doc)
        if doc.replaced:
            logger.warning("%s: %d invalid code points (lone surrogates, noncharacters) replaced", rel, doc.replaced)
    report.skipped.sort()
    report.excluded.sort()
    for rel, why in report.skipped:
        logger.warning("skipped %s: %s", rel, why)
    report.unmatched = exclusion.unused()
    for pattern in report.unmatched:
        logger.warning("exclude pattern %r matched nothing in %s (patterns are relative to it)", pattern, folder)
    if not report.documents:
        detail = "; ".join(f"{p}: {why}" for p, why in report.skipped)
        if report.excluded:
            detail += f"{'; ' if detail else ''}{len(report.excluded)} paths excluded by {exclusion.patterns}"
        detail = detail or "the folder is empty"
        raise ValueError(f"no readable documents in {str(folder)!r} ({detail})")
    return report
