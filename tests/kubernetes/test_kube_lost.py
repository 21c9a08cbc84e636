"""When a Kubernetes job is LOST, and what the client does before saying so (no sockets: a mock transport).

LOST needs the GET's documented 404 NotFound, the second source (the watch's cache, else a list by name)
agreeing, and nothing in what the cluster remembers of finished objects: the object's Events (``Completed``,
``BackoffLimitExceeded``...; kept about an hour) and its pods (a Job's by ``controller-uid``, a SparkApplication's
driver). Success found: SUCCEEDED; failure found: FAILED; a source that cannot be read: UNKNOWN. Also: isolation of
one job's errors in a poll, the bounded fallback when the shared list fails, and create answers that cannot be read.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from durable_jobs.clients.base import locator_key
from durable_jobs.clients.kubernetes import COMPLETIONS_ANNOTATION, KubeObject, KubernetesClient, KubernetesConfig
from durable_jobs.errors import AuthError, MalformedAnswer, TransientError
from durable_jobs.status import JobState
from durable_jobs.testing.transport import MockTransport, json_response, response
from durable_jobs.transport.base import Request, Response
from durable_jobs.transport.http import close_sessions, use_transport

TOKEN = "dj0123456789abcdef0123"
UID = "0b7c3f6e-5a43-4d5e-9a57-0c9d9a3b1d2e"
OTHER_UID = "11111111-2222-3333-4444-555555555555"
NAME = f"load-{TOKEN}"
JOB = {"kind": "Job", "namespace": "batch", "name": NAME, "uid": UID}
POD = {**JOB, "kind": "Pod"}
APP = {**JOB, "kind": "SparkApplication"}
EMPTY: dict[str, Any] = {"kind": "List", "metadata": {"resourceVersion": "9"}, "items": []}
Answer = Response | Callable[[Request], Response]


def not_found(name: str = NAME, plural: str = "jobs") -> Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404, "reason": "NotFound"}
    return json_response({**body, "message": f'"{name}" not found', "details": {"name": name, "kind": plural}}, 404)


def forbidden() -> Response:
    body = {"kind": "Status", "status": "Failure", "code": 403, "reason": "Forbidden", "message": "cannot list"}
    return json_response(body, 403)


def event(reason: str, uid: str = UID, message: str = "") -> dict[str, Any]:
    return {"involvedObject": {"uid": uid, "name": NAME, "kind": "Job"}, "reason": reason, "message": message}


def pod(
    phase: str, *, uid: str = UID, annotations: dict[str, str] | None = None, owner: bool = False
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"p-{phase.lower()}", "uid": OTHER_UID, "annotations": annotations or {}}
    if owner:
        meta["ownerReferences"] = [{"uid": uid, "kind": "SparkApplication", "name": NAME}]
    else:
        meta["labels"] = {"controller-uid": uid}
    return {"metadata": meta, "status": {"phase": phase}}


class Cluster:
    """Answers by route: ``get`` (the object), ``named`` (the list by name), ``events``, ``pods``."""

    def __init__(self, **answers: Answer) -> None:
        self.answers = answers
        self.requests: list[Request] = []

    def __call__(self, request: Request) -> Response:
        self.requests.append(request)
        params = dict(request.params)
        last = request.url.rsplit("/", 1)[-1]
        if request.method == "POST":
            key = "post"
        elif last == "events":
            key = "events"
        elif last == "pods" and "labelSelector" in params:
            key = "pods"
        elif "fieldSelector" in params:
            key = "named"
        elif last in ("jobs", "pods", "sparkapplications"):
            key = "list"
        else:
            key = "get"
        answer = self.answers.get(key)
        if answer is None:
            raise AssertionError(f"unexpected {key} request: {request.method} {request.url} {params}")
        return answer(request) if callable(answer) else answer

    def asked(self, key: str) -> int:
        return sum(1 for r in self.requests if self._key(r) == key)

    def _key(self, request: Request) -> str:
        params = dict(request.params)
        last = request.url.rsplit("/", 1)[-1]
        if request.method == "POST":
            return "post"
        if last == "events":
            return "events"
        if last == "pods" and "labelSelector" in params:
            return "pods"
        if "fieldSelector" in params:
            return "named"
        return "list" if last in ("jobs", "pods", "sparkapplications") else "get"


def run(cluster: Cluster, call: Callable[[KubernetesClient], Any], **config: Any) -> Any:
    config.setdefault("watch", False)
    client = KubernetesClient(KubernetesConfig(host="http://k8s.test:8080", token="unit-token-123456", **config))

    async def main() -> Any:
        with use_transport(MockTransport(cluster)):
            try:
                return await call(client)
            finally:
                await close_sessions()

    return asyncio.run(main())


def status_of(locator: dict[str, Any], **answers: Answer) -> Any:
    return run(Cluster(**answers), lambda c: c.status(locator))


# --- lost, and what comes before ---------------------------------------------------------------------------


def test_lost_when_get_list_events_and_pods_agree_nothing_is_left() -> None:
    cluster = Cluster(
        get=not_found(), named=json_response(EMPTY), events=json_response(EMPTY), pods=json_response(EMPTY)
    )
    st = run(cluster, lambda c: c.status(JOB))
    assert st.state is JobState.LOST and st.raw_state == "NotFound" and "no event or pod" in st.message
    assert [cluster.asked(k) for k in ("get", "named", "events", "pods")] == [1, 1, 1, 1]


def test_the_second_source_still_showing_it_is_unknown() -> None:
    listed = {**EMPTY, "items": [{"metadata": {"name": NAME, "uid": UID}}]}
    st = status_of(JOB, get=not_found(), named=json_response(listed))
    assert st.state is JobState.UNKNOWN and "still shows it" in st.message


@pytest.mark.parametrize(
    "answer",
    [
        forbidden(),
        response(503, "<html>down</html>"),
        json_response({"metadata": {}}),  # no items: not a list
        json_response({"items": [{"metadata": {"name": NAME, "uid": 5}}]}),
        response(200, b"[" * 10_000 + b"]" * 10_000),
    ],
    ids=["forbidden", "503", "no-items", "uid-int", "nested"],
)
def test_a_second_source_that_cannot_be_read_is_unknown_never_lost(answer: Response) -> None:
    st = status_of(JOB, get=not_found(), named=answer)
    assert st.state is JobState.UNKNOWN and "cannot confirm" in st.message


@pytest.mark.parametrize(
    ("events", "state", "text"),
    [
        ([event("SuccessfulCreate"), event("Completed", message="Job completed")], JobState.SUCCEEDED, "Completed"),
        ([event("BackoffLimitExceeded", message="backoff")], JobState.FAILED, "BackoffLimitExceeded"),
        ([event("DeadlineExceeded")], JobState.FAILED, "DeadlineExceeded"),
        ([event("Completed", uid=OTHER_UID)], JobState.LOST, ""),  # another object's event
        ([event("Completed"), event("BackoffLimitExceeded")], JobState.UNKNOWN, "both"),
    ],
)
def test_a_removed_job_is_judged_by_its_events(events: list[dict[str, Any]], state: JobState, text: str) -> None:
    st = status_of(
        JOB,
        get=not_found(),
        named=json_response(EMPTY),
        events=json_response({**EMPTY, "items": events}),
        pods=json_response(EMPTY),
    )
    assert st.state is state and text in st.message, st
    if state in (JobState.SUCCEEDED, JobState.FAILED):
        assert st.extra["remembered"] is True and "no longer exists" in st.message


@pytest.mark.parametrize(
    ("pods", "state"),
    [
        ([pod("Succeeded")], JobState.SUCCEEDED),
        ([pod("Failed"), pod("Succeeded")], JobState.SUCCEEDED),  # a retry inside the Job succeeded
        ([pod("Succeeded", annotations={COMPLETIONS_ANNOTATION: "2"})], JobState.LOST),  # 1 of 2 completions
        ([pod("Succeeded", uid=OTHER_UID)], JobState.LOST),  # not this Job's pod
        ([pod("Failed")], JobState.LOST),  # a failed pod proves nothing (a retry may have followed)
    ],
)
def test_a_removed_job_is_judged_by_its_pods_when_its_events_are_gone(pods: list[Any], state: JobState) -> None:
    st = status_of(
        JOB,
        get=not_found(),
        named=json_response(EMPTY),
        events=json_response(EMPTY),
        pods=json_response({**EMPTY, "items": pods}),
    )
    assert st.state is state, st


def test_evidence_that_may_not_be_read_is_skipped_and_says_so_but_unreadable_evidence_is_unknown() -> None:
    st = status_of(JOB, get=not_found(), named=json_response(EMPTY), events=forbidden(), pods=forbidden())
    assert st.state is JobState.LOST and "events may not be listed (RBAC)" in st.message
    st = status_of(JOB, get=not_found(), named=json_response(EMPTY), events=response(200, "<html/>"))
    assert st.state is JobState.UNKNOWN and "remembers" in st.message
    st = status_of(JOB, get=not_found(), named=json_response(EMPTY), events=json_response(EMPTY), pods=response(500))
    assert st.state is JobState.UNKNOWN


def test_a_pod_has_no_evidence_to_read_and_a_spark_application_has_its_events_and_driver() -> None:
    cluster = Cluster(get=not_found(plural="pods"), named=json_response(EMPTY))
    assert run(cluster, lambda c: c.status(POD)).state is JobState.LOST
    assert cluster.asked("events") == 0
    done = [{**event("SparkApplicationCompleted"), "involvedObject": {"uid": UID, "kind": "SparkApplication"}}]
    st = status_of(
        APP,
        get=not_found(plural="sparkapplications"),
        named=json_response(EMPTY),
        events=json_response({**EMPTY, "items": done}),
    )
    assert st.state is JobState.SUCCEEDED and st.raw_state == "COMPLETED"
    drivers = {**EMPTY, "items": [pod("Succeeded", owner=True), pod("Failed", uid=OTHER_UID, owner=True)]}
    st = status_of(
        APP,
        get=not_found(plural="sparkapplications"),
        named=json_response(EMPTY),
        events=json_response(EMPTY),
        pods=json_response(drivers),
    )
    assert st.state is JobState.SUCCEEDED and "driver pod" in st.message


def test_a_replaced_object_is_judged_like_a_removed_one() -> None:
    other = {"metadata": {"name": NAME, "uid": OTHER_UID}, "status": {}}
    listed = {**EMPTY, "items": [other]}
    st = status_of(
        JOB,
        get=json_response(other),
        named=json_response(listed),
        events=json_response(EMPTY),
        pods=json_response(EMPTY),
    )
    assert st.state is JobState.LOST and st.raw_state == "Replaced"


@pytest.mark.parametrize(
    "answer",
    [
        response(404, "<html>404 page not found</html>"),
        not_found(name="someone-else"),
        json_response({"kind": "Status", "code": 404, "reason": "NotFound", "details": {"name": 7}}, 404),
        json_response({"metadata": {"name": NAME}, "status": {}}),  # no uid
    ],
    ids=["html", "other-name", "details-int", "no-uid"],
)
def test_a_404_that_is_not_the_documented_one_is_malformed_not_lost(answer: Response) -> None:
    with pytest.raises(MalformedAnswer):
        status_of(JOB, get=answer)


# --- isolation in a poll -------------------------------------------------------------------------------------


def job_answer(uid: str, running: bool = True) -> Response:
    return json_response({"metadata": {"name": NAME, "uid": uid}, "status": {"active": 1 if running else 0}})


def test_one_jobs_error_is_that_jobs_unknown_only() -> None:
    other = {**JOB, "name": f"other-{TOKEN}", "uid": OTHER_UID}

    def get(request: Request) -> Response:
        if request.url.endswith(NAME):
            return response(500, "<html>boom</html>")
        return json_response({"metadata": {"name": other["name"], "uid": OTHER_UID}, "status": {"active": 1}})

    out = run(Cluster(get=get), lambda c: c.statuses([JOB, other]))
    assert out[locator_key(JOB)].state is JobState.UNKNOWN
    assert out[locator_key(other)].state is JobState.RUNNING


def test_every_job_unreachable_is_unknown_for_the_poller_and_a_401_concerns_everyone() -> None:
    other = {**JOB, "name": f"other-{TOKEN}"}
    out = run(Cluster(get=response(503, "down")), lambda c: c.statuses([JOB, other]))
    assert {s.state for s in out.values()} == {JobState.UNKNOWN}  # nothing known: a failed poll for the poller
    refused = json_response({"kind": "Status", "code": 401, "reason": "Unauthorized", "message": "Unauthorized"}, 401)
    with pytest.raises(AuthError):
        run(Cluster(get=refused), lambda c: c.statuses([JOB, other]))


def test_a_failing_shared_list_falls_back_to_a_bounded_window_of_gets() -> None:
    locs = [{**JOB, "name": f"j{i}-{TOKEN}"} for i in range(40)]

    def get(request: Request) -> Response:
        name = request.url.rsplit("/", 1)[-1]
        return json_response({"metadata": {"name": name, "uid": UID}, "status": {"active": 1}})

    cluster = Cluster(get=get, list=response(503, "<html>etcd down</html>"))
    out = run(cluster, lambda c: c.statuses(locs), watch=True, timeout=2.0)
    assert cluster.asked("get") <= KubernetesClient.status_concurrency * 2  # one window (two attempts at most)
    assert 0 < len(out) <= KubernetesClient.status_concurrency
    assert {s.state for s in out.values()} == {JobState.RUNNING}


# --- create answers ------------------------------------------------------------------------------------------


def spec() -> KubeObject:
    return KubeObject(
        "Job", {"spec": {"template": {"spec": {"containers": [{"name": "m", "image": "i"}]}}}}, name="load"
    )


def test_a_created_object_whose_answer_cannot_be_read_is_read_back_and_adopted() -> None:
    created = {"metadata": {"name": NAME, "uid": UID, "labels": {"durable-jobs.io/token": TOKEN}}}
    cluster = Cluster(post=response(201, b'{"metadata": {"uid": '), get=json_response(created))
    loc = run(cluster, lambda c: c.submit(spec(), TOKEN))
    assert loc["uid"] == UID and cluster.asked("post") == 1  # never posted twice


def test_a_create_answered_with_another_object_is_not_taken() -> None:
    foreign = {"metadata": {"name": NAME, "uid": OTHER_UID, "labels": {"durable-jobs.io/token": "dj" + "9" * 20}}}
    cluster = Cluster(post=json_response(foreign, 201), get=not_found())
    with pytest.raises(MalformedAnswer, match="cannot be read and no such object exists"):
        run(cluster, lambda c: c.submit(spec(), TOKEN))
    assert cluster.asked("post") == 1


def test_a_redirected_create_is_neither_followed_nor_repeated() -> None:
    cluster = Cluster(
        post=response(307, json.dumps({"metadata": {"uid": OTHER_UID}}), headers={"Location": "https://x.test/y"})
    )
    with pytest.raises(TransientError, match="not followed"):
        run(cluster, lambda c: c.submit(spec(), TOKEN))
    assert cluster.asked("post") == 1
