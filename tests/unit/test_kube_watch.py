"""The shared list+watch cache (informer) as a state machine, against a scripted source: no HTTP, fast.

What the apiserver does is scripted here line by line (the contract fake and the integration tests cover the
wire): list pages, event lines, bookmarks, 410 in both forms, cut streams, refusals.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from durable_jobs.clients import kubernetes_watch
from durable_jobs.clients.kubernetes import pod_status
from durable_jobs.clients.kubernetes_watch import (
    CachedObject,
    Informer,
    RelistRequired,
    ResourceExpired,
    deleted_status,
    hand_over,
)
from durable_jobs.errors import AuthError, PermanentError, TransientError
from durable_jobs.status import JobState
from durable_jobs.transport.backoff import Backoff
from tests.support.kube_fixtures import eventually

FAST = Backoff(base=0.01, cap=0.05)


def pod(name: str, rv: int, phase: str = "Running", uid: str | None = None) -> dict[str, Any]:
    meta = {"name": name, "uid": uid or f"uid-{name}", "resourceVersion": str(rv)}
    return {"metadata": meta, "status": {"phase": phase}}


def event(etype: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": etype, "object": obj}).encode() + b"\n"


def bookmark(rv: int) -> bytes:
    return event("BOOKMARK", {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": str(rv)}})


def page(rv: int, *items: dict[str, Any], cont: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    if cont:
        meta["continue"] = cont
    return {"kind": "PodList", "metadata": meta, "items": list(items)}


GONE = event(
    "ERROR", {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version: 3 (9)"}
)


class Source:
    """Scripted apiserver: ``pages`` answer lists, ``streams`` answer watches (lines, pauses in s, or an error)."""

    def __init__(self) -> None:
        self.pages: list[Any] = []
        self.streams: list[Any] = []
        self.calls: list[tuple[str, Any]] = []

    def describe(self) -> str:
        return "pods in test"

    async def list_page(self, *, limit: int, continue_token: str | None, each: Callable[[Any], None]) -> dict[str, Any]:
        self.calls.append(("list", continue_token))
        item = self.pages.pop(0)
        if isinstance(item, Exception):
            raise item
        return hand_over(dict(item), each)

    @contextlib.asynccontextmanager
    async def open_stream(self, *, resource_version: str, timeout_seconds: int) -> AsyncIterator[AsyncIterator[bytes]]:
        self.calls.append(("watch", resource_version))
        item = self.streams.pop(0) if self.streams else None
        if isinstance(item, Exception):
            raise item
        yield self._lines(item)

    @staticmethod
    async def _lines(items: list[Any] | None) -> AsyncIterator[bytes]:
        if items is None:  # nothing scripted: a quiet, open watch
            await asyncio.Event().wait()
        for line in items or ():
            if isinstance(line, Exception):
                raise line
            if isinstance(line, float):  # a quiet moment in the stream
                await asyncio.sleep(line)
                continue
            yield line

    def watched_from(self) -> list[Any]:
        return [rv for kind, rv in self.calls if kind == "watch"]

    def lists(self) -> int:
        return sum(1 for kind, token in self.calls if kind == "list" and token is None)


@pytest.fixture
async def run():
    started: list[Informer] = []

    def start(source: Source, **kwargs: Any) -> Informer:
        kwargs.setdefault("backoff", FAST)
        inf = Informer(source, pod_status, **kwargs)
        inf.start()
        started.append(inf)
        return inf

    yield start
    for inf in started:
        await inf.stop()


def states(inf: Informer) -> dict[str, str]:
    return {name: c.status.raw_state for name, c in inf.objects.items()}


async def test_lists_then_watches_from_the_list_and_resumes_from_the_last_event_or_bookmark(run) -> None:
    src = Source()
    src.pages = [page(5, pod("a", 4, "Pending"))]
    src.streams = [
        [event("MODIFIED", pod("a", 6, "Running")), event("ADDED", pod("b", 7, "Pending")), bookmark(9)],  # then EOF
        [event("MODIFIED", pod("b", 10, "Succeeded"))],
    ]
    inf = run(src)
    await eventually(lambda: len(src.watched_from()) == 3, timeout=5, what="third watch")
    assert src.watched_from() == ["5", "9", "10"]  # list RV, then the bookmark's, then the last event's
    assert src.lists() == 1  # a stream that ends is resumed, never relisted
    assert states(inf) == {"a": "Running", "b": "Succeeded"}
    assert inf.stats.events == 3 and inf.stats.bookmarks == 1 and inf.stats.watch_requests == 3
    assert inf.synced.is_set() and inf.fresh


async def test_410_in_the_stream_relists_instead_of_retrying_the_stale_version(run) -> None:
    src = Source()
    src.pages = [page(3, pod("a", 2), pod("b", 3)), page(20, pod("a", 19, "Succeeded"), pod("c", 18))]
    src.streams = [[GONE]]
    inf = run(src)
    await eventually(lambda: src.lists() == 2 and len(src.watched_from()) == 2, timeout=5, what="relist")
    assert src.watched_from() == ["3", "20"]  # never "3" twice
    assert inf.stats.relists_expired == 1
    # the relist is diffed: "b" vanished while unwatched (outcome unknown: dropped, the client will GET it)
    assert states(inf) == {"a": "Succeeded", "c": "Running"}


async def test_410_as_the_http_status_relists_too(run) -> None:
    src = Source()
    src.pages = [page(3, pod("a", 3)), page(30, pod("a", 29, "Failed"))]
    src.streams = [ResourceExpired("watch: HTTP 410 Expired", status=410)]
    inf = run(src)
    await eventually(lambda: states(inf).get("a") == "Failed", timeout=5, what="relisted state")
    assert src.watched_from() == ["3", "30"] and inf.stats.relists_expired == 1


async def test_a_cut_stream_resumes_from_the_last_event_without_loss_or_duplicates(run) -> None:
    src = Source()
    src.pages = [page(1)]
    cut = TransientError("watch: the stream was cut (ClientPayloadError)")
    src.streams = [
        [event("ADDED", pod("a", 2, "Pending")), event("MODIFIED", pod("a", 3, "Running")), cut],
        [event("MODIFIED", pod("a", 4, "Succeeded"))],
    ]
    inf = run(src)
    await eventually(lambda: len(src.watched_from()) == 3, timeout=5, what="resumed watch")
    assert src.watched_from() == ["1", "3", "4"] and src.lists() == 1
    assert inf.stats.events == 3 and inf.stats.errors == 1  # each event applied exactly once
    assert states(inf) == {"a": "Succeeded"}


async def test_an_oversized_event_forces_a_relist(run) -> None:
    src = Source()
    src.pages = [page(1, pod("a", 1)), page(8, pod("a", 7, "Succeeded"))]
    src.streams = [[RelistRequired("watch: an event was larger than the client reads (Line is too long)")]]
    inf = run(src)
    await eventually(lambda: states(inf).get("a") == "Succeeded", timeout=5, what="relist after oversized line")
    assert src.lists() == 2 and inf.stats.relists_expired == 0


async def test_deleted_objects_keep_their_last_status(run) -> None:
    src = Source()
    src.pages = [page(1, pod("done", 1, "Succeeded"), pod("busy", 1, "Running"))]
    src.streams = [[event("DELETED", pod("done", 2, "Succeeded")), event("DELETED", pod("busy", 3, "Running"))]]
    inf = run(src)
    await eventually(lambda: inf.stats.events == 2, timeout=5, what="deletions")
    done, busy = inf.lookup("done"), inf.lookup("busy")
    assert done is not None and done.deleted and done.status.state is JobState.SUCCEEDED
    assert busy is not None and busy.deleted and busy.status.state is JobState.RUNNING  # the client confirms
    assert deleted_status(done.status).state is JobState.SUCCEEDED  # garbage-collected after success
    gone = deleted_status(busy.status)
    assert gone.state is JobState.CANCELLED and "deleted before it finished" in gone.message


async def test_forbidden_list_is_remembered_and_other_refusals_are_failures(run) -> None:
    src = Source()
    src.pages = [AuthError("list pods: HTTP 403 Forbidden", status=403)]
    inf = run(src)
    await inf.wait_synced(5)
    await eventually(lambda: not inf.running, timeout=5, what="stop")
    assert inf.forbidden and inf.failure is None and not inf.fresh

    src2 = Source()
    src2.pages = [PermanentError("list: HTTP 404 NotFound (is its CRD installed?)", status=404)]
    inf2 = run(src2)
    await inf2.wait_synced(5)
    await eventually(lambda: not inf2.running, timeout=5, what="stop")
    assert inf2.failure is not None and inf2.forbidden is None


async def test_errors_in_the_stream_back_off_and_resume(run) -> None:
    src = Source()
    src.pages = [page(1, pod("a", 1))]
    boom = event("ERROR", {"kind": "Status", "code": 500, "reason": "InternalError", "message": "etcd timeout"})
    src.streams = [[boom], TransientError("watch: HTTP 503", status=503), [b"not json\n"], []]
    inf = run(src)
    await eventually(lambda: len(src.watched_from()) >= 5, timeout=5, what="four failures, then a quiet watch")
    assert src.watched_from()[:5] == ["1"] * 5 and src.lists() == 1
    assert inf.stats.errors == 4  # the 500 event, the 503, the garbage line, the stream that ended at once


async def test_a_transient_list_failure_is_retried_and_times_out_readers(run) -> None:
    src = Source()
    down = TransientError("list: cannot connect", connect_failed=True)
    src.pages = [down, down, page(4, pod("a", 4))]  # retried at once, then after the backoff
    inf = run(src, backoff=Backoff(base=0.3, cap=0.3))
    with pytest.raises(TransientError, match="has not listed yet: list: cannot connect"):
        await inf.wait_synced(0.1)
    await inf.wait_synced(5)
    assert states(inf) == {"a": "Running"}


async def test_paginated_list_and_an_expired_continue_token(run) -> None:
    src = Source()
    src.pages = [
        page(5, pod("a", 5), cont="c1"),
        ResourceExpired("continue too old", status=410),
        page(9, pod("a", 9), cont="c2"),
        page(9, pod("b", 8)),
    ]
    inf = run(src)
    await inf.wait_synced(5)
    assert [c for c in src.calls if c[0] == "list"] == [("list", None), ("list", "c1"), ("list", None), ("list", "c2")]
    assert states(inf) == {"a": "Running", "b": "Running"} and inf.resource_version == "9"


async def test_periodic_resync_lists_again(run) -> None:
    src = Source()
    src.pages = [page(1, pod("a", 1)), page(2, pod("a", 2, "Succeeded")), page(3, pod("a", 2, "Succeeded"))]
    src.streams = [[bookmark(1), 0.1], [bookmark(2), 0.1], [bookmark(3)]]
    inf = run(src, resync_interval=0.05)
    await eventually(lambda: states(inf).get("a") == "Succeeded", timeout=5, what="resynced state")
    assert inf.stats.resyncs >= 1 and inf.stats.relists_expired == 0


async def test_an_unread_cache_stops_watching(run) -> None:
    stopped: list[Informer] = []
    src = Source()
    src.pages = [page(1)]
    src.streams = [[bookmark(2), 0.05], [bookmark(3)]]  # then a quiet stream: only a timer notices
    inf = run(src, idle_timeout=0.3, on_stop=stopped.append)
    await eventually(lambda: inf.stats.bookmarks == 2, timeout=5, what="bookmarks")
    assert inf.running
    await eventually(lambda: stopped == [inf], timeout=5, what="idle stop")
    assert not inf.running and inf.stopped_at is not None


async def test_freshness_follows_contact(run) -> None:
    src = Source()
    src.pages = [page(1, pod("a", 1))]
    src.streams = [TransientError("watch: cannot connect", connect_failed=True)] * 100
    inf = run(src, stale_after=0.2, backoff=Backoff(base=0.05, cap=0.05))
    await inf.wait_synced(5)
    assert inf.fresh  # listed just now
    await eventually(lambda: not inf.fresh, timeout=5, what="stale cache")
    assert "cannot connect" in inf.last_error


async def test_a_relist_drops_unlisted_objects_but_keeps_tombstones(run) -> None:
    src = Source()
    src.pages = [
        page(3, pod("kept", 1), pod("vanished", 2), pod("done", 3, "Succeeded")),
        page(9, pod("kept", 8, "Succeeded"), pod("new", 9)),
    ]
    src.streams = [[event("DELETED", pod("done", 4, "Succeeded")), GONE]]
    inf = run(src)
    await eventually(lambda: src.lists() == 2 and inf.resource_version == "9", timeout=5, what="relist")
    # deleted while not watched: dropped (the client confirms with a GET); a tombstone keeps its last status
    assert states(inf) == {"kept": "Succeeded", "new": "Running", "done": "Succeeded"}
    done = inf.lookup("done")
    assert done is not None and done.deleted


# --- memory: what the cache holds of each object --------------------------------------------------------------


class Weak(dict):  # type: ignore[type-arg]
    """A dict that can be weakly referenced: an object as the apiserver sent it."""


async def test_a_list_holds_no_page_of_whole_objects(run) -> None:
    """Each object is reduced to its record when read: a page of 500 pods is megabytes of dicts."""
    src = Source()
    handed: list[weakref.ref[Weak]] = []
    alive_when_asked: list[int] = []
    scripted = src.list_page

    async def list_page(*, limit: int, continue_token: str | None, each: Callable[[Any], None]) -> dict[str, Any]:
        gc.collect()
        alive_when_asked.append(sum(1 for ref in handed if ref() is not None))

        def hand(obj: Weak) -> None:
            handed.append(weakref.ref(obj))
            each(obj)

        return await scripted(limit=limit, continue_token=continue_token, each=hand)

    src.list_page = list_page  # type: ignore[method-assign]
    src.pages = [page(5, Weak(pod("a", 4)), Weak(pod("b", 5)), cont="c1"), page(5, Weak(pod("c", 3, "Succeeded")))]
    inf = run(src)
    await inf.wait_synced(5)
    gc.collect()
    assert alive_when_asked == [0, 0]  # page 1's objects were gone before page 2 was asked for
    assert len(handed) == 3 and all(ref() is None for ref in handed)  # and none is kept by the cache
    assert states(inf) == {"a": "Running", "b": "Running", "c": "Succeeded"}
    assert inf.lookup("a") == CachedObject(uid="uid-a", status=pod_status(pod("a", 4)), seen_at=inf.lookup("a").seen_at)


async def test_equal_statuses_are_one_object_in_a_bounded_table(run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kubernetes_watch, "SHARED_STATUSES", 3)
    src = Source()
    running = [pod(f"r{i}", 1) for i in range(4)]
    failed = [pod(f"f{i}", 1, "Failed") for i in range(2)]  # extra={"reason": ...}: never shared
    src.pages = [page(1, *running, *failed, pod("s", 1, "Succeeded"))]
    # pods whose node stopped reporting, each with its own message: five distinct statuses
    lost = [
        {"metadata": {"name": f"u{i}", "uid": f"uid-u{i}"}, "status": {"phase": "Unknown", "message": f"node {i}"}}
        for i in range(5)
    ]
    src.streams = [[event("ADDED", obj) for obj in lost]]
    inf = run(src)
    await inf.wait_synced(5)
    cached = {name: inf.lookup(name) for name in ("r0", "r1", "r2", "r3", "f0", "f1", "s")}
    assert len({id(c.status) for c in cached.values() if c is not None and c.status.state is JobState.RUNNING}) == 1
    f0, f1 = cached["f0"], cached["f1"]
    assert f0 is not None and f1 is not None
    assert f0.status == f1.status and f0.status is not f1.status and f0.status.extra == {"reason": ""}
    await eventually(lambda: inf.stats.events == 5, timeout=5, what="events")
    # past its bound the table is cleared, not grown
    assert len(inf._statuses) <= 3
    assert {inf.lookup(f"u{i}").status.message for i in range(5)} == {f"node {i}" for i in range(5)}  # type: ignore[union-attr]


def test_a_page_hands_over_its_items_in_order_and_lets_each_go_once_read() -> None:
    objs = [Weak(pod(f"p{i}", i)) for i in range(4)]
    refs = [weakref.ref(o) for o in objs]
    page_ = {"kind": "PodList", "metadata": {"resourceVersion": "4"}, "items": objs}
    del objs
    seen: list[str] = []
    alive: list[int] = []

    def each(obj: Weak) -> None:
        seen.append(obj["metadata"]["name"])
        alive.append(sum(1 for r in refs if r() is not None))

    rest = hand_over(page_, each)
    assert seen == ["p0", "p1", "p2", "p3"]
    assert alive == [4, 3, 2, 1]  # the ones already read are gone while the rest are read
    assert rest == {"kind": "PodList", "metadata": {"resourceVersion": "4"}}
    assert hand_over({"metadata": {}}, each) == {"metadata": {}} and len(seen) == 4  # a page without items
