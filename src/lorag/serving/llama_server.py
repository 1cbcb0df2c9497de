"""llama.cpp's ``llama-server`` started and stopped by PID (built and cached by ``lorag.serving.llama_build``).

Why a library module and not a script: the remote-backend tests, ``benchmarks/decode.py`` and a user trying the
"Scaling out" path all need the same three steps (build once, start on a free port, stop), and the cache location is
lorag's own (``lorag.models.lorag_home``).

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
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from lorag.serving.llama_build import (
    BUILD_ENV,
    CMAKE_FLAGS,
    LLAMA_CPP_PYTHON_VERSION,
    LlamaServerError,
    LlamaServerNotBuiltError,
    build_llama_server,
    build_requested,
    cache_dir,
    cached_llama_server,
    ensure_llama_server,
    tail,
)

__all__ = [
    "BUILD_ENV",
    "CMAKE_FLAGS",
    "LLAMA_CPP_PYTHON_VERSION",
    "LlamaServer",
    "LlamaServerError",
    "LlamaServerNotBuiltError",
    "build_llama_server",
    "build_requested",
    "cache_dir",
    "cached_llama_server",
    "ensure_llama_server",
    "free_port",
    "main",
]


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
                    f"llama-server exited with {code} while starting; log {self.log_path}:\n{tail(self.log_path)}"
                )
            if self._healthy():
                if self.loras:
                    self._zero_lora_scales()
                return self
            time.sleep(0.2)
        message = f"llama-server was not ready within {timeout:g} s; log {self.log_path}:\n{tail(self.log_path)}"
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
