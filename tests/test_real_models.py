"""The packaged models themselves: these load real weights (tens of seconds on CPU)."""

from __future__ import annotations

import pytest

from lorag.models import model_status, resolve_model

pytestmark = pytest.mark.real_model


def test_all_short_names_installed_and_prepared() -> None:
    for name in ("minilm", "mpnet", "smollm2-135m-instruct"):
        resolve_model(name)
    status = {s.name: s for s in model_status()}
    assert all(s.installed and s.prepared for s in status.values()), status


def test_smollm2_knows_the_capital_of_france() -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model("smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**inputs, max_new_tokens=24, do_sample=False)
    answer = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer


def test_minilm_puts_related_texts_closer() -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(resolve_model("minilm"), device="cpu")
    a, b, c = model.encode(
        [
            "How do I reset my password?",
            "Steps to change a forgotten account password",
            "Tomatoes need full sun.",
        ],
        normalize_embeddings=True,
    )
    assert float(a @ b) > float(a @ c) + 0.2
