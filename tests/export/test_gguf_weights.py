"""``lorag.export.gguf_weights.to_q8_0``: a GGUF's 4- and 5-bit block weights rewritten as Q8_0, everything else as it
was, on a small GGUF written here with gguf-py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from lorag.export.gguf_weights import LOW_BIT_TYPES, low_bit_tensors, to_q8_0  # noqa: E402

Q = gguf.GGMLQuantizationType


def small_gguf(path: Path) -> dict[str, np.ndarray]:
    """A llama-architecture GGUF with a Q4_1 weight, a Q5_0 weight, an F32 norm and some metadata."""
    rng = np.random.default_rng(0)
    values = {
        "blk.0.attn_q.weight": rng.normal(size=(8, 64)).astype(np.float32),
        "blk.0.ffn_up.weight": rng.normal(size=(4, 64)).astype(np.float32),
        "blk.0.attn_norm.weight": rng.normal(size=(64,)).astype(np.float32),
    }
    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_context_length(2048)
    writer.add_string("tokenizer.chat_template", "{{ messages }}")
    writer.add_array("tokenizer.ggml.tokens", ["<s>", "a", "b"])
    for name, kind in (("blk.0.attn_q.weight", Q.Q4_1), ("blk.0.ffn_up.weight", Q.Q5_0)):
        data = gguf.quants.quantize(values[name], kind)
        writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=kind)
    writer.add_tensor("blk.0.attn_norm.weight", values["blk.0.attn_norm.weight"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return values


def test_low_bit_weights_become_q8_0_within_a_200th_of_each_block(tmp_path: Path) -> None:
    source, copy = tmp_path / "model.gguf", tmp_path / "q8" / "model.gguf"
    copy.parent.mkdir()
    small_gguf(source)
    assert sorted(low_bit_tensors(source)) == ["blk.0.attn_q.weight", "blk.0.ffn_up.weight"]
    to_q8_0(source, copy)
    before = {t.name: t for t in gguf.GGUFReader(source).tensors}
    after = {t.name: t for t in gguf.GGUFReader(copy).tensors}
    assert after.keys() == before.keys() and low_bit_tensors(copy) == []
    for name, tensor in after.items():
        assert list(tensor.shape) == list(before[name].shape)
        old = gguf.quants.dequantize(before[name].data, before[name].tensor_type).reshape(-1, 32)
        new = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(-1, 32)
        if before[name].tensor_type.name in LOW_BIT_TYPES:
            assert tensor.tensor_type == Q.Q8_0
            # half a Q8_0 step (1/254 of the block's largest value) plus the rounding of its fp16 scale
            bound = np.abs(old).max(axis=1, keepdims=True) / 200
            assert (np.abs(new - old) <= bound).all()
        else:
            assert tensor.tensor_type == before[name].tensor_type and np.array_equal(new, old)


def test_metadata_is_copied_unchanged(tmp_path: Path) -> None:
    source, copy = tmp_path / "model.gguf", tmp_path / "copy.gguf"
    small_gguf(source)
    to_q8_0(source, copy)
    old, new = gguf.GGUFReader(source).fields, gguf.GGUFReader(copy).fields
    keys = [k for k in old if not k.startswith("GGUF.")]
    assert [k for k in new if not k.startswith("GGUF.")] == keys
    for key in keys:
        assert new[key].contents() == old[key].contents(), key
