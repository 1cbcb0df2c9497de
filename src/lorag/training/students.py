"""Students for embedding distillation: a layer-reduced copy of the teacher, another (smaller) model with a
learned projection, or a static token-embedding model.

A student spec is a string: ``layers:K`` (keep K of the teacher's N transformer layers, spread out as DistilBERT
and sentence-transformers' model-compression example do), ``static`` (Model2Vec-style: one vector per token of
the teacher's vocabulary, averaged, through sentence-transformers' ``StaticEmbedding``), or a model reference
(a lorag short name, a directory or a hub id, see ``lorag.models.resolve_model``).
"""

from __future__ import annotations

import copy
import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from lorag._imports import require
from lorag.models import resolve_model

logger = logging.getLogger(__name__)

StudentKind = Literal["layers", "static", "model"]
_SPEC_HELP = "valid forms: 'layers:K' (K a positive integer), 'static', or a model (short name, directory, hub id)"


@dataclass(frozen=True)
class StudentSpec:
    """A parsed student spec: ``kind`` plus ``layers`` (for ``layers:K``) or ``model`` (a model reference)."""

    kind: StudentKind
    layers: int | None = None
    model: str | None = None


def parse_student_spec(spec: str) -> StudentSpec:
    """Parse ``layers:K`` / ``static`` / a model reference; anything else raises ValueError naming the valid forms."""
    text = spec.strip()
    if not text:
        raise ValueError(f"empty student spec; {_SPEC_HELP}")
    if text == "static":
        return StudentSpec("static")
    head, sep, tail = text.partition(":")
    if sep and head in ("layers", "static"):
        if head == "layers" and re.fullmatch(r"[0-9]+", tail.strip()) and int(tail) > 0:
            return StudentSpec("layers", layers=int(tail))
        raise ValueError(f"student spec {spec!r} does not parse; {_SPEC_HELP}")
    if text.startswith("layers") or (sep and not text.startswith(("/", ".", "~"))):
        raise ValueError(f"student spec {spec!r} does not parse; {_SPEC_HELP}")
    return StudentSpec("model", model=text)


def spread_layers(n: int, k: int) -> list[int]:
    """``k`` of ``n`` layer indices, evenly spread and always keeping the first and the last (``k >= 2``)."""
    if not 1 <= k < n:
        raise ValueError(f"layers:{k} must keep between 1 and {n - 1} of the teacher's {n} layers")
    if k == 1:
        return [n - 1]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def _layer_list(hf_model: Any) -> tuple[Any, str, Any]:
    """The ``nn.ModuleList`` holding the transformer blocks: (parent module, attribute name, list)."""
    torch = require("torch")
    n = getattr(hf_model.config, "num_hidden_layers", None)
    for module in hf_model.modules():
        for attr, child in module.named_children():
            if isinstance(child, torch.nn.ModuleList) and len(child) == n:
                return module, attr, child
    raise ValueError(f"cannot find the {n} transformer layers of {type(hf_model).__name__} to reduce")


def layer_reduced_student(teacher: Any, k: int) -> Any:
    """A copy of ``teacher`` (a ``SentenceTransformer``) keeping ``k`` of its transformer layers, spread out."""
    torch = require("torch")
    student = copy.deepcopy(teacher)
    hf = student.transformers_model
    if hf is None:
        raise ValueError("layers:K needs a teacher whose first module is a transformers encoder")
    parent, attr, layers = _layer_list(hf)
    keep = spread_layers(len(layers), k)
    setattr(parent, attr, torch.nn.ModuleList([layers[i] for i in keep]))
    hf.config.num_hidden_layers = len(keep)
    for new_index, block in enumerate(getattr(parent, attr)):  # some encoders number their attention layers
        for module in block.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_index
    logger.info("lorag: layer-reduced student keeps teacher layers %s", keep)
    return student


def _vocabulary_ids(tokenizer: Any) -> list[int]:
    return list(range(len(tokenizer)))


def token_frequency_weights(tokenizer: Any, texts: Sequence[str] | None, sif: float = 1e-3) -> np.ndarray:
    """SIF weights ``sif / (sif + p(token))`` per token id (Arora et al., 2017), so frequent tokens count less.

    ``p`` is the token's frequency in ``texts`` (add-one smoothed); without texts, a Zipf estimate from the
    token's rank in the vocabulary (Model2Vec's fallback, since WordPiece/BPE vocabularies are roughly
    frequency-ordered).
    """
    size = len(tokenizer)
    if texts:
        counts: Counter[int] = Counter()
        for start in range(0, len(texts), 1000):
            for ids in tokenizer(list(texts[start : start + 1000]), add_special_tokens=False)["input_ids"]:
                counts.update(ids)
        freq = np.ones(size, dtype=np.float64)
        for token_id, c in counts.items():
            if token_id < size:
                freq[token_id] += c
        p = freq / freq.sum()
    else:
        ranks = np.arange(1, size + 1, dtype=np.float64)
        p = (1.0 / ranks) / (1.0 / ranks).sum()
    return (sif / (sif + p)).astype(np.float32)


def pca_projection(embeddings: np.ndarray, dimension: int) -> tuple[np.ndarray, np.ndarray]:
    """PCA of ``embeddings``: (components ``(dimension, d)``, mean ``(d,)``); ``(x - mean) @ components.T`` reduces."""
    emb = np.asarray(embeddings, dtype=np.float64)
    if not 0 < dimension < emb.shape[1]:
        raise ValueError(f"dimension must be between 1 and {emb.shape[1] - 1} (the teacher's width), got {dimension}")
    if emb.shape[0] < dimension:
        raise ValueError(f"PCA to {dimension} dimensions needs at least {dimension} texts, got {emb.shape[0]}")
    mean = emb.mean(axis=0)
    _, _, vt = np.linalg.svd(emb - mean, full_matrices=False)
    return vt[:dimension].astype(np.float32), mean.astype(np.float32)


def static_student(
    teacher: Any,
    *,
    projection: tuple[np.ndarray, np.ndarray] | None = None,
    texts: Sequence[str] | None = None,
    batch_size: int = 512,
    show_progress: bool = False,
) -> Any:
    """A Model2Vec-style static student: each token's vector is the teacher's embedding of that token alone.

    Every id of the teacher's tokenizer goes through the teacher as ``[CLS] token [SEP]``; the pooled outputs are
    optionally reduced by ``projection`` (see ``pca_projection``) and weighted by SIF token frequencies (from
    ``texts`` when given). The result is a ``SentenceTransformer`` of sentence-transformers'
    ``StaticEmbedding`` (mean of token vectors) plus ``Normalize``: the same recipe as Model2Vec's ``distill``,
    written here because ``model2vec`` (what ``StaticEmbedding.from_distillation`` calls) pins an older
    transformers than this project's.
    """
    st = require("sentence_transformers", purpose="static students")
    torch = require("torch")
    from sentence_transformers.sentence_transformer.modules import Normalize, StaticEmbedding
    from tqdm.auto import tqdm

    tokenizer = teacher.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("a static student needs a teacher with a fast (Rust) tokenizer")
    ids = _vocabulary_ids(tokenizer)
    cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    prefix = [cls_id] if cls_id is not None else []
    suffix = [sep_id] if sep_id is not None else []
    rows = []
    teacher.eval()
    with torch.no_grad():
        for start in tqdm(range(0, len(ids), batch_size), desc="Token vectors", disable=not show_progress):
            chunk = ids[start : start + batch_size]
            input_ids = torch.tensor([[*prefix, i, *suffix] for i in chunk], device=teacher.device)
            features = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
            if "token_type_ids" in teacher.preprocess(["x"]):
                features["token_type_ids"] = torch.zeros_like(input_ids)
            rows.append(teacher(features)["sentence_embedding"].float().cpu().numpy())
    vectors = np.concatenate(rows)
    if projection is not None:
        components, mean = projection
        vectors = (vectors - mean) @ components.T
    vectors = vectors * token_frequency_weights(tokenizer, texts)[: len(vectors), None]
    embedding = StaticEmbedding(tokenizer, embedding_weights=vectors.astype(np.float32))
    return st.SentenceTransformer(modules=[embedding, Normalize()], device=str(teacher.device))


def add_projection(student: Any, dimension: int, *, projection: tuple[np.ndarray, np.ndarray] | None = None) -> Any:
    """Insert a learned linear map to ``dimension`` after pooling (before a trailing ``Normalize``).

    ``projection`` (components, mean from ``pca_projection``) starts it at that PCA map; otherwise
    sentence-transformers' default initialisation.
    """
    st = require("sentence_transformers", purpose="projection layers")
    torch = require("torch")
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize

    width = student.get_embedding_dimension()
    weight = bias = None
    if projection is not None:
        components, mean = projection
        weight = torch.from_numpy(np.asarray(components, dtype=np.float32))
        bias = torch.from_numpy(-(np.asarray(mean, dtype=np.float32) @ weight.numpy().T))
    dense = Dense(
        width, dimension, bias=True, activation_function=torch.nn.Identity(), init_weight=weight, init_bias=bias
    )
    modules = list(student)
    at = len(modules) - 1 if modules and isinstance(modules[-1], Normalize) else len(modules)
    modules.insert(at, dense)
    return st.SentenceTransformer(modules=modules, device=str(student.device))


def check_same_tokenizer(teacher: Any, student: Any, purpose: str) -> None:
    """Raise ValueError when ``purpose`` needs one vocabulary but teacher and student tokenize differently."""
    t_vocab, s_vocab = teacher.tokenizer.get_vocab(), student.tokenizer.get_vocab()
    if t_vocab != s_vocab:
        shared = len(set(t_vocab) & set(s_vocab))
        raise ValueError(
            f"{purpose} needs the teacher's tokenizer, but the student's differs (teacher {len(t_vocab)} tokens, "
            f"student {len(s_vocab)}, {shared} in common): use a student with the teacher's tokenizer, "
            "or leave this option off"
        )


def init_token_embeddings_from_teacher(teacher: Any, student: Any) -> None:
    """Copy the teacher's input token embeddings into the student (PCA-reduced if the student is narrower).

    A common start for a smaller student of the same vocabulary (as DistilBERT initialises from its teacher);
    it only makes sense when both tokenize alike, which is checked first.
    """
    torch = require("torch")
    check_same_tokenizer(teacher, student, "initialising the student's token embeddings from the teacher")
    source = teacher.transformers_model.get_input_embeddings().weight.detach().float().cpu().numpy()
    target = student.transformers_model.get_input_embeddings()
    width = target.weight.shape[1]
    if width < source.shape[1]:
        centred = source - source.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        source = centred @ vt[:width].T
    elif width > source.shape[1]:
        raise ValueError(f"student token embeddings ({width}) are wider than the teacher's ({source.shape[1]})")
    with torch.no_grad():
        target.weight.copy_(torch.from_numpy(source.astype(np.float32)))


def build_student(
    spec: StudentSpec | str,
    teacher: Any,
    *,
    projection: tuple[np.ndarray, np.ndarray] | None = None,
    texts: Sequence[str] | None = None,
    init_from_teacher: bool = False,
    trust_remote_code: bool = False,
    show_progress: bool = False,
) -> Any:
    """The student ``SentenceTransformer`` for ``spec``, ready to train against ``teacher``.

    Args:
        spec: a ``StudentSpec`` or its string form (see ``parse_student_spec``).
        teacher: the loaded teacher ``SentenceTransformer``.
        projection: optional dimensionality reduction, (components, mean) from ``pca_projection`` fitted on the
            teacher's embeddings: the student then outputs in that reduced teacher space (a layer-reduced student
            gets a projection layer started at it; a static student's token vectors are projected). Otherwise the
            student outputs the teacher's width, through a learned projection where its own width differs.
        texts: the training texts; a static student takes its token-frequency weights from them.
        init_from_teacher: for a model student, start its token embeddings from the teacher's (same tokenizer
            required).
        trust_remote_code: for a model student loaded from the hub.
        show_progress: progress bar for the static student's per-token pass.
    """
    st = require("sentence_transformers", purpose="embedding distillation")
    parsed = parse_student_spec(spec) if isinstance(spec, str) else spec
    if init_from_teacher and parsed.kind != "model":
        raise ValueError(f"init_from_teacher applies to model students, not {parsed.kind!r} (they start from it)")
    target = int(teacher.get_embedding_dimension()) if projection is None else int(projection[0].shape[0])
    if parsed.kind == "static":
        return static_student(teacher, projection=projection, texts=texts, show_progress=show_progress)
    if parsed.kind == "layers":
        assert parsed.layers is not None
        student = layer_reduced_student(teacher, parsed.layers)
    else:
        assert parsed.model is not None
        student = st.SentenceTransformer(
            resolve_model(parsed.model), device=str(teacher.device), trust_remote_code=trust_remote_code
        )
        if init_from_teacher:
            init_token_embeddings_from_teacher(teacher, student)
    width = int(student.get_embedding_dimension())
    if parsed.kind == "layers" and projection is not None:
        student = add_projection(student, target, projection=projection)
    elif width != target:
        student = add_projection(student, target)
    return student
