"""``LlamaCppEngine``: a private llama-server started on the first request, the base's GGUF (a Q8_0 copy by default)
and its adapters as GGUF LoRAs; ``wire`` turns each request into ``/completion`` calls. See the package doc."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from lorag.llm.adapters import BASE_ADAPTER, UnknownAdapterError
from lorag.llm.generation import SamplingParams, check_scorable, check_token_scorable, encode_prompt
from lorag.llm.llama_cpp.wire import (
    LlamaCppRequest,
    completion_fields,
    forced_token_fields,
    forced_token_logprobs,
    plan_phases,
)
from lorag.llm.requests import SubmitShortcuts


@dataclass(frozen=True)
class LlamaCppBase:
    """The base as this engine knows it: the GGUF it serves, the model reference and fingerprint adapters are
    checked against (the same as ``LoragEngine``'s for a lorag short name), and the GGUF's own context length and
    vocabulary size (padding included: the ids llama.cpp scores): the default context window, and the bound on the
    ids ``token_logprobs`` takes."""

    model: str
    gguf: Path
    path: str
    fingerprint: str
    context_length: int
    vocab_size: int


class LlamaCppAdapters:
    """Adapter name -> peft LoRA folder; written as GGUF LoRAs when the engine's server starts (not after)."""

    def __init__(self, engine: LlamaCppEngine, adapters: Mapping[str, str | os.PathLike[str]]) -> None:
        self._engine = engine
        self._folders: dict[str, Path] = {}
        for name, path in adapters.items():
            self.register(name, path)

    def register(self, name: str, path: str | os.PathLike[str]) -> None:
        """Add an adapter; its GGUF is written when the server starts, which loads every adapter once."""
        folder = Path(path).expanduser()
        if not name or name == BASE_ADAPTER:
            raise ValueError(f"adapter name {name!r} is reserved or empty")
        if not (folder / "adapter_config.json").is_file():
            raise FileNotFoundError(f"adapter {name!r}: {folder} has no adapter_config.json (a peft LoRA folder)")
        if self._engine.started:
            raise RuntimeError(
                f"adapter {name!r}: llama-server loads adapters when it starts; register it before the first request "
                "(or close this engine and make another)"
            )
        self._folders[name] = folder

    def names(self) -> list[str]:
        return sorted(self._folders)

    def folder(self, name: str) -> Path:
        if name not in self._folders:
            raise UnknownAdapterError(f"unknown adapter {name!r}; registered: {self.names()}")
        return self._folders[name]

    def version(self, name: str | None) -> str:
        """The adapter's content version (its weights' sha256), or the base's fingerprint for None."""
        from lorag.fingerprint import file_sha256

        if name in (None, BASE_ADAPTER):
            return self._engine.base.fingerprint
        return file_sha256(self.folder(name) / "adapter_model.safetensors")[:16]


class LlamaCppEngine(SubmitShortcuts):
    """Generate with llama.cpp on CPU behind lorag's engine interface (``submit`` / ``generate`` / ``stream``, and
    ``continuation_logprobs`` / ``token_logprobs`` to score given replies or tokens).

    Args:
        model: A lorag short name whose package ships a GGUF (``smollm2-135m-instruct``) or a ``.gguf`` file.
        adapters: Adapter name -> peft LoRA folder (registered before the first request).
        threads: llama.cpp's threads (default: ``OMP_NUM_THREADS`` when set, as for torch; else this process's CPUs).
        parallel: Requests decoded at once (llama-server's slots; each gets ``context_window`` tokens).
        context_window: Tokens per request (default: the GGUF's training context).
        binary: The ``llama-server`` to run (default: lorag's cached build, see ``lorag.serving``).
        timeout: Seconds the server may take to start, and one request to answer.
        weights: ``q8_0`` serves a copy of the GGUF whose 4- and 5-bit block weights are Q8_0, made once under
            ``LORAG_HOME`` (``lorag.export.gguf_weights``: faster on CPU both to read a prompt and to decode, and
            on SmolLM2 within 1/230 of each block's largest value); ``as-stored`` serves the file itself.
        logprobs: Fill ``GenerationResult.token_logprobs`` (llama.cpp then sorts the vocabulary at every token,
            about an eighth of SmolLM2's decode step); False leaves them empty. An attribute, settable later.

    Raises:
        LookupError: the model has no GGUF here. ``LlamaServerNotBuiltError`` (on the first request): no
            ``llama-server`` is built (``python -m lorag.serving.llama_server build``).
    """

    def __init__(
        self,
        model: str = "smollm2-135m-instruct",
        *,
        adapters: Mapping[str, str | os.PathLike[str]] | None = None,
        threads: int | None = None,
        parallel: int = 1,
        context_window: int | None = None,
        binary: str | os.PathLike[str] | None = None,
        timeout: float = 600.0,
        weights: Literal["q8_0", "as-stored"] = "q8_0",
        logprobs: bool = True,
    ) -> None:
        if weights not in ("q8_0", "as-stored"):
            raise ValueError(f"weights must be 'q8_0' or 'as-stored', got {weights!r}")
        self.base, self.tokenizer = _load_base(model, weights)
        self.context_window = int(context_window or self.base.context_length)
        self.threads = threads or int(os.environ.get("OMP_NUM_THREADS") or len(os.sched_getaffinity(0)))
        self.parallel = parallel
        self.binary = binary
        self.timeout = timeout
        self.logprobs = logprobs
        self._server: Any = None
        self._workdir: Path | None = None
        self._lora_ids: dict[str, int] = {}
        self._start_lock = threading.Lock()
        self.adapters = LlamaCppAdapters(self, adapters or {})

    @property
    def started(self) -> bool:
        return self._server is not None

    def adapter_version(self, adapter: str | None) -> str:
        return self.adapters.version(adapter)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def start(self) -> LlamaCppEngine:
        """Write the adapters' GGUFs and start llama-server (done by the first request when not called)."""
        with self._start_lock:
            if self._server is not None:
                return self
            from lorag.export import to_gguf
            from lorag.serving import LlamaServer

            workdir = Path(tempfile.mkdtemp(prefix="lorag-llama-cpp-"))
            try:
                loras = []
                for i, name in enumerate(self.adapters.names()):
                    loras.append(to_gguf(self.adapters.folder(name), self.base.gguf, workdir / f"{i}.gguf").output)
                    self._lora_ids[name] = i
                server = LlamaServer(
                    self.base.gguf,
                    loras=loras,
                    binary=self.binary,
                    threads=self.threads,
                    parallel=self.parallel,
                    ctx_size=self.context_window * self.parallel,
                )
                self._server = server.start(timeout=self.timeout)
            except BaseException:
                shutil.rmtree(workdir, ignore_errors=True)
                raise
            self._workdir = workdir
            return self

    def submit(
        self,
        prompt: str | None = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        adapter: str | None = None,
        **sampling: Any,
    ) -> LlamaCppRequest:
        """One request; iterate the handle for ``TextDelta`` pieces, then read ``result_value`` (or ``result()``).

        ``sampling``: ``SamplingParams`` fields (or ``params=``); those llama.cpp cannot honour raise ``ValueError``.
        """
        if sampling.pop("tools", None):
            raise ValueError("the llama.cpp engine does not offer tools; use LoragEngine or a llama.cpp server")
        params = sampling.pop("params", None) or SamplingParams(**sampling)
        fields = completion_fields(params, self.context_window)
        ids = encode_prompt(self.tokenizer, prompt, messages, ())
        if len(ids) >= self.context_window:
            raise ValueError(f"the prompt has {len(ids)} tokens; this engine's context window is {self.context_window}")
        name, lora = self._lora(adapter)
        phases = plan_phases(params, ids)
        return LlamaCppRequest(self, ids, {**fields, "lora": lora}, phases, params, name)

    def continuation_logprobs(
        self, messages: Sequence[Mapping[str, Any]], replies: Sequence[str], *, adapter: str | None = None
    ) -> list[float] | None:
        """log P(reply | the chat) for each reply under the adapter, as ``LoragEngine.continuation_logprobs``: the
        server decodes the reply's tokens (the tokenizer's) under a grammar of exactly those ids and reports each
        one's log-probability before the grammar (``forced_token_fields``); None when a reply has a token that ends
        inside a character, whose log-probability llama-server does not report. Each reply reads the prompt afresh,
        as a request does: reusing the first's cache changed the sum by 0.03 (llama.cpp's kernels are not
        batch-invariant).

        Raises:
            ValueError: an empty reply, or a chat and reply longer than the context window (named).
        """
        ids = encode_prompt(self.tokenizer, None, messages, ())
        scores = []
        for reply in replies:
            reply_ids = list(self.tokenizer(reply, add_special_tokens=False)["input_ids"])
            check_scorable(reply, len(reply_ids), len(ids), self.context_window)
            forced = self._forced(ids, reply_ids, adapter)
            if forced is None:
                return None
            scores.append(sum(forced))
        return scores

    def token_logprobs(
        self, prompt_ids: Sequence[int], continuation_ids: Sequence[int], *, adapter: str | None = None
    ) -> list[float] | None:
        """log P of each token of ``continuation_ids`` after ``prompt_ids`` (raw ids, no chat template) under the
        adapter (None: the base), as ``LoragEngine.token_logprobs``; ``lorag.rag.question_gain`` reads it. None when a
        token ends inside a character (``forced_token_logprobs``).

        Raises:
            ValueError: no continuation, more tokens than the context window, or an id outside the vocabulary (named).
        """
        check_token_scorable(prompt_ids, continuation_ids, self.context_window, self.base.vocab_size)
        return self._forced(list(prompt_ids), list(continuation_ids), adapter)

    def _forced(self, prompt_ids: list[int], token_ids: list[int], adapter: str | None) -> list[float] | None:
        """Each forced token's log-probability after the prompt (read afresh: ``cache_prompt`` off)."""
        _, lora = self._lora(adapter)
        body = {**forced_token_fields(token_ids), "prompt": prompt_ids, "lora": lora, "cache_prompt": False}
        with self._post(body) as answer:
            return forced_token_logprobs(json.load(answer), token_ids)

    def _lora(self, adapter: str | None) -> tuple[str | None, list[dict[str, Any]]]:
        """The adapter's name (None: the base) and the ``lora`` field that applies it alone; starts the server."""
        name = adapter if adapter not in (None, BASE_ADAPTER) else None
        if name is not None:
            self.adapters.folder(name)  # unknown names fail here, before the server starts
        self.start()
        return name, [{"id": i, "scale": 1.0 if n == name else 0.0} for n, i in self._lora_ids.items()]

    def _post(self, body: Mapping[str, Any]) -> Any:
        """Open a ``/completion`` reply, streamed or not as ``body`` asks (the caller closes it)."""
        request = urllib.request.Request(
            f"{self._server.base_url}/completion", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)  # http://127.0.0.1
        except urllib.error.HTTPError as err:
            detail = err.read().decode("utf-8", "replace")[:500]
            raise RuntimeError(f"llama-server refused the request ({err.code}): {detail}") from err
        except (urllib.error.URLError, OSError) as err:
            raise ConnectionError(f"llama-server (pid {self._server.pid}) did not answer: {err}") from err

    def close(self) -> None:
        """Stop the server by its PID and remove the adapters' GGUFs."""
        with self._start_lock:
            server, self._server = self._server, None
            if server is not None:
                server.stop()
            if self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None
            self._lora_ids.clear()

    def __enter__(self) -> LlamaCppEngine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _load_base(model: str, weights: str) -> tuple[LlamaCppBase, Any]:
    """The base (``weights``: see ``LlamaCppEngine``) and its tokenizer, for a short name with a packaged GGUF or a
    GGUF file."""
    from transformers import AutoTokenizer

    from lorag.fingerprint import directory_fingerprint, file_sha256
    from lorag.models import packaged_gguf, resolve_model

    file = Path(model).expanduser()
    if file.suffix == ".gguf":
        if not file.is_file():
            raise FileNotFoundError(f"GGUF model {file} does not exist")
        gguf, path = file, str(file)
        tokenizer = AutoTokenizer.from_pretrained(file.parent, gguf_file=file.name)
        fingerprint = file_sha256(file)[:16]
    else:
        found = packaged_gguf(model)
        if found is None:
            raise LookupError(
                f"the llama.cpp engine needs a GGUF: {model!r} is not a lorag short name whose package ships one; "
                "give a .gguf file"
            )
        gguf, path = found, resolve_model(model)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        fingerprint = directory_fingerprint(path)
    if weights == "q8_0":
        gguf = q8_0_copy(gguf)
    return LlamaCppBase(model, gguf, path, fingerprint, *gguf_limits(gguf)), tokenizer


def gguf_limits(gguf: Path) -> tuple[int, int]:
    """The GGUF's training context and vocabulary size: llama.cpp's, its token list with any padding, which can hold
    ids the tokenizer never emits (``len(tokenizer)`` would refuse them) but the model scores."""
    from gguf import GGUFReader

    reader = GGUFReader(gguf)
    try:
        arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
        context = int(reader.fields[f"{arch}.context_length"].parts[-1][0])
        return context, len(reader.fields["tokenizer.ggml.tokens"].data)
    except KeyError as err:
        raise ValueError(f"GGUF {gguf} has no {err.args[0]} field: not a llama.cpp language model; give one") from err


def q8_0_copy(gguf: Path) -> Path:
    """``gguf`` with its low-bit block weights as Q8_0, made once under ``LORAG_HOME`` (the file itself when it has
    none)."""
    from lorag.export.gguf_weights import low_bit_tensors, to_q8_0
    from lorag.fingerprint import file_sha256
    from lorag.models import prepared_folder

    if not low_bit_tensors(gguf):
        return gguf

    name = f"{gguf.stem}-q8_0.gguf"

    def build(folder: Path) -> None:
        to_q8_0(gguf, folder / name)

    return prepared_folder(f"{gguf.stem}-q8_0", f"{file_sha256(gguf)[:16]}:{name}", build) / name
