"""llama.cpp's ``llama-server``, built from a pinned source and cached, started and stopped by PID.

Why a library module and not a script: the remote-backend tests, ``benchmarks/decode.py`` and a user trying the
"Scaling out" path all need the same three steps (build once, start on a free port, stop), and the cache location is
lorag's own (``lorag.models.lorag_home``).

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

**Serving.** ``LlamaServer`` starts the binary on 127.0.0.1 (a free port by default) with ``-t 1 -nr`` (without
``--no-repack`` it segfaulted on this machine's CPU while repacking the Q4 weights) and every ``--lora`` file, waits a
bounded time for ``/health``, then sets every adapter's global scale to 0 (``POST /lora-adapters``), so a request
that names no adapter gets the bare base: llama-server starts adapters at scale 1, and in this version
``--lora-init-without-apply`` leaves the scales it reports and applies to requests at 1. Each request says which
adapter it wants through ``"lora": [{"id", "scale"}]`` (lorag's client always sends every id). ``stop`` ends the
process by its PID (SIGTERM, then SIGKILL after a bounded wait).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

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


def _tail(path: Path, lines: int = 30) -> str:
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
        raise LlamaServerError(f"`{' '.join(command)}` failed ({done.returncode}); log {log}:\n{_tail(log)}")


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
            raise LlamaServerError(f"the build finished without {built}; log {log}:\n{_tail(log)}")
        target = cache_dir(version)
        target.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkstemp(prefix=f".{_BINARY}.", dir=target)[1])
        shutil.copy2(built, partial)
        partial.chmod(0o755)
        record = {
            "llama_cpp_python": version,
            "cmake_flags": list(CMAKE_FLAGS),
            "jobs": jobs,
            "seconds_this_run": round(time.monotonic() - started, 1),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (target / "build.json").write_text(json.dumps(record, indent=2) + "\n")
        os.replace(partial, target / _BINARY)
        if not keep_build_dir:
            shutil.rmtree(work, ignore_errors=True)
        return target / _BINARY


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LlamaServer:
    """One ``llama-server`` process on 127.0.0.1: a GGUF base plus GGUF LoRA adapters, each applied per request.

    Adapters are loaded in the order given, so the first has id 0 (``GET /lora-adapters`` lists them with their
    paths); ``start`` sets them all to scale 0.

    Example:
        .. code-block:: python

            from lorag.serving import LlamaServer, ensure_llama_server

            with LlamaServer("SmolLM2-135M-Instruct.Q4_1.gguf", loras=["legal.gguf"]) as server:
                chat = ChatLorag(base_url=server.base_url, backend="llama.cpp", adapters={"legal": "legal.gguf"})

    Args:
        model: The base model's GGUF.
        loras: LoRA GGUFs (``lorag export-adapter --format gguf``).
        binary: The ``llama-server`` to run (default: the cached one, see ``ensure_llama_server``).
        port: Port on 127.0.0.1 (default: a free one).
        threads: Generation threads (``-t``).
        ctx_size: Context tokens in all, shared by the slots (``-c``).
        parallel: Slots, i.e. requests decoded concurrently (``-np``).
        extra_args: Further ``llama-server`` arguments, appended as given.
        log_path: Where the server's output goes (default: a temp file, removed by a ``stop`` that follows a
            successful start; a failed start keeps it and names it in the error).
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        loras: Sequence[str | os.PathLike[str]] = (),
        binary: str | os.PathLike[str] | None = None,
        port: int | None = None,
        threads: int = 1,
        ctx_size: int = 4096,
        parallel: int = 2,
        extra_args: Sequence[str] = (),
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.model = Path(model)
        self.loras = [Path(p) for p in loras]
        for path in (self.model, *self.loras):
            if not path.is_file():
                raise FileNotFoundError(f"llama-server input {path} does not exist")
        self.binary = Path(binary) if binary is not None else ensure_llama_server()
        self.port = port or free_port()
        self.threads = threads
        self.ctx_size = ctx_size
        self.parallel = parallel
        self.extra_args = list(extra_args)
        self._own_log = log_path is None
        if log_path is None:
            handle, log_path = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
            os.close(handle)
        self.log_path = Path(log_path)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """The server's root URL (``ChatLorag(base_url=...)`` adds ``/v1``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process is not None else None

    def command(self) -> list[str]:
        """The command line ``start`` runs."""
        command = [str(self.binary), "-m", str(self.model), "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["-t", str(self.threads), "-nr", "-c", str(self.ctx_size), "-np", str(self.parallel)]
        command += ["--no-webui"]
        for lora in self.loras:
            command += ["--lora", str(lora)]
        return command + self.extra_args

    def start(self, timeout: float = 120.0) -> LlamaServer:
        """Start the process and wait (at most ``timeout`` seconds) until ``/health`` answers 200.

        Raises:
            LlamaServerError: It exited, or was not ready in time (it is then stopped); the message has its log.
        """
        if self._process is not None:
            raise LlamaServerError(f"this server already runs (pid {self._process.pid})")
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                self._process = None
                raise LlamaServerError(
                    f"llama-server exited with {code} while starting; log {self.log_path}:\n{_tail(self.log_path)}"
                )
            if self._healthy():
                if self.loras:
                    self._zero_lora_scales()
                return self
            time.sleep(0.2)
        message = f"llama-server was not ready within {timeout:g} s; log {self.log_path}:\n{_tail(self.log_path)}"
        self._own_log = False  # kept for the error
        self.stop()
        raise LlamaServerError(message)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/health", timeout=2) as response:  # http://127.0.0.1
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _zero_lora_scales(self) -> None:
        body = json.dumps([{"id": i, "scale": 0.0} for i in range(len(self.loras))]).encode()
        request = urllib.request.Request(
            f"{self.base_url}/lora-adapters", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # http://127.0.0.1
                response.read()
        except (urllib.error.URLError, OSError) as err:
            self._own_log = False  # kept for the error
            self.stop()
            raise LlamaServerError(f"could not set the adapters' scales to 0: {err}; log {self.log_path}") from err

    def running(self) -> bool:
        """True while the process is alive."""
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop the process by its PID: SIGTERM, then SIGKILL if it has not exited after ``timeout`` seconds.

        Returns:
            Its exit code, or None when it was not running.
        """
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
        code = process.wait(timeout=timeout)
        if self._own_log:
            self.log_path.unlink(missing_ok=True)
        return code

    def __enter__(self) -> LlamaServer:
        return self if self.running() else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lorag.serving.llama_server build|path``: build (niced, ``-j2``) or locate the cached binary."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["build"]:
        sys.stdout.write(f"{build_llama_server()}\n")
        return 0
    if args == ["path"]:
        binary = cached_llama_server()
        if binary is None:
            sys.stderr.write(f"llama-server {LLAMA_CPP_PYTHON_VERSION} is not built under {cache_dir()}\n")
            return 1
        sys.stdout.write(f"{binary}\n")
        return 0
    sys.stderr.write("usage: python -m lorag.serving.llama_server build|path\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
