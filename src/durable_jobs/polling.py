"""The one polling loop: a shared, batched status poller per endpoint, and the wait built on it.

Every trigger (and the non-deferrable worker path) waits through :func:`wait_for_outcome`. Waiters on
the same endpoint share one :class:`StatusPoller`, which asks the client for all their statuses in one
batch per interval and wakes a waiter only when its job changed. So the request rate grows with the
number of endpoints, not jobs, and an idle waiter costs one sleeping coroutine.

The rules of the protocol that live here, once for every system:

* **unknown is never failed**: endpoint errors make a job ``UNKNOWN``, which wakes nobody; only after
  ``unknown_budget`` seconds of it does the wait end with ``unknown`` (the operator re-checks and
  re-defers);
* **lost is confirmed**: a job the system says it does not know must be reported so
  ``lost_confirmations`` times in a row before the wait ends with ``lost``;
* **the poller cannot die**: whatever a client raises (any class), or a poll that hangs past
  ``poll_timeout``, counts as unknown for the jobs it concerns and is logged once per endpoint (and once
  when it recovers). Should the poller's task end anyway, a watchdog starts it again with its waiters;
* **deadlines do not depend on polls**: one alarm per poller for the earliest deadline fires whether a
  poll is running, raising or hanging. No timer per waiting job (a triggerer holds thousands of them);
* **an answer with nothing known is a failed poll**: a ``statuses()`` answer that gives no known status for
  any job of the poll (empty, or every job unknown) counts exactly as a poll that raised: the endpoint is
  sick, said once, and polled again after one interval. Clients return what they know and never raise to
  report it;
* **a sick endpoint gets one poll per interval**: no exponential backoff past the interval (a failing
  batched poll is itself the cheapest liveness probe), so waiting jobs see the endpoint's return within
  one interval; only a ``Retry-After`` from the server stretches it;
* **credentials rotate**: a trigger created later brings the poller the newest client of its connection;
  an :class:`~durable_jobs.errors.AuthError` makes the poller fetch fresh credentials once
  (``refresh``) and poll again before the refusal counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable, Iterator
from typing import Any

from durable_jobs import health, metrics
from durable_jobs.clients.base import JobClient, Locator
from durable_jobs.errors import AuthError, TransientError
from durable_jobs.messages import redact
from durable_jobs.status import JobState, JobStatus
from durable_jobs.watch import PollSettings as PollSettings
from durable_jobs.watch import WaitResult as WaitResult
from durable_jobs.watch import Watch as Watch

log = logging.getLogger(__name__)
# waiters woken per slice of a poll: thousands of jobs changing in one poll (the first poll, a burst of
# endings) must not hold the event loop while every woken trigger logs and yields its event
WAKE_BATCH = 128
# jobs offered between two turns of the loop in a poll that wakes nobody (a steady poll of 100,000 jobs)
OFFER_SLICE = 8192
# polls start one interval apart, however long a poll takes (a paginated listing of thousands of jobs takes
# a while); a poll longer than the interval is followed by at least this fraction of it
MIN_GAP = 0.25
# a server's Retry-After is honoured up to this many seconds
MAX_RETRY_AFTER = 300.0

Refresh = Callable[[], Awaitable[JobClient[Any]]]

#: True in a trigger's ``run()`` (set by :class:`~durable_jobs.triggers.base.DurableJobTrigger`): the pollers
#: it joins count toward the triggerer's ``durable_jobs.jobs_watched``, and a worker's own wait does not
IN_TRIGGERER: contextvars.ContextVar[bool] = contextvars.ContextVar("durable_jobs_in_triggerer", default=False)


class StatusPoller:
    """Polls every watched job of one endpoint in one batch per interval."""

    def __init__(self, client: JobClient[Any], interval: float, registry_key: Hashable) -> None:
        self.client = client
        self.interval = interval
        # a poll (every page of a listing included) that takes longer than this counts as unknown
        self.poll_timeout = max(300.0, 4 * interval)
        # tuples, not lists: one allocation per job instead of two, and safe to iterate while waiters come
        # and go during a poll
        self._watches: dict[str, tuple[Watch, ...]] = {}
        self._task: asyncio.Task[None] | None = None
        self._registry_key = registry_key
        self._refresh: Refresh | None = None
        self.polls = 0
        self.restarts = 0  # times the watchdog started the poller again
        self.refreshes = 0  # credential refreshes after an AuthError
        self.sick_since: float | None = None  # monotonic time the endpoint's polls started failing
        self.last_problem = ""
        self._earliest = float("inf")  # no watch has a deadline before this (epoch s); may be stale-early
        self._alarm: asyncio.TimerHandle | None = None
        self._alarm_at = float("inf")
        self._nap: asyncio.Future[None] | None = None
        self._version = 0  # bumped when a watch comes or goes: the poll's key and locator lists are rebuilt
        self._snapshot: tuple[int, list[str], list[Locator]] | None = None
        self._count = 0  # watches, kept as they come and go: counting them would cost a pass over the jobs
        self.in_triggerer = False  # a trigger watches through this poller: it counts in durable_jobs.jobs_watched
        self._tags: tuple[JobClient[Any], dict[str, str]] | None = None  # the metric tags, and of which client
        # endpoint health (durable_jobs.health): the state since when, the last poll, the watches per connection
        self.health_state: str | None = None  # ok, unknown, auth refused; None before the first poll
        self.state_since = 0.0  # epoch s
        self.last_poll_at: float | None = None  # epoch s
        self._conns: dict[str, int] = {}  # conn_id -> watches of it (kept as they come and go)
        self.health_conns: set[str] = set()  # connections reported to the loop's health reporter
        self._health_said: str | None = None  # the state last told to the reporter
        self._health_due = 0.0  # monotonic s: tell the reporter again after this even if nothing changed

    def __len__(self) -> int:
        return self._count

    def add(
        self,
        locator: Locator,
        settings: PollSettings,
        deadline: float | None = None,
        *,
        client: JobClient[Any] | None = None,
        refresh: Refresh | None = None,
        conn_id: str | None = None,
    ) -> Watch:
        """Watch ``locator``; with a ``deadline`` (epoch s), the watch is woken ``expired`` when it passes.

        ``client``: the caller's client of this endpoint, the newest of its connection (its credentials
        may have rotated since the poller started); ``refresh`` fetches fresh credentials after an AuthError.
        ``conn_id``: the Airflow connection the watch came through (its endpoint health is reported per
        connection); the same must be given to :meth:`remove`.
        """
        if client is not None and client is not self.client:
            self.client = client
        if refresh is not None:
            self._refresh = refresh
        watch = Watch(locator, settings, deadline)
        self._watches[watch.key] = (*self._watches.get(watch.key, ()), watch)
        self._version += 1
        self._count += 1
        if conn_id is not None:
            self._conns[conn_id] = self._conns.get(conn_id, 0) + 1
        if not self.in_triggerer and IN_TRIGGERER.get():
            self.in_triggerer = True
        if deadline is not None and deadline < self._earliest:
            self._earliest = deadline
            self._arm_alarm()
        self._ensure_running()
        return watch

    def remove(self, watch: Watch, conn_id: str | None = None) -> None:
        ws = self._watches.get(watch.key)
        if ws is not None and watch in ws:
            self._version += 1
            self._count -= 1
            if conn_id is not None:
                left = self._conns.get(conn_id, 0) - 1
                if left > 0:
                    self._conns[conn_id] = left
                else:
                    self._conns.pop(conn_id, None)
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

    # --- the task and its watchdog ----------------------------------------------------------------------

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            reg = _registry()
            reg.setdefault(self._registry_key, self)
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"durable-jobs-poller-{self.client.system}"
            )
            self._task.add_done_callback(self._on_done)

    def _on_done(self, task: asyncio.Task[None]) -> None:
        """The watchdog: a poller task that ends while jobs still wait is started again."""
        if task is not self._task:
            return
        exc = None if task.cancelled() else task.exception()  # retrieved: no "never retrieved" warning
        loop = task.get_loop()
        if not self._watches or loop.is_closed():
            return
        self.restarts += 1
        log.error(
            "%s status poller ended (%s) while %d jobs wait; starting it again",
            self.client.system,
            "cancelled" if exc is None else f"{type(exc).__name__}: {exc}",
            len(self),
            exc_info=exc,
        )
        # after the current turn: waiters cancelled together with the task leave first
        loop.call_soon(self._restart)

    def _restart(self) -> None:
        if self._watches:
            self._ensure_running()

    async def _run(self) -> None:
        try:
            loop = asyncio.get_running_loop()
            while self._watches:
                started = loop.time()
                delay = await self._cycle()
                if self.in_triggerer:
                    self._report_health()
                if self.sick_since is None:
                    delay = max(delay - (loop.time() - started), self.interval * MIN_GAP)
                await self._sleep(delay)
        finally:
            reg = _registry()
            if not self._watches and reg.get(self._registry_key) is self:
                del reg[self._registry_key]
            self._report_watched()
            if self.health_conns and not self._watches:
                self._report_health(force=True)  # its connections' values: deleted, or merged without it
                self._health_said = None  # started again by a new watch: its first round reports at once

    # --- one poll ----------------------------------------------------------------------------------------

    async def _cycle(self) -> float:
        """Poll once and hand every watch its status; the delay until the next poll."""
        snap = self._snapshot
        if snap is None or snap[0] != self._version:
            # rebuilt only when a watch came or went: a steady poll of 100,000 jobs does not redo it
            keys = list(self._watches)
            snap = self._snapshot = (self._version, keys, [self._watches[k][0].locator for k in keys])
        _, keys, locators = snap
        try:
            results = await self._statuses(locators)
            if not isinstance(results, dict):
                raise TypeError(f"statuses() returned a {type(results).__name__}, not a dict")
        except AuthError as exc:
            log.error("%s: %s refused the credentials: %s", self.client.system, self._endpoint(), redact(str(exc)))
            self.last_problem = redact(str(exc)) or type(exc).__name__
            self._set_health(health.AUTH_REFUSED)
            for k in keys:
                for w in self._watches.get(k, ()):
                    w.fail(str(exc))
            self._polled(failed=True)
            return self.interval
        except Exception as exc:  # any class: unknown for every job of this poll, never a dead poller
            delay = self._failed(exc)
            await self._offer(keys, {}, JobStatus.unknown(self.last_problem), time.monotonic())
            return delay
        offered, unknown, sample = await self._offer(keys, results, None, time.monotonic())
        del results  # a status per job, not kept through the sleep
        if offered and unknown == offered and sample is not None:
            # nothing known about any job (the batch source and its fallback failed, or an empty answer): a
            # failed poll, for every system alike. The jobs already hold this round's unknown statuses
            retry_after = sample.extra.get("retry_after")  # a server's Retry-After, kept by JobStatus.unknown_from
            return self._failed(TransientError(sample.message or "no status could be read", retry_after=retry_after))
        self._polled(failed=False)
        self._healthy()
        return self.interval

    def _polled(self, *, failed: bool) -> None:
        """Count one poll, and send the poll's metrics: a few per poll, whatever the number of jobs."""
        self.polls += 1
        self.last_poll_at = time.time()
        tags = self._metric_tags()
        metrics.incr("poll.requests", tags)
        if failed:
            metrics.incr("poll.failed", tags)
        self._report_watched()

    def _metric_tags(self) -> dict[str, str]:
        """``system`` and ``endpoint`` tags, made again only when the client changes (fresh credentials)."""
        if self._tags is None or self._tags[0] is not self.client:
            self._tags = (self.client, metrics.client_tags(self.client))
        return self._tags[1]

    def _report_watched(self) -> None:
        """The triggerer's ``durable_jobs.jobs_watched``: the jobs its triggers watch, over every endpoint."""
        if self.in_triggerer:
            reg = _POLLERS.get(asyncio.get_running_loop(), {})
            watched = sum(len(p) for p in reg.values() if p.in_triggerer)
            if reg.get(self._registry_key) is not self:
                watched += len(self)  # a poller that just left the registry still counts what it holds
            metrics.gauge("jobs_watched", watched, {"hostname": metrics.hostname()})

    def _failed(self, exc: Exception) -> float:
        """Count a failed poll (its problem logged once while it lasts); the delay until the next one."""
        self._polled(failed=True)
        delay = self.interval
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, (int, float)) and retry_after > delay:
            delay = min(float(retry_after), MAX_RETRY_AFTER)
        self._sick(exc, delay)
        return delay

    async def _offer(
        self, keys: list[str], results: dict[str, JobStatus], default: JobStatus | None, now: float
    ) -> tuple[int, int, JobStatus | None]:
        """Hand every watch its status; a job the answer left out counts as unknown this round.

        Returns how many jobs were offered a status, how many of those were unknown, and one unknown status.
        """
        woken = offered = unknown = since_yield = 0
        sample: JobStatus | None = None
        missing = default
        watches, get = self._watches, results.get
        unknown_state, lost_state = JobState.UNKNOWN, JobState.LOST
        for k in keys:
            ws = watches.get(k)
            if not ws:
                continue
            st = get(k)
            if not isinstance(st, JobStatus):
                if missing is None:
                    missing = JobStatus.unknown("the endpoint's answer did not include this job")
                st = missing
            offered += 1
            state = st.state
            if state is unknown_state:
                unknown += 1
                if sample is None or (not sample.message and st.message):
                    sample = st
            for w in ws:
                if st is w.latest and w.unknown is None and state is not lost_state:
                    continue  # the very status object it holds (clients share them): nothing to hand over
                if w.offer(st, now):
                    woken += 1
            since_yield += 1
            if woken >= WAKE_BATCH or since_yield >= OFFER_SLICE:
                # let the woken waiters run (and the rest of the loop breathe) before going on
                woken = since_yield = 0
                await asyncio.sleep(0)
        return offered, unknown, sample

    async def _statuses(self, locators: list[Locator]) -> Any:
        try:
            return await self._timed(self.client.statuses(locators))
        except AuthError as exc:
            refresh = self.client.refetch or self._refresh
            if refresh is None:
                raise
            try:
                fresh = await self._timed(refresh())
            except Exception:
                log.warning("%s: fetching fresh credentials failed", self.client.system, exc_info=True)
                raise exc from None
            self.refreshes += 1
            self.client = fresh
            log.warning(
                "%s: %s refused the credentials (%s); polling again with freshly fetched ones",
                fresh.system,
                self._endpoint(),
                exc,
            )
            return await self._timed(fresh.statuses(locators))

    async def _timed(self, aw: Awaitable[Any]) -> Any:
        try:
            return await asyncio.wait_for(aw, self.poll_timeout)
        except asyncio.TimeoutError:
            raise TransientError(f"the status poll took longer than {self.poll_timeout:.0f}s") from None

    def _endpoint(self) -> str:
        return getattr(self.client, "endpoint_name", None) or self.client.system

    def _sick(self, exc: Exception, delay: float) -> None:
        message = redact(str(exc)) or type(exc).__name__  # a client's message may quote a URL with credentials
        if not isinstance(exc, TransientError | AuthError):
            message = f"{type(exc).__name__}: {message}"
        self.last_problem = message
        self._set_health(health.UNKNOWN)
        if self.sick_since is None:
            self.sick_since = time.monotonic()
            log.warning(
                "%s: status of the %d jobs watched on %s is unknown: %s (polling again every %.0fs until it "
                "answers; nothing is failed or resubmitted meanwhile)",
                self.client.system,
                len(self),
                self._endpoint(),
                message,
                delay,
                exc_info=None if isinstance(exc, TransientError) else exc,
            )
        else:
            log.debug("%s: %s still unavailable: %s", self.client.system, self._endpoint(), message)

    def _healthy(self) -> None:
        if self.sick_since is not None:
            unknown_for = time.monotonic() - self.sick_since
            log.warning("%s: %s answers again after %.0fs", self.client.system, self._endpoint(), unknown_for)
            metrics.timing("endpoint.unknown_seconds", unknown_for, self._metric_tags())
            self.sick_since = None
        self.last_problem = ""
        self._set_health(health.OK)

    # --- endpoint health (durable_jobs.health) -----------------------------------------------------------

    def _set_health(self, state: str) -> None:
        if state != self.health_state:
            self.health_state = state
            self.state_since = time.time()

    def conn_watches(self, conn_id: str) -> int:
        """The watches that came through connection ``conn_id``."""
        return self._conns.get(conn_id, 0)

    def _report_health(self, *, force: bool = False) -> None:
        """Once per poll round, a cheap check: tell the loop's health reporter when the endpoint's state changed
        or :data:`health.REFRESH` seconds passed. Whatever the reporter does, the poller goes on."""
        now = time.monotonic()
        if not force and self.health_state == self._health_said and now < self._health_due:
            return
        self._health_said = self.health_state
        self._health_due = now + health.REFRESH
        try:
            reporter = health.reporter()
            if reporter is not None:
                self.health_conns.update(self._conns)
                reporter.report(self, list(_registry().values()))
        except Exception:  # a bug in the reporting must never end the polls
            log.warning("%s: reporting the endpoint's health failed", self.client.system, exc_info=True)

    # --- sleeping and deadlines --------------------------------------------------------------------------

    async def _sleep(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self._nap = nap = loop.create_future()
        timer = loop.call_later(delay, _settle, nap)
        try:
            await nap
        finally:
            timer.cancel()
            self._nap = None

    def poke(self) -> None:
        """Poll now instead of at the end of the current nap."""
        if self._nap is not None:
            _settle(self._nap)

    def _arm_alarm(self) -> None:
        """One timer for the earliest deadline, independent of the polls."""
        if self._earliest == float("inf"):
            return
        if self._alarm is not None and self._alarm_at <= self._earliest:
            return
        if self._alarm is not None:
            self._alarm.cancel()
        loop = asyncio.get_running_loop()
        self._alarm_at = self._earliest
        self._alarm = loop.call_later(max(0.0, self._earliest - time.time()), self._on_alarm)

    def _on_alarm(self) -> None:
        self._alarm = None
        self._alarm_at = float("inf")
        try:
            self._expire_due()
        finally:
            if self._watches:
                self._arm_alarm()

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
    refresh: Refresh | None = None,
) -> WaitResult:
    """Wait until the job is terminal, the absolute ``deadline`` (epoch s) passes, or the budget is spent.

    ``refresh`` returns a client with freshly fetched credentials (the hook's), used once after an AuthError.
    """
    lg = logger or log
    poller = poller_for(client, settings.interval)
    conn_id = getattr(client, "conn_id", None)  # set by the hook that built it
    watch = poller.add(locator, settings, deadline, client=client, refresh=refresh, conn_id=conn_id)
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
                why = watch.unknown.message if watch.unknown is not None else ""
                return WaitResult(
                    "unknown",
                    status,
                    f"status of {client.describe(locator)} unknown for {settings.unknown_budget:.0f}s: {why}",
                )
            if status is None:
                continue
            if status.state.is_terminal:
                if watch.changed_at is not None:
                    # from the answer that showed the end to the event: what waking many waiters in slices costs
                    metrics.timing("event_latency", time.monotonic() - watch.changed_at, {"system": client.system})
                return WaitResult(status.state.value, status, status.message)
            # state changes of a waiting job are DEBUG: at INFO a trigger writes two lines in its life
            log_at(
                lg,
                logging.DEBUG,
                "%s: %s%s",
                client.describe(locator),  # made when needed: one string less per waiting job
                status.raw_state or status.state.value,
                f" ({status.message})" if status.message else "",
            )
    finally:
        poller.remove(watch, conn_id)


def log_at(logger: Any, level: int, msg: str, *args: Any) -> None:
    """``logger.log(level, msg, *args)`` for a coroutine that goes on waiting after it logs.

    Logging looks up its call site by walking frames, which turns the caller's frame into a frame object;
    a suspended coroutine keeps that object for as long as it waits (hundreds of bytes for each of thousands
    of waiting triggers). Called through this plain function, the walk stops here and its frame is freed.
    """
    if level >= logging.INFO or _enabled(logger, level):
        logger.log(level, msg, *args)


def _enabled(logger: Any, level: int) -> bool:
    check = getattr(logger, "isEnabledFor", None)
    return bool(check(level)) if check is not None else True


def log_info(logger: Any, msg: str, *args: Any) -> None:
    """:func:`log_at` at INFO."""
    log_at(logger, logging.INFO, msg, *args)


def _timed_out(client: JobClient[Any], locator: Locator, watch: Watch) -> WaitResult:
    return WaitResult("timeout", watch.latest, f"deadline passed while {client.describe(locator)} was not finished")
