"""Poll until ready, with a deadline: the one waiting loop of the harness, on tenacity.

:func:`wait_until` blocks (launchers, the end-to-end tests); :func:`eventually` awaits (tests on an event loop).
Both call ``check`` until it returns something truthy and return that value; when the time is up they raise,
naming what was awaited and the last answer or error. :func:`wait_for_interrupt` waits for the user instead
(the launchers left running for a person: ``make demo-ui``, the local Spark cluster).
"""

from __future__ import annotations

import inspect
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryError,
    Retrying,
    retry_if_exception_type,
    retry_if_not_result,
    stop_after_delay,
    wait_fixed,
)
from tenacity import Future as Attempt

__all__ = ["eventually", "wait_for_interrupt", "wait_until"]

T = TypeVar("T")


def _truthy(value: object) -> bool:
    return bool(value)


def _message(what: str, timeout: float, last: Attempt, on_timeout: Callable[[], str] | None) -> str:
    seen = f" (last error: {last.exception()})" if last.failed else f" (last: {last.result()!r})"
    detail = f"\n{on_timeout()}" if on_timeout else ""
    return f"timed out after {timeout:.0f}s waiting for {what}{seen}{detail}"


def wait_until(
    what: str,
    check: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.5,
    on_timeout: Callable[[], str] | None = None,
    retry_on: tuple[type[BaseException], ...] = (),
    error: Callable[[str], BaseException] = TimeoutError,
) -> T:
    """Call ``check`` every ``interval`` seconds until it returns something truthy; return that.

    An exception of a type in ``retry_on`` counts as "not yet" (the last one is named in the timeout message);
    any other exception propagates at once. When ``timeout`` has passed, ``error(message)`` is raised, with
    ``on_timeout()`` (e.g. the tail of a log) appended to the message.
    """
    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(interval),
        retry=retry_if_not_result(_truthy) | retry_if_exception_type(retry_on),
    )
    try:
        return retrying(check)
    except RetryError as exc:
        raise error(_message(what, timeout, exc.last_attempt, on_timeout)) from None


async def eventually(
    check: Callable[[], Awaitable[T]] | Callable[[], T],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> Any:
    """Await ``check()`` (sync or async) every ``interval`` seconds until it is truthy; return that value.

    Raises :class:`AssertionError` when ``timeout`` has passed; an exception of ``check`` propagates at once.
    """

    async def attempt() -> Any:
        value = check()
        if inspect.isawaitable(value):
            return await value
        return value

    retrying = AsyncRetrying(
        stop=stop_after_delay(timeout), wait=wait_fixed(interval), retry=retry_if_not_result(_truthy)
    )
    try:
        return await retrying(attempt)
    except RetryError as exc:
        raise AssertionError(_message(what, timeout, exc.last_attempt, None)) from None


def wait_for_interrupt() -> None:
    """Block until SIGINT (Ctrl-C) or SIGTERM, so that the caller's ``finally`` stops what it started."""
    stop = threading.Event()
    before = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
