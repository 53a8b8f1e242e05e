"""Waiting for a condition: the one polling helper of the benchmarks and the tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(
    probe: Callable[[], Any],
    timeout: float = 60.0,
    every: float = 0.1,
    *,
    what: str | None = None,
    ignoring: tuple[type[BaseException], ...] = (),
) -> Any:
    """Call ``probe`` every ``every`` seconds until it returns something truthy; return that.

    An exception of a type in ``ignoring`` counts as "not yet" (a port that does not answer
    yet). After ``timeout`` seconds, :class:`TimeoutError` says what was awaited and the last
    result or exception.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except ignoring as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    awaited = f" waiting for {what}" if what else ""
    raise TimeoutError(f"timed out after {timeout:g} s{awaited}; last: {last!r}")
