"""Hostile and failing apiserver answers, over real sockets (the TLS contract fake on 127.0.0.1).

What the issue asks of every answer a proxy, a buggy or overloaded apiserver, or an outage may produce: wrong JSON
types in every field the client reads, JSON nested 100,000 deep, truncated, empty and huge bodies, HTML error
pages, redirects to other hosts and paths (and a 307 on create), 401 pages that echo our headers, hangs, resets,
"not found" for live objects, unknown states, unreadable watch events. For each:

* no crash and no hang: every wait ends, by its event or by its **deadline**, which fires whatever the answers;
* **only the affected job** is touched: a bystander job on the same endpoint finishes normally (the victim's
  status is unknown, never lost, never failed);
* **never a second submission**: the jobs are created by :class:`~durable_jobs.protocol.JobProtocol` with an
  in-memory store, a later try of each victim re-attaches (or fails this try), and the fake counts one object
  per task;
* credentials never leak: the token appears in no event, no message, no log line.

The triggers run as the triggerer runs them (``KubernetesTrigger.wait``, the shared poller); the protocol runs in
a worker thread, its client calls on the test's loop, so both share one connection and one watch. Answers that
concern one object's own request (a GET) are tested with ``watch: false`` (one GET per job); answers about the
shared list and watch, and corrupted objects inside them, with the watch.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from durable_jobs.clients.kubernetes import KubeObject, KubernetesClient
from durable_jobs.errors import DurableJobError
from durable_jobs.protocol import Defer, JobProtocol, ProtocolSettings
from durable_jobs.record import STATE_KEY, TaskIdentity
from durable_jobs.triggers.kubernetes import KubernetesTrigger
from durable_jobs_harness.fake_kube import RawJSON, free_port
from durable_jobs_harness.kube_fixtures import KubeTarget

pytestmark = pytest.mark.usefixtures("kube_loop_cleanup")
MANUAL = {"fake.durable-jobs.io/controller": "manual"}
NESTED = RawJSON("[" * 100_000 + "]" * 100_000)
VICTIM_DEADLINE = 2.5  # seconds: the victims never finish, their deadline ends their wait
HTML_500 = "<html><head><title>500 Internal Server Error</title></head><body><h1>nginx</h1></body></html>"
PLURAL = {"Job": "jobs", "Pod": "pods", "SparkApplication": "sparkapplications"}


class DictStore:
    """The task state store, in memory, with the real store's JSON round trip."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return copy.deepcopy(self.data.get(key, default))

    def set(self, key: str, value: Any) -> None:
        self.data[key] = json.loads(json.dumps(value))


@dataclass
class Task:
    task_id: str
    kind: str
    store: DictStore

    @property
    def job(self) -> dict[str, Any]:
        job: dict[str, Any] = self.store.data[STATE_KEY]["job"]
        return job

    @property
    def token(self) -> str:
        token: str = self.store.data[STATE_KEY]["token"]
        return token

    @property
    def name(self) -> str:
        return str(self.job["name"])


def manifest(kind: str, kube: KubeTarget) -> KubeObject:
    container = {"name": "main", "image": kube.image, "command": ["sh", "-c", "sleep 600"]}
    meta = {"annotations": MANUAL}
    if kind == "Job":
        return KubeObject("Job", {"metadata": meta, "spec": {"template": {"spec": {"containers": [container]}}}})
    if kind == "Pod":
        return KubeObject("Pod", {"metadata": meta, "spec": {"containers": [container]}})
    return KubeObject("SparkApplication", {"metadata": meta, "spec": {"type": "Scala", "mainClass": "Pi"}})


class Harness:
    def __init__(self, kube: KubeTarget, *, watch: bool) -> None:
        assert kube.fake is not None
        self.kube, self.fake = kube, kube.fake
        self.client = kube.client(timeout=1.0, max_response_bytes=1 << 20, watch=watch, watch_timeout=5)
        self.refetches = 0
        config = self.client.config

        async def refetch() -> KubernetesClient:  # what the hook does after a 401: the connection as it is now
            self.refetches += 1
            fresh = KubernetesClient(config)
            fresh.refetch = refetch
            return fresh

        self.client.refetch = refetch

    def protocol(self, task: Task) -> JobProtocol:
        loop = asyncio.get_running_loop()
        spec = manifest(task.kind, self.kube)
        return JobProtocol(
            client=self.client,
            store=task.store,
            identity=TaskIdentity(dag_id="hostile", run_id="run-1", task_id=task.task_id),
            spec=lambda _record: spec,
            run=lambda aw: asyncio.run_coroutine_threadsafe(aw, loop).result(60),
            settings=ProtocolSettings(lost_confirmations=3, confirm_delay=0.05),
        )

    async def start(self, task_id: str, kind: str = "Job") -> Task:
        task = Task(task_id, kind, DictStore())
        decision = await asyncio.to_thread(self.protocol(task).start)
        assert isinstance(decision, Defer), decision
        return task

    async def retry(self, task: Task) -> Any:
        """A later try of the task: re-attaches (Defer) or fails this try; it must never submit again."""
        try:
            return await asyncio.to_thread(self.protocol(task).start)
        except DurableJobError as exc:
            return exc

    async def wait(self, task: Task, seconds: float) -> dict[str, Any]:
        trigger = KubernetesTrigger(
            job=task.job,
            conn_id="unused",
            token=task.token,
            generation=0,
            poll_interval=0.2,
            deadline=time.time() + seconds,
            lost_confirmations=3,
        )
        return await trigger.wait(self.client)

    def set_state(self, task: Task, mutate: Callable[[dict[str, Any]], None]) -> None:
        self.fake.update(PLURAL[task.kind], self.kube.namespace, task.name, mutate)

    def created(self) -> int:
        return sum(self.fake.stats()["created"].values())


def complete_job(job: dict[str, Any]) -> None:
    cond = {"status": "True", "reason": "CompletionsReached", "message": "done"}
    job["status"] = {
        "succeeded": 1,
        "conditions": [{**cond, "type": "SuccessCriteriaMet"}, {**cond, "type": "Complete"}],
    }


def failed_job(job: dict[str, Any]) -> None:
    cond = {
        "status": "True",
        "reason": "BackoffLimitExceeded",
        "message": "Job has reached the specified backoff limit",
    }
    job["status"] = {
        "active": 0,
        "ready": 0,
        "succeeded": 0,
        "failed": 1,
        "conditions": [{**cond, "type": "FailureTarget"}, {**cond, "type": "Failed"}],
    }


def failed_pod(pod: dict[str, Any]) -> None:
    term = {"exitCode": 1, "reason": "Error", "message": "boom"}
    pod["status"] = {
        "phase": "Failed",
        "reason": "Error",
        "message": "the pod failed",
        "conditions": [{"type": "Ready", "status": "False", "reason": "PodFailed", "message": "x"}],
        "containerStatuses": [{"name": "main", "state": {"terminated": term}, "lastState": {"terminated": term}}],
        "initContainerStatuses": [{"name": "init", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
    }
    pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"


def failed_app(app: dict[str, Any]) -> None:
    app["spec"]["restartPolicy"] = {"type": "Never"}
    app["status"] = {
        "applicationState": {"state": "FAILED", "errorMessage": "driver failed"},
        "sparkApplicationId": "spark-1",
        "driverInfo": {"podName": "x-driver", "webUIIngressAddress": "spark.example.com/x"},
        "submissionAttempts": 1,
    }


async def settle(
    h: Harness, victims: list[Task], bystander: Task, *, finish: Callable[[], None]
) -> list[dict[str, Any]]:
    """Wait for every victim (deadline) and the bystander (finished by ``finish``) at once; no hang allowed."""
    started = time.monotonic()
    waits = [asyncio.ensure_future(h.wait(v, VICTIM_DEADLINE)) for v in victims]
    by = asyncio.ensure_future(h.wait(bystander, 30))
    await asyncio.sleep(0.3)
    finish()
    results = await asyncio.wait_for(asyncio.gather(*waits, by), 45)
    assert time.monotonic() - started < VICTIM_DEADLINE + 20
    return results


async def check_no_resubmission(h: Harness, victims: list[Task], created: int) -> None:
    for v in victims:
        outcome = await h.retry(v)
        assert isinstance(outcome, (Defer, DurableJobError)), outcome
        if isinstance(outcome, Defer):
            assert outcome.record.job == v.job and outcome.record.generation == 0
    assert h.created() == created  # one object per task, ever


@pytest.fixture
async def elsewhere() -> AsyncIterator[dict[str, Any]]:
    """Another server on 127.0.0.1, the target of the redirects: it must never be asked anything."""
    hits: list[str] = []

    async def record(request: web.Request) -> web.Response:
        hits.append(f"{request.method} {request.path_qs}")
        return web.json_response({"metadata": {"name": "x", "uid": "00000000-0000-0000-0000-000000000000"}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield {"url": f"http://127.0.0.1:{port}", "hits": hits}
    finally:
        await runner.cleanup()


# --- a job's own answer (one GET per job: watch false) ---------------------------------------------------------

GET_CASES: dict[str, dict[str, Any]] = {
    "html-500": {"action": "respond", "status": 500, "body": HTML_500, "headers": {"Content-Type": "text/html"}},
    "html-200": {"action": "respond", "status": 200, "body": HTML_500, "headers": {"Content-Type": "text/html"}},
    "empty-200": {"action": "respond", "status": 200, "body": b""},
    "garbage-200": {"action": "respond", "status": 200, "body": b"\x00\xff{]not json"},
    "truncated": {"action": "truncate", "status": 200, "body": b'{"metadata": {"name": "x", "uid": "' + b"a" * 400},
    "huge": {"action": "huge", "status": 3, "body": b'{"a":"' + b"x" * 1000},
    "nested": {"action": "respond", "status": 200, "body": b'{"status": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"},
    "wrong-types": {"action": "respond", "status": 200, "body": b'{"metadata": {"uid": 5}, "status": {"phase": 1}}'},
    "array-200": {"action": "respond", "status": 200, "body": b"[1, 2, 3]"},
    "hang": {"action": "hang"},
    "reset": {"action": "reset"},
    "not-found-live": {"action": "not-found"},
    "status-wrong-types": {
        "action": "respond",
        "status": 404,
        "body": b'{"kind": "Status", "code": "404", "reason": ["NotFound"], "details": {"name": 7}}',
    },
    "status-468": {
        "action": "respond",
        "status": 468,
        "body": b'{"kind": "Status", "status": "Failure", "code": 468, "reason": "Weird", "message": "no"}',
    },
    "redirect-other-host": {"action": "redirect-host", "status": 302},
    "redirect-other-path": {"action": "redirect-path", "status": 307},
    "unknown-state": {"action": "unknown-state"},
}


@pytest.mark.parametrize("case", list(GET_CASES))
async def test_a_hostile_answer_about_one_job_touches_that_job_only(
    kube_fake: KubeTarget, elsewhere: dict[str, Any], case: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    h = Harness(kube_fake, watch=False)
    victim = await h.start("victim", "Pod")
    bystander = await h.start("bystander", "Pod")
    created = h.created()
    h.set_state(victim, failed_pod)  # a victim that "failed" must still never be read as failed from a bad answer
    spec = dict(GET_CASES[case])
    action = spec.pop("action")
    item = f"/pods/{victim.name}"
    if action == "not-found":
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 404}
        status |= {"reason": "NotFound", "message": f'pods "{victim.name}" not found'}
        status |= {"details": {"name": victim.name, "kind": "pods"}}
        h.fake.hostile("respond", method="GET", path_contains=item, status=404, body=json.dumps(status))
    elif action == "redirect-host":
        location = f"{elsewhere['url']}/api/v1/namespaces/{kube_fake.namespace}{item}"
        h.fake.hostile("redirect", method="GET", path_contains=item, status=302, headers={"Location": location})
    elif action == "redirect-path":
        h.fake.hostile("redirect", method="GET", path_contains=item, status=307, headers={"Location": "/login?next=x"})
    elif action == "unknown-state":
        h.set_state(victim, lambda p: p["status"].__setitem__("phase", "Hibernating"))
    else:
        h.fake.hostile(action, method="GET", path_contains=item, **spec)

    def finish() -> None:
        h.set_state(bystander, lambda p: p.setdefault("status", {}).__setitem__("phase", "Succeeded"))

    victim_event, by_event = await settle(h, [victim], bystander, finish=finish)
    assert victim_event["status"] == "timeout", victim_event  # unknown throughout; the deadline fired
    assert by_event["status"] == "succeeded", by_event
    assert elsewhere["hits"] == []
    await check_no_resubmission(h, [victim], created)
    assert h.fake.token not in caplog.text + json.dumps([victim_event, by_event])


# --- the shared list and watch -------------------------------------------------------------------------------

LIST_CASES: dict[str, dict[str, Any]] = {
    "html-503": {"action": "respond", "status": 503, "body": HTML_500, "headers": {"Retry-After": "1"}},
    "html-200": {"action": "respond", "status": 200, "body": HTML_500, "headers": {"Content-Type": "text/html"}},
    "empty-200": {"action": "respond", "status": 200, "body": b""},
    "truncated": {"action": "truncate", "status": 200, "body": b'{"metadata": {"resourceVersion": "5"}, "items": []}'},
    "huge": {"action": "huge", "status": 3, "body": b'{"items":['},
    "nested": {"action": "respond", "status": 200, "body": b'{"items": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"},
    "rv-int": {"action": "respond", "status": 200, "body": b'{"metadata": {"resourceVersion": 5}, "items": []}'},
    "continue-list": {"action": "respond", "status": 200, "body": b'{"metadata": {"continue": ["x"]}, "items": []}'},
    "items-object": {
        "action": "respond",
        "status": 200,
        "body": b'{"metadata": {"resourceVersion": "5"}, "items": {}}',
    },
    "metadata-array": {"action": "respond", "status": 200, "body": b'{"metadata": [], "items": []}'},
    "no-version": {"action": "respond", "status": 200, "body": b'{"metadata": {}, "items": []}'},
    "redirect": {"action": "redirect-host", "status": 301},
    "hang": {"action": "hang"},
    "reset": {"action": "reset"},
    "forbidden-page": {"action": "respond", "status": 403, "body": b"<html>Forbidden by proxy</html>"},
}


@pytest.mark.parametrize("case", list(LIST_CASES))
async def test_a_hostile_list_makes_the_watch_fall_back_to_bounded_reads(
    kube_fake: KubeTarget, elsewhere: dict[str, Any], case: str
) -> None:
    h = Harness(kube_fake, watch=True)
    victim = await h.start("victim")
    bystander = await h.start("bystander")
    created = h.created()
    spec = dict(LIST_CASES[case])
    action = spec.pop("action")
    lists = "/jobs?"  # list and watch requests of the Job collection, not the GET of one Job
    if action == "redirect-host":
        h.fake.hostile("redirect", path_contains=lists, status=301, headers={"Location": f"{elsewhere['url']}/x"})
    else:
        h.fake.hostile(action, path_contains=lists, **spec)

    def finish() -> None:
        h.set_state(bystander, complete_job)

    victim_event, by_event = await settle(h, [victim], bystander, finish=finish)
    assert victim_event["status"] == "timeout", victim_event
    assert by_event["status"] == "succeeded", by_event  # read with a GET while the list fails
    assert elsewhere["hits"] == []
    requests = (await h.client.connection()).requests  # per "METHOD kind", counted by the shared connection
    assert requests.get("GET jobs", 0) <= 16 * 60  # bounded: status_concurrency per poll at most
    await check_no_resubmission(h, [victim], created)


WATCH_LINES = {
    "not-json": b"{not json",
    "array": b"[1, 2]",
    "type-int": b'{"type": 5, "object": {}}',
    "object-string": b'{"type": "MODIFIED", "object": "x"}',
    "name-list": b'{"type": "MODIFIED", "object": {"metadata": {"name": ["x"]}}}',
    "bookmark-int": b'{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": 9}}}',
    "error-410": b'{"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "x"}}',
    "error-types": b'{"type": "ERROR", "object": {"kind": "Status", "code": "500"}}',
    "nested": b'{"type": "ADDED", "object": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "unknown-type": b'{"type": "SHRUG", "object": {"metadata": {"name": "x"}}}',
    # 600 KB, an unattributable name (a line past max_response_bytes is in test_kube_watch.py)
    "long-name": b'{"type": "MODIFIED", "object": {"metadata": {"name": "' + b"x" * 600_000 + b'"}}}',
}


@pytest.mark.parametrize("line", list(WATCH_LINES))
async def test_unreadable_watch_events_relist_and_the_watch_goes_on(kube_fake: KubeTarget, line: str) -> None:
    h = Harness(kube_fake, watch=True)
    victim = await h.start("victim")
    bystander = await h.start("bystander")
    created = h.created()
    waits = asyncio.ensure_future(settle(h, [victim], bystander, finish=lambda: None))
    await asyncio.sleep(0.6)
    conn = await h.client.connection()
    inf = conn.informers[("Job", kube_fake.namespace)]
    for _ in range(3):
        h.fake.inject_watch_line("jobs", kube_fake.namespace, WATCH_LINES[line])
        await asyncio.sleep(0.1)
    h.set_state(victim, failed_job)  # a real failure of the victim, after the garbage: seen all the same
    h.set_state(bystander, complete_job)
    victim_event, by_event = await waits
    assert by_event["status"] == "succeeded", by_event
    assert victim_event["status"] == "failed" and "BackoffLimitExceeded" in victim_event["message"]
    assert inf.running and inf.stats.lists >= 1
    if line not in ("unknown-type", "long-name"):
        assert inf.stats.lists + inf.stats.relists_malformed + inf.stats.relists_expired >= 2
    await check_no_resubmission(h, [], created)


# --- wrong JSON types in every field the client reads -------------------------------------------------------------


def put(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A corruption: the value at ``path`` (``a.b[0].c``) replaced, parents created as needed."""
    parts: list[str | int] = []
    for token in path.replace("]", "").split("."):
        name, *indexes = token.split("[")
        parts.append(name)
        parts.extend(int(i) for i in indexes)

    def apply(obj: dict[str, Any]) -> None:
        cur: Any = obj
        for here, nxt in itertools.pairwise(parts):
            if isinstance(cur, dict):
                if not isinstance(cur.get(here), (dict, list)):
                    cur[here] = [] if isinstance(nxt, int) else {}
                cur = cur[here]
            else:
                assert isinstance(here, int)
                while len(cur) <= here:
                    cur.append({})
                cur = cur[here]
        last = parts[-1]
        if isinstance(cur, list):
            assert isinstance(last, int)
            while len(cur) <= last:
                cur.append(None)
        cur[last] = value

    return apply


FIELDS: dict[str, list[tuple[str, Any]]] = {
    "Job": [
        ("metadata.name", 12),
        ("metadata.uid", 12),
        ("metadata.resourceVersion", 12),
        ("metadata.deletionTimestamp", ["x"]),
        ("spec", "a string"),
        ("spec.selector", 1),
        ("spec.selector.matchLabels", ["a"]),
        ("spec.selector.matchLabels.x", 1),
        ("status", []),
        ("status.conditions", {"type": "Failed"}),
        ("status.conditions[1]", "Failed"),
        ("status.conditions[1].type", True),
        ("status.conditions[1].status", 1),
        ("status.conditions[1].reason", {"r": 1}),
        ("status.conditions[1].message", NESTED),
        ("status.active", "1"),
        ("status.ready", 1.5),
        ("status.succeeded", False),
        ("status.failed", "1"),
    ],
    "Pod": [
        ("metadata.name", None),
        ("metadata.uid", []),
        ("metadata.deletionTimestamp", 5),
        ("spec.containers", "main"),
        ("spec.containers[0].name", 0),
        ("status.phase", 2),
        ("status.reason", ["Evicted"]),
        ("status.message", 7),
        ("status.conditions", "Ready"),
        ("status.conditions[0].type", None),
        ("status.containerStatuses", {}),
        ("status.containerStatuses[0].name", 1),
        ("status.containerStatuses[0].state", "terminated"),
        ("status.containerStatuses[0].state.terminated", 1),
        ("status.containerStatuses[0].state.terminated.exitCode", "1"),
        ("status.containerStatuses[0].state.terminated.reason", 1),
        ("status.containerStatuses[0].state.waiting", []),
        ("status.containerStatuses[0].state.running", "yes"),
        ("status.containerStatuses[0].lastState.terminated.message", {"m": 1}),
        ("status.initContainerStatuses[0].state.terminated.exitCode", 1.0),
    ],
    "SparkApplication": [
        ("metadata.uid", 1),
        ("spec.restartPolicy", "Never"),
        ("spec.restartPolicy.type", 0),
        ("status.applicationState", "FAILED"),
        ("status.applicationState.state", ["FAILED"]),
        ("status.applicationState.errorMessage", 1),
        ("status.sparkApplicationId", 1),
        ("status.driverInfo", "x"),
        ("status.driverInfo.podName", 1),
        ("status.driverInfo.webUIIngressAddress", []),
        ("status.submissionAttempts", "1"),
    ],
}
FAILERS = {"Job": failed_job, "Pod": failed_pod, "SparkApplication": failed_app}


@pytest.mark.parametrize("kind", list(FIELDS))
async def test_wrong_types_in_every_field_read_make_that_object_unknown_never_failed(
    kube_fake: KubeTarget, kind: str
) -> None:
    h = Harness(kube_fake, watch=True)
    victims = [await h.start(f"v{i}", kind) for i in range(len(FIELDS[kind]))]
    bystander = await h.start("bystander", kind)
    created = h.created()
    for task, (path, value) in zip(victims, FIELDS[kind], strict=True):
        h.fake.corrupt(PLURAL[kind], kube_fake.namespace, task.name, put(path, value))
        h.set_state(task, FAILERS[kind])  # each victim "failed", and says so with one field of the wrong type

    def finish() -> None:
        if kind == "Job":
            h.set_state(bystander, complete_job)
        elif kind == "Pod":
            h.set_state(bystander, lambda p: p.setdefault("status", {}).__setitem__("phase", "Succeeded"))
        else:
            h.set_state(bystander, lambda a: a.__setitem__("status", {"applicationState": {"state": "COMPLETED"}}))

    *victim_events, by_event = await settle(h, victims, bystander, finish=finish)
    wrong = {
        path: e["status"] for (path, _), e in zip(FIELDS[kind], victim_events, strict=True) if e["status"] != "timeout"
    }
    assert wrong == {}, wrong  # unknown until the deadline: never failed, never lost, never succeeded
    assert by_event["status"] == "succeeded", by_event
    await check_no_resubmission(h, victims, created)


# --- what the cluster remembers, unreadable ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        {"action": "respond", "status": 200, "body": b'{"items": [{"involvedObject": {"uid": 5}, "reason": "x"}]}'},
        {"action": "respond", "status": 200, "body": b"<html>events</html>"},
        {"action": "respond", "status": 500, "body": b"<html>down</html>"},
        {"action": "hang"},
    ],
    ids=["wrong-types", "html", "500", "hang"],
)
async def test_a_deleted_job_whose_events_cannot_be_read_is_unknown_not_lost(
    kube_fake: KubeTarget, answer: dict[str, Any]
) -> None:
    h = Harness(kube_fake, watch=True)
    victim = await h.start("victim")
    bystander = await h.start("bystander")
    created = h.created()
    spec = dict(answer)
    h.fake.hostile(spec.pop("action"), path_contains="/events?", **spec)
    conn = await h.client.connection()
    await conn.call(
        "DELETE",
        f"/apis/batch/v1/namespaces/{kube_fake.namespace}/jobs/{victim.name}",
        body={"propagationPolicy": "Background"},
        what="delete the victim behind the client's back",
    )

    victim_event, by_event = await settle(h, [victim], bystander, finish=lambda: h.set_state(bystander, complete_job))
    assert victim_event["status"] == "timeout", victim_event  # never lost while its evidence cannot be read
    assert by_event["status"] == "succeeded"
    await check_no_resubmission(h, [victim], created)


async def test_an_unreadable_diagnosis_leaves_a_real_failure_failed(kube_fake: KubeTarget) -> None:
    h = Harness(kube_fake, watch=True)
    victim = await h.start("victim")
    bystander = await h.start("bystander")
    h.fake.hostile("respond", path_contains="/pods?", status=200, body=b'{"items": [{"status": {"phase": 3}}]}')

    victim_event, by_event = await settle(h, [victim], bystander, finish=lambda: h.set_state(bystander, failed_job))
    assert by_event["status"] == "failed" and "BackoffLimitExceeded" in by_event["message"]
    assert "logs are unavailable" in by_event["message"]
    assert victim_event["status"] == "timeout"


# --- credentials echoed by a 401 page --------------------------------------------------------------------------


async def test_a_401_page_echoing_our_headers_ends_every_wait_with_error_and_leaks_nothing(
    kube_fake: KubeTarget, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    h = Harness(kube_fake, watch=True)
    victim = await h.start("victim")
    bystander = await h.start("bystander")
    created = h.created()
    h.fake.hostile("echo")  # every request: a 401 page quoting the Authorization header
    victim_event, by_event = await settle(h, [victim], bystander, finish=lambda: None)
    assert victim_event["status"] == by_event["status"] == "error", (victim_event, by_event)
    assert h.refetches == 1  # one fetch of fresh credentials, then the refusal counts
    assert "401" in by_event["message"]
    outcome = await h.retry(victim)
    assert isinstance(outcome, DurableJobError) and "401" in str(outcome)
    text = json.dumps([victim_event, by_event]) + caplog.text + str(outcome)
    assert h.fake.token not in text and "Authorization: ***" in str(outcome)
    assert h.created() == created


# --- create: redirects, unreadable answers ---------------------------------------------------------------------


async def test_a_307_on_create_is_never_followed_nor_its_answer_taken(
    kube_fake: KubeTarget, elsewhere: dict[str, Any]
) -> None:
    h = Harness(kube_fake, watch=True)
    body = json.dumps({"metadata": {"name": "x", "uid": "11111111-1111-1111-1111-111111111111"}})
    location = f"{elsewhere['url']}/apis/batch/v1/namespaces/{kube_fake.namespace}/jobs"
    h.fake.hostile("redirect", method="POST", status=307, headers={"Location": location}, body=body)
    task = Task("redirected", "Job", DictStore())
    outcome = await h.retry(task)
    assert isinstance(outcome, DurableJobError) and "307" in str(outcome) and "not followed" in str(outcome)
    assert elsewhere["hits"] == []  # the submission (and whatever secrets it holds) went nowhere else
    assert h.created() == 0 and task.store.data[STATE_KEY]["phase"] == "submitting"
    assert h.fake.stats()["counts"].get("POST jobs", 0) == 0
    h.fake.calm()
    decision = await h.retry(task)  # the next try finds nothing by the token's name, and creates it once
    assert isinstance(decision, Defer) and decision.record.job["uid"] != "11111111-1111-1111-1111-111111111111"
    assert h.created() == 1


@pytest.mark.parametrize(
    "body",
    [b"", b"<html>Created</html>", b'{"metadata": {"uid": 5}}', b'{"metadata": {"name": "other", "uid": "x"}}'],
    ids=["empty", "html", "uid-int", "other-object"],
)
async def test_an_unreadable_create_answer_is_read_back_never_created_twice(kube_fake: KubeTarget, body: bytes) -> None:
    h = Harness(kube_fake, watch=True)
    h.fake.hostile("respond", method="POST", status=201, body=body, count=1)
    # the hostile answer replaced the apiserver's: nothing was created; the client reads back, finds nothing
    task = Task("garbled", "Job", DictStore())
    outcome = await h.retry(task)
    assert isinstance(outcome, DurableJobError) and h.created() == 0
    decision = await h.retry(task)
    assert isinstance(decision, Defer) and h.created() == 1
    again = await h.retry(task)
    assert isinstance(again, Defer) and again.record.job == decision.record.job and h.created() == 1
