"""``LlamaCppEngine``: lorag's local engine on llama.cpp's CPU kernels, adapters still chosen per request.

Why: on CPU a 135M model's decode step is a few milliseconds of work, and PyTorch's eager path spends most of a step
between kernels; llama.cpp's quantized matrix-vector kernels decode SmolLM2-135M several times faster
(``benchmarks/results/decode.md``). This engine keeps lorag's side of the request (the same tokenizer and chat
template, so the prompt is token for token the one ``LoragEngine`` would run; UTF-8-safe text and stop strings from
``TextAssembler``; the same ``TextDelta`` / ``GenerationResult``) and leaves decoding to a private ``llama-server``
(``lorag.serving.LlamaServer``) on 127.0.0.1, started on the first request and stopped by PID on ``close``.

The server speaks llama.cpp's native ``/completion``, not the OpenAI routes ``RemoteEngine`` uses: only it takes the
prompt as token ids and streams each token's id and raw log-probability. Adapters are lorag / peft LoRA folders,
written as GGUF LoRAs (``lorag.export.to_gguf``) into a temporary folder when the server starts; each request applies
its own (``"lora": [{"id", "scale"}]``, every other at scale 0), and llama-server never batches requests whose
adapters differ, so no request sees another's adapter. With one slot (``parallel=1``, the default) requests decode
one at a time, each exactly as alone; with more, same-adapter requests share a batch, and llama.cpp's kernels are
not batch-invariant (``tests/llm/remote/test_llama_server.py``), so their tokens can differ slightly from solo ones.

What maps exactly: greedy or sampled decoding (``temperature``, ``top_p``, ``top_k``, ``seed``), stop strings,
``repetition_penalty`` (llama.cpp's ``repeat_penalty`` over the whole prompt and output, as transformers'),
``min_tokens`` (end-of-sequence banned for that many tokens), and a ``sequence_bias`` whose entries are single tokens
(anywhere) or end in tokens banned right after the prompt (the RAG pipeline's no-answer ban). Where a request needs a
bias or ban for its first tokens only, it runs as consecutive ``/completion`` calls over one cached prompt. What does
not map is refused by name: ``no_repeat_ngram_size``, the OpenAI presence and frequency penalties (llama.cpp counts
the prompt), lorag grammars and tools (for tools on a llama.cpp server, ``ChatLorag(base_url=..., backend=
"llama.cpp")``). The base is the GGUF a lorag short name's package ships (``lorag.models.packaged_gguf``) or a GGUF
file, served by default as a Q8_0 copy made once (``weights``; SmolLM2's file is Q4_1, the weights lorag's
full-precision copy was dequantized from).

``continuation_logprobs`` scores given replies (the RAG pipeline's choice questions, ``lorag.rag.choices``) and
``token_logprobs`` given tokens (the answerability gate's question gain, ``lorag.rag.question_gain``) as
``LoragEngine``'s do: the tokens decoded under a GBNF grammar of exactly their ids, with the log-probabilities
llama-server reports from the model's logits before the grammar.
"""

from __future__ import annotations

from lorag.llm.llama_cpp.engine import LlamaCppBase, LlamaCppEngine, q8_0_copy
from lorag.llm.llama_cpp.wire import LlamaCppRequest, Phase, completion_fields, plan_phases

__all__ = [
    "LlamaCppBase",
    "LlamaCppEngine",
    "LlamaCppRequest",
    "Phase",
    "completion_fields",
    "plan_phases",
    "q8_0_copy",
]
