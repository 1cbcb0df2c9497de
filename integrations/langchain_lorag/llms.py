"""``LoragLLM``: a LangChain text-completion model over one base with a LoRA adapter chosen per call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.llms import BaseLLM
from langchain_core.outputs import Generation, GenerationChunk, LLMResult

from langchain_lorag._common import LoragParams
from lorag.llm import GenerationResult, TextDelta
from lorag.llm.options import CALL_OPTIONS


def _generation(result: GenerationResult) -> Generation:
    return Generation(
        text=result.text,
        generation_info={
            "finish_reason": result.finish_reason,
            "adapter": result.adapter,
            "adapter_version": result.adapter_version,
            "prompt_tokens": result.usage.prompt_tokens,
            "completion_tokens": result.usage.completion_tokens,
        },
    )


def _usage_total(results: list[GenerationResult]) -> dict[str, Any]:
    return {
        "token_usage": {
            "prompt_tokens": sum(r.usage.prompt_tokens for r in results),
            "completion_tokens": sum(r.usage.completion_tokens for r in results),
            "total_tokens": sum(r.usage.total_tokens for r in results),
        }
    }


class LoragLLM(LoragParams, BaseLLM):
    """Complete text with a local base model and per-call LoRA adapters; a batch of prompts runs in shared
    forward passes.

    Example:
        .. code-block:: python

            from langchain_lorag import LoragLLM

            llm = LoragLLM(model="smollm2-135m-instruct", adapters={"legal": "adapters/legal"}, max_tokens=64)
            llm.invoke("The contract says", adapter="legal")
    """

    @property
    def _llm_type(self) -> str:
        return "lorag"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        # BaseLLM keys its cache on these (not on call kwargs): include the adapter's content version.
        return {**self.lorag_identity(), "adapter_version": self.get_engine().adapter_version(self.adapter)}

    def _with_call_options(self, kwargs: dict[str, Any]) -> tuple[LoragLLM, dict[str, Any]]:
        """Fold per-call options into a copy (sharing the engine) so the cache key sees them."""
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in CALL_OPTIONS}
        return (self.model_copy(update=options) if options else self), kwargs

    def generate(
        self, prompts: list[str], stop: list[str] | None = None, callbacks: Any = None, **kwargs: Any
    ) -> LLMResult:
        llm, rest = self._with_call_options(kwargs)
        if llm is self:
            return super().generate(prompts, stop=stop, callbacks=callbacks, **rest)
        return llm.generate(prompts, stop=stop, callbacks=callbacks, **rest)

    async def agenerate(
        self, prompts: list[str], stop: list[str] | None = None, callbacks: Any = None, **kwargs: Any
    ) -> LLMResult:
        llm, rest = self._with_call_options(kwargs)
        if llm is self:
            return await super().agenerate(prompts, stop=stop, callbacks=callbacks, **rest)
        return await llm.agenerate(prompts, stop=stop, callbacks=callbacks, **rest)

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        options = self.request_options(stop, kwargs)
        engine = self.get_engine()
        handles = [engine.submit(prompt, **options) for prompt in prompts]  # all queued first: one batch
        results = [handle.result() for handle in handles]
        return LLMResult(generations=[[_generation(r)] for r in results], llm_output=_usage_total(results))

    async def _agenerate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        options = self.request_options(stop, kwargs)
        engine = self.get_engine()
        results = list(await asyncio.gather(*(engine.agenerate(p, **options) for p in prompts)))
        return LLMResult(generations=[[_generation(r)] for r in results], llm_output=_usage_total(results))

    @staticmethod
    def _chunk(delta: TextDelta) -> GenerationChunk:
        info = None
        if delta.finish_reason is not None and delta.usage is not None:
            info = {
                "finish_reason": delta.finish_reason,
                "prompt_tokens": delta.usage.prompt_tokens,
                "completion_tokens": delta.usage.completion_tokens,
            }
        return GenerationChunk(text=delta.text, generation_info=info)

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        options = self.request_options(stop, kwargs)
        for delta in self.get_engine().stream(prompt, **options):
            chunk = self._chunk(delta)
            if run_manager and delta.text:
                run_manager.on_llm_new_token(delta.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[GenerationChunk]:
        options = self.request_options(stop, kwargs)
        async for delta in self.get_engine().astream(prompt, **options):
            chunk = self._chunk(delta)
            if run_manager and delta.text:
                await run_manager.on_llm_new_token(delta.text, chunk=chunk)
            yield chunk
