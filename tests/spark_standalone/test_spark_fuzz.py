"""Property-based fuzzing of every decoder of the Spark standalone client.

Every answer the client reads (REST create/status/kill/readyz, the error responses, the master's ``/json/``
for polls, find and links, the worker's log page) is replaced by random JSON, random values in every field
the client reads, or random bytes. Whatever comes back:

* nothing escapes but the library's own errors (:class:`DurableJobError` subclasses);
* nothing malformed becomes LOST, FAILED, SUCCEEDED or CANCELLED: an oracle written independently of the
  client (``json.loads`` and exact type checks) says when a terminal state is justified;
* a malformed ``/json/`` never makes find say "no such driver" (which would submit a duplicate), and find
  never adopts a driver whose launch command lacks the token;
* a malformed 2xx answer to create is never a permanent error.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable_jobs.clients.base import locator_key
from durable_jobs.clients.spark_standalone import (
    DRIVER_ID_RE,
    SparkApplication,
    SparkStandaloneClient,
    SparkStandaloneConfig,
)
from durable_jobs.errors import DurableJobError, PermanentError
from durable_jobs.status import JobState, JobStatus
from durable_jobs.testing.transport import MockTransport, response
from durable_jobs.transport import retry
from durable_jobs.transport.base import Request, Response
from durable_jobs.transport.http import use_transport

REST = "http://127.0.0.1:6066"
UI = "http://127.0.0.1:8080"
APP = SparkApplication(app_resource="file:/apps/a.jar", main_class="demo.Main", name="n")
TOKEN = "dj0123456789abcdef0123"
FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
TERMINAL = {
    "FINISHED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
    "ERROR": JobState.FAILED,
    "KILLED": JobState.CANCELLED,
}

# --- strategies ------------------------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
states = st.sampled_from(
    ["SUBMITTED", "RUNNING", "RELAUNCHING", "UNKNOWN", "FINISHED", "FAILED", "ERROR", "KILLED", "", "running", "ZOMBIE"]
)
ids = st.sampled_from(["driver-1", "driver-2", "driver-3", "other"])


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The right kind of value most of the time, anything else sometimes, or the field left out."""
    return st.one_of(value, value, value, json_values, st.just(_MISSING))


_MISSING = object()


def obj(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A JSON object with these fields, each of a random (usually right) kind; or anything else at all."""

    def build(values: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in values.items() if v is not _MISSING}

    fixed = st.fixed_dictionaries({k: maybe(v) for k, v in fields.items()}).map(build)
    return st.one_of(fixed, fixed, fixed, json_values)


rest_status = obj(
    action=st.just("SubmissionStatusResponse"),
    success=st.booleans(),
    driverState=states,
    message=st.text(max_size=30) | st.sampled_from(["Current state is not alive: STANDBY"]),
    workerId=st.text(max_size=10),
    workerHostPort=st.text(max_size=10),
    submissionId=ids,
)
rest_create = obj(success=st.booleans(), submissionId=ids | st.text(max_size=10), message=st.text(max_size=20))
rest_kill = obj(
    success=st.booleans(),
    message=st.sampled_from(["Kill request submitted", "Driver x has already finished or does not exist", ""]),
)
driver_entry = obj(
    id=ids,
    state=states,
    starttime=st.sampled_from(["0", "1795255356000", "x", ""]) | st.integers(0, 2**45) | st.floats(allow_nan=False),
    mainclass=st.sampled_from(["demo.Main", "other.Main"]),
    worker=st.sampled_from(["worker-1", "None", "nope"]),
)
worker_entry = obj(id=st.sampled_from(["worker-1", "w2"]), webuiaddress=st.sampled_from([UI, "ftp://x", "", "x y"]))
listing = obj(
    status=st.sampled_from(["ALIVE", "ALIVE", "STANDBY", "RECOVERING"]),
    activedrivers=st.lists(driver_entry, max_size=4),
    completeddrivers=st.lists(driver_entry, max_size=4),
    workers=st.lists(worker_entry, max_size=3),
    url=st.text(max_size=5),
)


def as_body(value: Any) -> bytes:
    return json.dumps(value).encode()


bodies_of = {
    name: strategy.map(as_body)
    | st.binary(max_size=40)
    | strategy.map(lambda v: as_body(v)[: max(1, len(as_body(v)) // 2)])
    for name, strategy in {
        "status": rest_status,
        "create": rest_create,
        "kill": rest_kill,
        "json": listing,
    }.items()
}
http_statuses = st.sampled_from([200, 200, 200, 200, 201, 204, 302, 400, 401, 403, 404, 413, 468, 500, 503])


# --- the oracle: what a well-formed answer says, by exact types ---------------------------------------------------


def loads(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return _MISSING


def is_str(v: Any) -> bool:
    return isinstance(v, str)


def opt_str(d: dict[str, Any], k: str) -> bool:
    return k not in d or d[k] is None or isinstance(d[k], str)


STATUS_FIELDS = ("message", "driverState", "workerId", "workerHostPort")


def valid_rest(status: int, body: bytes, fields: tuple[str, ...] = STATUS_FIELDS) -> dict[str, Any] | None:
    """The REST answer as the client may read it (``fields``: the optional strings it reads besides
    ``success``); None when it is malformed or not a 2xx."""
    data = loads(body)
    if not 200 <= status < 300 or not isinstance(data, dict):
        return None
    if not isinstance(data.get("success"), bool):
        return None
    if not all(opt_str(data, k) for k in fields):
        return None
    return data


def valid_listing(status: int, body: bytes) -> dict[str, str] | None:
    """id -> state of a well-formed ALIVE ``/json/``; None when the client must not rely on it."""
    data = loads(body)
    if status != 200 or not isinstance(data, dict) or data.get("status") != "ALIVE":
        return None
    if "workers" in data and not isinstance(data["workers"], list):
        return None
    out: dict[str, str] = {}
    for key in ("activedrivers", "completeddrivers"):
        entries = data.get(key)
        if not isinstance(entries, list):
            return None
        for e in entries:
            if not (isinstance(e, dict) and is_str(e.get("id")) and is_str(e.get("state"))):
                return None
            out[e["id"]] = e["state"]
    return out


def justified(status: JobStatus, driver_id: str, rest: tuple[int, bytes], js: tuple[int, bytes]) -> bool:
    """Is this terminal status what one of the two sources, well-formed, says?"""
    r = valid_rest(*rest)
    listed = valid_listing(*js)
    if r is not None and r["success"] is True:
        raw = r.get("driverState")
        if isinstance(raw, str) and TERMINAL.get(raw) is status.state:
            return True  # the REST server says so
    if listed is not None and driver_id in listed:
        return TERMINAL.get(listed[driver_id]) is status.state  # /json/ says so
    # lost: the REST server does not know it, and a readable /json/ agrees
    return status.state is JobState.LOST and listed is not None and r is not None and r["success"] is False


# --- running the client against the fuzzed answers ----------------------------------------------------------------


def client(**kw: Any) -> SparkStandaloneClient:
    return SparkStandaloneClient(SparkStandaloneConfig(rest_urls=(REST,), ui_urls=(UI,), timeout=5, **kw))


def serve(answers: dict[str, Callable[[Request], tuple[int, bytes]]]) -> MockTransport:
    def handler(req: Request) -> Response:
        path = req.url.split("://", 1)[1].split("/", 1)[1]
        kind = path.split("/")[2] if path.startswith("v1/submissions/") else path.strip("/")
        status, body = answers[kind](req)
        ctype = "application/json" if body[:1] in (b"{", b"[") else "text/html"
        return response(status, body, content_type=ctype)

    return MockTransport(handler)


def run(transport: MockTransport, coro: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    async def main() -> Any:
        with use_transport(transport):
            return await coro()

    return asyncio.run(main())


@pytest.fixture(autouse=True)
def no_backoff() -> Iterator[None]:
    """cancel() retries with a backoff; the fuzzer needs no real sleeps."""
    with retry.instant_waits():
        yield


# --- the properties ------------------------------------------------------------------------------------------------


@FUZZ
@given(rest_code=http_statuses, rest=bodies_of["status"], js=bodies_of["json"])
def test_status_of_one_driver(rest_code: int, rest: bytes, js: bytes) -> None:
    transport = serve({"status": lambda r: (rest_code, rest), "json": lambda r: (200, js)})
    try:
        st_ = run(transport, lambda: client().status({"driver_id": "driver-1"}))
    except DurableJobError:
        return
    assert isinstance(st_, JobStatus)
    if st_.state.is_terminal:
        assert justified(st_, "driver-1", (rest_code, rest), (200, js)), st_


def test_a_listing_with_malformed_workers_proves_nothing() -> None:
    """Found by the fuzzer: ``"workers": null`` beside well-formed driver lists once let an unknown id read as
    LOST. A ``/json/`` that find refuses as malformed is not evidence for a status either."""
    js = json.dumps({"status": "ALIVE", "activedrivers": [], "completeddrivers": [], "workers": None}).encode()
    rest = json.dumps({"action": "SubmissionStatusResponse", "success": False, "submissionId": "driver-1"}).encode()
    transport = serve({"status": lambda r: (200, rest), "json": lambda r: (200, js)})
    try:
        st_ = run(transport, lambda: client().status({"driver_id": "driver-1"}))
    except DurableJobError:
        return  # unknown: the right answer
    assert not st_.state.is_terminal, st_


@FUZZ
@given(
    js_code=st.sampled_from([200, 200, 200, 403, 500]),
    js=bodies_of["json"],
    rests=st.fixed_dictionaries(
        {d: st.tuples(http_statuses, bodies_of["status"]) for d in ("driver-1", "driver-2", "driver-3")}
    ),
)
def test_batched_statuses(js_code: int, js: bytes, rests: dict[str, tuple[int, bytes]]) -> None:
    def rest(req: Request) -> tuple[int, bytes]:
        return rests[req.url.rsplit("/", 1)[1]]

    transport = serve({"status": rest, "json": lambda r: (js_code, js)})
    locs = [{"driver_id": d} for d in rests]
    try:
        out = run(transport, lambda: client().statuses(locs))
    except DurableJobError:
        return
    assert isinstance(out, dict)
    for loc in locs:
        st_ = out.get(locator_key(loc))
        if st_ is None:
            continue  # left out: unknown this round
        assert isinstance(st_, JobStatus)
        if st_.state.is_terminal:
            assert justified(st_, loc["driver_id"], rests[loc["driver_id"]], (js_code, js)), (loc, st_)


@FUZZ
@given(code=http_statuses, body=bodies_of["create"])
def test_submit(code: int, body: bytes) -> None:
    transport = serve({"create": lambda r: (code, body)})
    try:
        loc = run(transport, lambda: client().submit(APP, TOKEN))
    except PermanentError:
        data = valid_rest(code, body, ("message", "submissionId"))
        # permanent only when the master answered an error status or said, well-formed, that it refused
        assert code >= 400 or (data is not None and data["success"] is False)
        return
    except DurableJobError:
        return
    data = valid_rest(code, body, ("message", "submissionId"))
    assert data is not None and data["success"] is True and data.get("submissionId") == loc["driver_id"]
    assert DRIVER_ID_RE.match(loc["driver_id"])


@FUZZ
@given(code=http_statuses, body=bodies_of["kill"])
def test_cancel(code: int, body: bytes) -> None:
    transport = serve({"kill": lambda r: (code, body)})
    try:
        run(transport, lambda: client().cancel({"driver_id": "driver-1"}))
    except DurableJobError:
        return
    data = valid_rest(code, body, ("message",))
    assert data is not None
    message = data.get("message") or ""
    assert data["success"] is True or "does not exist" in message or "already finished" in message


@FUZZ
@given(code=http_statuses, body=bodies_of["status"])
def test_readyz(code: int, body: bytes) -> None:
    transport = serve({"readyz": lambda r: (code, body)})
    try:
        ok = run(transport, lambda: client().readyz())
    except DurableJobError:
        return
    data = valid_rest(code, body, ("message",))
    assert data is not None and ok is data["success"]


logs = st.sampled_from(
    [
        f'Launch Command: "java" "-Dspark.app.name=n [{TOKEN}]" "-Dspark.durable_jobs.submission_tag={TOKEN}"',
        'Launch Command: "java" "-Dspark.app.name=n [djffffffffffffffffffff]" '
        '"-Dspark.durable_jobs.submission_tag=djffffffffffffffffffff"',
        'Launch Command: "java" "-Dspark.durable_jobs.submission_tag=*********(redacted)"',
        "==== Bytes 0-0 of 0 ====",
        "",
    ]
) | st.text(max_size=60)


@FUZZ
@given(
    code=st.sampled_from([200, 200, 200, 404, 500]),
    js=bodies_of["json"],
    log_code=st.sampled_from([200, 200, 404, 403, 503]),
    log=logs,
)
def test_find(code: int, js: bytes, log_code: int, log: str) -> None:
    transport = serve({"json": lambda r: (code, js), "log": lambda r: (log_code, log.encode())})
    try:
        found = run(transport, lambda: client().find(TOKEN, since=0.0, spec=APP))
    except DurableJobError:
        return
    if found is None:
        # "no such driver" submits: only a well-formed listing may say so
        assert valid_listing(code, js) is not None
    else:
        assert log_code == 200 and (f"[{TOKEN}]" in log or f"submission_tag={TOKEN}" in log), (found, log)


@FUZZ
@given(code=st.sampled_from([200, 200, 200, 500]), js=bodies_of["json"])
def test_links(code: int, js: bytes) -> None:
    transport = serve({"json": lambda r: (code, js)})
    links = run(transport, lambda: client().links({"driver_id": "driver-1"}))
    assert links["master_ui_url"] == UI
    if "driver_ui_url" in links:
        assert links["driver_ui_url"].startswith(("http://", "https://")) and " " not in links["driver_ui_url"]


def check_everything(body: bytes, code: int) -> None:
    """Every call of the client, with this answer to every request: only our errors, nothing lost or failed."""
    transport = serve({k: (lambda r: (code, body)) for k in ("status", "json", "create", "kill", "readyz", "log")})
    c = client()

    async def everything() -> None:
        for call in (
            lambda: c.status({"driver_id": "driver-1"}),
            lambda: c.statuses([{"driver_id": "driver-1"}, {"driver_id": "driver-2"}]),
            lambda: c.submit(APP, TOKEN),
            lambda: c.cancel({"driver_id": "driver-1"}),
            lambda: c.find(TOKEN, since=0.0, spec=APP),
            lambda: c.links({"driver_id": "driver-1"}),
            lambda: c.readyz(),
        ):
            try:
                result = await call()
            except DurableJobError:
                continue
            statuses = (
                [result] if isinstance(result, JobStatus) else list(result.values()) if isinstance(result, dict) else []
            )
            for st_ in statuses:
                if isinstance(st_, JobStatus) and st_.state.is_terminal:
                    # one body answers REST and /json/ alike: only a coherent pair may end a job
                    assert justified(st_, "driver-1", (code, body), (code, body)) or justified(
                        st_, "driver-2", (code, body), (code, body)
                    ), st_

    run(transport, everything)


@FUZZ
@given(body=st.binary(max_size=200) | json_values.map(as_body), code=http_statuses)
def test_random_bytes_and_error_pages_anywhere(body: bytes, code: int) -> None:
    check_everything(body, code)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 200_000 + b"]" * 200_000,
        b'{"status": "ALIVE", "activedrivers": [' + b"[" * 200_000 + b"]" * 200_000 + b'], "completeddrivers": []}',
        b'{"success": false, "message": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"status": "ALIVE", "activedrivers": [], "completeddrivers": [], "workers": ['
        + b"{" * 1000
        + b"}" * 1000
        + b"]}",
    ],
)
def test_deep_nesting_is_malformed_everywhere(body: bytes) -> None:
    check_everything(body, 200)
