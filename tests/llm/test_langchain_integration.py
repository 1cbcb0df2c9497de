"""langchain-tests' standard integration suite for ChatLorag on the real SmolLM2-135M-Instruct (nf4, CPU).

Tool calling, tool choice and structured output are declared: calls and structured replies are grammar-constrained
(``lorag.llm.structured``), so they parse and validate even from a 135M model, and a value the model loops in is
closed (``lorag.llm.loops``); max_tokens=128 leaves room for a call or a short JSON object. JSON mode is guided by
the schema given (its keys and types, other keys allowed). Multimodal inputs are declared unsupported. Two tool
tests ask more of the model than a constraint can give: they are expected to fail (strict, so a better model or
prompt shows up as a pass).
"""

from __future__ import annotations

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_lorag import ChatLorag

pytestmark = pytest.mark.real_model


class TestChatLoragIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatLorag]:
        return ChatLorag

    @property
    def chat_model_params(self) -> dict:
        return {"model": "smollm2-135m-instruct", "quantization": "nf4", "device": "cpu", "max_tokens": 128}

    @property
    def supports_model_override(self) -> bool:
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @pytest.mark.xfail(
        reason="under tool_choice='auto' SmolLM2-135M answers 'What is the weather in San Francisco?' in prose: it "
        "gives opening a call log-probability -4.83 and the message shares one word with the tool, below the rule "
        "calibrated on BFCL dev prompts (benchmarks/results/tool_calls_auto.md), so no call is forced; forced calls "
        "pass",
        strict=True,
    )
    def test_agent_loop(self, model) -> None:  # type: ignore[no-untyped-def]
        super().test_agent_loop(model)

    @pytest.mark.xfail(
        reason="both forced calls parse and validate (the looping Japanese 'description' is now closed), but "
        "SmolLM2-135M writes the English gloss 'Hello Corporation' as customer_name instead of 'こんにちは株式会社': a "
        "choice of value the schema cannot make (the Chinese case passes)",
        strict=True,
    )
    def test_unicode_tool_call_integration(self, model) -> None:  # type: ignore[no-untyped-def]
        super().test_unicode_tool_call_integration(model)
