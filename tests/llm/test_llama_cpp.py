"""``LlamaCppEngine``: how a request maps to llama-server's ``/completion`` (always), and the engine against a real
``llama-server`` serving the packaged SmolLM2-135M-Instruct Q4_1 GGUF with two LoRA adapters made here (gated like
``tests/llm/remote/test_llama_server.py``: only where the binary is cached or ``LORAG_BUILD_LLAMA_SERVER=1``)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lorag.llm.generation import SamplingParams
from lorag.llm.llama_cpp import LlamaCppEngine, Phase, completion_fields, plan_phases
from lorag.llm.llama_cpp.engine import gguf_limits
from lorag.llm.llama_cpp.wire import forced_token_fields, forced_token_logprobs
from lorag.serving.llama_server import build_requested, cached_llama_server

PROMPT_END = [1, 9, 520, 9531, 198]  # ... "<|im_start|>assistant\n"
BAN_FIRST = (((520, 9531, 198, 504), -100.0), ((520, 9531, 198, 34643), -100.0))


def test_greedy_decoding_is_top_k_one_at_temperature_zero():
    fields = completion_fields(SamplingParams(max_tokens=8), context_window=2048)
    assert fields["temperature"] == 0.0 and fields["top_k"] == 1
    assert fields["min_p"] == 0.0  # llama.cpp's own default (0.05) would change sampling
    assert fields["repeat_penalty"] == 1.0 and fields["repeat_last_n"] == 2048
    assert "seed" not in fields


def test_sampling_options_reach_the_request():
    params = SamplingParams(temperature=0.7, top_p=0.9, top_k=40, seed=3, repetition_penalty=1.3)
    fields = completion_fields(params, context_window=4096)
    assert (fields["temperature"], fields["top_p"], fields["top_k"], fields["seed"]) == (0.7, 0.9, 40, 3)
    assert fields["repeat_penalty"] == 1.3


@pytest.mark.parametrize("option", [{"no_repeat_ngram_size": 3}, {"presence_penalty": 0.5}, {"frequency_penalty": 0.5}])
def test_options_llama_cpp_cannot_honour_are_refused_by_name(option: dict[str, Any]):
    with pytest.raises(ValueError, match=next(iter(option))):
        completion_fields(SamplingParams(**option), context_window=2048)


def test_a_plain_request_is_one_call():
    assert plan_phases(SamplingParams(max_tokens=32), PROMPT_END) == [Phase(32, {})]


def test_a_first_token_ban_is_one_banned_token_then_the_rest_free():
    phases = plan_phases(SamplingParams(max_tokens=32, sequence_bias=BAN_FIRST), PROMPT_END)
    assert phases == [
        Phase(1, {"logit_bias": [[504, False], [34643, False]], "ignore_eos": False}),
        Phase(31, {}),
    ]


def test_min_tokens_bans_the_end_only_that_long():
    assert plan_phases(SamplingParams(max_tokens=10, min_tokens=4), PROMPT_END) == [
        Phase(4, {"ignore_eos": True}),
        Phase(6, {}),
    ]
    assert plan_phases(SamplingParams(max_tokens=10, min_tokens=10), PROMPT_END) == [Phase(10, {"ignore_eos": True})]


def test_single_token_biases_hold_in_every_call():
    bias = ((7,), 2.5), ((8,), -100.0)
    phases = plan_phases(SamplingParams(max_tokens=6, min_tokens=3, sequence_bias=(*bias, *BAN_FIRST)), PROMPT_END)
    everywhere = [[7, 2.5], [8, False]]
    assert phases == [
        Phase(1, {"logit_bias": [*everywhere, [504, False], [34643, False]], "ignore_eos": True}),
        Phase(2, {"logit_bias": everywhere, "ignore_eos": True}),
        Phase(3, {"logit_bias": everywhere}),
    ]


@pytest.mark.parametrize(
    "bias",
    [
        (((1, 2), -100.0),),  # a ban whose prefix is not the prompt's end: it would apply inside the reply
        (((520, 9531, 198, 504), -5.0),),  # a soft bias on a first token: llama.cpp biases every position alike
    ],
)
def test_sequence_biases_llama_cpp_cannot_apply_are_refused(bias: Any):
    with pytest.raises(ValueError, match="sequence_bias"):
        plan_phases(SamplingParams(max_tokens=8, sequence_bias=bias), PROMPT_END)


def test_forced_tokens_are_a_grammar_of_their_ids_decoded_greedily():
    fields = forced_token_fields([1812, 2194, 47])
    assert fields["grammar"] == "root ::= <[1812]> <[2194]> <[47]>"
    assert (fields["temperature"], fields["top_k"], fields["n_probs"]) == (0.0, 1, 1)
    assert fields["n_predict"] == 3 and fields["stream"] is False


def test_forced_tokens_are_scored_one_by_one_and_must_be_the_ones_forced():
    tokens = [{"id": 7, "logprob": -0.5}, {"id": 8, "logprob": -0.25}]
    assert forced_token_logprobs({"completion_probabilities": [*tokens, {"id": 2, "logprob": -3.0}]}, [7, 8]) == [
        -0.5,
        -0.25,
    ]
    with pytest.raises(RuntimeError, match=r"\[9\] where \[7, 8\]"):
        forced_token_logprobs({"completion_probabilities": [{"id": 9, "logprob": -1.0}]}, [7, 8])


def test_tokens_merged_into_one_character_cannot_be_scored():
    """llama-server reports " Å" (two byte tokens, 5549 and 223) as one entry with the second token's id and
    log-probability: the first one's is unknown."""
    merged = [{"id": 35417, "logprob": -12.0}, {"id": 223, "logprob": -1.3}, {"id": 10023, "logprob": -3.2}]
    assert forced_token_logprobs({"completion_probabilities": merged}, [35417, 5549, 223, 10023]) is None


def test_the_vocabulary_is_the_ggufs_padding_included(tmp_path: Path):
    """Converters pad a GGUF's token list to the embedding's rows: the ids past the tokenizer's are the model's too."""
    import gguf

    path = tmp_path / "padded.gguf"
    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_context_length(2048)
    writer.add_array("tokenizer.ggml.tokens", ["<s>", "a", "b", "[PAD3]", "[PAD4]"])
    writer.add_tensor("token_embd.weight", np.zeros((5, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert gguf_limits(path) == (2048, 5)


def test_a_gguf_without_a_vocabulary_is_refused_by_name(tmp_path: Path):
    import gguf

    path = tmp_path / "no-tokens.gguf"
    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_context_length(2048)
    writer.add_tensor("token_embd.weight", np.zeros((5, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ValueError, match=r"no-tokens\.gguf has no tokenizer\.ggml\.tokens field"):
        gguf_limits(path)


def test_a_model_without_a_gguf_is_refused(tmp_path: Path):
    with pytest.raises(LookupError, match="GGUF"):
        LlamaCppEngine("minilm")
    with pytest.raises(FileNotFoundError, match=r"missing\.gguf"):
        LlamaCppEngine(str(tmp_path / "missing.gguf"))


# ---------------------------------------------------------------------------------------------- a real llama-server

needs_server = pytest.mark.skipif(
    cached_llama_server() is None and not build_requested(),
    reason="REAL llama-server TESTS SKIPPED: no llama-server is cached (python -m lorag.serving.llama_server build)",
)
QUESTION = [{"role": "user", "content": "Name three colours of the rainbow."}]
QUESTION_TEXT = " What happened to the building on George IV Bridge?"


@pytest.fixture(scope="module")
def loras(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from lorag.models import resolve_model
    from tests.llm.lora_helpers import make_adapter

    folder = tmp_path_factory.mktemp("llama-cpp-loras")
    base = Path(resolve_model("smollm2-135m-instruct"))
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"]
    return {
        n: make_adapter(base, folder / n, seed=s, targets=targets, scale=1.0) for n, s in (("alpha", 0), ("beta", 1))
    }


@pytest.fixture(scope="module")
def engine(loras: dict[str, Path]) -> Iterator[LlamaCppEngine]:
    with LlamaCppEngine(adapters=loras, threads=1, context_window=1024) as running:
        yield running.start()
        server = running._server
    assert not server.running()


def raw(engine: LlamaCppEngine, scales: list[float], n_predict: int = 24) -> list[int]:
    """llama-server's own reply, no lorag in between, for the same prompt ids and adapter scales."""
    from lorag.llm.generation import encode_prompt

    body = {
        "prompt": encode_prompt(engine.tokenizer, None, QUESTION, ()),
        "n_predict": n_predict,
        "temperature": 0.0,
        "top_k": 1,
        "cache_prompt": False,
        "return_tokens": True,
        "lora": [{"id": i, "scale": s} for i, s in enumerate(scales)],
    }
    request = urllib.request.Request(
        f"{engine._server.base_url}/completion", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as reply:
        return list(json.load(reply)["tokens"])


@needs_server
@pytest.mark.real_model
def test_each_request_gets_its_adapter_exactly(engine: LlamaCppEngine):
    replies = {
        name: engine.generate(messages=QUESTION, adapter=name, max_tokens=24) for name in (None, "alpha", "beta")
    }
    assert replies[None].token_ids == raw(engine, [0.0, 0.0])
    assert replies["alpha"].token_ids == raw(engine, [1.0, 0.0])
    assert replies["beta"].token_ids == raw(engine, [0.0, 1.0])
    assert len({tuple(r.token_ids) for r in replies.values()}) == 3
    assert replies["alpha"].adapter == "alpha" and replies[None].adapter == "__base__"
    assert replies["alpha"].adapter_version == engine.adapter_version("alpha") != engine.adapter_version(None)
    assert all(len(r.token_logprobs) == len(r.token_ids) and max(r.token_logprobs) <= 0 for r in replies.values())


@needs_server
@pytest.mark.real_model
def test_streamed_pieces_add_up_to_the_reply(engine: LlamaCppEngine):
    whole = engine.generate(messages=QUESTION, adapter="beta", max_tokens=24)
    pieces = list(engine.stream(messages=QUESTION, adapter="beta", max_tokens=24))
    assert "".join(p.text for p in pieces) == whole.text
    assert pieces[-1].finish_reason == whole.finish_reason and pieces[-1].usage == whole.usage
    assert whole.usage.completion_tokens == len(whole.token_ids) <= 24


@needs_server
@pytest.mark.real_model
def test_min_tokens_stop_strings_and_the_first_token_ban(engine: LlamaCppEngine):
    full = engine.generate(messages=QUESTION, max_tokens=16, min_tokens=16)
    assert full.usage.completion_tokens == 16 and full.finish_reason == "length"
    word = full.text.split()[1]
    cut = engine.generate(messages=QUESTION, max_tokens=16, stop=[word])
    assert cut.text == full.text[: full.text.index(word)] and cut.finish_reason == "stop"

    from lorag.llm.generation import encode_prompt

    ids = encode_prompt(engine.tokenizer, None, QUESTION, ())
    first = full.token_ids[0]
    banned = engine.generate(messages=QUESTION, max_tokens=8, sequence_bias=(((*ids[-3:], first), -100.0),))
    assert banned.token_ids[0] != first
    assert banned.token_ids[0] == raw_first_choice_without(engine, first)


def raw_first_choice_without(engine: LlamaCppEngine, token: int) -> int:
    from lorag.llm.generation import encode_prompt

    body = {
        "prompt": encode_prompt(engine.tokenizer, None, QUESTION, ()),
        "n_predict": 1,
        "temperature": 0.0,
        "top_k": 1,
        "cache_prompt": False,
        "return_tokens": True,
        "logit_bias": [[token, False]],
        "lora": [{"id": 0, "scale": 0.0}, {"id": 1, "scale": 0.0}],
    }
    request = urllib.request.Request(
        f"{engine._server.base_url}/completion", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as reply:
        return int(json.load(reply)["tokens"][0])


@needs_server
@pytest.mark.real_model
def test_a_reply_is_scored_as_the_model_would_decode_it_under_each_adapter(engine: LlamaCppEngine):
    """Forcing the greedy reply's first tokens gives back the log-probabilities greedy decoding reported."""
    scores = {}
    for name in (None, "alpha"):
        greedy = engine.generate(messages=QUESTION, adapter=name, max_tokens=6)
        replies = [engine.tokenizer.decode(greedy.token_ids[:n]) for n in (1, 3)]
        scores[name] = engine.continuation_logprobs(QUESTION, replies, adapter=name)
        assert scores[name] == pytest.approx([greedy.token_logprobs[0], sum(greedy.token_logprobs[:3])], abs=1e-4)
    assert scores[None] != scores["alpha"]
    assert engine.continuation_logprobs(QUESTION, ["Purple."])[0] < 0
    with pytest.raises(ValueError, match="empty"):
        engine.continuation_logprobs(QUESTION, [""])
    with pytest.raises(ValueError, match="shorten the chat"):
        engine.continuation_logprobs(QUESTION, ["word " * 2000])


@needs_server
@pytest.mark.real_model
def test_given_tokens_are_scored_as_the_torch_engine_scores_them(engine: LlamaCppEngine):
    """The tokenizer's own tokens are forced, not the spelling greedy decoding under a grammar of the text picks (after
    this prompt: a space, then "G", "e", "orge" for " George", 32 nats less likely in all); the numbers are the
    float32 torch engine's, within the Q8_0 copy's rounding."""
    from lorag.llm import LoragEngine

    ids = lambda text: list(engine.tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    prompt, question = ids("The Parliament left the George IV Bridge building.\nQuestion:"), ids(QUESTION_TEXT)
    forced = engine.token_logprobs(prompt, question)
    torch_engine = LoragEngine("smollm2-135m-instruct", quantization="none", num_threads=1)
    assert forced == pytest.approx(torch_engine.token_logprobs(prompt, question), abs=0.3)
    assert engine.continuation_logprobs(QUESTION, [QUESTION_TEXT]) == pytest.approx(
        torch_engine.continuation_logprobs(QUESTION, [QUESTION_TEXT]), abs=0.5
    )
    assert engine.token_logprobs(prompt, ids(" Mikael Åker")) is None  # " Å": two byte tokens, one entry
    assert engine.continuation_logprobs(QUESTION, ["Mikael Åker"]) is None
    with pytest.raises(ValueError, match="at least one"):
        engine.token_logprobs(prompt, [])
    with pytest.raises(ValueError, match="context window"):
        engine.token_logprobs(prompt * 200, question)
    assert engine.base.vocab_size == torch_engine.base.model.config.vocab_size
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        engine.token_logprobs(prompt, [*question, engine.base.vocab_size])


@needs_server
@pytest.mark.real_model
def test_bad_requests_name_what_is_wrong(engine: LlamaCppEngine, loras: dict[str, Path]):
    from lorag.llm.adapters import UnknownAdapterError

    with pytest.raises(UnknownAdapterError, match="gamma"):
        engine.generate(messages=QUESTION, adapter="gamma")
    with pytest.raises(RuntimeError, match="before the first request"):
        engine.adapters.register("late", loras["alpha"])
    with pytest.raises(ValueError, match="no_repeat_ngram_size"):
        engine.generate(messages=QUESTION, no_repeat_ngram_size=2)
    with pytest.raises(ValueError, match="context window"):
        engine.generate(prompt="word " * 2000)


@needs_server
@pytest.mark.real_model
def test_lorag_ask_answers_on_llama_cpp_with_the_grounded_adapter(tmp_path: Path):
    from typer.testing import CliRunner

    from lorag.cli import app

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tower.md").write_text(
        "# The Eiffel Tower\n\nThe Eiffel Tower is in Paris. It was finished in 1889 and is 330 metres tall.\n"
    )
    (docs / "bridge.md").write_text("# Tower Bridge\n\nTower Bridge crosses the Thames in London, built 1886-1894.\n")
    args = ["ask", "How tall is the Eiffel Tower?", "--docs", str(docs), "--index-dir", str(tmp_path / "index")]
    result = CliRunner().invoke(app, [*args, "--engine", "llama.cpp", "--json"], env={"OMP_NUM_THREADS": "1"})
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert "330" in answer["answer"]
    assert any(s["cited"] and s["source"] == "tower.md" for s in answer["sources"])
