"""The OpenVINO backend: int8 by NNCF on calibration texts, built once per sample, vectors close to torch's."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from lorag.embedding import Embedder, EmbeddingCache, calibration_sample, openvino_backend
from lorag.embedding.openvino_backend import CALIBRATION_SIZE

pytest.importorskip("openvino")
pytest.importorskip("nncf")

TEXTS = [f"text number {i}: dense retrieval embeds queries and documents" for i in range(5)] + ["short", "a b c"]
SAMPLE = [f"calibration sentence {i} about retrieval, chunking and adapters" for i in range(12)]


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORAG_HOME", str(tmp_path / "home"))


def test_openvino_int8_is_close_to_torch(teacher_dir: Path, tmp_path: Path) -> None:
    torch_vecs = Embedder(str(teacher_dir)).embed_documents(TEXTS)
    ov = Embedder(str(teacher_dir), backend="openvino", calibration=SAMPLE, batch_size=3)
    ov_vecs = ov.embed_documents(TEXTS)
    assert ov_vecs.shape == torch_vecs.shape and ov_vecs.dtype == np.float32
    assert np.all((ov_vecs * torch_vecs).sum(axis=1) > 0.95)  # int8: close, not equal
    assert not np.array_equal(ov_vecs, torch_vecs)
    digest = openvino_backend.calibration_digest(SAMPLE)
    assert list((tmp_path / "home" / "openvino").rglob(f"{digest}/model.xml"))
    assert ov.settings()["backend"] == f"openvino:{digest}"  # an index records which sample calibrated it


def test_quantized_once_per_sample_and_cached_apart(
    teacher_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    first = Embedder(str(teacher_dir), backend="openvino", calibration=SAMPLE).embed_queries(TEXTS)

    def must_not_run(*args: object) -> None:
        raise AssertionError("quantized again")

    with monkeypatch.context() as patch:
        patch.setattr(openvino_backend, "_quantize", must_not_run)
        again = Embedder(str(teacher_dir), backend="openvino", calibration=SAMPLE, cache=cache)
        np.testing.assert_array_equal(again.embed_queries(TEXTS), first)
    other = Embedder(str(teacher_dir), backend="openvino", calibration=SAMPLE[:6], cache=cache)
    other.embed_queries(TEXTS)
    assert len(list((tmp_path / "home" / "openvino").rglob("model.xml"))) == 2
    assert other.settings() != again.settings()
    assert len(cache) == 2 * len(TEXTS)  # each sample's vectors under their own key


@pytest.mark.parametrize(
    "calibration",
    [None, [], ["", "  "], "one string, not a list of texts", np.zeros((2, 32), dtype=np.float32)],
    ids=["missing", "empty", "blank", "string", "ranges"],
)
def test_openvino_without_calibration_texts_is_refused(teacher_dir: Path, tmp_path: Path, calibration: object) -> None:
    with pytest.raises(ValueError, match="calibration"):
        Embedder(str(teacher_dir), backend="openvino", calibration=calibration)  # type: ignore[arg-type]
    assert not (tmp_path / "home" / "openvino").exists()


def test_calibration_sample_is_reproducible_and_capped() -> None:
    corpus = [f"doc {i}" for i in range(500)]
    sample = calibration_sample(corpus)
    assert sample == calibration_sample(corpus) and len(sample) == CALIBRATION_SIZE
    assert sample == sorted(sample, key=corpus.index)  # corpus order
    assert calibration_sample(corpus[:5]) == corpus[:5]


def test_nncf_sends_no_telemetry_unless_the_user_opted_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    telemetry = pytest.importorskip("openvino_telemetry")
    import nncf  # noqa: F401  # configures the telemetry instance

    instance = telemetry.Telemetry()
    monkeypatch.setattr(instance, "consent", True)  # as NNCF sets it when no consent file exists
    monkeypatch.setenv("HOME", str(tmp_path))  # no consent file here
    openvino_backend.keep_telemetry_off()
    assert instance.consent is False

    (tmp_path / "intel").mkdir()
    (tmp_path / "intel" / "openvino_telemetry").write_text("1")  # `opt_in_out --opt_in`
    monkeypatch.setattr(instance, "consent", True)
    openvino_backend.keep_telemetry_off()
    assert instance.consent is True


def test_concurrent_calls_each_get_their_own_vectors(teacher_dir: Path) -> None:
    ov = Embedder(str(teacher_dir), backend="openvino", calibration=SAMPLE, batch_size=2)
    groups = [[f"thread {g} text {i} " + "word " * (g * 3 + i) for i in range(6)] for g in range(4)]
    alone = [ov.embed_documents(texts) for texts in groups]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(ov.embed_documents, groups * 3))
    for i, vectors in enumerate(together):
        np.testing.assert_array_equal(vectors, alone[i % 4])


def test_missing_nncf_fails_before_any_export(
    teacher_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "nncf", None)  # import nncf now raises ImportError
    with pytest.raises(ImportError, match=r"lorag\[openvino\]"):
        Embedder(str(teacher_dir), backend="openvino", calibration=SAMPLE)
    assert not (tmp_path / "home").exists()  # no ONNX export, no partial model


def test_distill_with_openvino_teacher_targets(teacher_dir: Path, distill_texts: list[str], tmp_path: Path) -> None:
    """The int8 teacher computes the targets, calibrated on the training texts; the student trains on them."""
    import json

    from lorag.training.distill import DistillConfig, distill

    config = DistillConfig(max_steps=2, batch_size=8, teacher_backend="openvino", show_progress=False)
    result = distill(str(teacher_dir), "layers:1", tmp_path / "student", texts=distill_texts, config=config)
    assert result.steps == 2
    record = json.loads((tmp_path / "student" / "lorag_distill.json").read_text())
    assert record["config"]["teacher_backend"] == "openvino"
    digest = openvino_backend.calibration_digest(calibration_sample(distill_texts))
    assert list((tmp_path / "home" / "openvino").rglob(f"{digest}/model.xml"))
