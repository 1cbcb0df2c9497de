"""Registry: lazy registration, LRU eviction with pinning, content versions, weighted compositions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lorag.llm import AdapterBusyError, AdapterError, LoragEngine


@pytest.fixture()
def small(tiny_llm_dir: Path, adapter_dirs, llm_device: str) -> LoragEngine:
    engine = LoragEngine(tiny_llm_dir, quantization="none", device=llm_device, max_resident_adapters=2)
    for name, path in adapter_dirs.items():
        engine.adapters.register(name, path)
    yield engine
    engine.close()


def test_registration_is_lazy_and_lru_evicts(small: LoragEngine) -> None:
    reg = small.adapters
    assert reg.resident() == [] and not reg.has_adapters
    assert [i.name for i in reg.list()] == ["a0", "a1", "a2", "a3"]
    expected = small.generate("Paris is", adapter="a0", max_tokens=6).token_logprobs
    small.generate("Paris is", adapter="a1", max_tokens=6)
    small.generate("Paris is", adapter="a0", max_tokens=6)  # a0 is now the most recent
    small.generate("Paris is", adapter="a2", max_tokens=6)  # evicts a1, the least recently used
    assert reg.resident() == ["a0", "a2"]
    assert not reg.info("a1").resident and reg.info("a1").version is not None  # still registered
    assert small.generate("Paris is", adapter="a0", max_tokens=6).token_logprobs == expected
    small.generate("Paris is", adapter="a1", max_tokens=6)  # reloads lazily, evicting a2
    assert reg.resident() == ["a0", "a1"]


def test_pinned_adapters_are_never_evicted(small: LoragEngine) -> None:
    reg = small.adapters
    reg.load("a0")
    reg.pin("a0")
    for name in ("a1", "a2", "a3"):
        reg.load(name)
        assert "a0" in reg.resident()
    reg.pin("a1")
    reg.wait_timeout_s = 0.1
    with pytest.raises(AdapterBusyError, match="pinned or serving"):
        reg.load("a2")
    assert set(reg.resident()) == {"a0", "a1"}


def test_busy_adapter_cannot_be_unloaded_or_reloaded(small: LoragEngine) -> None:
    reg = small.adapters
    with reg.use(["a0"]) as versions:
        assert versions == [reg.info("a0").version]
        with pytest.raises(AdapterBusyError, match="serving 1 request"):
            reg.unload("a0")
        with pytest.raises(AdapterBusyError):
            reg.reload("a0")
    reg.unload("a0")
    assert not reg.has_adapters and small.adapters.model is small.base.model


def test_version_follows_content(small: LoragEngine, adapter_dirs, tmp_path: Path) -> None:
    reg = small.adapters
    copy = tmp_path / "copy"
    shutil.copytree(adapter_dirs["a0"], copy)
    reg.register("copy", copy)
    assert reg.version("copy") == reg.version("a0")  # same bytes, same version
    before = small.generate("Paris is", adapter="copy", max_tokens=6)
    reg.reload("copy")
    assert reg.version("copy") == before.adapter_version  # unchanged content: unchanged version
    shutil.copy(adapter_dirs["a1"] / "adapter_model.safetensors", copy / "adapter_model.safetensors")
    reg.reload("copy")
    after = small.generate("Paris is", adapter="copy", max_tokens=6)
    assert after.adapter_version != before.adapter_version
    assert after.token_ids == small.generate("Paris is", adapter="a1", max_tokens=6).token_ids
    assert reg.version(None) == reg.base_version


def test_failed_reload_keeps_the_old_adapter(small: LoragEngine, adapter_dirs, tmp_path: Path) -> None:
    reg = small.adapters
    copy = tmp_path / "copy"
    shutil.copytree(adapter_dirs["a0"], copy)
    reg.register("copy", copy)
    good = small.generate("Paris is", adapter="copy", max_tokens=6)
    (copy / "adapter_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(AdapterError, match="corrupted"):
        reg.reload("copy")
    again = small.generate("Paris is", adapter="copy", max_tokens=6)
    assert again.token_logprobs == good.token_logprobs and again.adapter_version == good.adapter_version


def test_weighted_composition_is_a_named_virtual_adapter(tiny_llm_dir: Path, adapter_dirs, llm_device: str) -> None:
    engine = LoragEngine(tiny_llm_dir, quantization="none", device=llm_device, adapters=adapter_dirs)
    reg = engine.adapters
    info = reg.compose("mix", {"a0": 0.5, "a1": 0.5})
    assert info.recipe == {"a0": 0.5, "a1": 0.5} and info.resident
    mix = engine.generate("Paris is", adapter="mix", max_tokens=8)
    a0 = engine.generate("Paris is", adapter="a0", max_tokens=8)
    a1 = engine.generate("Paris is", adapter="a1", max_tokens=8)
    assert mix.token_logprobs not in (a0.token_logprobs, a1.token_logprobs)
    solo_a0 = reg.compose("only_a0", {"a0": 1.0})  # weight 1 of one adapter reproduces it
    assert engine.generate("Paris is", adapter="only_a0", max_tokens=8).token_ids == a0.token_ids
    assert solo_a0.version != reg.info("a0").version
    with pytest.raises(AdapterError, match="cannot compose"):
        reg.compose("bad", {"a0": 0.5, "a3": 0.5})  # ranks differ: linear needs equal ranks
    assert "bad" not in reg.names()
    reg.unload("mix")
    assert engine.generate("Paris is", adapter="mix", max_tokens=8).token_logprobs == mix.token_logprobs
    engine.close()
