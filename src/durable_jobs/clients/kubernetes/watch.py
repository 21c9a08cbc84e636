"""A shared list+watch cache (an informer) of one namespace, kind and label selector.

Why it exists: asking the apiserver for every job on every poll tick costs a request per job per tick
(KubernetesPodOperator's trigger reads its pod every 2 s). Here one long watch request per (connection, namespace,
kind, selector) keeps an in-memory cache of every selected object's *normalized* status, and the client's
``statuses()`` answers from it: a tick costs no request at all. Of each object only its name, uid and status are
kept, one status object shared by all objects in the same state (10,000 waiting pods are "Running" alike). A list
is read one page (``page_size`` objects) at a time, decoded typed (:mod:`~durable_jobs.clients.kubernetes.schemas`)
with each item raw until decoded on its own: a page costs one buffer and a few milliseconds of the event loop
(``benchmarks/listing_kubernetes.py``).

The apiserver's watch protocol (``docs/kubernetes.md``, "Watched, not polled"), and what this module does:

* **list, then watch from the list's resourceVersion**: the first list (paginated) fills the cache;
* **resume, never restart**: every event and BOOKMARK advances the remembered resourceVersion, and a stream that
  ends (``timeoutSeconds``, EOF, a dropped connection) is reopened from it: no event lost, none applied twice;
* **410 Gone means relist**, in both forms: HTTP 410 on the watch request (the watch-cache path) and an ``ERROR``
  event with code 410 in the stream (the etcd path). Watching again from the same resourceVersion, as
  kubernetes_asyncio's own ``Watch`` does, always fails again. The relist is diffed against the cache;
* **a periodic relist** (resync) is the safety net for anything a proxy may have swallowed;
* **a bad answer touches only what it is about**: a malformed object (a wrong type in a field that is read) is
  cached as *unknown*, that object only; a malformed event or page, which cannot be attributed, forces a relist,
  and the cache is stale (its jobs unknown) until then. Nothing a server sends ends the informer's task;
* **DELETED is not proof of deletion**: with a label selector, an object whose labels no longer match also arrives
  as DELETED. A deleted entry keeps its last status (a finished job stays finished after garbage collection); the
  client confirms an unfinished one with a GET before calling it cancelled.

This module knows nothing of HTTP: a :class:`~durable_jobs.clients.kubernetes.listwatch.WatchSource` lists pages
(bytes) and opens event streams (lines), and the :class:`Informer` is the state machine, testable without a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from msgspec import Raw

from durable_jobs.clients.kubernetes.errors import MalformedStream, RelistRequired, ResourceExpired
from durable_jobs.clients.kubernetes.listwatch import WatchSource
from durable_jobs.clients.kubernetes.schemas import (
    Attributable,
    Bookmark,
    KubeStatus,
    ListPage,
    Meta,
    WatchEvent,
    decode,
)
from durable_jobs.clients.kubernetes.status import CachedObject
from durable_jobs.errors import AnswerTooLarge, AuthError, MalformedAnswer, PermanentError, TransientError
from durable_jobs.loop_local import cancel_and_wait
from durable_jobs.messages import cut
from durable_jobs.status import JobState, JobStatus
from durable_jobs.transport import retry
from durable_jobs.transport.backoff import Backoff

log = logging.getLogger(__name__)


_BACKOFF = Backoff(base=0.5, cap=30.0)
SHARED_STATUSES = 1024  # distinct statuses the cache shares between its objects (see Informer._share)
MIN_PAGE_SIZE = 10  # a page too large for the connection's max_response_bytes is asked again smaller, down to this
Project = Callable[[bytes | Raw], tuple[Meta, JobStatus]]


@dataclass(slots=True)
class WatchStats:
    """Counters, for tests and the benchmark: what the informer cost the apiserver."""

    lists: int = 0  # complete lists (the first one, relists after 410, resyncs)
    list_pages: int = 0
    relists_expired: int = 0  # relists forced by 410 Gone
    relists_malformed: int = 0  # relists forced by an event that could not be read
    resyncs: int = 0
    watch_requests: int = 0  # watch streams opened
    events: int = 0  # ADDED / MODIFIED / DELETED applied
    bookmarks: int = 0
    errors: int = 0  # streams or lists that failed transiently
    malformed_objects: int = 0  # objects cached as unknown because a field they are read by had a wrong type
    unattributed: int = 0  # list items skipped because not even their name could be read
    longest_page: float = 0.0  # seconds of the event loop the slowest page took to decode and apply
    longest_page_cpu: float = 0.0  # the same in CPU seconds of the loop's thread (without preemption)


class Informer:
    """Keeps :attr:`objects` (name -> :class:`CachedObject`) in step with the apiserver, in one task.

    ``project`` turns one raw object into its metadata and status (raising
    :class:`~durable_jobs.errors.MalformedAnswer` when a field it reads has a wrong type).
    """

    def __init__(
        self,
        source: WatchSource,
        project: Project,
        *,
        watch_timeout: int = 300,
        resync_interval: float = 600.0,
        idle_timeout: float = 300.0,
        stale_after: float = 60.0,
        page_size: int = 250,
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
        self._tried = asyncio.Event()  # a first list was attempted (it may have failed)
        self.forbidden: str | None = None  # list/watch refused (RBAC): the client falls back to GETs
        self.failure: PermanentError | None = None  # refused otherwise: reported to every waiter
        self.last_error = ""
        self.suspect = False  # something unreadable arrived: stale until the next complete list
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
            await cancel_and_wait(task, what=f"the watch of {self.source.describe()}")

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
        """True while the cache can be trusted: listed, nothing unreadable since, and in contact with the server."""
        if not self.synced.is_set() or self.failure is not None or self.forbidden is not None or self.suspect:
            return False
        return self._streaming or time.monotonic() - self._contact < self.stale_after

    def lookup(self, name: str) -> CachedObject | None:
        return self.objects.get(name)

    async def wait_synced(self, timeout: float) -> None:
        """Wait for the first list; raise :class:`TransientError` if it failed or did not come in ``timeout`` s.

        A first list that failed answers at once (the readers fall back), rather than after ``timeout``.
        """
        if self.synced.is_set():
            return
        if not self._tried.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._tried.wait()), timeout)
        if not self.synced.is_set():
            raise TransientError(
                f"watch of {self.source.describe()} has not listed yet"
                + (f": {self.last_error}" if self.last_error else "")
            )

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
                        continue
                    # unreadable: list again, but after a pause, so that a server sending garbage is not hammered
                    if self._healthy_stream:
                        failures = 0  # after a stream that worked: news, not a pattern
                        self._healthy_stream = False
                    self.stats.relists_malformed += 1
                    self.last_error = str(exc)
                    delay = self._backoff.delay(failures)
                    failures += 1
                    log.warning("watch of %s: %s; listing again in %.1fs", self.source.describe(), exc, delay)
                    await retry.sleep(delay)  # the retry policy's seam: tests make it instant
                except TransientError as exc:
                    self.stats.errors += 1
                    self.last_error = str(exc)
                    self._tried.set()
                    if self._healthy_stream:
                        failures = 0  # the stream worked for a while: a cut is news, not a pattern
                        self._healthy_stream = False
                    if failures:
                        delay = self._backoff.delay(failures - 1, exc.retry_after)
                    else:  # the first failure (a dropped stream, usually) at once, unless told to wait
                        delay = min(exc.retry_after or 0.0, self._backoff.max_retry_after)
                    failures += 1
                    log.warning("watch of %s failed (%s); resuming in %.1fs", self.source.describe(), exc, delay)
                    await retry.sleep(delay)
                except PermanentError as exc:
                    self.last_error = str(exc)
                    if exc.status == 403 and isinstance(exc, AuthError):
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
                    self._tried.set()
                    return
                except Exception as exc:  # a bug or an answer nobody foresaw: never the end of the watch
                    self.stats.errors += 1
                    self.suspect = True
                    self.last_error = f"{type(exc).__name__}: {cut(str(exc), 300)}"
                    self._tried.set()
                    need_list = True
                    delay = self._backoff.delay(failures)
                    failures += 1
                    log.warning(
                        "watch of %s failed unexpectedly; listing again in %.1fs",
                        self.source.describe(),
                        delay,
                        exc_info=True,
                    )
                    await retry.sleep(delay)
        finally:
            self._streaming = False
            self.stopped_at = time.monotonic()
            self._tried.set()
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
            except AnswerTooLarge:
                if self.page_size <= MIN_PAGE_SIZE:
                    raise
                # a page larger than the connection reads: ask for smaller pages, from the start
                self.page_size = max(MIN_PAGE_SIZE, self.page_size // 4)
                log.warning(
                    "a list page of %s is larger than max_response_bytes: listing %d objects per page",
                    self.source.describe(),
                    self.page_size,
                )
                listed, resource_version, continue_token = {}, "", None
                continue
            self.stats.list_pages += 1
            resource_version = resource_version or page_version
            continue_token = next_token
            if continue_token is None:
                break
        if not resource_version:
            raise MalformedStream(f"list of {self.source.describe()} carried no resourceVersion")
        # the list becomes the cache (no copy of 10,000 entries); of the objects it lacks only tombstones stay. One
        # deleted unwatched has an unknown final state: dropped, the client's GET decides (404: lost), never a guess
        for name, cached in self.objects.items():
            if cached.deleted and name not in listed:
                listed[name] = cached
        self.objects = listed
        self.resource_version = resource_version
        self.stats.lists += 1
        self._last_list = self._contact = time.monotonic()
        self.suspect = False
        self.synced.set()
        self._tried.set()

    async def _list_page(self, continue_token: str | None, listed: dict[str, CachedObject]) -> tuple[str, str | None]:
        """One page into ``listed``; returns its resourceVersion and continue token.

        The page is decoded typed and its items one by one (each raw until read): one malformed object is
        cached as unknown, and costs no other object anything.
        """
        body = await self.source.list_page(limit=self.page_size, continue_token=continue_token)
        started, started_cpu = time.perf_counter(), time.thread_time()
        what = f"list of {self.source.describe()}"
        page = decode(body, ListPage, what=what)  # MalformedAnswer (transient): listed again after a pause
        del body  # the items keep what they need of it
        now = time.monotonic()  # one float for the page, not one per object
        items = page.items or []
        page.items = []
        items.reverse()
        while items:
            record = self._record("MODIFIED", items.pop(), now)
            if record is not None:
                listed[record[0]] = record[1]
        self.stats.longest_page = max(self.stats.longest_page, time.perf_counter() - started)
        self.stats.longest_page_cpu = max(self.stats.longest_page_cpu, time.thread_time() - started_cpu)
        meta = page.metadata
        return meta.resourceVersion, meta.continue_ or None

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
            except MalformedAnswer as exc:  # an event larger than the client reads: skipped by a new list
                if isinstance(exc, RelistRequired):
                    raise
                raise self._malformed(f"an event that cannot be read ({exc})") from None
            finally:
                self._streaming = False
        if not delivered and time.monotonic() - opened < 1.0:
            # an apiserver (or proxy) that closes every watch at once: back off instead of spinning
            raise TransientError(f"watch of {self.source.describe()} ended at once without an event")
        return delivered

    def _malformed(self, why: str) -> MalformedStream:
        """The watch cannot go on from here: the cache is stale (its jobs unknown) until a new list."""
        self.suspect = True
        return MalformedStream(f"watch of {self.source.describe()} sent {why}")

    def _on_line(self, line: bytes) -> None:
        what = f"watch of {self.source.describe()}"
        try:
            event = decode(line, WatchEvent, what=f"an event of the {what}")
        except MalformedAnswer as exc:
            raise self._malformed(f"an event that cannot be read ({exc})") from None
        etype = event.type
        if etype is None:
            # a bare Status where an event was expected (a server that answered the watch with an error body)
            try:
                st = decode(line, KubeStatus, what=what)
            except MalformedAnswer:
                st = KubeStatus()
            if st.kind == "Status" and st.code == 410:
                raise ResourceExpired(f"resourceVersion {self.resource_version} expired ({st.message or ''})")
            raise self._malformed("a line that is not an event")
        if not len(event.object):
            raise self._malformed(f"a {etype[:40]!r} event without an object")
        if etype == "ERROR":
            try:
                st = decode(event.object, KubeStatus, what=f"an ERROR event of the {what}")
            except MalformedAnswer as exc:
                raise self._malformed(f"an ERROR event that cannot be read ({exc})") from None
            text = f"{st.code} {st.reason or ''}: {st.message or ''}"
            if st.code == 410:
                raise ResourceExpired(f"resourceVersion {self.resource_version} expired ({text})")
            raise TransientError(f"{what} sent an ERROR event: {text}", status=st.code)
        if etype == "BOOKMARK":
            try:
                mark = decode(event.object, Bookmark, what=f"a BOOKMARK of the {what}")
            except MalformedAnswer as exc:
                raise self._malformed(f"a BOOKMARK that cannot be read ({exc})") from None
            if mark.metadata.resourceVersion:
                self.resource_version = mark.metadata.resourceVersion
            self.stats.bookmarks += 1
            return
        if etype in ("ADDED", "MODIFIED", "DELETED"):
            record = self._record(etype, event.object, time.monotonic())
            if record is None:
                raise self._malformed(f"a {etype} event whose object names nothing")
            name, cached, version = record[0], record[1], record[2]
            self.objects[name] = cached
            self.stats.events += 1
            if version:
                self.resource_version = version
        else:
            log.debug("%s: ignoring event type %r", what, etype[:40])

    def _record(self, etype: str, raw: Raw, now: float) -> tuple[str, CachedObject, str] | None:
        """What the cache keeps of one raw object (its name, uid, normalized status) and its resourceVersion.

        None when not even its name can be read: it cannot be attributed to any job.
        """
        try:
            meta, status = self._project(raw)
        except MalformedAnswer as exc:
            try:
                name = decode(raw, Attributable, what="an object's name").metadata.name
            except MalformedAnswer:
                self.stats.unattributed += 1
                return None
            self.stats.malformed_objects += 1
            meta = Meta(name=name)  # no uid: the client reads it with a GET, which decides for itself
            status = JobStatus.unknown(f"the apiserver's answer about this object cannot be read: {exc}")
        except Exception as exc:  # a shape we do not understand must not stop the watch of everything else
            log.warning("cannot read an object of %s: %r", self.source.describe(), exc)
            return None
        if not meta.name:
            self.stats.unattributed += 1
            return None
        return (
            meta.name,
            CachedObject(uid=meta.uid, status=self._share(status), deleted=etype == "DELETED", seen_at=now),
            meta.resourceVersion,
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
