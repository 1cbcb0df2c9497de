"""Shared pieces of the real-store tests: a PostgreSQL 16 + pgvector server, a corpus and a deterministic embedder.

The server comes from the ``pgserver`` wheel's bundled binaries, run as the ``postgres`` system user through
``runuser`` (PostgreSQL refuses to run as root). pgserver's Python API is not used: as root it calls ``useradd``.
"""

from __future__ import annotations

import contextlib
import math
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.embeddings import Embeddings

PG_USER = "postgres"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30


def pg_bin_dir() -> Path | None:
    """The bin folder of the PostgreSQL that the pgserver wheel bundles, or None without it."""
    import importlib.util

    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        return None
    bin_dir = Path(spec.origin).parent / "pginstall" / "bin"
    return bin_dir if (bin_dir / "pg_ctl").is_file() else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(*args: str | Path, timeout: float) -> subprocess.CompletedProcess[str]:
    command = [str(a) for a in args]
    if os.geteuid() == 0:
        command = ["runuser", "-u", PG_USER, "--", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def _ensure_postgres_user() -> None:
    """As root, PostgreSQL must run as another user: use ``postgres``, created only if this machine lacks it."""
    if os.geteuid() != 0:
        return
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        done = subprocess.run(["useradd", "--system", "--no-create-home", PG_USER], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"PostgreSQL cannot run as root and creating the {PG_USER!r} user failed: {done.stderr}")


class PostgresServer:
    """A throwaway PostgreSQL on 127.0.0.1 with pgvector, in a temporary data directory; stop() removes it."""

    def __init__(self, bin_dir: Path) -> None:
        _ensure_postgres_user()
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="lorag-pg-"))  # not under pytest's tmp: root-only (mode 700)
        self.data = self.root / "data"
        self.port = _free_port()
        if os.geteuid() == 0:
            shutil.chown(self.root, PG_USER)
        done = _as_postgres(
            bin_dir / "initdb", "-D", self.data, "-U", PG_USER, "--auth=trust", "-E", "UTF8", timeout=START_TIMEOUT_S
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr}")
        self.start()
        done = _as_postgres(
            bin_dir / "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_USER, "-c",
            "CREATE EXTENSION IF NOT EXISTS vector", timeout=START_TIMEOUT_S,
        )  # fmt: skip
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"CREATE EXTENSION vector failed: {done.stderr}")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root}"
        done = _as_postgres(
            self.bin_dir / "pg_ctl", "-D", self.data, "-o", options, "-l", self.root / "log", "-w",
            "-t", str(START_TIMEOUT_S), "start", timeout=START_TIMEOUT_S + 5,
        )  # fmt: skip
        if done.returncode != 0:
            log = (self.root / "log").read_text(errors="replace")[-2000:] if (self.root / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {done.stderr}\n{log}")

    def stop(self) -> None:
        """Fast shutdown, bounded in time; an immediate one if the fast one hangs."""
        for mode in ("fast", "immediate"):
            with contextlib.suppress(subprocess.TimeoutExpired):
                done = _as_postgres(
                    self.bin_dir / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", str(STOP_TIMEOUT_S), "stop",
                    timeout=STOP_TIMEOUT_S + 5,
                )  # fmt: skip
                if done.returncode == 0 or "Is server running?" in done.stderr:
                    return
        raise RuntimeError(f"PostgreSQL in {self.data} did not stop")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A started server, stopped and removed afterwards; the test is skipped, loudly, without the binaries."""
    bin_dir = pg_bin_dir()
    if bin_dir is None:
        pytest.skip("SKIPPED REAL-SERVER TESTS: PostgreSQL binaries not found; pip install 'lorag[stores]' (pgserver)")
    server = PostgresServer(bin_dir)
    try:
        yield server
    finally:
        server.remove()


# ----------------------------------------------------------------------------------------------------------- corpus
TEXTS = {
    "wolf": "Wolves live and hunt in packs across the forest.",
    "fox": "Foxes hunt rodents at night in the woods.",
    "paris": "Paris is the capital city of France.",
    "berlin": "Berlin is the capital city of Germany.",
    "guide": "Troubleshooting guide: errors, faults and failures of the water pump.",
    "e4107": "Code E4107 means the pump runs dry.",
}
METADATAS = {
    "wolf": {"topic": "animals", "year": 2019},
    "fox": {"topic": "animals", "year": 2021},
    "paris": {"topic": "geography", "year": 2020},
    "berlin": {"topic": "geography"},
    "guide": {"topic": "manuals", "year": 2023},
    "e4107": {"topic": "manuals", "year": 2018},
}
IDS = list(TEXTS)


class ConceptEmbeddings(Embeddings):
    """Deterministic embeddings: one dimension per concept (synonyms share it) plus a constant, normalised.

    Unlike a random tiny model, it makes dense and lexical rankings differ on purpose: codes such as ``E4107`` are no
    concept, so only BM25 sees them, while "malfunction" finds the troubleshooting guide by meaning alone.
    """

    CONCEPTS = (
        {"wolves", "wolf", "foxes", "fox", "rodents", "packs", "hunt"},
        {"forest", "woods", "night"},
        {"paris", "berlin", "capital", "city"},
        {"france", "germany"},
        {"error", "errors", "fault", "faults", "failure", "failures", "malfunction"},
        {"pump", "water", "dry"},
        {"guide", "manual", "handbook", "troubleshooting"},
    )

    def __init__(self, size: int = len(CONCEPTS) + 1, fail_on: str | None = None) -> None:
        self.size = size
        self.fail_on = fail_on

    def _embed(self, text: str) -> list[float]:
        vector = [0.0] * (len(self.CONCEPTS) + 1)
        vector[-1] = 0.2
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            for dim, words in enumerate(self.CONCEPTS):
                if word in words:
                    vector[dim] += 1.0
        vector = [*vector[: self.size - 1], vector[-1]]
        norm = math.sqrt(sum(v * v for v in vector))
        return [v / norm for v in vector]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if self.fail_on is not None and any(self.fail_on in t for t in texts):
            raise RuntimeError(f"embedding failed on a text containing {self.fail_on!r}")
        return [self._embed(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)
