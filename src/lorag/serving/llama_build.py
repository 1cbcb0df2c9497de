"""Building llama.cpp's ``llama-server`` once from a pinned, pip-fetchable source, and the cache that keeps it.

**Source.** The ``llama-cpp-python`` sdist vendors llama.cpp (``vendor/llama.cpp``) and pip can fetch it from PyPI
like any other package, so the build needs no git and no network beyond the package index:
``pip download --no-binary :all: --no-deps llama-cpp-python==LLAMA_CPP_PYTHON_VERSION``. Only the ``llama-server``
target is built, statically (``BUILD_SHARED_LIBS=OFF``), without curl, OpenSSL, tests, examples or a Web UI download.
The binary goes to ``$LORAG_HOME/llama-server/<version>/llama-server`` (with ``build.json``: the flags and how long the
build took); a warm machine never rebuilds. ggml's default ``-march=native`` applies, so a cache is for the CPU that
built it.

**Cost.** Building takes tens of minutes on a small machine (24 minutes on 2 loaded cores), so nothing builds
implicitly: ``ensure_llama_server`` builds only when asked (``build=True`` or ``LORAG_BUILD_LLAMA_SERVER=1``), and
otherwise raises ``LlamaServerNotBuiltError`` saying how. From a shell::

    python -m lorag.serving.llama_server build      # niced, -j2; prints the binary's path
    python -m lorag.serving.llama_server path       # the cached binary, or exit 1
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from lorag.atomic import atomic_path, write_atomically
from lorag.models import lorag_home

#: The ``llama-cpp-python`` sdist whose vendored llama.cpp is built; the cache is keyed by it.
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
#: Set to 1 to let ``ensure_llama_server`` (and the tests that need a real server) build the binary when missing.
BUILD_ENV = "LORAG_BUILD_LLAMA_SERVER"
#: CMake cache entries of the build: llama-server alone, static, with nothing fetched at build or run time.
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
)
_BINARY = "llama-server"
_TRUTHY = frozenset({"1", "true", "yes", "on"})


class LlamaServerError(RuntimeError):
    """Building, starting or stopping ``llama-server`` failed; the message carries the tail of its log."""


class LlamaServerNotBuiltError(LlamaServerError, FileNotFoundError):
    """No cached ``llama-server`` binary, and building was not asked for."""


def cache_dir(version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    """Where the binary of ``version`` lives: ``$LORAG_HOME/llama-server/<version>``."""
    return lorag_home() / "llama-server" / version


def cached_llama_server(version: str = LLAMA_CPP_PYTHON_VERSION) -> Path | None:
    """The cached binary of ``version``, or None when it was never built here."""
    binary = cache_dir(version) / _BINARY
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


def build_requested() -> bool:
    """True when ``LORAG_BUILD_LLAMA_SERVER`` asks for a build of a missing binary."""
    return os.environ.get(BUILD_ENV, "").strip().lower() in _TRUTHY


def ensure_llama_server(version: str = LLAMA_CPP_PYTHON_VERSION, *, build: bool | None = None) -> Path:
    """The cached binary; built first when missing and ``build`` is True (None: when ``LORAG_BUILD_LLAMA_SERVER=1``).

    Raises:
        LlamaServerNotBuiltError: Missing and no build asked for (the message says how to build it).
        LlamaServerError: The build failed.
    """
    binary = cached_llama_server(version)
    if binary is not None:
        return binary
    if build is None:
        build = build_requested()
    if not build:
        raise LlamaServerNotBuiltError(
            f"llama-server {version} is not built under {cache_dir(version)}; build it once (tens of minutes) with "
            f"`python -m lorag.serving.llama_server build`, or set {BUILD_ENV}=1"
        )
    return build_llama_server(version)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a build or server log, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _run(command: Sequence[str], log: Path, *, niceness: int, cwd: Path | None = None) -> None:
    with open(log, "a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        done = subprocess.run(
            list(command),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=(lambda: os.nice(niceness)) if niceness else None,  # os.nice only
            check=False,
        )
    if done.returncode != 0:
        raise LlamaServerError(f"`{' '.join(command)}` failed ({done.returncode}); log {log}:\n{tail(log)}")


def _fetch_source(work: Path, version: str, log: Path) -> Path:
    """The vendored llama.cpp of the sdist, downloaded and unpacked into ``work`` once."""
    source = work / "src"
    marker = source / ".lorag-extracted"
    if marker.is_file():
        return source / "vendor" / "llama.cpp"
    downloads = work / "dl"
    sdist = downloads / f"llama_cpp_python-{version}.tar.gz"
    if not sdist.is_file():
        pip = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps"]
        _run([*pip, f"llama-cpp-python=={version}", "-d", str(downloads)], log, niceness=0)
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            member.name = member.name.split("/", 1)[1] if "/" in member.name else ""
        members = [m for m in archive.getmembers() if m.name]
        if hasattr(tarfile, "data_filter"):
            archive.extractall(source, members=members, filter="data")
        else:  # pragma: no cover  # Python < 3.10.12
            archive.extractall(source, members=members)  # a PyPI sdist, paths checked by pip's index
    marker.write_text(version)
    return source / "vendor" / "llama.cpp"


def build_llama_server(
    version: str = LLAMA_CPP_PYTHON_VERSION, *, jobs: int = 2, niceness: int = 19, keep_build_dir: bool = False
) -> Path:
    """Build ``llama-server`` from the ``llama-cpp-python`` sdist of ``version`` and cache it (see the module doc).

    An interrupted build resumes where it stopped (the work dir ``$LORAG_HOME/llama-server/build-<version>`` is
    kept until the binary is in place); concurrent calls build once.

    Args:
        version: The ``llama-cpp-python`` release whose vendored llama.cpp is built.
        jobs: Parallel compile jobs.
        niceness: ``nice`` increment of the compiler processes (19: yield to everything else on the machine).
        keep_build_dir: Keep the sources and objects after the build (hundreds of MB) for a fast rebuild.

    Raises:
        LlamaServerError: cmake is missing, or a step failed (with the tail of the build log).
    """
    if shutil.which("cmake") is None:
        raise LlamaServerError("building llama-server needs cmake and a C++ compiler on PATH")
    root = lorag_home() / "llama-server"
    work = root / f"build-{version}"
    with _file_lock(root / f"build-{version}.lock"):
        cached = cached_llama_server(version)
        if cached is not None:
            return cached
        work.mkdir(parents=True, exist_ok=True)
        log = work / "build.log"
        started = time.monotonic()
        source = _fetch_source(work, version, log)
        build = work / "build"
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        if not (build / "CMakeCache.txt").is_file():
            _run(["cmake", "-S", str(source), "-B", str(build), *generator, *CMAKE_FLAGS], log, niceness=niceness)
        _run(
            ["cmake", "--build", str(build), "--target", _BINARY, "-j", str(jobs)],
            log,
            niceness=niceness,
        )
        built = build / "bin" / _BINARY
        if not built.is_file():
            raise LlamaServerError(f"the build finished without {built}; log {log}:\n{tail(log)}")
        target = cache_dir(version)
        target.mkdir(parents=True, exist_ok=True)
        record = {
            "llama_cpp_python": version,
            "cmake_flags": list(CMAKE_FLAGS),
            "jobs": jobs,
            "seconds_this_run": round(time.monotonic() - started, 1),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        write_atomically(target / "build.json", json.dumps(record, indent=2) + "\n")
        with atomic_path(target / _BINARY) as partial:  # the binary's presence means the build is done
            shutil.copy2(built, partial)
            partial.chmod(0o755)
        if not keep_build_dir:
            shutil.rmtree(work, ignore_errors=True)
        return target / _BINARY
