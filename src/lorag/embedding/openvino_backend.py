"""OpenVINO backend for ``Embedder``: the ONNX export, quantized to int8 with NNCF on calibration texts.

This is the path of sentence-transformers' ``export_static_quantized_openvino_model``, which needs ``optimum-intel``
(whose releases pin transformers below 5), done with the packages that install: ``nncf.quantize`` on lorag's own
ONNX export (``onnx_backend``), then OpenVINO's CPU runtime. Unlike the dynamic int8 of ``backend="onnx"``, the
activation scales are fixed once from calibration texts (a sample of the user's corpus), so no batch pays for
measuring and re-scaling its activations. On this project's 2-core CPU (SciFact, 256-token documents;
``benchmarks/results/distill.md``) all-MiniLM-L6-v2 encodes 2.9x as many texts per second as in torch and
all-mpnet-base-v2 4.5-4.8x, nDCG@10 unchanged, against about 2x and 3x for the dynamic int8 of ``backend="onnx"``.

The quantized model depends on the calibration texts, so it is stored under their digest
(``$LORAG_HOME/openvino/<fingerprint>/export-v<N>/<digest>/``) and built once per model and sample.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lorag._imports import require
from lorag.embedding.onnx_backend import EXPORT_VERSION, ExportedEncoder, onnx_model_path
from lorag.models import lorag_home

logger = logging.getLogger(__name__)

#: Texts that calibrate the int8 scales when a corpus sample is drawn for the user (``calibration_sample``).
CALIBRATION_SIZE = 128


def calibration_sample(texts: Sequence[str], size: int = CALIBRATION_SIZE, seed: int = 0) -> list[str]:
    """A reproducible random sample of a corpus, in corpus order: the same corpus gives the same int8 model."""
    rows = np.random.default_rng(seed).choice(len(texts), size=min(size, len(texts)), replace=False)
    return [texts[i] for i in sorted(rows)]


def calibration_digest(texts: Sequence[str]) -> str:
    """Names the calibration sample: the same texts give the same quantized model."""
    return hashlib.sha256(json.dumps(list(texts)).encode()).hexdigest()[:16]


def openvino_model_dir(model: Any, fingerprint: str, calibration_texts: Sequence[str]) -> Path:
    """The int8 OpenVINO model for ``model`` calibrated on ``calibration_texts``, built once under ``$LORAG_HOME``."""
    texts = [str(t) for t in calibration_texts]
    if not texts or not any(t.strip() for t in texts):
        raise ValueError("backend='openvino' needs calibration texts (a sample of your corpus, e.g. 100-300 texts)")
    require("openvino", purpose="the OpenVINO backend")  # before any export: a missing extra fails at once
    target = lorag_home() / "openvino" / fingerprint / f"export-v{EXPORT_VERSION}" / calibration_digest(texts)
    if not (target / "model.xml").is_file():
        require("nncf", purpose="quantizing for the OpenVINO backend")
        logger.info("lorag: quantizing %s with OpenVINO/NNCF on %d texts (once)", fingerprint, len(texts))
        _quantize(model, onnx_model_path(model, fingerprint, quantize=False), texts, target)
    return target


def keep_telemetry_off() -> None:
    """Send no usage events through NNCF unless the user opted in to OpenVINO telemetry.

    NNCF reports its calls to Google Analytics unless its user opted out (openvino-telemetry's consent file,
    ``opt_in_out --opt_out``). lorag runs NNCF on its users' behalf, so it sends nothing unless they opted in
    (``opt_in_out --opt_in``).
    """
    try:
        from openvino_telemetry import Telemetry
        from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker
    except ImportError:  # NNCF sends nothing without it
        return
    if OptInChecker().check(enable_opt_in_dialog=False) == ConsentCheckResult.ACCEPTED:
        return
    with contextlib.suppress(RuntimeError):  # raised when no instance is configured: nothing to send through
        Telemetry().consent = False  # the instance NNCF configured at import


def _quantize(model: Any, onnx_path: Path, texts: list[str], target: Path) -> None:
    ov = require("openvino", purpose="the OpenVINO backend")
    nncf = require("nncf", purpose="the OpenVINO backend")
    nncf.set_log_level(logging.ERROR)
    keep_telemetry_off()
    float_model = ov.Core().read_model(str(onnx_path))
    names = {port.get_any_name() for port in float_model.inputs}
    # one text per sample: calibration sees each text's own length, no padding
    samples = [{k: v.numpy() for k, v in model.preprocess([t]).items() if k in names} for t in texts]
    quantized = nncf.quantize(
        float_model, nncf.Dataset(samples), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(samples)
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".partial-"))
    try:
        ov.save_model(quantized, str(tmp / "model.xml"), compress_to_fp16=False)
        os.replace(tmp, target)  # atomic: a reader sees a whole model or none
    except OSError:
        if not (target / "model.xml").is_file():  # else another process finished first, with the same model
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class OpenVinoEncoder(ExportedEncoder):
    """The int8 encoder in OpenVINO's CPU runtime; bf16 for the layers left in float where the CPU has bf16."""

    def __init__(self, model: Any, model_dir: Path) -> None:
        super().__init__(model)
        ov = require("openvino", purpose="the OpenVINO backend")
        torch = require("torch", purpose="the OpenVINO backend")
        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": torch.get_num_threads(), "PERFORMANCE_HINT": "LATENCY"}
        if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            config["INFERENCE_PRECISION_HINT"] = "bf16"
        self.compiled = core.compile_model(str(model_dir / "model.xml"), "CPU", config)
        self.input_names = {port.get_any_name() for port in self.compiled.inputs}
        self._requests = threading.local()  # one infer request per thread: a request is not safe to share

    def _run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self.compiled.create_infer_request()
        result = request.infer({k: v for k, v in feed.items() if k in self.input_names})
        return np.array(result[self.compiled.output(0)])  # a copy: the request reuses its output buffer
