"""Loading a folder: supported types, skipped files with reasons, PDFs with pages."""

from __future__ import annotations

from pathlib import Path

import pytest

from lorag.rag.loaders import load_folder


def _pdf(path: Path, pages: list[str]) -> None:
    """A minimal valid PDF with one text line per page (Helvetica), written by hand: no extra dependency."""
    objects: list[bytes] = []
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    font_id = 3 + 2 * len(pages)
    for i, text in enumerate(pages):
        content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))


def test_reads_supported_files_and_reports_the_rest(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Title\n\nHello markdown.")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("plain text")
    (tmp_path / "blob.txt").write_bytes(b"\x00\x01\x02binary")
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / "empty.md").write_text("  \n")
    (tmp_path / ".hidden.md").write_text("secret")
    report = load_folder(tmp_path)
    assert [d.source for d in report.documents] == ["a.md", "sub/b.txt"]
    reasons = dict(report.skipped)
    assert "binary" in reasons["blob.txt"]
    assert "not UTF-8" in reasons["latin.txt"]
    assert "unsupported file type .png" in reasons["image.png"]
    assert reasons["empty.md"] == "empty file"
    assert ".hidden.md" not in reasons


def test_pdf_pages_and_textless_pdf(tmp_path: Path) -> None:
    _pdf(tmp_path / "doc.pdf", ["First page text", "Second page text"])
    _pdf(tmp_path / "scan.pdf", [""])
    report = load_folder(tmp_path)
    (doc,) = report.documents
    assert "First page text" in doc.text and "Second page text" in doc.text
    assert doc.page_at(doc.text.index("Second")) == 2 and doc.page_at(0) == 1
    assert "no extractable text" in dict(report.skipped)["scan.pdf"]


def test_empty_or_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no readable documents.*the folder is empty"):
        load_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_folder(tmp_path / "nope")


def test_exclude_patterns_follow_gitignore_rules_and_an_unused_one_is_told(tmp_path: Path) -> None:
    for rel in ("index.md", "release-notes.md", "api/release-notes.md", "reference/a.md", "guide/reference.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(f"# {rel}\n\nSome text.\n")
    report = load_folder(tmp_path, exclude=["/release-notes.md", "reference/", "", "docs/missing.md"])
    assert [d.source for d in report.documents] == ["api/release-notes.md", "guide/reference.md", "index.md"]
    assert report.excluded == ["reference/", "release-notes.md"] and report.skipped == []
    assert report.unmatched == ["docs/missing.md"]  # also logged; the blank pattern is no pattern
    anywhere = load_folder(tmp_path, exclude=["release-notes.md", "guide/*"])
    assert [d.source for d in anywhere.documents] == ["index.md", "reference/a.md"]
    with pytest.raises(ValueError, match=r"no readable documents .*5 paths excluded by \['\*\.md'\]"):
        load_folder(tmp_path, exclude=["*.md"])
