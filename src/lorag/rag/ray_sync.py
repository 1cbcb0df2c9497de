"""Chunking and embedding of a ``DocumentIndex`` sync sharded over a Ray cluster (``pip install "lorag[ray]"``).

Workers only compute: each Ray actor loads the splitters and its own copy of the embedder once, then chunks the
documents and encodes the texts it is sent and returns them. The driver keeps everything that writes: it holds the
index's lock, reads and fills the embedding cache, and saves the snapshot, so the lock and snapshot guarantees of
``DocumentIndex`` hold unchanged and a failed worker leaves the index as it was. Results come back in the order they
were sent, so a sharded build has the chunk ids, texts, offsets and metadata of a single-process one, and its vectors
to float rounding (batches differ).

Ray is reached before the index is locked: an address that does not answer fails within ``timeout`` seconds with
nothing written. Without an address a local runtime is started, bound to 127.0.0.1 with no dashboard, and shut
down after the sync.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lorag.chunking import Splitter
from lorag.embedding import Embedder
from lorag.rag.document_chunks import chunk_document
from lorag.rag.loaders import SourceDocument

logger = logging.getLogger(__name__)

#: Seconds to wait for a Ray address to answer before giving up.
DEFAULT_TIMEOUT_S = 15.0
#: Ray's default ports: the GCS of a cluster head (``host:port``) and the Ray Client server (``ray://host:port``).
GCS_PORT = 6379
CLIENT_PORT = 10001
#: Characters of documents per chunking task: small enough to spread a folder over the workers.
CHUNK_SHARD_CHARS = 1_000_000
#: Tasks per worker that one embedding call is cut into, so a slow worker does not hold the others back.
TASKS_PER_WORKER = 2

Chunked = tuple[list[str], list[str], list[dict[str, Any]]]


class RayUnreachableError(ConnectionError):
    """The Ray address did not answer; raised before anything is locked or written."""


def _import_ray() -> Any:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # lorag runs offline: no usage report
    try:
        import ray
    except ImportError as err:
        raise ImportError('ray is needed for executor="ray" but is not installed: pip install "lorag[ray]"') from err
    return ray


def _start_local(ray: Any, num_cpus: int) -> None:
    """``ray.init`` of a one-machine runtime on 127.0.0.1, without dashboard or worker logs on the terminal.

    Ray binds a new node to the machine's routable IP, reachable from the network, unless its switch for machines
    that are no cluster (``ENABLE_RAY_CLUSTER``, read when the node's IP is chosen) is off: turned off for this call.
    """
    constants: Any = importlib.import_module("ray._private.ray_constants")
    saved = constants.ENABLE_RAY_CLUSTER
    constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    finally:
        constants.ENABLE_RAY_CLUSTER = saved


def probe(address: str, timeout: float) -> None:
    """Open a TCP connection to a Ray address (``host[:port]`` or ``ray://host[:port]``) within ``timeout`` seconds.

    ``ray.init`` retries an address that does not answer for a minute or more; this fails in seconds instead.
    ``auto`` (the cluster this machine belongs to) is left to Ray.
    """
    if address == "auto":
        return
    client = address.startswith("ray://")
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
    try:
        port_number = int(port) if port else (CLIENT_PORT if client else GCS_PORT)
    except ValueError:
        raise ValueError(f"Ray address {address!r} is not host:port, ray://host:port or auto") from None
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", port_number), timeout=timeout):
            pass
    except OSError as err:
        raise RayUnreachableError(
            f"Ray at {address!r} does not answer within {timeout:g} s ({err}); start the cluster "
            "(ray start --head) or give its head's address; nothing was written"
        ) from err


def _shards(docs: Sequence[SourceDocument], chars: int) -> list[list[SourceDocument]]:
    """Consecutive runs of documents of about ``chars`` characters each, in order."""
    shards: list[list[SourceDocument]] = [[]]
    size = 0
    for doc in docs:
        if shards[-1] and size + len(doc.text) > chars:
            shards.append([])
            size = 0
        shards[-1].append(doc)
        size += len(doc.text)
    return shards


def worker_embedder_args(embedder: Embedder) -> dict[str, Any]:
    """What a worker builds its embedder from: the model as the driver named it (a local folder made absolute)."""
    if embedder.backend == "openvino":
        raise ValueError(
            'executor="ray" does not support backend="openvino" (its encoder is calibrated on texts the workers '
            "do not have); use torch, onnx or onnx-fp32"
        )
    local = Path(embedder.model_name).expanduser()
    return {
        "model": str(local.resolve()) if local.exists() else embedder.model_name,
        "device": "cpu",
        "batch_size": embedder.batch_size,
        "normalize": embedder.normalize,
        "backend": embedder.backend,
    }


class _Worker:
    """One Ray actor: chunks documents and encodes texts, and writes nothing."""

    def __init__(self, embedder_args: dict[str, Any], fingerprint: str, splitters: dict[str, Splitter]) -> None:
        self.embedder = Embedder(**embedder_args)  # no prompts, no cache: the driver applies both
        if self.embedder.fingerprint != fingerprint:
            raise ValueError(
                f"the Ray worker loaded another model for {embedder_args['model']!r} than the driver "
                f"({self.embedder.fingerprint} != {fingerprint}); give a model every node resolves alike"
            )
        self.splitters = splitters

    def chunk(self, docs: list[SourceDocument]) -> list[Chunked]:
        return [chunk_document(doc, self.splitters) for doc in docs]

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.embedder.embed_documents(texts)


class RayExecutor:
    """Where ``DocumentIndex.sync(executor=...)`` runs chunking and embedding: a Ray cluster, or a local runtime.

    Args:
        address: a Ray cluster (``host:port`` of its head, ``ray://host:port``, or ``auto``); ``None`` starts a
            local runtime on 127.0.0.1 with ``workers`` CPUs, or uses the one this process already started.
        workers: Ray actors, one CPU and one copy of the embedder each; default: every CPU of the cluster.
        timeout: seconds an address may take to answer before ``RayUnreachableError``.

    Entering connects (reentrant: the outermost block connects). Leaving any block ends the worker actors, so their
    CPUs are free for the next sync; leaving the outermost also ends the runtime if this object started it.
    """

    def __init__(self, address: str | None = None, *, workers: int | None = None, timeout: float = DEFAULT_TIMEOUT_S):
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.address = address
        self.workers = workers
        self.timeout = timeout
        self._ray: Any = None
        self._started = False
        self._depth = 0
        self._pool: list[Any] = []

    def __enter__(self) -> RayExecutor:
        if self._depth == 0:
            self._connect()
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        self._release()
        if self._depth == 0:
            self._close()

    def _connect(self) -> None:
        if self.address is not None:
            probe(self.address, self.timeout)
        ray = _import_ray()
        if ray.is_initialized():
            if self.address is not None:
                raise ValueError(
                    f"Ray is already initialised in this process, so it cannot connect to {self.address!r}: "
                    "call ray.shutdown() first, or pass no address to use the running runtime"
                )
        elif self.address is None:
            _start_local(ray, self.workers or os.cpu_count() or 1)
            self._started = True
        else:
            ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING)
            self._started = True
        self._ray = ray

    def _release(self) -> None:
        for actor in self._pool:
            self._ray.kill(actor)
        self._pool = []

    def _close(self) -> None:
        ray, self._ray = self._ray, None
        if ray is not None and self._started:
            ray.shutdown()
            self._started = False

    def _actors(self, embedder: Embedder, splitters: dict[str, Splitter]) -> list[Any]:
        """The worker actors, started on first use, so a sync with nothing new loads no model on the cluster."""
        if self._ray is None:
            raise RuntimeError("RayExecutor is used outside its with-block")
        if not self._pool:
            ray = self._ray
            # Every CPU of the cluster, not the free ones: CPUs of just-killed actors come back asynchronously,
            # and an actor waiting for a CPU simply starts later.
            count = self.workers or int(ray.cluster_resources().get("CPU", 0))
            if count < 1:
                raise RuntimeError("the Ray cluster has no CPU for lorag's workers; pass workers= or add a CPU node")
            actor = ray.remote(num_cpus=1)(_Worker)
            args = (worker_embedder_args(embedder), embedder.fingerprint, ray.put(splitters))
            self._pool = [actor.remote(*args) for _ in range(count)]
            logger.info("started %d Ray workers", count)
        return self._pool

    def _map(self, actors: list[Any], method: str, args: list[Any]) -> Iterator[Any]:
        """``method(arg)`` for each of ``args`` on the actors, round-robin; results in the order of ``args``."""
        refs = [getattr(actors[i % len(actors)], method).remote(arg) for i, arg in enumerate(args)]
        for ref in refs:
            yield self._ray.get(ref)

    def chunk(
        self,
        docs: Sequence[SourceDocument],
        embedder: Embedder,
        splitters: dict[str, Splitter],
        done: Callable[[int], None],
    ) -> list[Chunked]:
        """Each document's chunks, in order; ``done`` is told the characters of each finished shard."""
        actors = self._actors(embedder, splitters)
        shards = _shards(docs, min(CHUNK_SHARD_CHARS, sum(len(d.text) for d in docs) // len(actors) + 1))
        chunked: list[Chunked] = []
        for shard, result in zip(shards, self._map(actors, "chunk", shards), strict=True):
            chunked += result
            done(sum(len(d.text) for d in shard))
        return chunked

    @contextlib.contextmanager
    def encoding(self, embedder: Embedder, splitters: dict[str, Splitter]) -> Iterator[None]:
        """Within the block, ``embedder`` encodes on the workers.

        Only the encoding moves: the driver's embedder still reads and fills its cache, applies its prompt and
        precision, so texts already cached are never sent and the cache ends as a local sync would leave it.
        """
        actors = self._actors(embedder, splitters)

        def encode(texts: list[str], prompt: str) -> np.ndarray:
            texts = [prompt + t for t in texts] if prompt else texts
            size = max(1, -(-len(texts) // (len(actors) * TASKS_PER_WORKER)))
            blocks = [texts[start : start + size] for start in range(0, len(texts), size)]
            return np.concatenate(list(self._map(actors, "encode", blocks))).astype(np.float32, copy=False)

        embedder._encode = encode  # type: ignore[method-assign]
        try:
            yield
        finally:
            del embedder._encode  # the class's method again
