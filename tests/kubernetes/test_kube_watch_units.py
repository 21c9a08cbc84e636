"""The shared list+watch cache (informer) as a state machine, against a scripted source: no HTTP, fast.

What the apiserver does is scripted here line by line (the contract fake and the integration tests cover the
wire): list pages, event lines, bookmarks, 410 in both forms, cut streams, refusals, and answers that cannot be
read (one malformed object is that object's problem; an unreadable event forces a relist, stale meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from durable_jobs.clients.kubernetes import watch as watch_module
from durable_jobs.clients.kubernetes.errors import RelistRequired, ResourceExpired
from durable_jobs.clients.kubernetes.status import CachedObject, deleted_status, pod_status, projector
from durable_jobs.clients.kubernetes.watch import Informer
from durable_jobs.errors import AuthError, PermanentError, TransientError
from durable_jobs.status import JobState
from durable_jobs.transport.backoff import Backoff
from durable_jobs_harness.kube_fixtures import eventually

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

    async def list_page(self, *, limit: int, continue_token: str | None) -> bytes:
        self.calls.append(("list", continue_token))
        item = self.pages.pop(0)
        if isinstance(item, Exception):
            raise item
        return item if isinstance(item, bytes) else json.dumps(item).encode()

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
        inf = Informer(source, projector("Pod"), **kwargs)
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
    src.pages = [page(1, pod("a", 1)), page(2, pod("a", 2))]
    boom = event("ERROR", {"kind": "Status", "code": 500, "reason": "InternalError", "message": "etcd timeout"})
    src.streams = [[boom], TransientError("watch: HTTP 503", status=503), [b"not json\n"], []]
    inf = run(src)
    await eventually(lambda: len(src.watched_from()) >= 5, timeout=5, what="four failures, then a quiet watch")
    # the 500 event and the 503 resume from where they were; the garbage line cannot be resumed from: a relist
    assert src.watched_from()[:5] == ["1", "1", "1", "2", "2"] and src.lists() == 2
    assert inf.stats.errors == 3  # the 500 event, the 503, the stream that ended at once
    assert inf.stats.relists_malformed == 1


async def test_a_transient_list_failure_is_retried_and_times_out_readers(run) -> None:
    src = Source()
    down = TransientError("list: cannot connect", connect_failed=True)
    src.pages = [down, down, page(4, pod("a", 4))]  # retried at once, then after the backoff
    inf = run(src, backoff=Backoff(base=0.3, cap=0.3))
    with pytest.raises(TransientError, match="has not listed yet: list: cannot connect"):
        await inf.wait_synced(5)  # a list that failed answers at once: the readers fall back meanwhile
    await eventually(inf.synced.is_set, timeout=5, what="listed")
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


async def test_the_cache_keeps_a_record_per_object_never_the_object(run) -> None:
    src = Source()
    src.pages = [page(5, pod("a", 4), pod("b", 5), cont="c1"), page(5, pod("c", 3, "Succeeded"))]
    inf = run(src)
    await inf.wait_synced(5)
    assert states(inf) == {"a": "Running", "b": "Running", "c": "Succeeded"}
    a = inf.lookup("a")
    assert a == CachedObject(uid="uid-a", status=pod_status(pod("a", 4)), seen_at=a.seen_at)  # type: ignore[union-attr]
    assert inf.stats.list_pages == 2 and inf.stats.longest_page < 0.05


async def test_equal_statuses_are_one_object_in_a_bounded_table(run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch_module, "SHARED_STATUSES", 3)
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


# --- answers that cannot be read ---------------------------------------------------------------------------


async def test_a_malformed_object_is_unknown_and_touches_no_other(run) -> None:
    src = Source()
    bad_phase = {"metadata": {"name": "bad", "uid": "uid-bad", "resourceVersion": "3"}, "status": {"phase": 7}}
    nameless = {"metadata": {"name": 5}, "status": {"phase": "Failed"}}
    src.pages = [page(4, pod("good", 2), bad_phase, nameless)]
    src.streams = [
        [event("MODIFIED", {**bad_phase, "status": {"phase": ["Succeeded"]}}), event("ADDED", pod("new", 6))]
    ]
    inf = run(src)
    await eventually(lambda: inf.stats.events == 2, timeout=5, what="events")
    bad = inf.lookup("bad")
    assert bad is not None and bad.status.state is JobState.UNKNOWN and "cannot be read" in bad.status.message
    assert states(inf) == {"good": "Running", "bad": "", "new": "Running"}
    assert inf.stats.malformed_objects == 2 and inf.stats.unattributed == 1
    assert inf.fresh and src.lists() == 1  # an attributable bad object is that object's problem only


@pytest.mark.parametrize(
    "line",
    [
        b"{not json",
        b"[1, 2]",
        b'{"type": 5, "object": {}}',
        b'{"type": "MODIFIED", "object": "a string"}',
        b'{"type": "MODIFIED", "object": {"metadata": {"name": ["x"]}}}',
        b'{"type": "MODIFIED"}',
        b'{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": 12}}}',
        b'{"type": "ERROR", "object": {"code": "410"}}',
        b'{"type": "MODIFIED", "object": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
    ids=[
        "truncated",
        "array",
        "type-int",
        "object-str",
        "name-list",
        "no-object",
        "bookmark-int",
        "error-str",
        "nested",
    ],
)
async def test_an_unreadable_event_relists_and_the_cache_is_stale_meanwhile(run, line: bytes) -> None:
    src = Source()
    src.pages = [page(1, pod("a", 1)), page(5, pod("a", 4, "Succeeded"))]
    gate = asyncio.Event()

    async def slow_second_list(*, limit: int, continue_token: str | None) -> bytes:
        if src.lists() == 1:
            await gate.wait()  # hold the relist: the cache must not be trusted meanwhile
        return await Source.list_page(src, limit=limit, continue_token=continue_token)

    src.list_page = slow_second_list  # type: ignore[method-assign]
    src.streams = [[line + b"\n"]]
    inf = run(src)
    await eventually(lambda: inf.stats.relists_malformed == 1, timeout=5, what="a relist")
    assert not inf.fresh and inf.suspect and inf.running  # never the end of the informer
    gate.set()
    await eventually(lambda: states(inf).get("a") == "Succeeded", timeout=5, what="relisted")
    assert inf.fresh and not inf.suspect


async def test_an_unreadable_list_page_is_listed_again_after_a_pause(run) -> None:
    src = Source()
    src.pages = [b'{"metadata": {"resourceVersion": 3}, "items": []}', b"<html>502</html>", page(4, pod("a", 4))]
    inf = run(src)
    await eventually(lambda: inf.synced.is_set(), timeout=5, what="a list that can be read")
    assert states(inf) == {"a": "Running"} and inf.stats.errors == 2 and src.lists() == 3


async def test_a_page_larger_than_the_limit_is_asked_again_smaller(run) -> None:
    from durable_jobs.errors import AnswerTooLarge

    src = Source()
    src.pages = [AnswerTooLarge("list: the answer is larger than 1048576 bytes"), page(4, pod("a", 4))]
    inf = run(src, page_size=500)
    await eventually(inf.synced.is_set, timeout=5, what="listed")
    assert inf.page_size == 125 and states(inf) == {"a": "Running"}


async def test_an_unforeseen_exception_never_ends_the_informer(run) -> None:
    src = Source()
    src.pages = [ZeroDivisionError("a bug"), page(2, pod("a", 2))]
    inf = run(src)
    await eventually(inf.synced.is_set, timeout=5, what="listed")
    assert states(inf) == {"a": "Running"} and inf.running
