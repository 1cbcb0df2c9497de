"""Which server a wrapper talks to: ``RemoteOptions``, and the same fields as a pydantic model for the wrappers.

The fields are declared once, on a dataclass that needs no pydantic, and ``remote_options_model`` builds the
LangChain and LlamaIndex wrappers' pydantic fields from it, so the two wrappers cannot drift from each other or from
``RemoteEngine``'s arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

Backend = Literal["vllm", "llama.cpp", "openai-compatible"]
BACKENDS: tuple[str, ...] = get_args(Backend)
#: Sent as the bearer token when no key is given: a self-hosted server without ``--api-key`` ignores it, and the
#: user's ``OPENAI_API_KEY`` is never sent to a server that did not ask for it.
NO_KEY = "no-key"


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True)
class RemoteOptions:
    """Which server a wrapper talks to instead of loading a base locally (``base_url`` None: local)."""

    base_url: str | None = field(
        default=None,
        metadata=_doc(
            "OpenAI-compatible server URL (``http://host:8000/v1``; a bare ``http://host:port`` gets ``/v1``). "
            "Set: the calls go to that server instead of a local engine."
        ),
    )
    api_key: str | None = field(
        default=None, metadata=_doc("Bearer token for a server started with an API key (never OPENAI_API_KEY).")
    )
    backend: Backend = field(
        default="openai-compatible",
        metadata=_doc(
            "vllm (adapter = the model field, checked against /v1/models), llama.cpp (adapter = the lora list, ids "
            "from /lora-adapters) or openai-compatible (adapter = the model field, unchecked)."
        ),
    )
    timeout: float = field(default=60.0, metadata=_doc("Seconds one attempt may take (connecting: at most 10)."))
    max_retries: int = field(
        default=2, metadata=_doc("Retries on connection errors, timeouts, 408/409/429 and 5xx, with backoff.")
    )
    extra_body: dict[str, Any] | None = field(
        default=None,
        metadata=_doc(
            "Server-specific fields sent with every request, under lorag's own (llama.cpp's cache_prompt, vLLM's "
            "priority, ...)."
        ),
    )


def remote_options_model() -> Any:
    """A pydantic model with ``RemoteOptions``'s fields (``api_key`` as a ``SecretStr``) and ``remote_engine``,
    which the LangChain and LlamaIndex wrappers subclass beside their local options; pydantic is imported here only."""
    import dataclasses
    import typing

    from pydantic import BaseModel, ConfigDict, Field, SecretStr, create_model

    from lorag.llm.remote.engine import RemoteEngine

    class LoragRemoteOptions(BaseModel):
        model_config = ConfigDict(protected_namespaces=())

        def remote_options(self) -> RemoteOptions:
            values = {f.name: getattr(self, f.name) for f in dataclasses.fields(RemoteOptions)}
            key = values["api_key"]
            values["api_key"] = key.get_secret_value() if isinstance(key, SecretStr) else key
            return RemoteOptions(**values)

        def is_remote(self) -> bool:
            return getattr(self, "base_url", None) is not None

        def remote_engine(self, model: str | None, adapters: Mapping[str, str]) -> RemoteEngine:
            """The shared ``RemoteEngine`` for these settings, with ``adapters`` registered on it."""
            options = self.remote_options()
            assert options.base_url is not None
            return RemoteEngine.shared(
                options.base_url,
                backend=options.backend,
                model=model,
                adapters=adapters,
                api_key=options.api_key,
                timeout=options.timeout,
                max_retries=options.max_retries,
                extra_body=options.extra_body,
            )

    hints = typing.get_type_hints(RemoteOptions)
    hints["api_key"] = SecretStr | None
    fields: dict[str, Any] = {
        f.name: (hints[f.name], Field(default=f.default, description=f.metadata["doc"]))
        for f in dataclasses.fields(RemoteOptions)
    }
    return create_model("LoragRemoteOptions", __base__=LoragRemoteOptions, **fields)
