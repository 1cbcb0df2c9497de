from __future__ import annotations

from pathlib import Path

import pytest
from qlora_helpers import echo_task, write_jsonl


@pytest.fixture(scope="session")
def tiny_llm_nf4_dir(tmp_path_factory: pytest.TempPathFactory, tiny_llm_dir: Path) -> Path:
    """The tiny Llama's tokenizer with 64-wide layers: bitsandbytes' CPU 4-bit kernels need 64-element blocks."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny-llm-64")
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(1)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture
def echo_jsonl(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "echo.jsonl", echo_task(48))
