from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """Three indexable files (one in a subfolder) and one file lorag does not index."""
    folder = tmp_path / "docs"
    (folder / "guide").mkdir(parents=True)
    (folder / "guide" / "cors.md").write_text(
        "# CORS\n\nCross-origin requests are allowed with the CORS middleware.\n\n"
        "## Origins\n\nList the allowed origins, for example https://example.org.\n"
    )
    (folder / "tasks.md").write_text("# Background tasks\n\nBackground tasks run after the response is sent.\n")
    (folder / "notes.txt").write_text("Plain notes: the server listens on port 8000 by default.\n")
    (folder / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    return folder
