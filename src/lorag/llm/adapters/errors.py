"""The errors about adapters: a request or an adapter folder that cannot be served, and a base that may not match."""

from __future__ import annotations


class AdapterError(ValueError):
    """An adapter request or adapter directory that cannot be served; the message says what and why."""


class UnknownAdapterError(AdapterError, LookupError):
    """A request named an adapter that is not registered."""


class AdapterBusyError(AdapterError):
    """The adapter is serving requests (or is pinned) and cannot be changed now."""


class BaseMismatchWarning(UserWarning):
    """The adapter records a different base model than the one loaded (shapes matched)."""
