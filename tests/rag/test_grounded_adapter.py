"""The shipped grounded-answer adapter: complete and recorded, used only for its base, refused clearly elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open

from lorag.llm.adapters import AdapterError
from lorag.rag.grounded import (
    GROUNDED_ADAPTER_DIR,
    GROUNDED_BASE,
    GroundedAdapterError,
    GroundedPrecisionWarning,
    check_grounded_base,
    shipped_adapter_for,
    use_grounded_adapter,
)


def test_the_shipped_adapter_is_a_safetensors_peft_adapter_with_its_provenance() -> None:
    config = json.loads((GROUNDED_ADAPTER_DIR / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"
    with safe_open(str(GROUNDED_ADAPTER_DIR / "adapter_model.safetensors"), "pt") as weights:
        assert any(".lora_A." in key for key in weights.keys())  # noqa: SIM118  # safe_open has no __iter__
    metadata = json.loads((GROUNDED_ADAPTER_DIR / "training_metadata.json").read_text())
    assert metadata["base_model"] == GROUNDED_BASE
    assert metadata["base_model_fingerprint"]
    provenance = metadata["provenance"]
    assert "SQuAD" in provenance["data"] and "CC BY-SA" in provenance["data"]
    assert not set(provenance["train_articles"]) & set(provenance["held_out_articles"]["test"])
    assert provenance["rebuild"].startswith("PYTHONPATH=src python benchmarks/grounded_adapter.py")
    assert not list(GROUNDED_ADAPTER_DIR.glob("*.bin"))  # no pickle


def test_it_does_not_apply_to_another_base(tiny_llm_dir: Path) -> None:
    assert shipped_adapter_for(str(tiny_llm_dir)) is None


def test_it_is_refused_for_another_base_with_a_clear_error(tiny_llm_dir: Path) -> None:
    from lorag.llm import LoragEngine

    engine = LoragEngine(tiny_llm_dir, quantization="none")
    try:
        with pytest.raises(GroundedAdapterError, match=r"trained for smollm2-135m-instruct.*adapter 'none'"):
            check_grounded_base(engine)
        assert use_grounded_adapter(engine) is None  # the default path simply does not use it
        with pytest.raises(AdapterError, match="another"):  # named explicitly, it does not fit
            engine.register_adapter("grounded", GROUNDED_ADAPTER_DIR, load=True)
    finally:
        engine.close()


@pytest.mark.real_model
def test_it_loads_for_the_default_model_and_changes_its_answers() -> None:
    from lorag.llm import LoragEngine
    from lorag.rag.pipeline import chat_token_counter
    from lorag.rag.prompt import ContextBlock, build_rag_prompt

    engine = LoragEngine(GROUNDED_BASE, quantization="nf4")
    try:
        with pytest.warns(GroundedPrecisionWarning, match="quantization='none'"):  # it was trained at full precision
            name = use_grounded_adapter(engine)
        assert name is not None
        blocks = [
            ContextBlock("The Eiffel Tower is in Paris. It was finished in 1889.", "eiffel.txt"),
            ContextBlock("The Colosseum is an amphitheatre in Rome.", "rome.txt"),
        ]
        prompt = build_rag_prompt(
            "When was the Eiffel Tower finished?",
            blocks,
            count_tokens=chat_token_counter(engine.tokenizer),
            context_window=engine.context_window,
            max_new_tokens=32,
        )
        grounded = engine.generate(messages=prompt.messages, adapter=name, max_tokens=32).text
        bare = engine.generate(messages=prompt.messages, max_tokens=32).text
        assert grounded != bare
        assert "1889" in grounded and "[1]" in grounded, grounded
    finally:
        engine.close()
