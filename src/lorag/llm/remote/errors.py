"""The errors a remote engine raises, and the one place the ``openai`` client's exceptions become them.

A chain that calls a server should not need to know the client library: every failure is a ``RemoteError`` (or
``UnknownAdapterError``) whose message names the server, the backend and what to check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lorag.llm.adapters import BASE_ADAPTER, UnknownAdapterError

if TYPE_CHECKING:
    from lorag.llm.remote.engine import RemoteEngine


class RemoteError(RuntimeError):
    """A remote server could not serve a request; the message names the server and what to check."""


class RemoteConnectionError(RemoteError, ConnectionError):
    """The server did not accept a connection (not running, wrong host or port), after every retry."""


class RemoteTimeoutError(RemoteError, TimeoutError):
    """The server accepted the request but did not answer within the timeout, after every retry."""


class RemoteStatusError(RemoteError):
    """The server answered with an error status (after the retries for 429 and 5xx)."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class LoraUnsupportedError(RemoteError):
    """The server cannot select LoRA adapters per request (no ``/lora-adapters``, or none loaded)."""


class ToolCallUnsupportedError(RemoteError):
    """A call was forced (``tool_choice`` required or a tool's name) and the server answered without one: its chat
    template or tool parser does not do tools (llama-server ignores tools for a template without them)."""


class ErrorMapper:
    """Turns the client's exceptions into lorag's, naming the server, the backend and what to check."""

    def __init__(self, engine: RemoteEngine, adapter: str | None = None) -> None:
        self._engine = engine
        self._adapter = adapter

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        errors = self._engine._openai
        if exc is None or not isinstance(exc, errors.OpenAIError):
            return
        engine = self._engine
        where = f"the {engine.backend} server at {engine.base_url}"
        attempts = f"{engine.max_retries + 1} attempt(s)"
        if isinstance(exc, errors.APITimeoutError):
            raise RemoteTimeoutError(f"{where} did not answer within {engine.timeout:g} s ({attempts})") from exc
        if isinstance(exc, errors.APIConnectionError):
            cause = exc.__cause__ or exc
            raise RemoteConnectionError(f"cannot reach {where} ({attempts}): {cause}; is it running?") from exc
        if isinstance(exc, errors.APIStatusError):
            detail = _error_detail(exc)
            if exc.status_code == 404 and self._adapter not in (None, BASE_ADAPTER) and engine.backend != "llama.cpp":
                raise UnknownAdapterError(
                    f"{where} has no model {engine.adapters.target(self._adapter)!r} for adapter "
                    f"{self._adapter!r}: {detail}"
                ) from exc
            raise RemoteStatusError(f"{where} answered {exc.status_code}: {detail}", exc.status_code) from exc
        raise RemoteError(f"{where}: {exc}") from exc


def _error_detail(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(getattr(exc, "message", exc))
