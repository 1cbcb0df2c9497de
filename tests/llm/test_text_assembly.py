"""Stop strings cut exactly (across tokens), UTF-8 stays whole while streaming, chat templates and sampling."""

from __future__ import annotations

import pytest

from lorag.llm.generation import SamplingParams, TextAssembler, encode_prompt


@pytest.fixture(scope="module")
def tokenizer(tiny_llm_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llm_dir)


def feed(tokenizer, text: str, stop=()) -> tuple[list[str], TextAssembler]:
    assembler = TextAssembler(tokenizer, stop)
    pieces = []
    for token in tokenizer(text, add_special_tokens=False)["input_ids"]:
        pieces.append(assembler.push(token))
        if assembler.stopped:
            break
    else:
        pieces.append(assembler.finish())
    return pieces, assembler


def test_multibyte_characters_never_split(tokenizer) -> None:
    text = "¿Dónde está? 日本語 😀 ok"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > len(text.split())  # byte-level pieces: characters span several tokens
    pieces, _ = feed(tokenizer, text)
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)


@pytest.mark.parametrize("stop", ["brown fox", "o", "quick b", "dog."])
def test_stop_string_cut_exactly(tokenizer, stop: str) -> None:
    text = "The quick brown fox jumps over the lazy dog. More text"
    pieces, assembler = feed(tokenizer, text, [stop])
    assert assembler.stopped
    assert "".join(pieces) == text[: text.index(stop)] == assembler.emitted


def test_earliest_of_several_stops_wins_and_prefix_is_held(tokenizer) -> None:
    text = "alpha beta gamma delta"
    pieces, _ = feed(tokenizer, text, ["delta", "beta g"])
    assert "".join(pieces) == "alpha "
    pieces, assembler = feed(tokenizer, "alpha be", ["beta"])  # ends on a stop prefix: released at finish
    assert not assembler.stopped and "".join(pieces) == "alpha be"


def test_sampling_params_validation() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        SamplingParams(max_tokens=0)
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0)
    with pytest.raises(ValueError, match="stop strings"):
        SamplingParams(stop=("",))
    assert SamplingParams(stop="x").stop == ("x",)


def test_chat_template_prompt(tokenizer) -> None:
    ids = encode_prompt(tokenizer, messages=[{"role": "user", "content": "Hi"}])
    assert tokenizer.decode(ids) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    with pytest.raises(ValueError, match="exactly one"):
        encode_prompt(tokenizer, "a", [{"role": "user", "content": "b"}])


def test_engine_stream_matches_result_and_usage(engine) -> None:
    deltas = list(engine.stream("El zorro marrón", adapter="a0", max_tokens=20))
    result = engine.generate("El zorro marrón", adapter="a0", max_tokens=20)
    assert "".join(d.text for d in deltas) == result.text
    assert deltas[-1].finish_reason == result.finish_reason
    assert deltas[-1].usage == result.usage
    assert result.usage.prompt_tokens == len(engine.tokenizer("El zorro marrón")["input_ids"])
    assert result.usage.completion_tokens == len(result.token_ids) or result.finish_reason == "stop"


def test_engine_stop_string_across_tokens(engine) -> None:
    full = engine.generate("The quick brown fox", adapter="a1", max_tokens=24)
    assert len(full.text) > 6
    stop = full.text[3:6]
    cut = engine.generate("The quick brown fox", adapter="a1", max_tokens=24, stop=[stop])
    assert cut.text == full.text[: full.text.index(stop)]
    assert cut.finish_reason == "stop"
    assert cut.usage.completion_tokens <= full.usage.completion_tokens


def test_seeded_sampling_is_reproducible_under_concurrency(engine) -> None:
    kwargs = {"adapter": "a2", "max_tokens": 12, "temperature": 1.0, "top_p": 0.9, "top_k": 50, "seed": 7}
    alone = engine.generate("Paris is", **kwargs)
    handles = [engine.submit("Paris is", **kwargs), engine.submit("LoRA", adapter="a0", max_tokens=12)]
    assert handles[0].result().token_ids == alone.token_ids
    handles[1].result()
    other = engine.generate("Paris is", **{**kwargs, "seed": 8})
    assert other.token_ids != alone.token_ids
