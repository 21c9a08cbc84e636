"""Watched, not polled: the shared list+watch cache through the real wire (TLS, chunked NDJSON) against the fake.

What the issue asks to see: one watch per namespace and kind however many jobs wait (1,000 here), no request per
job per poll, bookmarks, relist on 410 in both of its forms, dropped streams resumed without loss or duplicates,
the periodic resync, and the fallback to GETs when list/watch is forbidden.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from durable_jobs.clients.base import Locator, locator_key
from durable_jobs.clients.kubernetes import KubeObject, KubernetesClient
from durable_jobs.polling import PollSettings, poller_for, wait_for_outcome
from durable_jobs.status import JobState
from durable_jobs_harness.fake_kube import TlsMaterial
from durable_jobs_harness.kube_fixtures import KubeTarget, eventually, fake_target

pytestmark = pytest.mark.usefixtures("kube_loop_cleanup")
MANUAL = {"fake.durable-jobs.io/controller": "manual"}


def new_token() -> str:
    return "dj" + secrets.token_hex(10)


def job(kube: KubeTarget, script: str, *, name: str = "job", manual: bool = False) -> KubeObject:
    container = {"name": "main", "image": kube.image, "command": ["sh", "-c", script]}
    meta = {"annotations": MANUAL} if manual else {}
    return KubeObject(
        "Job",
        {"metadata": meta, "spec": {"backoffLimit": 0, "template": {"spec": {"containers": [container]}}}},
        name=name,
        labels=kube.labels,
    )


def pod(kube: KubeTarget, script: str, *, name: str = "pod", manual: bool = False) -> KubeObject:
    meta = {"annotations": MANUAL} if manual else {}
    container = {"name": "main", "image": kube.image, "command": ["sh", "-c", script]}
    return KubeObject("Pod", {"metadata": meta, "spec": {"containers": [container]}}, name=name, labels=kube.labels)


def complete(job_obj: dict[str, Any]) -> None:
    """What the Job controller writes when a Job succeeds."""
    cond = {"status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods"}
    job_obj["status"] = {
        "succeeded": 1,
        "conditions": [{**cond, "type": "SuccessCriteriaMet"}, {**cond, "type": "Complete"}],
    }


def watch_versions(requests: list[tuple[str, str]], plural: str) -> list[str]:
    """The resourceVersion of each watch request the fake received for ``plural``."""
    out = []
    for method, path_qs in requests:
        parts = urlsplit(path_qs)
        query = parse_qs(parts.query, keep_blank_values=True)
        if method == "GET" and parts.path.endswith(f"/{plural}") and query.get("watch") == ["true"]:
            out.append(query.get("resourceVersion", [""])[0])
    return out


async def state_of(client: KubernetesClient, loc: Locator) -> JobState:
    return (await client.statuses([loc]))[locator_key(loc)].state


# --- no request per job ----------------------------------------------------------------------------------------


async def test_polls_are_answered_from_the_watch_without_a_request_per_job(kube: KubeTarget) -> None:
    client = kube.client()
    locs = await asyncio.gather(
        *(client.submit(job(kube, "sleep 600", name=f"idle{i}"), new_token()) for i in range(20))
    )
    conn = await client.connection()
    first = await client.statuses(locs)
    assert len(first) == 20
    before = dict(conn.requests)
    for _ in range(10):  # ten poll ticks
        statuses = await client.statuses(locs)
        assert all(s.state in (JobState.PENDING, JobState.RUNNING) for s in statuses.values())
    assert dict(conn.requests) == before  # not one request for 10 ticks x 20 jobs
    assert conn.requests["LIST jobs"] == 1 and conn.requests["WATCH jobs"] == 1
    for loc in locs:
        await client.cancel(loc)


async def test_one_watch_per_namespace_and_kind(kube_fake: KubeTarget) -> None:
    client = kube_fake.client()
    specs = [
        KubeObject("Job", job(kube_fake, "sleep 600").manifest, namespace=ns, name="j") for ns in ("team-a", "team-b")
    ] * 3 + [KubeObject("Pod", pod(kube_fake, "sleep 600").manifest, namespace="team-a", name="p")] * 3
    locs = [await client.submit(spec, new_token()) for spec in specs]
    for _ in range(3):
        await client.statuses(locs)
    fake = kube_fake.fake
    assert fake is not None
    expected = {"jobs/team-a": 1, "jobs/team-b": 1, "pods/team-a": 1}
    await eventually(lambda: fake.watches_opened == expected, timeout=10, what="three watches")
    for _ in range(3):
        await client.statuses(locs)
    assert fake.watches_opened == expected
    assert fake.counts["GET jobs"] == fake.counts["GET pods"] == 0


async def test_1000_waiting_jobs_share_one_watch(kube_fake: KubeTarget) -> None:
    """The issue's "done when": 1,000 watched jobs in one process open one watch per namespace and selector."""
    fake = kube_fake.fake
    assert fake is not None
    client = kube_fake.client()
    tokens = [new_token() for _ in range(1000)]
    bodies = [job(kube_fake, "sleep 600", name="scale", manual=True).render(t, kube_fake.namespace) for t in tokens]
    created = fake.create_many("jobs", kube_fake.namespace, bodies)
    locs = [
        client.validate_locator({"kind": "Job", **{k: o["metadata"][k] for k in ("namespace", "name", "uid")}})
        for o in created
    ]
    settings = PollSettings(interval=0.2)
    waits = [asyncio.ensure_future(wait_for_outcome(client, loc, settings, deadline=time.time() + 120)) for loc in locs]
    poller = poller_for(client, settings.interval)
    await eventually(lambda: poller.polls >= 5, timeout=60, what="five poll ticks")
    conn = await client.connection()
    counts = dict(conn.requests)
    polls = poller.polls
    await eventually(lambda: poller.polls >= polls + 5, timeout=60, what="five more ticks")
    assert dict(conn.requests) == counts  # five ticks over 1,000 jobs: no request at all
    assert counts == {"LIST jobs": 4, "WATCH jobs": 1}  # one list (four pages of 250) and one watch
    inf = conn.informers[("Job", kube_fake.namespace)]
    assert (inf.stats.lists, inf.stats.list_pages, len(inf.objects)) == (1, 4, 1000)
    assert fake.watches_opened == {f"jobs/{kube_fake.namespace}": 1} and fake.open_watches() == 1
    assert not any(w.done() for w in waits)
    names = [o["metadata"]["name"] for o in created]
    server = fake.server
    # all finish: the events fan out to every waiter through the one watch
    fake.call(lambda: [server.update("jobs", kube_fake.namespace, n, complete) for n in names])
    results = await asyncio.wait_for(asyncio.gather(*waits), 60)
    assert {r.status for r in results} == {"succeeded"}
    assert dict(conn.requests) == counts
    assert len(poller) == 0


# --- the watch protocol ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gone_mode", ["stream", "http"])
async def test_410_relists_in_both_forms_and_misses_nothing(
    kube_tls: TlsMaterial, tmp_path: Path, gone_mode: str
) -> None:
    with fake_target(kube_tls, tmp_path, gone_mode=gone_mode) as kube:
        fake = kube.fake
        assert fake is not None
        client = kube.client()
        a = await client.submit(pod(kube, "sleep 600", name="a", manual=True), new_token())
        b = await client.submit(pod(kube, "sleep 600", name="b", manual=True), new_token())
        assert await state_of(client, a) is JobState.PENDING
        conn = await client.connection()
        inf = conn.informers[("Pod", kube.namespace)]
        await eventually(lambda: inf.stats.watch_requests == 1 and inf._streaming, timeout=10, what="streaming")
        server = fake.server

        def outage() -> None:  # in one step on the fake's loop: the stream is cut, then etcd compacts
            server.drop_watches()
            server.set_phase(kube.namespace, a["name"], "Succeeded")
            server.compact()
            server.set_phase(kube.namespace, b["name"], "Running")

        fake.call(outage)
        await eventually(lambda: inf.stats.lists == 2, timeout=10, what="relist after 410")
        assert inf.stats.relists_expired == 1
        assert await state_of(client, a) is JobState.SUCCEEDED
        assert await state_of(client, b) is JobState.RUNNING
        await eventually(lambda: len(watch_versions(fake.requests, "pods")) >= 3, timeout=10, what="third watch")
        first, stale, fresh = watch_versions(fake.requests, "pods")[:3]
        assert stale == first and int(fresh) > int(stale)  # resumed once, got 410, relisted, watched anew
        assert watch_versions(fake.requests, "pods").count(stale) == 2  # never the stale version again
        assert conn.requests["LIST pods"] == 2
        fake.set_phase(kube.namespace, b["name"], "Failed")  # and the new watch keeps working
        await eventually(lambda: inf.lookup(b["name"]).status.state is JobState.FAILED, timeout=10, what="b failed")


async def test_a_dropped_stream_resumes_from_the_last_version_without_loss_or_duplicates(kube_fake: KubeTarget) -> None:
    fake = kube_fake.fake
    assert fake is not None
    client = kube_fake.client()
    loc = await client.submit(pod(kube_fake, "sleep 600", name="resume", manual=True), new_token())
    assert await state_of(client, loc) is JobState.PENDING
    conn = await client.connection()
    inf = conn.informers[("Pod", kube_fake.namespace)]
    seen: list[str] = []
    for phase in ("Running", "Succeeded"):
        await eventually(lambda: inf._streaming, timeout=10, what="an open stream")
        fake.set_phase(kube_fake.namespace, loc["name"], phase)
        await eventually(lambda p=phase: inf.lookup(loc["name"]).status.raw_state == p, timeout=10, what=phase)
        seen.append(inf.resource_version)
        fake.drop_watches()
    await eventually(lambda: len(watch_versions(fake.requests, "pods")) >= 3, timeout=10, what="third watch")
    versions = watch_versions(fake.requests, "pods")
    assert versions[1:3] == seen  # each reconnect starts exactly after the last event applied
    assert inf.stats.lists == 1 and inf.stats.relists_expired == 0
    assert inf.stats.events == 2  # Running, Succeeded: each once, none replayed
    assert await state_of(client, loc) is JobState.SUCCEEDED


async def test_bookmarks_move_the_resume_point_past_unrelated_changes(kube_tls: TlsMaterial, tmp_path: Path) -> None:
    with fake_target(kube_tls, tmp_path, bookmark_interval=0.05) as kube:
        fake = kube.fake
        assert fake is not None
        client = kube.client()
        loc = await client.submit(pod(kube, "sleep 600", name="mine", manual=True), new_token())
        await client.statuses([loc])
        inf = (await client.connection()).informers[("Pod", kube.namespace)]
        other = KubeObject("Pod", pod(kube, "sleep 600", manual=True).manifest, namespace="elsewhere", name="other")
        for _ in range(5):  # changes this watch does not select still advance the global resourceVersion
            await client.submit(other, new_token())
        latest = str(fake.rv)
        await eventually(lambda: inf.resource_version == latest, timeout=10, what="a bookmark at the latest version")
        assert inf.stats.bookmarks >= 1
        fake.drop_watches()
        await eventually(lambda: len(watch_versions(fake.requests, "pods")) >= 2, timeout=10, what="reconnect")
        assert watch_versions(fake.requests, "pods")[1] == latest


async def test_allow_watch_bookmarks_accepts_go_booleans(kube_tls: TlsMaterial, tmp_path: Path) -> None:
    """kubernetes_asyncio's typed API sends ``True``; a fake that only understood ``true`` would hide bookmarks."""
    with fake_target(kube_tls, tmp_path, bookmark_interval=0.02) as kube:
        conn = await kube.client().connection()
        path = f"/api/v1/namespaces/{kube.namespace}/pods"
        for spelling in ("True", "true", "1"):
            query = [("watch", spelling), ("allowWatchBookmarks", spelling), ("timeoutSeconds", "5")]
            resp = await conn.open("GET", path, query=query, what="watch")
            line = await asyncio.wait_for(anext(resp.lines(1 << 20)), 5)
            await resp.aclose()
            assert json.loads(line)["type"] == "BOOKMARK", spelling
        resp = await conn.send("GET", path, query=[("watch", "yes")], what="watch")
        assert resp.status == 400 and json.loads(resp.body)["reason"] == "BadRequest"


async def test_periodic_resync(kube_fake: KubeTarget) -> None:
    client = kube_fake.client(resync_interval=0.2, watch_timeout=1)
    loc = await client.submit(pod(kube_fake, "sleep 600", name="resync", manual=True), new_token())
    await client.statuses([loc])
    inf = (await client.connection()).informers[("Pod", kube_fake.namespace)]
    await eventually(lambda: inf.stats.resyncs >= 1, timeout=15, what="a resync")
    assert inf.stats.relists_expired == 0


async def test_an_object_too_large_for_the_client_is_unknown_and_touches_no_other_job(kube_fake: KubeTarget) -> None:
    fake = kube_fake.fake
    assert fake is not None
    client = kube_fake.client(max_response_bytes=1024 * 1024)
    huge = await client.submit(pod(kube_fake, "sleep 600", name="huge", manual=True), new_token())
    small = await client.submit(pod(kube_fake, "sleep 600", name="small", manual=True), new_token())
    await client.statuses([huge, small])
    inf = (await client.connection()).informers[("Pod", kube_fake.namespace)]
    await eventually(lambda: inf._streaming, timeout=10, what="an open stream")
    lists_before = inf.stats.lists

    def bloat(p: dict[str, Any]) -> None:  # 2 MiB: past the connection's max_response_bytes (1 MiB)
        p["metadata"].setdefault("annotations", {})["blob"] = "x" * (2 * 1024 * 1024)
        p["status"]["phase"] = "Running"

    fake.update("pods", huge["namespace"], huge["name"], bloat)
    # the oversized event cannot be read: the watch lists again (and its list cannot hold the object either)
    await eventually(
        lambda: "more than this connection reads" in (inf.last_error or ""), timeout=20, what="a refused relist"
    )
    assert inf.stats.lists == lists_before  # the cache was never rebuilt from a partial listing
    states = await client.statuses([huge, small])
    assert states[locator_key(small)].state.is_active  # the other job is untouched
    # its last readable state (the cache is kept until it goes stale), or unknown: never failed, never lost
    assert not states[locator_key(huge)].state.is_terminal


# --- deletions, label changes, RBAC ---------------------------------------------------------------------------------


async def test_deleted_objects_cancelled_if_unfinished_and_finished_if_collected_after(kube: KubeTarget) -> None:
    client = kube.client()
    done = await client.submit(job(kube, "echo ok", name="done"), new_token())
    busy = await client.submit(job(kube, "sleep 600", name="busy"), new_token())
    settings = PollSettings(interval=0.1 if kube.fake else 1.0)
    finished = await wait_for_outcome(client, done, settings, deadline=time.time() + kube.wait_limit)
    assert finished.status == "succeeded"
    await eventually(lambda: _running(client, busy), timeout=kube.wait_limit, what="busy running")
    await client.cancel(done)  # garbage collection after success: still a success
    await client.cancel(busy)  # deleted while running: cancelled
    result = await wait_for_outcome(client, busy, settings, deadline=time.time() + kube.wait_limit)
    assert result.status == "cancelled" and "deleted before it finished" in result.message
    assert await state_of(client, done) is JobState.SUCCEEDED


async def _running(client: KubernetesClient, loc: Locator) -> bool:
    return await state_of(client, loc) is JobState.RUNNING


async def test_an_object_leaving_the_selection_is_not_taken_for_deleted(kube: KubeTarget) -> None:
    client = kube.client()
    loc = await client.submit(pod(kube, "sleep 600", name="relabel"), new_token())
    await eventually(lambda: _running(client, loc), timeout=kube.wait_limit, what="running")
    conn = await client.connection()
    path = f"/api/v1/namespaces/{loc['namespace']}/pods/{loc['name']}"
    resp = await conn.send("PATCH", path, body={"metadata": {"labels": {"durable-jobs.io/managed": None}}}, what="x")
    # a dict body sent as application/json: not a patch type; the apiserver refuses it
    assert resp.status == 415
    await _merge_patch(conn, path, {"metadata": {"labels": {"durable-jobs.io/managed": None}}})
    inf = conn.informers[("Pod", loc["namespace"])]
    await eventually(lambda: inf.lookup(loc["name"]).deleted, timeout=kube.wait_limit, what="DELETED from the watch")
    assert await state_of(client, loc) is JobState.RUNNING  # confirmed by a GET: it still exists
    await client.cancel(loc)


async def _merge_patch(conn: Any, path: str, patch: dict[str, Any]) -> None:
    resp = await conn.call("PATCH", path, body=patch, content_type="application/merge-patch+json", what="patch")
    assert resp.status == 200, resp.text


async def test_forbidden_list_watch_falls_back_to_one_get_per_job(kube_fake: KubeTarget) -> None:
    fake = kube_fake.fake
    assert fake is not None
    fake.forbid("list", "jobs")
    client = kube_fake.client()
    locs = [await client.submit(job(kube_fake, "echo ok", name=f"rbac{i}"), new_token()) for i in range(3)]
    results = await asyncio.gather(
        *(wait_for_outcome(client, loc, PollSettings(interval=0.1), deadline=time.time() + 60) for loc in locs)
    )
    assert {r.status for r in results} == {"succeeded"}
    conn = await client.connection()
    assert conn.requests["LIST jobs"] == 1 and conn.requests["WATCH jobs"] == 0  # refused once, remembered
    assert conn.requests["GET jobs"] >= 3
