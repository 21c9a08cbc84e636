"""Property-based fuzzing (hypothesis) of every decoder of the Kubernetes client.

Every answer the client reads: a Job, a Pod, a SparkApplication (GET, list items, watch events), a list page, a
watch line, a ``Status`` error, the list by name (the second source), Events and pods (what the cluster remembers
of finished objects), the create answer, ``/version``. Random JSON, random bytes, and random values in every field
that is read. Two properties:

* nothing escapes but the library's own errors (:class:`~durable_jobs.errors.DurableJobError`);
* nothing malformed becomes LOST or FAILED: a wrong type in a field that is read is
  :class:`~durable_jobs.errors.MalformedAnswer` (unknown); LOST needs the documented 404 and well-formed second
  source and evidence; FAILED needs an answer that says so in well-formed JSON.

No sockets: the client's requests go to a :class:`~durable_jobs.testing.transport.MockTransport`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable_jobs.clients.kubernetes import KubeObject, KubernetesClient, KubernetesConfig
from durable_jobs.clients.kubernetes.errors import api_error, parse_status
from durable_jobs.clients.kubernetes.schemas import KubeStatus
from durable_jobs.clients.kubernetes.status import projector
from durable_jobs.clients.kubernetes.watch import Informer
from durable_jobs.errors import DurableJobError, MalformedAnswer
from durable_jobs.status import JobState
from durable_jobs.testing.transport import MockTransport, response
from durable_jobs.transport import retry
from durable_jobs.transport.base import Request, Response
from durable_jobs.transport.http import close_sessions, use_transport

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOKEN = "dj0123456789abcdef0123"
UID = "0b7c3f6e-5a43-4d5e-9a57-0c9d9a3b1d2e"
NAME = f"load-{TOKEN}"
LOC = {"kind": "Job", "namespace": "batch", "name": NAME, "uid": UID}


@pytest.fixture(autouse=True, scope="module")
def _no_retry_pauses() -> Any:
    """The client's retries of transient answers, without their pauses (the fuzzer answers instantly)."""
    with retry.instant_waits():
        yield


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["Failed", "True", "Complete", "NotFound", "Status", NAME, UID, TOKEN, "Succeeded"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)
keys = st.sampled_from(
    ["metadata", "status", "spec", "items", "type", "object", "kind", "code", "reason", "conditions", "phase", "name"]
)
# JSON whose keys are often the ones the client reads: more likely to reach deep into the schemas
shaped = st.recursive(
    json_values,
    lambda children: st.dictionaries(keys | st.text(max_size=8), children, max_size=5) | st.lists(children, max_size=3),
    max_leaves=30,
)
bodies = st.one_of(
    shaped.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.just(b"[" * 5000 + b"]" * 5000),
    st.just(b""),
    st.just(b"<html>502 Bad Gateway</html>"),
)


def failed_job() -> dict[str, Any]:
    cond = {"status": "True", "reason": "BackoffLimitExceeded", "message": "backoff"}
    return {
        "metadata": {"name": NAME, "uid": UID, "resourceVersion": "5", "deletionTimestamp": None},
        "spec": {"selector": {"matchLabels": {"controller-uid": UID}}},
        "status": {"active": 0, "ready": 0, "succeeded": 0, "failed": 1, "conditions": [{**cond, "type": "Failed"}]},
    }


def failed_pod() -> dict[str, Any]:
    term = {"exitCode": 1, "reason": "Error", "message": "boom"}
    return {
        "metadata": {"name": NAME, "uid": UID, "resourceVersion": "5", "deletionTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "main"}]},
        "status": {
            "phase": "Failed",
            "reason": "Error",
            "message": "failed",
            "conditions": [{"type": "Ready", "status": "False", "reason": "x", "message": "y"}],
            "containerStatuses": [
                {"name": "main", "state": {"terminated": term, "waiting": None, "running": None}, "lastState": {}}
            ],
            "initContainerStatuses": [{"name": "init", "state": {"terminated": {"exitCode": 0}}}],
        },
    }


def failed_app() -> dict[str, Any]:
    return {
        "metadata": {"name": NAME, "uid": UID, "resourceVersion": "5"},
        "spec": {"restartPolicy": {"type": "Never"}},
        "status": {
            "applicationState": {"state": "FAILED", "errorMessage": "driver failed"},
            "sparkApplicationId": "spark-1",
            "driverInfo": {"podName": "x-driver", "webUIIngressAddress": "spark.example.com"},
            "submissionAttempts": 1,
        },
    }


STR, INT, LIST, DICT, NONE = (str,), (int,), (list,), (dict,), (type(None),)
# every field each normalizer reads, with the JSON types it accepts (None where the field is optional)
FIELDS: dict[str, tuple[Callable[[], dict[str, Any]], list[tuple[tuple[Any, ...], tuple[type, ...]]]]] = {
    "Job": (
        failed_job,
        [
            (("metadata",), DICT),
            (("metadata", "name"), STR),
            (("metadata", "uid"), STR),
            (("metadata", "resourceVersion"), STR),
            (("metadata", "deletionTimestamp"), STR + NONE),
            (("spec",), DICT + NONE),
            (("spec", "selector"), DICT + NONE),
            (("spec", "selector", "matchLabels"), DICT + NONE),
            (("status",), DICT + NONE),
            (("status", "conditions"), LIST + NONE),
            (("status", "conditions", 0), DICT),
            (("status", "conditions", 0, "type"), STR),
            (("status", "conditions", 0, "status"), STR),
            (("status", "conditions", 0, "reason"), STR + NONE),
            (("status", "conditions", 0, "message"), STR + NONE),
            (("status", "active"), INT + NONE),
            (("status", "ready"), INT + NONE),
            (("status", "succeeded"), INT + NONE),
            (("status", "failed"), INT + NONE),
        ],
    ),
    "Pod": (
        failed_pod,
        [
            (("metadata", "name"), STR),
            (("metadata", "uid"), STR),
            (("metadata", "deletionTimestamp"), STR + NONE),
            (("spec", "containers"), LIST + NONE),
            (("spec", "containers", 0, "name"), STR),
            (("status",), DICT + NONE),
            (("status", "phase"), STR + NONE),
            (("status", "reason"), STR + NONE),
            (("status", "message"), STR + NONE),
            (("status", "conditions"), LIST + NONE),
            (("status", "conditions", 0, "type"), STR),
            (("status", "conditions", 0, "status"), STR),
            (("status", "containerStatuses"), LIST + NONE),
            (("status", "containerStatuses", 0), DICT),
            (("status", "containerStatuses", 0, "name"), STR),
            (("status", "containerStatuses", 0, "state"), DICT + NONE),
            (("status", "containerStatuses", 0, "state", "terminated"), DICT + NONE),
            (("status", "containerStatuses", 0, "state", "terminated", "exitCode"), INT + NONE),
            (("status", "containerStatuses", 0, "state", "terminated", "reason"), STR + NONE),
            (("status", "containerStatuses", 0, "state", "terminated", "message"), STR + NONE),
            (("status", "containerStatuses", 0, "state", "waiting"), DICT + NONE),
            (("status", "containerStatuses", 0, "state", "running"), DICT + NONE),
            (("status", "containerStatuses", 0, "lastState"), DICT + NONE),
            (("status", "initContainerStatuses", 0, "state", "terminated", "exitCode"), INT + NONE),
        ],
    ),
    "SparkApplication": (
        failed_app,
        [
            (("metadata", "uid"), STR),
            (("spec", "restartPolicy"), DICT + NONE),
            (("spec", "restartPolicy", "type"), STR + NONE),
            (("status", "applicationState"), DICT + NONE),
            (("status", "applicationState", "state"), STR + NONE),
            (("status", "applicationState", "errorMessage"), STR + NONE),
            (("status", "sparkApplicationId"), STR + NONE),
            (("status", "driverInfo"), DICT + NONE),
            (("status", "driverInfo", "podName"), STR + NONE),
            (("status", "driverInfo", "webUIIngressAddress"), STR + NONE),
            (("status", "submissionAttempts"), INT + NONE),
        ],
    ),
}


def says_failed(kind: str, obj: Any) -> bool:
    """An independent reading: does this JSON, taken at its word, say the object failed?"""
    if not isinstance(obj, dict) or not isinstance(obj.get("status"), dict):
        return False
    status = obj["status"]
    if kind == "Job":
        conds = status.get("conditions")
        return isinstance(conds, list) and any(
            isinstance(c, dict) and c.get("type") == "Failed" and c.get("status") == "True" for c in conds
        )
    if kind == "Pod":
        return status.get("phase") == "Failed"
    state = status.get("applicationState")
    return isinstance(state, dict) and state.get("state") in ("FAILED", "SUBMISSION_FAILED")


def wrong_type(value: Any, allowed: tuple[type, ...]) -> bool:
    return type(value) not in allowed  # exact: a bool is not an int, a float is not an int


def set_path(obj: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    cur: Any = obj
    for part in path[:-1]:
        cur = cur[part]
    cur[path[-1]] = value


# --- the kinds' decoders and normalizers -------------------------------------------------------------------------


@FUZZ
@given(kind=st.sampled_from(sorted(FIELDS)), body=bodies)
def test_random_answers_about_an_object_never_escape_and_never_fail_or_lose_it(kind: str, body: bytes) -> None:
    read = projector(kind)
    try:
        _, status = read(body)
    except MalformedAnswer:
        return
    assert status.state is not JobState.LOST
    if status.state is JobState.FAILED:
        assert says_failed(kind, json.loads(body))


@FUZZ
@given(data=st.data(), kind=st.sampled_from(sorted(FIELDS)), value=json_values)
def test_a_wrong_type_in_any_field_read_is_malformed(data: st.DataObject, kind: str, value: Any) -> None:
    make, fields = FIELDS[kind]
    path, allowed = data.draw(st.sampled_from(fields))
    obj = make()
    set_path(obj, path, value)
    try:
        _, status = projector(kind)(json.dumps(obj).encode())
    except MalformedAnswer:
        if type(value) in allowed and not isinstance(value, (dict, list)):
            raise  # a value of the right type must be read (containers may hold wrong types inside)
        return
    assert not wrong_type(value, allowed) or value == [] or value == {}, (path, value)
    assert status.state is not JobState.LOST
    if status.state is JobState.FAILED:
        assert says_failed(kind, obj)


# --- the watch: list pages and event lines ------------------------------------------------------------------


class PageSource:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def describe(self) -> str:
        return "fuzzed pods"

    async def list_page(self, *, limit: int, continue_token: str | None) -> bytes:
        return self.body

    def open_stream(self, *, resource_version: str, timeout_seconds: int) -> Any:
        raise AssertionError("not used")


def pod_items() -> Any:
    return st.lists(st.one_of(shaped, st.builds(lambda v: {**failed_pod(), "status": v}, shaped)), max_size=4)


list_bodies = st.one_of(
    bodies,
    st.builds(
        lambda items, meta: json.dumps({"metadata": meta, "items": items}).encode(),
        pod_items(),
        st.one_of(shaped, st.just({"resourceVersion": "7", "continue": ""})),
    ),
)


@FUZZ
@given(body=list_bodies)
def test_a_random_list_page_is_read_or_refused_whole_object_by_object(body: bytes) -> None:
    inf = Informer(PageSource(body), projector("Pod"))
    listed: dict[str, Any] = {}
    try:
        LOOP.run_until_complete(inf._list_page(None, listed))
    except DurableJobError:
        return
    page = json.loads(body)
    for name, cached in listed.items():
        assert cached.status.state is not JobState.LOST
        if cached.status.state is JobState.FAILED:
            assert any(
                isinstance(i, dict) and (i.get("metadata") or {}).get("name") == name and says_failed("Pod", i)
                for i in page["items"]
            )


event_lines = st.one_of(
    bodies,
    st.builds(
        lambda etype, obj: json.dumps({"type": etype, "object": obj}).encode(),
        st.sampled_from(["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR", "WHAT"]) | json_values,
        st.one_of(shaped, st.builds(lambda v: {**failed_pod(), "status": v}, shaped), st.just(failed_pod())),
    ),
)


@FUZZ
@given(lines=st.lists(event_lines, min_size=1, max_size=4))
def test_random_watch_lines_relist_or_apply_and_never_crash_the_informer(lines: list[bytes]) -> None:
    inf = Informer(PageSource(b""), projector("Pod"))
    applied: list[Any] = []  # every object of a line the informer took: a cached FAILED came from one of them
    for line in lines:
        try:
            inf._on_line(line)
        except DurableJobError:
            continue
        event = json.loads(line)
        applied.append(event.get("object") if isinstance(event, dict) else None)
        for cached in inf.objects.values():
            assert cached.status.state is not JobState.LOST
            if cached.status.state is JobState.FAILED:
                assert any(says_failed("Pod", obj) or obj == failed_pod() for obj in applied)


# --- Status errors -----------------------------------------------------------------------------------------------


@FUZZ
@given(
    code=st.integers(min_value=100, max_value=599),
    body=st.one_of(
        bodies, st.builds(lambda v: json.dumps({"kind": "Status", **v}).encode(), st.dictionaries(keys, json_values))
    ),
    retry_after=st.one_of(st.none(), st.text(max_size=12), st.just("3"), st.just("Wed, 21 Oct 2015 07:28:00 GMT")),
)
def test_any_error_answer_becomes_one_of_the_library_errors(code: int, body: bytes, retry_after: str | None) -> None:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    err = api_error(code, body, headers, "fuzz", ("sekrit-token",))
    assert isinstance(err, DurableJobError)
    assert "sekrit-token" not in str(err)
    st_ = parse_status(body)
    assert st_ is None or isinstance(st_, KubeStatus)


# --- the client end to end, on a mock transport -------------------------------------------------------------

answers = st.tuples(st.sampled_from([200, 201, 301, 307, 400, 401, 403, 404, 409, 410, 429, 468, 500, 503]), bodies)


def not_found_for(name: str) -> bytes:
    details = {"name": name, "kind": "jobs"}
    return json.dumps(
        {
            "kind": "Status",
            "status": "Failure",
            "code": 404,
            "reason": "NotFound",
            "message": "gone",
            "details": details,
        }
    ).encode()


def documented_404(code: int, body: bytes) -> bool:
    data = loads(body)
    return (
        code == 404
        and isinstance(data, dict)
        and data.get("kind") == "Status"
        and data.get("reason") == "NotFound"
        and isinstance(data.get("details"), dict)
        and data["details"].get("name") == NAME
    )


def well_formed_list(code: int, body: bytes) -> bool:
    data = loads(body)
    return 200 <= code < 300 and isinstance(data, dict) and isinstance(data.get("items"), list)


LOOP = asyncio.new_event_loop()  # one loop for every example: the client's connection is loaded once
CONFIG = KubernetesConfig(host="http://k8s.test:8080", token="fuzz-token-123456", watch=False)


def run_client(handler: Callable[[Request], Response], call: Callable[[KubernetesClient], Any]) -> Any:
    client = KubernetesClient(CONFIG)

    async def main() -> Any:
        with use_transport(MockTransport(handler)):
            return await call(client)

    return LOOP.run_until_complete(main())


@pytest.fixture(autouse=True, scope="module")
def _close_the_loop() -> Any:
    yield
    LOOP.run_until_complete(close_sessions())
    LOOP.close()


def route(get: tuple[int, bytes], second: tuple[int, bytes], events: tuple[int, bytes], pods: tuple[int, bytes]) -> Any:
    def handler(request: Request) -> Response:
        params = dict(request.params)
        if request.url.endswith(f"/jobs/{NAME}"):
            code, body = get
        elif request.url.endswith("/jobs"):
            code, body = second
        elif request.url.endswith("/events"):
            code, body = events
        elif request.url.endswith("/pods"):
            code, body = pods
        else:
            raise AssertionError(f"unexpected request {request.method} {request.url} {params}")
        headers = {"Location": "https://elsewhere.test/x"} if 300 <= code < 400 else None
        return response(code, body, headers=headers, content_type="application/json")

    return handler


@FUZZ
@given(
    get=st.one_of(answers, st.just((404, not_found_for(NAME))), st.builds(lambda b: (200, b), bodies)),
    second=st.one_of(answers, st.just((200, b'{"items": []}'))),
    events=st.one_of(answers, st.just((200, b'{"items": []}'))),
    pods=st.one_of(answers, st.just((200, b'{"items": []}'))),
)
def test_status_from_random_answers_is_lost_only_when_proven(get: Any, second: Any, events: Any, pods: Any) -> None:
    try:
        status = run_client(route(get, second, events, pods), lambda c: c.status(LOC))
    except DurableJobError:
        return
    if status.state is JobState.LOST:
        assert documented_404(*get), get
        assert well_formed_list(*second), second
        assert well_formed_list(*events) or events[0] == 403, events
        assert well_formed_list(*pods) or pods[0] == 403, pods
    if status.state is JobState.FAILED:
        remembered = status.extra.get("remembered")
        assert remembered or says_failed("Job", loads(get[1])), (get, status)


def test_lost_is_reachable_when_everything_agrees() -> None:
    empty = (200, b'{"items": []}')
    status = run_client(route((404, not_found_for(NAME)), empty, empty, empty), lambda c: c.status(LOC))
    assert status.state is JobState.LOST


def spec() -> KubeObject:
    return KubeObject(
        "Job", {"spec": {"template": {"spec": {"containers": [{"name": "m", "image": "i"}]}}}}, name="load"
    )


def loads(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def carries_token(body: bytes, uid: str) -> bool:
    data = loads(body)
    meta = data.get("metadata") if isinstance(data, dict) else None
    labels = meta.get("labels") if isinstance(meta, dict) else None
    return isinstance(labels, dict) and labels.get("durable-jobs.io/token") == TOKEN and meta.get("uid") == uid


def adoptable(uid: str) -> bytes:
    return json.dumps({"metadata": {"name": NAME, "uid": uid, "labels": {"durable-jobs.io/token": TOKEN}}}).encode()


@FUZZ
@given(
    post=st.one_of(answers, st.just((201, adoptable(UID)))),
    get=st.one_of(answers, st.just((404, not_found_for(NAME))), st.just((200, adoptable(UID)))),
)
def test_create_and_find_accept_only_an_object_carrying_the_token(post: Any, get: Any) -> None:
    def handler(request: Request) -> Response:
        code, body = post if request.method == "POST" else get
        headers = {"Location": "https://elsewhere.test/x"} if 300 <= code < 400 else None
        return response(code, body, headers=headers, content_type="application/json")

    try:
        loc = run_client(handler, lambda c: c.submit(spec(), TOKEN))
    except DurableJobError:
        loc = None
    if loc is not None:
        assert carries_token(post[1], loc["uid"]) or carries_token(get[1], loc["uid"]), (post, get)
    try:
        found = run_client(handler, lambda c: c.find(TOKEN, since=0, spec=spec()))
    except DurableJobError:
        return
    if found is None:
        assert documented_404(*get), get  # "not created" only on the documented answer: never a blind resubmit
    else:
        assert carries_token(get[1], found["uid"])


@FUZZ
@given(answer=answers)
def test_version_and_cancel_on_random_answers(answer: Any) -> None:
    def handler(request: Request) -> Response:
        return response(answer[0], answer[1], content_type="application/json")

    for call in (lambda c: c.version(), lambda c: c.cancel(LOC)):
        try:
            result = run_client(handler, call)
        except DurableJobError:
            continue
        assert result is None or isinstance(result, dict)
