"""langchain-tests' standard integration suite for ChatLorag on the real SmolLM2-135M-Instruct (nf4, CPU).

Short answers (max_tokens=12) keep it to a few minutes. Tool calling, structured output, JSON mode and
multimodal inputs are declared unsupported: a 135M model cannot do them reliably, and ChatLorag does not fake them.
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
        return {"model": "smollm2-135m-instruct", "quantization": "nf4", "device": "cpu", "max_tokens": 12}

    @property
    def supports_model_override(self) -> bool:
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def supports_json_mode(self) -> bool:
        return False
