"""A shared list+watch cache (an informer) of one namespace, kind and label selector.

Why it exists: asking the apiserver for every job on every poll tick costs a request per job per tick
(KubernetesPodOperator's trigger reads its pod every 2 s). Here one long watch request per (connection,
namespace, kind, selector) keeps an in-memory cache of every selected object's *normalized* status, and
the client's ``statuses()`` answers from it: the shared poller keeps its one loop for every system, but a
tick costs no request at all. Only a few fields of each object are kept, never the object itself: its name,
its uid and its normalized status, one status object shared by all objects in the same state (10,000 waiting
pods are "Running" alike). A list page's objects are let go one by one as the cache reads them
(:func:`hand_over`), and never more than one page (``page_size`` objects) is parsed at a time: pages of whole
objects held together are megabytes, which the process keeps after they are freed.

The apiserver's watch protocol, and what this module does about each rule (project notes, kubernetes.md §4):

* **list, then watch from the list's resourceVersion**: the first list (paginated) fills the cache;
* **resume, never restart**: every event and every BOOKMARK advances the remembered resourceVersion, and a
  stream that ends (the server's ``timeoutSeconds``, EOF, a dropped connection) is reopened from it, so no
  event is lost and none is applied twice;
* **410 Gone means relist**, in both of its forms: HTTP 410 on the watch request (the watch-cache path) and
  an ``ERROR`` event with code 410 inside the stream (the etcd path). Watching again from the same
  resourceVersion, which is what kubernetes_asyncio's own ``Watch`` does, always fails again. After the
  relist the cache is diffed against the list, so changes made meanwhile are seen;
* **a periodic relist** (resync) is the safety net for anything a proxy may have swallowed;
* **DELETED is not proof of deletion**: with a label selector, an object whose labels no longer match also
  arrives as DELETED. A deleted entry keeps its last status (a finished job stays finished after garbage
  collection); the client confirms an unfinished one with a GET before calling it cancelled.

This module knows nothing of HTTP or kubernetes_asyncio: a :class:`WatchSource` lists pages and opens event
streams, and the :class:`Informer` is the state machine, testable without a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from durable_jobs.errors import PermanentError, TransientError
from durable_jobs.status import JobState, JobStatus
from durable_jobs.transport.backoff import Backoff

log = logging.getLogger(__name__)


_BACKOFF = Backoff(base=0.5, cap=30.0)
SHARED_STATUSES = 1024  # distinct statuses the cache shares between its objects (see Informer._share)


class RelistRequired(TransientError):
    """The stream cannot be resumed from the remembered resourceVersion: list again."""


class ResourceExpired(RelistRequired):
    """410 Gone / Expired: the resourceVersion was compacted away (as an HTTP status or an ERROR event)."""


class WatchSource(Protocol):
    """What the informer needs of the apiserver, for one namespace, kind and selector.

    Both methods raise :class:`ResourceExpired` for 410, :class:`TransientError` for what may pass, and
    :class:`PermanentError` (403 included) for refusals.
    """

    def describe(self) -> str: ...

    async def list_page(
        self, *, limit: int, continue_token: str | None, each: Callable[[Any], None]
    ) -> Mapping[str, Any]:
        """One page of the list: ``each(item)`` for every item as it is read (none is kept), then the rest of
        the page (``{"metadata": {"resourceVersion", "continue"}}``)."""
        ...

    def open_stream(
        self, *, resource_version: str, timeout_seconds: int
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """The watch from ``resource_version`` with bookmarks: yields one event line at a time."""
        ...


@dataclass(slots=True)
class CachedObject:
    """What the cache keeps of one object."""

    uid: str
    status: JobStatus
    deleted: bool = False
    seen_at: float = 0.0  # monotonic time of the last event about it


@dataclass(slots=True)
class WatchStats:
    """Counters, for tests and the benchmark: what the informer cost the apiserver."""

    lists: int = 0  # complete lists (the first one, relists after 410, resyncs)
    list_pages: int = 0
    relists_expired: int = 0  # relists forced by 410 Gone
    resyncs: int = 0
    watch_requests: int = 0  # watch streams opened
    events: int = 0  # ADDED / MODIFIED / DELETED applied
    bookmarks: int = 0
    errors: int = 0  # streams or lists that failed transiently


class Informer:
    """Keeps :attr:`objects` (name -> :class:`CachedObject`) in step with the apiserver, in one task."""

    def __init__(
        self,
        source: WatchSource,
        project: Callable[[Mapping[str, Any]], JobStatus],
        *,
        watch_timeout: int = 300,
        resync_interval: float = 600.0,
        idle_timeout: float = 300.0,
        stale_after: float = 60.0,
        page_size: int = 500,
        tombstone_ttl: float = 900.0,
        backoff: Backoff = _BACKOFF,
        on_stop: Callable[[Informer], None] | None = None,
    ) -> None:
        self.source = source
        self._project = project
        self.watch_timeout = watch_timeout
        self.resync_interval = resync_interval
        self.idle_timeout = idle_timeout
        self.stale_after = stale_after
        self.page_size = page_size
        self.tombstone_ttl = tombstone_ttl
        self._backoff = backoff
        self._on_stop = on_stop
        self.objects: dict[str, CachedObject] = {}
        self._statuses: dict[tuple[JobState, str, str, str | None], JobStatus] = {}  # see _share
        self.resource_version = ""
        self.stats = WatchStats()
        self.synced = asyncio.Event()
        self.forbidden: str | None = None  # list/watch refused (RBAC): the client falls back to GETs
        self.failure: PermanentError | None = None  # refused otherwise: reported to every waiter
        self.last_error = ""
        self._streaming = False
        self._healthy_stream = False  # the last stream delivered a good line
        self._contact = 0.0  # monotonic time the apiserver last answered
        self._last_list = 0.0
        self._last_touch = time.monotonic()
        self._longest_gap = 0.0
        self._task: asyncio.Task[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self.stopped_at: float | None = None  # monotonic time the loop ended

    # --- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None or self._task.done():
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run(), name=f"durable-jobs-k8s-watch {self.source.describe()}")
            self._schedule_idle_check(loop)

    def _schedule_idle_check(self, loop: asyncio.AbstractEventLoop) -> None:
        # a quiet stream yields nothing to check idleness on: a timer does, and ends the watch
        self._idle_timer = loop.call_later(min(30.0, self.idle_timeout / 2), self._check_idle, loop)

    def _check_idle(self, loop: asyncio.AbstractEventLoop) -> None:
        task = self._task
        if task is None or task.done():
            return
        if self._idle():
            log.info("nobody reads the watch of %s any more: stopping it", self.source.describe())
            task.cancel()
        else:
            self._schedule_idle_check(loop)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def touch(self) -> None:
        """A reader used the cache: keep watching (an informer nobody reads stops after ``idle_timeout``)."""
        now = time.monotonic()
        self._longest_gap = max(self._longest_gap, now - self._last_touch)
        self._last_touch = now

    def _idle(self) -> bool:
        # a poller with a long interval must not see its watch stop between two of its ticks
        return time.monotonic() - self._last_touch > max(self.idle_timeout, 3 * self._longest_gap)

    # --- reading ---------------------------------------------------------------------------------------------

    @property
    def fresh(self) -> bool:
        """True while the cache can be trusted: a stream is open, or the apiserver answered recently."""
        if not self.synced.is_set() or self.failure is not None or self.forbidden is not None:
            return False
        return self._streaming or time.monotonic() - self._contact < self.stale_after

    def lookup(self, name: str) -> CachedObject | None:
        return self.objects.get(name)

    async def wait_synced(self, timeout: float) -> None:
        """Wait for the first list; raise :class:`TransientError` if it does not arrive in ``timeout`` s."""
        if self.synced.is_set():
            return
        try:
            await asyncio.wait_for(asyncio.shield(self.synced.wait()), timeout)
        except asyncio.TimeoutError:
            raise TransientError(
                f"watch of {self.source.describe()} has not listed yet"
                + (f": {self.last_error}" if self.last_error else "")
            ) from None

    # --- the loop --------------------------------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        need_list = True
        try:
            while not self._idle():
                try:
                    if need_list:
                        await self._relist()
                        need_list = False
                    elif time.monotonic() - self._last_list >= self.resync_interval:
                        self.stats.resyncs += 1
                        await self._relist()
                    await self._stream()
                    self._purge_tombstones()
                except RelistRequired as exc:
                    need_list = True
                    if isinstance(exc, ResourceExpired):
                        self.stats.relists_expired += 1
                    log.info("watch of %s: %s; listing again", self.source.describe(), exc)
                except TransientError as exc:
                    self.stats.errors += 1
                    self.last_error = str(exc)
                    if self._healthy_stream:
                        failures = 0  # the stream worked for a while: a cut is news, not a pattern
                        self._healthy_stream = False
                    if failures:
                        delay = self._backoff.delay(failures - 1, exc.retry_after)
                    else:  # the first failure (a dropped stream, usually) at once, unless told to wait
                        delay = min(exc.retry_after or 0.0, self._backoff.max_retry_after)
                    failures += 1
                    log.warning("watch of %s failed (%s); resuming in %.1fs", self.source.describe(), exc, delay)
                    await asyncio.sleep(delay)
                except PermanentError as exc:
                    self.last_error = str(exc)
                    if exc.status == 403:
                        self.forbidden = str(exc)
                        log.warning(
                            "list/watch of %s is forbidden (%s): reading each job with a GET instead",
                            self.source.describe(),
                            exc,
                        )
                    else:
                        self.failure = exc
                        log.error("watch of %s refused: %s", self.source.describe(), exc)
                    self.synced.set()  # wake the readers: they see why
                    return
        finally:
            self._streaming = False
            self.stopped_at = time.monotonic()
            if self._on_stop is not None:
                self._on_stop(self)

    async def _relist(self) -> None:
        listed: dict[str, CachedObject] = {}
        resource_version = ""
        continue_token: str | None = None
        while True:
            try:
                page_version, next_token = await self._list_page(continue_token, listed)
            except ResourceExpired:
                if continue_token is None:
                    raise
                # the continue token outlived its snapshot: start the list over
                listed, resource_version, continue_token = {}, "", None
                continue
            self.stats.list_pages += 1
            resource_version = resource_version or page_version
            continue_token = next_token
            if continue_token is None:
                break
        if not resource_version:
            raise TransientError(f"list of {self.source.describe()} carried no resourceVersion")
        # the list becomes the cache (no copy of 10,000 entries); of the objects it lacks only tombstones stay.
        # One deleted while we were not watching has an unknown final state, so it is dropped: the client
        # then confirms with a GET (404: lost) instead of guessing an outcome
        for name, cached in self.objects.items():
            if cached.deleted and name not in listed:
                listed[name] = cached
        self.objects = listed
        self.resource_version = resource_version
        self.stats.lists += 1
        self._last_list = self._contact = time.monotonic()
        self.synced.set()

    async def _list_page(self, continue_token: str | None, listed: dict[str, CachedObject]) -> tuple[str, str | None]:
        """One page into ``listed``; returns its resourceVersion and continue token.

        Each page is reduced to its records before the next is asked for: a list that kept its pages until
        the end would hold every whole object at once (tens of MB for 10,000 pods), memory the process keeps
        after they are freed.
        """
        now = time.monotonic()  # one float for the page, not one per object

        def take(obj: Any) -> None:
            record = self._record("MODIFIED", obj, now)
            if record is not None:
                listed[record[0]] = record[1]

        page = await self.source.list_page(limit=self.page_size, continue_token=continue_token, each=take)
        meta = page.get("metadata") or {}
        return str(meta.get("resourceVersion") or ""), meta.get("continue") or None

    async def _stream(self) -> bool:
        """One watch request, until it ends. True when it delivered anything."""
        self.stats.watch_requests += 1
        opened = time.monotonic()
        delivered = self._healthy_stream = False
        async with self.source.open_stream(
            resource_version=self.resource_version, timeout_seconds=self.watch_timeout
        ) as lines:
            self._streaming = True
            self._contact = time.monotonic()
            try:
                async for line in lines:
                    delivered = True
                    self._contact = time.monotonic()
                    self._on_line(line)
                    self._healthy_stream = True  # at least one good line
                    if self._idle():
                        return True
            finally:
                self._streaming = False
        if not delivered and time.monotonic() - opened < 1.0:
            # an apiserver (or proxy) that closes every watch at once: back off instead of spinning
            raise TransientError(f"watch of {self.source.describe()} ended at once without an event")
        return delivered

    def _on_line(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError as exc:
            raise TransientError(f"watch of {self.source.describe()} sent a line that is not JSON") from exc
        if not isinstance(event, dict):
            raise TransientError(f"watch of {self.source.describe()} sent {type(event).__name__}, not an event")
        etype = event.get("type")
        obj = event.get("object")
        if etype is None and "code" in event:
            obj, etype = event, "ERROR"  # a bare Status where an event was expected
        if not isinstance(obj, dict):
            raise TransientError(f"watch of {self.source.describe()} sent an event without an object")
        if etype == "ERROR":
            code = obj.get("code")
            text = f"{code} {obj.get('reason', '')}: {obj.get('message', '')}"
            if code == 410:
                raise ResourceExpired(f"resourceVersion {self.resource_version} expired ({text})")
            raise TransientError(f"watch of {self.source.describe()} sent an ERROR event: {text}", status=code)
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if etype == "BOOKMARK":
            if rv:
                self.resource_version = str(rv)
            self.stats.bookmarks += 1
            return
        if etype in ("ADDED", "MODIFIED", "DELETED"):
            self._apply(etype, obj)
            self.stats.events += 1
            if rv:
                self.resource_version = str(rv)
        else:
            log.debug("watch of %s: ignoring event type %r", self.source.describe(), etype)

    def _apply(self, etype: str, obj: Mapping[str, Any]) -> None:
        record = self._record(etype, obj, time.monotonic())
        if record is not None:
            self.objects[record[0]] = record[1]

    def _record(self, etype: str, obj: Mapping[str, Any], now: float) -> tuple[str, CachedObject] | None:
        """What the cache keeps of ``obj`` (its name, uid and normalized status); never the object itself."""
        meta = obj.get("metadata") if isinstance(obj, Mapping) else None
        if not isinstance(meta, Mapping) or not isinstance(name := meta.get("name"), str):
            return None
        try:
            status = self._project(obj)
        except Exception as exc:  # a shape we do not understand must not stop the watch of everything else
            log.warning("cannot read the status of %s %s: %r", self.source.describe(), name, exc)
            status = JobStatus.unknown(f"cannot read the object's status: {exc!r}")
        return name, CachedObject(
            uid=str(meta.get("uid") or ""), status=self._share(status), deleted=etype == "DELETED", seen_at=now
        )

    def _share(self, status: JobStatus) -> JobStatus:
        """One object for equal statuses: thousands of waiting pods are "Running" alike.

        Only statuses without ``extra`` are shared (extras name one object, a SparkApplication's id...); the table
        is bounded, as messages may be unique (a container's reason, a Job's counts).
        """
        if status.extra:
            return status
        key = (status.state, status.raw_state, status.message, status.tracking_url)
        shared = self._statuses.get(key)
        if shared is None:
            if len(self._statuses) >= SHARED_STATUSES:
                self._statuses.clear()
            shared = self._statuses[key] = status
        return shared

    def _purge_tombstones(self) -> None:
        horizon = time.monotonic() - self.tombstone_ttl
        for name in [n for n, c in self.objects.items() if c.deleted and c.seen_at < horizon]:
            del self.objects[name]


def hand_over(page: dict[str, Any], each: Callable[[Any], None]) -> dict[str, Any]:
    """A parsed list page without its items, each given to ``each`` and let go as soon as it is read.

    The page's objects are freed one by one while the cache takes its few fields from them, instead of all
    of them living until the page is done: the parsed objects of a page never outlive the page.
    """
    items = page.pop("items", None) or []
    items.reverse()
    while items:
        each(items.pop())
    return page


def deleted_status(last: JobStatus) -> JobStatus:
    """The status of an object confirmed gone: its last status if that was final, else cancelled."""
    if last.state.is_terminal:
        return last
    return JobStatus(
        state=JobState.CANCELLED,
        raw_state="Deleted",
        message=(
            f"deleted before it finished (last seen {last.raw_state or last.state.value}): "
            "by a user, a controller, or a cancel"
        ),
        tracking_url=last.tracking_url,
    )


__all__ = [
    "CachedObject",
    "Informer",
    "RelistRequired",
    "ResourceExpired",
    "WatchSource",
    "WatchStats",
    "deleted_status",
    "hand_over",
]
