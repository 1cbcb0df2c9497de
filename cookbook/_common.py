"""Shared by the cookbook recipes: the size knob, the output folder and the results file the tests read."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "examples" / "fastapi-docs"


def parser(description: str, name: str) -> argparse.ArgumentParser:
    """``--size smoke`` (seconds to a few minutes; CI runs it) or ``full`` (the figures quoted in the recipe)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--size", choices=["smoke", "full"], default="full", help="smoke: tiny settings for CI")
    p.add_argument("--out", type=Path, default=ROOT / "cookbook" / "output" / name, help="where results go")
    return p


def write_results(out: Path, results: dict[str, Any]) -> Path:
    """Write ``results.json`` (what the cookbook tests assert on) and echo it."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    print(json.dumps(results, indent=2, ensure_ascii=False))
    return path
