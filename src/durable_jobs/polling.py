"""The one polling loop: a shared, batched status poller per endpoint, and the wait built on it.

Every trigger (and the non-deferrable worker path) waits through :func:`wait_for_outcome`. Waiters on
the same endpoint share one :class:`StatusPoller`, which asks the client for all their statuses in one
batch per interval and wakes a waiter only when its job changed. So the request rate grows with the
number of endpoints, not jobs, and an idle waiter costs one sleeping coroutine.

Two rules of the protocol live here, once for every system:

* **unknown is never failed**: endpoint errors make a job ``UNKNOWN``; only after ``unknown_budget``
  seconds of it does the wait end with ``unknown`` (the operator then re-checks and re-defers);
* **lost is confirmed**: a job the system says it does not know must be reported so
  ``lost_confirmations`` times in a row before the wait ends with ``lost``.

Deadlines are kept by the poller too: one timer per poller for the earliest deadline, not a timer (handle,
arguments, context copy) per waiting job, because a triggerer holds thousands of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Any

from durable_jobs.clients.base import JobClient, Locator, locator_key
from durable_jobs.errors import PermanentError, TransientError
from durable_jobs.status import JobState, JobStatus
from durable_jobs.transport.backoff import Backoff

log = logging.getLogger(__name__)
# waiters woken per slice of a poll: thousands of jobs changing in one poll (the first poll, a burst of
# endings) must not hold the event loop while every woken trigger logs and yields its event
WAKE_BATCH = 128
# polls start one interval apart, however long a poll takes (a paginated listing of thousands of jobs takes
# a while); a poll longer than the interval is followed by at least this fraction of it
MIN_GAP = 0.25


@dataclass(frozen=True, slots=True)
class PollSettings:
    interval: float = 30.0
    unknown_budget: float = 1800.0
    lost_confirmations: int = 3

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError("poll interval must be positive")
        if self.lost_confirmations < 1:
            raise ValueError("lost_confirmations must be at least 1")


@dataclass(slots=True)
class WaitResult:
    """How a wait ended: a terminal state, ``timeout`` (deadline), ``unknown`` (budget) or ``error``."""

    status: str
    last: JobStatus | None
    message: str = ""


class Watch:
    """One waiter's view of one job. Latest-value semantics: intermediate states may be skipped."""

    __slots__ = (
        "_changed",
        "_waiter",
        "budget_spent",
        "deadline",
        "error",
        "expired",
        "key",
        "latest",
        "locator",
        "lost_seen",
        "settings",
        "unknown_since",
    )

    def __init__(self, locator: Locator, settings: PollSettings, deadline: float | None = None) -> None:
        self.locator = locator
        self.deadline = deadline  # epoch seconds
        self.expired = False
        self.key = locator_key(locator)
        self.settings = settings
        self.latest: JobStatus | None = None
        self.lost_seen = 0
        self.unknown_since: float | None = None
        self.budget_spent = False
        self.error: str | None = None
        self._changed = False
        self._waiter: asyncio.Future[None] | None = None

    def _wake(self) -> None:
        self._changed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def offer(self, status: JobStatus, now: float) -> bool:
        """Take a polled status; True when it woke the waiter."""
        woke = False
        if status.state is JobState.LOST:
            self.lost_seen += 1
            if self.lost_seen < self.settings.lost_confirmations:
                status = JobStatus.unknown(
                    f"not confirmed yet ({self.lost_seen}/{self.settings.lost_confirmations}): {status.message}"
                )
        else:
            self.lost_seen = 0
        if status.state is JobState.UNKNOWN:
            if self.unknown_since is None:
                self.unknown_since = now
            elif not self.budget_spent and now - self.unknown_since >= self.settings.unknown_budget:
                self.budget_spent = True
                self._wake()
                woke = True
        else:
            self.unknown_since = None
        if not status.same_as(self.latest):
            self.latest = status
            self._wake()
            woke = True
        return woke

    def expire(self) -> None:
        self.expired = True
        self._wake()

    def fail(self, message: str) -> None:
        self.error = message
        self._wake()

    def arm(self) -> asyncio.Future[None] | None:
        """A future done at the next change, or None when a change is already waiting to be taken."""
        if self._changed:
            return None
        self._waiter = asyncio.get_running_loop().create_future()
        return self._waiter

    def take(self) -> JobStatus | None:
        """The latest status; the change that woke us is consumed."""
        self._waiter = None
        self._changed = False
        return self.latest

    async def next(self) -> JobStatus | None:
        waiter = self.arm()
        if waiter is not None:
            try:
                await waiter
            finally:
                self._waiter = None
        return self.take()


class StatusPoller:
    """Polls every watched job of one endpoint in one batch per interval."""

    def __init__(self, client: JobClient[Any], interval: float, registry_key: Hashable) -> None:
        self.client = client
        self.interval = interval
        self.backoff = Backoff(base=min(interval, 1.0), cap=max(60.0, interval * 4))
        # tuples, not lists: one allocation per job instead of two, and safe to iterate while waiters come
        # and go during a poll
        self._watches: dict[str, tuple[Watch, ...]] = {}
        self._task: asyncio.Task[None] | None = None
        self._registry_key = registry_key
        self.polls = 0
        self._earliest = float("inf")  # no watch has a deadline before this (epoch s); may be stale-early
        self._nap: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return sum(len(ws) for ws in self._watches.values())

    def add(self, locator: Locator, settings: PollSettings, deadline: float | None = None) -> Watch:
        """Watch ``locator``; with a ``deadline`` (epoch s), the watch is woken ``expired`` when it passes."""
        watch = Watch(locator, settings, deadline)
        self._watches[watch.key] = (*self._watches.get(watch.key, ()), watch)
        if deadline is not None and deadline < self._earliest:
            self._earliest = deadline
            if self._nap is not None and not self._nap.done():
                self._nap.set_result(None)  # the poller naps past this deadline: let it set a new alarm
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"durable-jobs-poller-{self.client.system}"
            )
        return watch

    def remove(self, watch: Watch) -> None:
        ws = self._watches.get(watch.key)
        if ws is not None and watch in ws:
            rest = tuple(w for w in ws if w is not watch)
            if rest:
                self._watches[watch.key] = rest
            else:
                del self._watches[watch.key]

    @contextlib.contextmanager
    def watching(self, locator: Locator, settings: PollSettings) -> Iterator[Watch]:
        watch = self.add(locator, settings)
        try:
            yield watch
        finally:
            self.remove(watch)

    async def _run(self) -> None:
        failures = 0
        try:
            loop = asyncio.get_running_loop()
            while self._watches:
                started = loop.time()
                keys = list(self._watches)
                locators = [self._watches[k][0].locator for k in keys]
                delay = self.interval
                try:
                    results = await self.client.statuses(locators)
                    failures = 0
                except TransientError as exc:
                    results = {k: JobStatus.unknown(str(exc)) for k in keys}
                    delay = max(self.interval, self.backoff.delay(failures, exc.retry_after))
                    failures += 1
                    log.warning("%s status poll failed (%s); next try in %.1fs", self.client.system, exc, delay)
                except PermanentError as exc:
                    log.error("%s status poll refused: %s", self.client.system, exc)
                    for k in keys:
                        for w in self._watches.get(k, ()):
                            w.fail(str(exc))
                    results = {}
                self.polls += 1
                now = time.monotonic()
                missing: JobStatus | None = None
                woken = 0
                for k in keys:
                    st = results.get(k)
                    if st is None and results:
                        missing = missing or JobStatus.unknown("the endpoint's answer did not include this job")
                        st = missing
                    if st is None:
                        continue
                    for w in self._watches.get(k, ()):
                        if w.offer(st, now):
                            woken += 1
                    if woken >= WAKE_BATCH:
                        # let the woken waiters run (and the rest of the loop breathe) before waking more
                        woken = 0
                        await asyncio.sleep(0)
                if not failures:
                    delay = max(self.interval - (loop.time() - started), self.interval * MIN_GAP)
                del keys, locators, results  # a key string and a status per job, not kept through the sleep
                await self._sleep(delay)
        finally:
            reg = _registry()
            if reg.get(self._registry_key) is self:
                del reg[self._registry_key]

    async def _sleep(self, delay: float) -> None:
        """Sleep until the next poll, expiring deadlines that pass meanwhile."""
        loop = asyncio.get_running_loop()
        poll_at = loop.time() + delay
        while self._watches:
            self._expire_due()
            now = loop.time()
            if now >= poll_at:
                return
            wake_at = min(poll_at, now + max(0.0, self._earliest - time.time()))
            self._nap = nap = loop.create_future()
            alarm = loop.call_at(wake_at, _settle, nap)
            try:
                await nap
            finally:
                alarm.cancel()
                self._nap = None

    def _expire_due(self) -> None:
        """Wake every watch whose deadline passed; one pass over the watches, only when one is due."""
        now = time.time()
        if now < self._earliest:
            return
        earliest = float("inf")
        for ws in self._watches.values():
            for w in ws:
                if w.deadline is None or w.expired:
                    continue
                if w.deadline <= now:
                    w.expire()
                elif w.deadline < earliest:
                    earliest = w.deadline
        self._earliest = earliest


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


_POLLERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, StatusPoller]]
_POLLERS = weakref.WeakKeyDictionary()


def _registry() -> dict[Hashable, StatusPoller]:
    return _POLLERS.setdefault(asyncio.get_running_loop(), {})


def poller_for(client: JobClient[Any], interval: float) -> StatusPoller:
    """The running loop's shared poller for this client's endpoint and interval."""
    key = (client.system, client.key, interval)
    reg = _registry()
    poller = reg.get(key)
    if poller is None:
        poller = reg[key] = StatusPoller(client, interval, key)
    return poller


def active_pollers() -> list[StatusPoller]:
    return list(_registry().values())


async def wait_for_outcome(
    client: JobClient[Any],
    locator: Locator,
    settings: PollSettings,
    *,
    deadline: float | None = None,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
) -> WaitResult:
    """Wait until the job is terminal, the absolute ``deadline`` (epoch s) passes, or the budget is spent."""
    lg = logger or log
    poller = poller_for(client, settings.interval)
    watch = poller.add(locator, settings, deadline)
    try:
        while True:
            if deadline is not None and deadline <= time.time():
                return _timed_out(client, locator, watch)
            # the future itself, not Watch.next() under asyncio.timeout: no coroutine, task or timer per waiter
            waiter = watch.arm()
            if waiter is not None:
                await waiter
            if watch.expired and not (watch.latest is not None and watch.latest.state.is_terminal):
                return _timed_out(client, locator, watch)
            status = watch.take()
            if watch.error is not None:
                return WaitResult("error", status, watch.error)
            if watch.budget_spent:
                return WaitResult(
                    "unknown",
                    status,
                    f"status of {client.describe(locator)} unknown for {settings.unknown_budget:.0f}s: "
                    f"{status.message if status else ''}",
                )
            if status is None:
                continue
            log_info(
                lg,
                "%s: %s%s",
                client.describe(locator),  # made when needed: one string less per waiting job
                status.raw_state or status.state.value,
                f" ({status.message})" if status.message else "",
            )
            if status.state.is_terminal:
                return WaitResult(status.state.value, status, status.message)
    finally:
        poller.remove(watch)


def log_info(logger: Any, msg: str, *args: Any) -> None:
    """``logger.info(msg, *args)`` for a coroutine that goes on waiting after it logs.

    Logging looks up its call site by walking frames, which turns the caller's frame into a frame object;
    a suspended coroutine keeps that object for as long as it waits (hundreds of bytes for each of thousands
    of waiting triggers). Called through this plain function, the walk stops here and its frame is freed.
    """
    logger.info(msg, *args)


def _timed_out(client: JobClient[Any], locator: Locator, watch: Watch) -> WaitResult:
    return WaitResult("timeout", watch.latest, f"deadline passed while {client.describe(locator)} was not finished")
