"""One re-entrant lock per index: searches never see a half-applied add or delete, and two adds cannot both claim
an id. Searches hold it too (they are short next to query embedding, which happens outside it)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def synchronized(method: F) -> F:
    """Run ``method`` holding ``self._lock`` (a ``threading.RLock``)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
