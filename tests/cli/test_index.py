"""``lorag index``: the folder's flags reach the sync (``--exclude`` kept for later ones), and its report line says
what was left out."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from lorag.cli import app


def test_exclude_leaves_paths_out_and_the_report_counts_them(docs: Path, tmp_path: Path, tiny_st_dir: Path) -> None:
    args = ["index", "--docs", str(docs), "--index-dir", str(tmp_path / "idx"), "--embedder", str(tiny_st_dir)]
    result = CliRunner().invoke(app, [*args, "--exclude", "guide/", "--exclude", "tasks.md"])
    assert result.exit_code == 0, result.output
    assert "1 added, 0 changed, 0 removed, 0 unchanged files, 2 paths excluded;" in result.stderr
    kept = CliRunner().invoke(app, args)
    assert kept.exit_code == 0, kept.output
    assert "1 unchanged files, 2 paths excluded by --exclude guide/ --exclude tasks.md (kept with the index;" in (
        kept.stderr
    )
    everything = CliRunner().invoke(app, [*args, "--exclude", ""])
    assert everything.exit_code == 0 and "2 added, 0 changed, 0 removed, 1 unchanged files;" in everything.stderr
    nothing_left = CliRunner().invoke(app, [*args, "--exclude", "*"])
    assert nothing_left.exit_code == 2 and "no readable documents" in nothing_left.stderr
    assert "paths excluded by ['*']" in nothing_left.stderr
