"""langchain-tests' standard integration suite for ChatLorag on the real SmolLM2-135M-Instruct (nf4, CPU).

Tool calling, tool choice and structured output are declared: calls and structured replies are grammar-constrained
(``lorag.llm.structured``), so they parse and validate even from a 135M model, and a value the model loops in is
closed (``lorag.llm.loops``); max_tokens=128 leaves room for a call or a short JSON object. JSON mode is guided by
the schema given (its keys and types, other keys allowed). Multimodal inputs are declared unsupported. No test is
expected to fail: under ``tool_choice="auto"`` the calibrated rule (``lorag.llm.auto_calls``) decides the agent loop's
call, and the tools prompt asks for argument values as the user wrote them (the Japanese customer name).
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
