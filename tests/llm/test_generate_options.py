"""repetition_penalty, no_repeat_ngram_size, presence/frequency penalties and min_tokens reach the model.

On the tiny random model, greedy decoding of ``PROMPT`` falls into a loop (one token repeated), so each option
visibly changes the output; the ones transformers has are checked token for token against ``model.generate``.
"""

from __future__ import annotations

from itertools import pairwise

import pytest

from lorag.llm import LoragEngine, SamplingParams

PROMPT = "Numbers like 3.14 and"  # greedy output on the tiny base: one token repeated
ECHO = PROMPT + "vwerswerswers"  # the prompt already holds that loop: the options must look at the prompt too
OTHER = "Dense retrieval embeds queries"
MAX = 16


def hf_greedy(engine: LoragEngine, prompt: str, **options: object) -> list[int]:
    """transformers' own greedy ``generate`` on the engine's model, end-of-sequence token dropped as the engine does."""
    import torch

    ids = engine.tokenizer(prompt)["input_ids"]
    with torch.inference_mode():
        out = engine.base.model.generate(torch.tensor([ids]), max_new_tokens=MAX, do_sample=False, **options)
    tokens = out[0, len(ids) :].tolist()
    return tokens[:-1] if tokens and tokens[-1] in engine.scheduler.stop_ids else tokens


def repeated_bigrams(prompt_ids: list[int], output_ids: list[int]) -> int:
    """How many bigrams that end in the output occurred before, in prompt + output."""
    seq = prompt_ids + output_ids
    seen = set(pairwise(prompt_ids))
    repeats = 0
    for i in range(len(prompt_ids), len(seq)):
        repeats += (seq[i - 1], seq[i]) in seen
        seen.add((seq[i - 1], seq[i]))
    return repeats


@pytest.mark.parametrize("prompt", [PROMPT, ECHO])
def test_no_repeat_ngram_size_equals_transformers(engine, prompt: str) -> None:
    prompt_ids = engine.tokenizer(prompt)["input_ids"]
    base = engine.generate(prompt, max_tokens=MAX)
    assert repeated_bigrams(prompt_ids, base.token_ids) > 0
    result = engine.generate(prompt, max_tokens=MAX, no_repeat_ngram_size=2)
    assert repeated_bigrams(prompt_ids, result.token_ids) == 0
    assert result.token_ids == hf_greedy(engine, prompt, no_repeat_ngram_size=2)


@pytest.mark.parametrize("prompt", [PROMPT, ECHO, OTHER])
def test_repetition_penalty_equals_transformers(engine, prompt: str) -> None:
    base = engine.generate(prompt, max_tokens=MAX)
    result = engine.generate(prompt, max_tokens=MAX, repetition_penalty=1.5)
    assert result.token_ids != base.token_ids
    assert result.token_ids == hf_greedy(engine, prompt, repetition_penalty=1.5)


def test_presence_and_frequency_penalties_count_generated_tokens_only(engine) -> None:
    """Checked against a plain loop that subtracts OpenAI's penalties from the model's logits."""
    import torch

    model = engine.base.model
    prompt_ids = engine.tokenizer(PROMPT)["input_ids"]
    base = engine.generate(PROMPT, max_tokens=MAX)
    for presence, frequency in ((1.5, 0.0), (0.0, 1.0), (0.5, 0.5)):
        ids: list[int] = list(prompt_ids)
        with torch.inference_mode():
            while len(ids) - len(prompt_ids) < MAX:
                logits = model(torch.tensor([ids])).logits[0, -1].float()
                counts = torch.bincount(torch.tensor(ids[len(prompt_ids) :], dtype=torch.long), minlength=len(logits))
                logits = logits - frequency * counts - presence * (counts > 0).float()
                ids.append(int(logits.argmax()))
        result = engine.generate(PROMPT, max_tokens=MAX, presence_penalty=presence, frequency_penalty=frequency)
        assert result.token_ids != base.token_ids
        assert result.token_ids == ids[len(prompt_ids) :], (presence, frequency)


@pytest.fixture()
def early_eos_engine(tiny_llm_dir, llm_device: str):
    """The tiny base with a second end-of-sequence id: the token it emits second for ``PROMPT`` (the tiny model
    never emits its real one), so a plain greedy run stops after one token."""
    from lorag.llm import load_base

    base = load_base(tiny_llm_dir, quantization="none", device=llm_device)
    probe = LoragEngine(base=base)
    second = probe.generate(PROMPT, max_tokens=2).token_ids[1]
    probe.close()
    base.model.generation_config.eos_token_id = [base.tokenizer.eos_token_id, second]
    eng = LoragEngine(base=base)
    yield eng
    eng.close()


def test_min_tokens_prevents_early_eos(early_eos_engine) -> None:
    engine = early_eos_engine
    early = engine.generate(PROMPT, max_tokens=MAX)
    assert early.finish_reason == "stop" and len(early.token_ids) == 1
    result = engine.generate(PROMPT, max_tokens=MAX, min_tokens=6)
    assert len(result.token_ids) >= 6
    assert result.token_ids == hf_greedy(engine, PROMPT, min_new_tokens=6)


def test_token_logprobs_stay_the_models_raw_logprobs(engine) -> None:
    base = engine.generate(PROMPT, max_tokens=MAX)
    penalized = engine.generate(PROMPT, max_tokens=MAX, repetition_penalty=1.5)
    # the first token and its context are the same; the penalty changed the scores over the prompt's tokens
    assert penalized.token_ids[0] == base.token_ids[0]
    assert penalized.token_logprobs[0] == base.token_logprobs[0]


def test_defaults_build_no_logits_processors(engine) -> None:
    from lorag.llm.generation import logits_processors

    assert logits_processors(SamplingParams(), 5, {2}) is None
    assert logits_processors(SamplingParams(min_tokens=2), 5, {2}) is not None


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("repetition_penalty", 0.0),
        ("repetition_penalty", -1.0),
        ("repetition_penalty", float("nan")),
        ("no_repeat_ngram_size", -1),
        ("no_repeat_ngram_size", 1.5),
        ("presence_penalty", 2.5),
        ("frequency_penalty", -3.0),
        ("frequency_penalty", float("inf")),
        ("min_tokens", -1),
        ("min_tokens", MAX + 1),
        ("sequence_bias", (((), -1.0),)),
        ("sequence_bias", (((1,), float("nan")),)),
    ],
)
def test_bad_values_raise_naming_the_option(engine, option: str, value: float) -> None:
    with pytest.raises(ValueError, match=option):
        engine.generate(PROMPT, max_tokens=MAX, **{option: value})


def test_concurrent_requests_with_different_options_equal_their_solo_runs(engine) -> None:
    requests = [
        (PROMPT, "a0", {"no_repeat_ngram_size": 2}),
        (PROMPT, "a1", {"repetition_penalty": 1.5}),
        (OTHER, None, {"frequency_penalty": 1.0, "min_tokens": 4}),
        (PROMPT, None, {}),
        (PROMPT, "a0", {}),
    ]
    solo = [engine.generate(p, adapter=a, max_tokens=MAX, **o) for p, a, o in requests]
    assert len({tuple(r.token_ids) for r in solo}) == len(requests)  # the options change these outputs
    handles = [engine.submit(p, adapter=a, max_tokens=MAX, **o) for p, a, o in requests]
    together = [h.result() for h in handles]
    assert engine.scheduler.max_rows_seen == len(requests)  # shared forward passes (two adapter groups and the base)
    for alone, batched in zip(solo, together, strict=True):
        assert batched.token_ids == alone.token_ids
        assert batched.token_logprobs == alone.token_logprobs


# ---------------------------------------------------------------------------------------------------- wrappers

CHAT_PROMPT = "Paris is the capital of"  # rendered with the chat template, its greedy answer loops too
CHAT = [{"role": "user", "content": CHAT_PROMPT}]


def test_chat_lorag_passes_options_per_call_and_as_fields(engine) -> None:
    from langchain_lorag import ChatLorag

    chat = ChatLorag(engine=engine, max_tokens=MAX)
    plain = engine.generate(messages=CHAT, max_tokens=MAX).text
    penalized = engine.generate(messages=CHAT, max_tokens=MAX, repetition_penalty=1.5).text
    no_repeat = engine.generate(messages=CHAT, max_tokens=MAX, no_repeat_ngram_size=2).text
    assert len({plain, penalized, no_repeat}) == 3
    assert chat.invoke(CHAT_PROMPT).content == plain
    assert chat.invoke(CHAT_PROMPT, repetition_penalty=1.5).content == penalized
    assert "".join(str(c.content) for c in chat.stream(CHAT_PROMPT, repetition_penalty=1.5)) == penalized
    fielded = ChatLorag(engine=engine, max_tokens=MAX, no_repeat_ngram_size=2)
    assert fielded.invoke(CHAT_PROMPT).content == no_repeat
    assert fielded.invoke(CHAT_PROMPT, no_repeat_ngram_size=0).content == plain  # a call overrides the field
    assert fielded._identifying_params["no_repeat_ngram_size"] == 2
    with pytest.raises(ValueError, match="min_tokens"):
        chat.invoke(CHAT_PROMPT, min_tokens=-1)


def test_langchain_llm_passes_options_per_call_and_as_fields(engine) -> None:
    from langchain_lorag import LoragLLM

    plain = engine.generate(PROMPT, max_tokens=MAX).text
    penalized = engine.generate(PROMPT, max_tokens=MAX, frequency_penalty=1.0).text
    assert penalized != plain
    llm = LoragLLM(engine=engine, max_tokens=MAX)
    assert llm.invoke(PROMPT, frequency_penalty=1.0) == penalized
    assert llm.batch([PROMPT, PROMPT], frequency_penalty=1.0) == [penalized, penalized]
    fielded = LoragLLM(engine=engine, max_tokens=MAX, frequency_penalty=1.0)
    assert fielded.invoke(PROMPT) == penalized
    assert fielded._identifying_params["frequency_penalty"] == 1.0
    assert llm._identifying_params["frequency_penalty"] == 0.0  # part of the cache key


def test_llamaindex_llm_passes_options_per_call_and_as_fields(engine) -> None:
    from llama_index.llms.lorag import LoragLLM

    plain = engine.generate(PROMPT, max_tokens=MAX).text
    penalized = engine.generate(PROMPT, max_tokens=MAX, presence_penalty=1.5).text
    assert penalized != plain
    llm = LoragLLM(engine=engine, max_tokens=MAX)
    assert llm.complete(PROMPT).text == plain
    assert llm.complete(PROMPT, presence_penalty=1.5).text == penalized
    assert LoragLLM(engine=engine, max_tokens=MAX, presence_penalty=1.5).complete(PROMPT).text == penalized
    with pytest.raises(ValueError, match="presence_penalty"):
        LoragLLM(engine=engine, presence_penalty=3.0)
    with pytest.raises(ValueError, match="presence_penalty"):
        llm.complete(PROMPT, presence_penalty=3.0)


# ---------------------------------------------------------------------------------------------------- threads


def test_num_threads_applies_to_the_worker_only(tiny_llm_dir, llm_device: str) -> None:
    """The worker runs every forward pass with ``num_threads``; the caller's thread keeps its own count (1 here,
    from the module's fixture)."""
    import torch

    engine = LoragEngine(tiny_llm_dir, quantization="none", device=llm_device, num_threads=2)
    seen: list[int] = []
    forward = engine.scheduler._forward

    def recording_forward(*args: object) -> object:
        seen.append(torch.get_num_threads())
        return forward(*args)

    engine.scheduler._forward = recording_forward  # type: ignore[method-assign]
    try:
        engine.generate(PROMPT, max_tokens=3)
        assert torch.get_num_threads() == 1
    finally:
        engine.close()
        torch.set_num_threads(1)  # torch made 2 the default of threads started later: back to the fixture's 1
    assert seen and set(seen) == {2}
    with pytest.raises(ValueError, match="num_threads"):
        LoragEngine(base=engine.base, num_threads=0)


def test_exact_batching_must_be_a_bool(engine) -> None:
    with pytest.raises(ValueError, match="exact_batching must be True or False"):
        LoragEngine(base=engine.base, exact_batching="no")  # type: ignore[arg-type]


def test_sequence_bias_forbids_a_token_only_where_its_prefix_was_generated(engine) -> None:
    first = engine.generate(PROMPT, max_tokens=2).token_ids
    banned = engine.generate(PROMPT, max_tokens=2, sequence_bias=(((first[0],), -100.0),)).token_ids
    assert banned[0] != first[0]
    unrelated_prefix = (first[0] + 1) % engine.tokenizer.vocab_size
    kept = engine.generate(PROMPT, max_tokens=2, sequence_bias=(((unrelated_prefix, first[0]), -100.0),))
    assert kept.token_ids[0] == first[0]  # its prefix is not what precedes the first token
