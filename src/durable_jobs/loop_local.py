"""Resources kept per event loop, and the one place that closes them.

HTTP sessions, apiserver connections, AWS client pools, request limits and connection fetches in flight
belong to the event loop that made them (an aiohttp session or an asyncio lock used from another loop
breaks). Each kind is held in a :class:`LoopLocal`: a weak mapping keyed by the loop, so that a loop that
is gone takes its resources with it, and an optional closer. Every ``LoopLocal`` registers itself, and
:func:`close_all` closes the running loop's resources of all of them, in the order they were made (the
HTTP sessions first): what a worker runs when its loop ends, a hook's probe on its private loop, tests.

Imports nothing of Airflow and nothing heavy: the hooks use it on the triggerer's event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class LoopLocal(Generic[T]):
    """One value per event loop, made by ``factory`` on first use and closed by ``close`` (if given)."""

    __slots__ = ("__weakref__", "_by_loop", "_close", "_factory", "name")

    def __init__(
        self, factory: Callable[[], T], *, close: Callable[[T], Awaitable[None]] | None = None, name: str = ""
    ) -> None:
        self.name = name or getattr(factory, "__qualname__", "")
        self._factory = factory
        self._close = close
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()
        number = next(_NUMBERS)
        _REGISTERED[number] = weakref.ref(self, lambda _: _REGISTERED.pop(number, None))

    def get(self) -> T:
        """The running loop's value, made now if it has none."""
        loop = asyncio.get_running_loop()
        value = self._by_loop.get(loop)
        if value is None:
            value = self._by_loop[loop] = self._factory()
        return value

    def peek(self) -> T | None:
        """The running loop's value, or None (nothing is made; None outside a running loop too)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        return self._by_loop.get(loop)

    async def close(self) -> None:
        """Forget the running loop's value and close it; the next :meth:`get` makes a new one."""
        value = self._by_loop.pop(asyncio.get_running_loop(), None)
        if value is not None and self._close is not None:
            await self._close(value)

    def clear(self) -> None:
        """Forget the values of every loop, closing none (tests)."""
        self._by_loop.clear()


# weak, in the order they were made: a LoopLocal of an object (a client's request limit) goes with that object
_REGISTERED: dict[int, weakref.ref[LoopLocal[Any]]] = {}
_NUMBERS = itertools.count()


#: how long one kind of resource may take to close before close_all() gives up on it and goes on
CLOSE_TIMEOUT = 30.0


async def close_all() -> None:
    """Close the running loop's resources of every :class:`LoopLocal`; one that fails or hangs (past
    :data:`CLOSE_TIMEOUT`) does not stop the rest, and a worker's shutdown never waits on a sick endpoint."""
    alive = [ll for ref in list(_REGISTERED.values()) if (ll := ref()) is not None]
    for ll in alive:
        try:
            await asyncio.wait_for(ll.close(), CLOSE_TIMEOUT)
        except TimeoutError:
            log.warning("closing %s of this event loop took over %.0fs: left to the loop's end", ll.name, CLOSE_TIMEOUT)
        except Exception:
            log.warning("closing %s of this event loop failed", ll.name, exc_info=True)


async def cancel_and_wait(task: asyncio.Task[Any], *, what: str, patience: float = 10.0) -> None:
    """Cancel ``task`` and wait until it ends, cancelling it again each second: a cancellation that a
    library's timeout turned into its own error (then retried) must not keep a close waiting forever.
    After ``patience`` seconds it is left running, with a warning."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=min(1.0, max(0.0, deadline - loop.time())))
        if loop.time() >= deadline and not task.done():
            log.warning("%s did not end when cancelled: left running", what)
            return
    if not task.cancelled() and task.exception() is not None:
        log.debug("%s ended with an error while stopping", what, exc_info=task.exception())


__all__ = ["CLOSE_TIMEOUT", "LoopLocal", "cancel_and_wait", "close_all"]
