#!/usr/bin/env bash
# The 4-bit and adapter paths on a CUDA GPU, in one go: the engine, adapter, 4-bit and QLoRA tests with
# LORAG_TEST_DEVICE=cuda, then the adapters benchmark with --device cuda. Needs lorag[models,train] and pytest
# (pytest-asyncio for the async test); no network. Writes logs and the benchmark table to $OUT (default ./cuda-check).
#
#   bash benchmarks/cuda_check.sh [MODEL]   # MODEL: smollm2-135m-instruct (default) or a model directory
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-cuda-check}
MODEL=${1:-smollm2-135m-instruct}
PY=${PYTHON:-python3}  # the interpreter that has lorag's dependencies (e.g. .venv/bin/python)
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD/src:$PWD/integrations
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/env.txt"
"$PY" -c "import torch, bitsandbytes, peft, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda,
  'bitsandbytes', bitsandbytes.__version__, 'peft', peft.__version__, 'transformers', transformers.__version__)" \
  | tee -a "$OUT/env.txt"
# The LangChain / LlamaIndex wrappers only forward to the engine; their tests stay on CPU.
LORAG_TEST_DEVICE=cuda "$PY" -m pytest tests/llm tests/training/qlora -m "not real_model" -p no:cacheprovider -q \
  --ignore=tests/llm/test_langchain_adapters.py --ignore=tests/llm/test_langchain_integration.py \
  --ignore=tests/llm/test_langchain_standard.py --ignore=tests/llm/test_llamaindex.py \
  -rfEs --tb=short 2>&1 | tee "$OUT/pytest_cuda.log" | tail -40
"$PY" benchmarks/adapters.py --model "$MODEL" --device cuda --out "$OUT/adapters_cuda.md" 2>&1 | tail -20
