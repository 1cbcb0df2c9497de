"""How one ``LlamaCppEngine`` request maps to llama-server's ``/completion`` calls, and the stream that reads them.

What maps exactly and what is refused is listed in ``lorag.llm.llama_cpp``; ``plan_phases`` splits a request where a
first-token ban or ``min_tokens`` ends, so each call carries only the biases that hold for all of its tokens.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lorag.llm.adapters import BASE_ADAPTER
from lorag.llm.generation import GenerationResult, SamplingParams, TextAssembler, TextDelta, Usage

if TYPE_CHECKING:
    from lorag.llm.llama_cpp.engine import LlamaCppEngine

#: Bias at or below this is a ban (llama.cpp's ``false``: the token is never chosen).
BAN = -100.0
#: Sampling options llama.cpp has no exact counterpart for, with the value that means "off".
UNSUPPORTED = {"no_repeat_ngram_size": 0, "presence_penalty": 0.0, "frequency_penalty": 0.0, "grammar": None}


@dataclass(frozen=True)
class Phase:
    """One ``/completion`` call of a request: at most ``tokens`` tokens, with these extra fields."""

    tokens: int
    fields: dict[str, Any] = field(default_factory=dict)


def completion_fields(params: SamplingParams, context_window: int) -> dict[str, Any]:
    """The ``/completion`` sampling fields for ``params`` (the repetition penalty looks back over the whole context);
    ``ValueError`` names an option llama.cpp cannot honour."""
    refused = [name for name, off in UNSUPPORTED.items() if getattr(params, name) != off]
    if refused:
        raise ValueError(
            f"the llama.cpp engine cannot apply {', '.join(refused)} exactly; leave them unset, or use LoragEngine"
        )
    greedy = params.temperature == 0.0
    fields: dict[str, Any] = {
        "temperature": params.temperature,
        "top_k": 1 if greedy else params.top_k,
        "top_p": params.top_p,
        "min_p": 0.0,
        "repeat_penalty": params.repetition_penalty,
        "repeat_last_n": context_window,
    }
    if params.seed is not None:
        fields["seed"] = params.seed
    return fields


def forced_token_fields(token_ids: Sequence[int]) -> dict[str, Any]:
    """``/completion`` fields that decode exactly ``token_ids`` (a GBNF grammar of token ids, ``<[id]>``) and report
    each token's log-probability from the model's logits before any sampler or the grammar (llama.cpp's ``n_probs``
    without ``post_sampling_probs``): teacher forcing. A grammar of the reply's text would not do: greedy decoding
    under it picks the likeliest next token the text allows (a space, then "G", "e", "orge" for " George"), a spelling
    the model finds far less likely (32 nats on one question) than the tokenizer's."""
    return {
        "grammar": "root ::= " + " ".join(f"<[{int(i)}]>" for i in token_ids),
        "n_predict": len(token_ids),
        "temperature": 0.0,
        "top_k": 1,
        "repeat_penalty": 1.0,
        "n_probs": 1,
        "stream": False,
    }


def forced_token_logprobs(answer: Mapping[str, Any], token_ids: Sequence[int]) -> list[float] | None:
    """Each token's log-probability in a ``forced_token_fields`` answer; None when some are not reported: llama-server
    gives one entry, the last token's, for tokens that end inside a character (" Å" as two byte tokens), about one
    question in a thousand.

    Raises:
        RuntimeError: the server decoded other tokens (named).
    """
    wanted = [int(i) for i in token_ids]
    decoded = list(answer.get("completion_probabilities") or ())
    got = [int(token["id"]) for token in decoded]
    if got[: len(wanted)] == wanted:
        return [float(token["logprob"]) for token in decoded[: len(wanted)]]
    remaining = iter(wanted)
    if got and len(got) < len(wanted) and all(token in remaining for token in got):
        return None  # the same tokens, some merged into the entry of the one that completes their character
    raise RuntimeError(f"llama-server decoded tokens {got} where {wanted} were forced")


def plan_phases(params: SamplingParams, prompt_ids: Sequence[int]) -> list[Phase]:
    """Split a request where its logit biases change: a ban on the reply's first token (a ``sequence_bias`` entry
    whose prefix is the prompt's end) and ``min_tokens``' end-of-sequence ban last only as long as they apply.

    Raises:
        ValueError: a ``sequence_bias`` entry that is neither a single token's bias nor such a ban (llama.cpp biases
            every position alike, and cannot watch for a sequence inside the reply).
    """
    everywhere: list[list[Any]] = []
    first: list[list[Any]] = []
    for ids, bias in params.sequence_bias:
        *prefix, token = (int(i) for i in ids)
        if not prefix:
            everywhere.append([token, False if bias <= BAN else float(bias)])
        elif bias <= BAN and list(prompt_ids[-len(prefix) :]) == prefix:
            first.append([token, False])
        else:
            raise ValueError(
                "the llama.cpp engine applies sequence_bias to single tokens, or as a ban on the reply's first token "
                f"right after the prompt; {tuple(ids)!r} -> {bias} is neither"
            )
    shared = {"logit_bias": everywhere} if everywhere else {}
    phases: list[Phase] = []
    done = 0
    if first:
        phases.append(Phase(1, {"logit_bias": everywhere + first, "ignore_eos": params.min_tokens > 0}))
        done = 1
    if params.min_tokens > done and done < params.max_tokens:
        tokens = min(params.min_tokens, params.max_tokens) - done
        phases.append(Phase(tokens, {**shared, "ignore_eos": True}))
        done += tokens
    if done < params.max_tokens:
        phases.append(Phase(params.max_tokens - done, dict(shared)))
    return phases


class LlamaCppRequest:
    """A request's stream: ``TextDelta`` pieces as tokens arrive; closing it early closes the connection, which
    ends the request on the server."""

    def __init__(
        self,
        engine: LlamaCppEngine,
        prompt_ids: list[int],
        fields: dict[str, Any],
        phases: list[Phase],
        params: SamplingParams,
        adapter: str | None,
    ) -> None:
        self._engine = engine
        self._prompt_ids = prompt_ids
        self._fields = fields
        self._phases = phases
        self._params = params
        self._adapter = adapter
        self._consumed = False
        self.result_value: GenerationResult | None = None

    def __iter__(self) -> Iterator[TextDelta]:
        if self._consumed:
            return
        self._consumed = True
        assembler = TextAssembler(self._engine.tokenizer, self._params.stop)
        logprobs: list[float] = []
        finish = "length"
        for index, phase in enumerate(self._phases):
            body = {
                **self._fields,
                **phase.fields,
                "prompt": self._prompt_ids + assembler.token_ids,
                "n_predict": phase.tokens,
                "n_probs": int(self._engine.logprobs),
                "stream": True,
                "return_tokens": True,
                "cache_prompt": index > 0,  # later phases reuse the first's KV; the first never reuses another's
            }
            ended = None
            with self._engine._post(body) as reply:
                for chunk in _events(reply):
                    logprobs += _token_logprobs(chunk)
                    for token in chunk.get("tokens") or ():
                        text = assembler.push(int(token))
                        if text:
                            yield TextDelta(text, int(token))
                        if assembler.stopped:
                            ended = "stop"
                            break
                    if ended or chunk.get("stop"):
                        ended = ended or ("stop" if chunk.get("stop_type") in ("eos", "word") else None)
                        break
            if ended:
                finish = ended
                break
        tail = assembler.finish()
        usage = Usage(len(self._prompt_ids), len(assembler.token_ids))
        yield TextDelta(tail, None, finish, usage)  # type: ignore[arg-type]
        version = self._engine.adapter_version(self._adapter)
        self.result_value = GenerationResult(
            assembler.emitted,
            list(assembler.token_ids),
            finish,  # type: ignore[arg-type]
            usage,
            self._adapter or BASE_ADAPTER,
            version,
            logprobs[: len(assembler.token_ids)],
        )

    def result(self) -> GenerationResult:
        """Consume the stream and return the finished request."""
        for _ in self:
            pass
        assert self.result_value is not None
        return self.result_value


def _events(reply: Any) -> Iterator[dict[str, Any]]:
    """The JSON objects of a server-sent-events stream (``data: {...}`` lines)."""
    for raw in reply:
        line = raw.decode("utf-8").strip()
        if line.startswith("data:"):
            event = json.loads(line[5:])
            if "error" in event:
                raise RuntimeError(f"llama-server: {event['error']}")
            yield event


def _token_logprobs(chunk: Mapping[str, Any]) -> list[float]:
    """The raw log-probability of each token in a streamed chunk."""
    return [float(p["logprob"]) for p in chunk.get("completion_probabilities") or ()]
