"""Resources kept per event loop, and the one place that closes them.

HTTP sessions, apiserver connections, AWS client pools, request limits and connection fetches in flight
belong to the event loop that made them (an aiohttp session or an asyncio lock used from another loop
breaks). Each kind is held in a :class:`LoopLocal`: a weak mapping keyed by the loop, so that a loop that
is gone takes its resources with it, and an optional closer. Every ``LoopLocal`` registers itself, and
:func:`close_all` closes the running loop's resources of all of them, in the order they were made (the
HTTP sessions first): what a worker runs when its loop ends, a hook's probe on its private loop, tests.

A loop that nobody closes by hand (``airflow dags test`` runs a trigger under ``asyncio.run`` of its own) is
closed when it ends: the first value made on a loop starts one small task there that waits until it is
cancelled, as ``asyncio.run`` (and pytest-asyncio) cancels every task at the loop's end, and then lets the
other tasks end and runs :func:`close_all`. Nothing is closed while the loop runs: the long-lived triggerer
keeps one session per endpoint for all its triggers, and cancels its triggers one by one, never all.

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
            _close_at_end_of(loop)
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


# the task of each loop that closes its resources when the loop ends; weak both ways: the loop keeps the
# task alive (through the timer it sleeps on), and a loop that is gone takes its task with it
_WATCHERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, weakref.ref[asyncio.Task[None]]] = (
    weakref.WeakKeyDictionary()
)


def _close_at_end_of(loop: asyncio.AbstractEventLoop) -> None:
    """Start, once per loop, the task that runs :func:`close_all` when the loop's tasks are all cancelled."""
    if loop in _WATCHERS:
        return
    task = loop.create_task(_watch(loop), name="durable_jobs: close resources at loop end")
    # a loop closed without cancelling its tasks (after close_all() by hand, or without it) drops it silently
    task._log_destroy_pending = False  # type: ignore[attr-defined]
    _WATCHERS[loop] = weakref.ref(task)


async def _watch(loop: asyncio.AbstractEventLoop) -> None:
    try:
        # a timer, not an Event: the loop holds its timers, so the loop itself (not a global) keeps this task
        while True:  # noqa: ASYNC110
            await asyncio.sleep(3600)
    except asyncio.CancelledError:
        ref = _WATCHERS.get(loop)
        if ref is None or ref() is not asyncio.current_task():
            raise  # stopped by close_all(): it closes the resources itself
        del _WATCHERS[loop]
        # the loop is ending: the other tasks (cancelled with this one) may still use a session on their way out
        others = asyncio.all_tasks() - {asyncio.current_task()}
        if others:
            await asyncio.wait(others, timeout=CLOSE_TIMEOUT)
        await close_all()
        raise


async def close_all() -> None:
    """Close the running loop's resources of every :class:`LoopLocal`; one that fails or hangs (past
    :data:`CLOSE_TIMEOUT`) does not stop the rest, and a worker's shutdown never waits on a sick endpoint."""
    loop = asyncio.get_running_loop()
    watch = _WATCHERS.pop(loop, None)
    watcher = watch() if watch is not None else None
    if watcher is not None and watcher is not asyncio.current_task() and not watcher.done():
        watcher.cancel()  # closed by hand: the loop-end watch is done with (the next value starts a new one)
        await asyncio.wait({watcher})
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
