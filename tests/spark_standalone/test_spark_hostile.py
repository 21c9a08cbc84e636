"""Hostile Spark masters, served over real sockets on 127.0.0.1.

Every answer a proxy, a buggy or overloaded master or an outage really produces (wrong JSON types in every
field the client reads, nesting, truncated / empty / huge bodies, HTML pages, redirects to other hosts and
paths, 401 pages that echo our headers, hangs, resets, ``success:false`` for live drivers, unknown states)
is served by :class:`durable_jobs_harness.fake_spark.FakeSparkMaster` to the real client, poller and protocol.
For each: no crash, no hang, the deadline still fires, only the affected driver is touched (two drivers
watched on one master), never LOST, and never a second submission (the protocol on the same answers).

Also here: the credential rotation while triggers wait, clock skew on the crash-recovery path, and a
finished driver forgotten while nobody watched (the same on a real Spark master is in
test_spark_standalone.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from durable_jobs import failpoints
from durable_jobs.clients.spark_standalone import SparkApplication, SparkStandaloneClient, SparkStandaloneConfig
from durable_jobs.errors import AuthError, TransientError
from durable_jobs.hooks.spark_standalone import SparkStandaloneHook
from durable_jobs.polling import PollSettings, WaitResult, active_pollers, poller_for, wait_for_outcome
from durable_jobs.protocol import Decision, Defer, Finished, JobLost, JobProtocol, ProtocolSettings, RetryLater
from durable_jobs.record import STATE_KEY, JobRecord, TaskIdentity
from durable_jobs.transport.http import close_sessions
from durable_jobs.triggers.spark_standalone import SparkStandaloneTrigger
from durable_jobs_harness.fake_spark import (
    FakeSparkMaster,
    Fault,
    echo_headers_401,
    hang,
    html,
    json_body,
    nested,
    raw_body,
    redirect,
    reset,
    truncated,
)

SECRET = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkdXJhYmxlLWpvYnMifQ.c2lnbmF0dXJlLXRoYXQtaXMtc2VjcmV0"
A = "driver-20261121100236-0101"  # the driver whose answers are hostile
B = "driver-20261121100236-0102"  # a healthy driver on the same master: it must finish as if nothing happened
APP = SparkApplication(app_resource="file:/apps/a.jar", main_class="demo.Main", name="hostile")
SETTINGS = PollSettings(interval=0.15, lost_confirmations=2, unknown_budget=600)
DEADLINE = 1.2  # seconds: every wait on A ends by its deadline
LIMIT = 256 * 1024  # max_response_bytes of the hostile tests
HUGE = b'{"success": true, "driverState": "RUNNING", "message": "' + b"x" * (2 * LIMIT) + b'"}'


class DictStore:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = json.loads(json.dumps(value))


@pytest.fixture
async def master() -> AsyncIterator[FakeSparkMaster]:
    m = await FakeSparkMaster(bearer=SECRET).start()
    try:
        yield m
    finally:
        await m.stop()
        await close_sessions()


@pytest.fixture
async def elsewhere() -> AsyncIterator[FakeSparkMaster]:
    """A server no connection names: a redirect target that must never receive anything."""
    m = await FakeSparkMaster().start()
    try:
        yield m
    finally:
        await m.stop()


def make_client(master: FakeSparkMaster, **kw: Any) -> SparkStandaloneClient:
    kw.setdefault("timeout", 0.5)
    kw.setdefault("max_response_bytes", LIMIT)
    kw.setdefault("bearer_token", SECRET)
    return SparkStandaloneClient(SparkStandaloneConfig(rest_urls=(master.url,), ui_urls=(master.url,), **kw))


class only_for:
    """A fault of the status request of one driver; the others get the real answer. Counts its uses."""

    def __init__(self, driver_id: str, fault: Fault) -> None:
        self.driver_id = driver_id
        self.fault = fault
        self.hits = 0

    def __call__(self, request: web.Request) -> Any:
        if request.match_info.get("id") != self.driver_id:
            return None
        self.hits += 1
        return self.fault(request)


def identity(try_number: int = 1, clear_number: int = 0, run_id: str = "run1") -> TaskIdentity:
    return TaskIdentity("hostile_dag", run_id, "spark", -1, try_number, clear_number)


def submitted_record(driver_id: str, run_id: str = "run1") -> dict[str, Any]:
    rec = JobRecord.intent(system="spark-standalone", identity=identity(run_id=run_id), generation=0, timeout=None)
    return rec.submitted({"driver_id": driver_id}).to_json()


async def start_protocol(
    client: SparkStandaloneClient,
    store: DictStore,
    *,
    try_number: int = 1,
    clear_number: int = 0,
    run_id: str = "run1",
    on_lost: str = "fail",
) -> Decision:
    """``execute()`` of a try, on a worker thread, its coroutines on this loop (where the fake master runs)."""
    loop = asyncio.get_running_loop()

    def run(aw: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(aw, loop).result(30)

    proto = JobProtocol(
        client=client,
        store=store,
        identity=identity(try_number, clear_number, run_id),
        spec=lambda _record: APP,
        run=run,
        settings=ProtocolSettings(confirm_delay=0.05, lost_confirmations=2, on_lost=on_lost),
        sleep=time.sleep,
    )
    return await asyncio.to_thread(proto.start)


async def watch_two(master: FakeSparkMaster, client: SparkStandaloneClient) -> tuple[WaitResult, WaitResult, float]:
    """Wait on A (hostile) and B (finishes after 0.2 s) together, with a deadline; also how long A took."""
    master.drivers.update({A: "RUNNING", B: "RUNNING"})
    asyncio.get_running_loop().call_later(0.2, master.drivers.__setitem__, B, "FINISHED")
    deadline = time.time() + DEADLINE
    started = time.monotonic()

    async def timed(loc: dict[str, str]) -> tuple[WaitResult, float]:
        result = await wait_for_outcome(client, loc, SETTINGS, deadline=deadline)
        return result, time.monotonic() - started

    (ra, ta), (rb, _) = await asyncio.wait_for(
        asyncio.gather(timed({"driver_id": A}), timed({"driver_id": B})), DEADLINE + 15
    )
    return ra, rb, ta


async def assert_only_a_is_touched(master: FakeSparkMaster, client: SparkStandaloneClient, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    ra, rb, took = await watch_two(master, client)
    assert rb.status == "succeeded", rb  # the healthy driver on the same master is not touched
    assert ra.status == "timeout", ra  # never lost, never failed, never an error: the deadline fired
    assert took < DEADLINE + 1.5, took
    assert all(p.restarts == 0 for p in active_pollers())  # the poller never died
    # the worker's check of A on the same answers defers again: never a second submission
    store = DictStore()
    store.data[STATE_KEY] = submitted_record(A)
    decision = await start_protocol(client, store)
    assert isinstance(decision, Defer) and decision.record.job == {"driver_id": A}, decision
    assert master.created == [] and store.data[STATE_KEY]["generation"] == 0
    assert SECRET not in caplog.text


# --- REST answers about one driver -----------------------------------------------------------------------------

REST_FAULTS: dict[str, Callable[[FakeSparkMaster], Fault]] = {
    "success is the string true": lambda m: lambda r: json_body({"success": "true", "driverState": "FINISHED"}),
    "success is 1": lambda m: lambda r: json_body({"success": 1, "driverState": "FINISHED"}),
    "success is the string false": lambda m: lambda r: json_body({"success": "false"}),
    "success is 0": lambda m: lambda r: json_body({"success": 0}),
    "success is null": lambda m: lambda r: json_body({"success": None}),
    "success missing": lambda m: lambda r: json_body({"action": "SubmissionStatusResponse"}),
    "driverState is a number": lambda m: lambda r: json_body({"success": True, "driverState": 3}),
    "driverState missing": lambda m: lambda r: json_body({"success": True}),
    "driverState is a list": lambda m: lambda r: json_body({"success": True, "driverState": ["FAILED"]}),
    "message is an object": lambda m: lambda r: json_body({"success": True, "driverState": "FAILED", "message": {}}),
    "workerId is a list": lambda m: lambda r: json_body({"success": True, "driverState": "FINISHED", "workerId": []}),
    "workerHostPort is a number": lambda m: (
        lambda r: json_body({"success": True, "driverState": "FINISHED", "workerHostPort": 1})
    ),
    "the answer is a list": lambda m: lambda r: json_body([{"success": False}]),
    "the answer is a string": lambda m: lambda r: json_body("success"),
    "deeply nested": lambda m: lambda r: raw_body(b'{"success": false, "message": ' + nested(50_000) + b"}"),
    "truncated body": lambda m: lambda r: truncated(r, b'{"success": false, "submissionId": "x"}'),
    "truncated JSON, whole HTTP": lambda m: lambda r: raw_body(b'{"success": fal'),
    "empty 200": lambda m: lambda r: raw_body(b""),
    "huge body": lambda m: lambda r: raw_body(HUGE),
    "HTML 500": lambda m: lambda r: html(500),
    "HTML 200 (a proxy page)": lambda m: lambda r: html(200, "<html>Please log in</html>"),
    "HTML 404": lambda m: lambda r: html(404),
    "468 unknown protocol": lambda m: (
        lambda r: json_body(
            {"action": "ErrorResponse", "highestProtocolVersion": "v1", "message": "Unknown protocol version"}, 468
        )
    ),
    "307 to another host": lambda m: lambda r: redirect("http://127.0.0.2:1/v1/submissions/status/" + A),
    "302 to another path": lambda m: lambda r: redirect(f"{m.url}/elsewhere", 302),
    "hang": lambda m: lambda r: hang(r, 5.0),
    "connection reset": lambda m: lambda r: reset(r),
    "unknown state": lambda m: lambda r: json_body({"success": True, "driverState": "ZOMBIE"}),
    "429 with Retry-After": lambda m: lambda r: web.Response(status=429, headers={"Retry-After": "1"}),
}


@pytest.mark.parametrize("case", list(REST_FAULTS))
async def test_a_hostile_rest_answer_about_one_driver(master: FakeSparkMaster, caplog: Any, case: str) -> None:
    master.json_hidden.add(A)  # /json/ does not list A, so every poll asks the REST server about it
    fault = only_for(A, REST_FAULTS[case](master))
    master.faults["status"] = fault
    await assert_only_a_is_touched(master, make_client(master), caplog)
    assert fault.hits >= 3  # every poll, and the worker's check, met the hostile answer


async def test_success_false_for_a_live_driver_is_not_lost(master: FakeSparkMaster, caplog: Any) -> None:
    master.rest_forgets.add(A)  # REST says "I do not know it"; /json/ lists it RUNNING
    await assert_only_a_is_touched(master, make_client(master), caplog)
    # with only A on the master (the one-job path): the same answer, RUNNING
    client = make_client(master)
    assert (await client.status({"driver_id": A})).raw_state == "RUNNING"


async def test_a_redirected_status_is_never_followed_elsewhere(
    master: FakeSparkMaster, elsewhere: FakeSparkMaster, caplog: Any
) -> None:
    master.json_hidden.add(A)
    master.faults["status"] = only_for(A, lambda r: redirect(f"{elsewhere.url}/v1/submissions/status/{A}"))
    elsewhere.drivers[A] = "FINISHED"  # what the other host would say, if anyone asked it
    await assert_only_a_is_touched(master, make_client(master), caplog)
    assert elsewhere.requests == []


# --- /json/ answers (about every driver) ---------------------------------------------------------------------------


_DROP = object()  # a key to leave out


def doc_with(master: FakeSparkMaster, **changes: Any) -> Callable[[web.Request], web.Response]:
    """/json/ with top-level keys changed (or left out)."""

    def answer(request: web.Request) -> web.Response:
        doc = master.json_document()
        doc.update(changes)
        return json_body({k: v for k, v in doc.items() if v is not _DROP})

    return answer


def a_entry(master: FakeSparkMaster, **changes: Any) -> Callable[[web.Request], web.Response]:
    """/json/ with A's entry changed (B's stays right)."""

    def answer(request: web.Request) -> web.Response:
        doc = master.json_document()
        for d in doc["activedrivers"]:
            if d["id"] == A:
                d.update(changes)
                for k, v in list(d.items()):
                    if v is _DROP:
                        del d[k]
        return json_body(doc)

    return answer


async def chunked_huge(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    await resp.write(b'{"status": "ALIVE", "activedrivers": [')
    for _ in range(2 * LIMIT // 4096 + 2):
        await resp.write(b'{"id": "d", "state": "RUNNING"},' * 128)
    await resp.write(b'{"id": "d", "state": "RUNNING"}], "completeddrivers": []}')
    await resp.write_eof()
    return resp


JSON_FAULTS: dict[str, Callable[[FakeSparkMaster], Fault]] = {
    "activedrivers is null": lambda m: doc_with(m, activedrivers=None),
    "activedrivers is a number": lambda m: doc_with(m, activedrivers=7),
    "activedrivers is a list of strings": lambda m: doc_with(m, activedrivers=[A, B]),
    "activedrivers is a list of lists": lambda m: doc_with(m, activedrivers=[[A, "RUNNING"]]),
    "activedrivers is an object": lambda m: doc_with(m, activedrivers={"id": A, "state": "RUNNING"}),
    "completeddrivers missing": lambda m: doc_with(m, completeddrivers=_DROP),
    "completeddrivers is a string": lambda m: doc_with(m, completeddrivers="none"),
    "status is a number": lambda m: doc_with(m, status=1),
    "status is STANDBY": lambda m: doc_with(m, status="STANDBY"),
    "workers is null": lambda m: doc_with(m, workers=None),
    "a driver id is a number": lambda m: a_entry(m, id=101),
    "a driver state is null": lambda m: a_entry(m, state=None),
    "a driver state is missing": lambda m: a_entry(m, state=_DROP),
    "a driver entry nests deeply": lambda m: a_entry(m, resources=json.loads("[" * 500 + "]" * 500)),
    "the document nests deeply": lambda m: lambda r: raw_body(nested(100_000)),
    "the answer is a list": lambda m: lambda r: json_body([m.json_document()]),
    "truncated body": lambda m: lambda r: truncated(r, json.dumps(m.json_document()).encode()),
    "truncated JSON, whole HTTP": lambda m: lambda r: raw_body(json.dumps(m.json_document()).encode()[:-9]),
    "empty 200": lambda m: lambda r: raw_body(b""),
    "huge body": lambda m: lambda r: raw_body(b'{"status": "ALIVE", "x": "' + b"y" * (2 * LIMIT) + b'"}'),
    "huge chunked body": lambda m: chunked_huge,
    "HTML 500": lambda m: lambda r: html(500),
    "HTML 200": lambda m: lambda r: html(200, "<html>Spark Master at spark://x</html>"),
    "307 to another host": lambda m: lambda r: redirect("http://127.0.0.2:1/json/"),
    "302 to another path": lambda m: lambda r: redirect(f"{m.url}/login", 302),
    "401 that echoes our headers": lambda m: echo_headers_401,
    "hang": lambda m: lambda r: hang(r, 5.0),
    "connection reset": lambda m: lambda r: reset(r),
}


@pytest.mark.parametrize("case", list(JSON_FAULTS))
async def test_a_hostile_json_answer(master: FakeSparkMaster, caplog: Any, case: str) -> None:
    master.faults["json"] = JSON_FAULTS[case](master)
    client = make_client(master)
    await assert_only_a_is_touched(master, client, caplog)
    # the REST server was asked for at most status_concurrency drivers per poll, never one request per driver
    assert master.requests.count("status") <= master.requests.count("json") * client.status_concurrency


# --- a 401 that echoes our headers, on every request ---------------------------------------------------------------


async def test_a_401_page_that_echoes_the_token_leaks_it_nowhere(master: FakeSparkMaster, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    master.faults["status"] = echo_headers_401
    master.faults["json"] = echo_headers_401
    master.drivers.update({A: "RUNNING", B: "RUNNING"})
    client = make_client(master)
    with pytest.raises(AuthError) as exc_info:
        await client.status({"driver_id": A})
    assert SECRET not in str(exc_info.value) and "401" in str(exc_info.value)
    assert any(SECRET in h for h in master.auth_seen)  # the page really had the token to echo
    trigger_a = SparkStandaloneTrigger(job={"driver_id": A}, conn_id="x", token="t", generation=0, poll_interval=0.15)
    trigger_b = SparkStandaloneTrigger(job={"driver_id": B}, conn_id="x", token="t", generation=0, poll_interval=0.15)
    events = await asyncio.wait_for(asyncio.gather(trigger_a.wait(client), trigger_b.wait(client)), 15)
    assert [e["status"] for e in events] == ["error", "error"]  # credentials refused for everyone
    assert SECRET not in json.dumps(events)
    assert SECRET not in caplog.text
    store = DictStore()
    store.data[STATE_KEY] = submitted_record(A)
    with pytest.raises(AuthError) as exc_info:
        await start_protocol(client, store)
    assert SECRET not in str(exc_info.value)
    assert master.created == []


# --- create: redirects and malformed answers never duplicate --------------------------------------------------------


async def _created_then(master: FakeSparkMaster, request: web.Request, answer: Any) -> web.StreamResponse:
    """The master creates the driver, then its answer goes bad on the way back."""
    master.create_driver(await request.json())
    out = answer(request)
    return await out if asyncio.iscoroutine(out) else out


CREATE_FAULTS: dict[str, Callable[[FakeSparkMaster], Fault]] = {
    "created, then success is the string true": lambda m: (
        lambda r: _created_then(m, r, lambda r: json_body({"success": "true", "submissionId": "driver-x"}))
    ),
    "created, then no submissionId": lambda m: lambda r: _created_then(m, r, lambda r: json_body({"success": True})),
    "created, then a bad submissionId": lambda m: (
        lambda r: _created_then(m, r, lambda r: json_body({"success": True, "submissionId": "../../x"}))
    ),
    "created, then truncated": lambda m: (
        lambda r: _created_then(
            m, r, lambda r: truncated(r, b'{"success": true, "submissionId": "driver-20261121100236-0001"}')
        )
    ),
    "created, then empty": lambda m: lambda r: _created_then(m, r, lambda r: raw_body(b"")),
    "created, then an HTML 200": lambda m: lambda r: _created_then(m, r, lambda r: html(200)),
    "created, then a 502": lambda m: lambda r: _created_then(m, r, lambda r: html(502)),
    "created, then hangs": lambda m: lambda r: _created_then(m, r, lambda r: hang(r, 5.0)),
    "created, then reset": lambda m: lambda r: _created_then(m, r, reset),
    "not created: 500": lambda m: lambda r: html(500),
    "not created: 307 to another host": lambda m: lambda r: redirect("http://127.0.0.2:1/v1/submissions/create"),
}


@pytest.mark.parametrize("case", list(CREATE_FAULTS))
async def test_a_hostile_create_answer_never_duplicates(master: FakeSparkMaster, case: str) -> None:
    client = make_client(master)
    store = DictStore()
    master.faults["create"] = CREATE_FAULTS[case](master)
    try:
        first: Defer | None = await start_protocol(client, store)
    except RetryLater:  # never a permanent error, never an id from a bad answer
        first = None
    created_by_the_bad_try = len(master.created)
    if created_by_the_bad_try:
        # the driver exists: the same try looked its token up and goes on with it
        assert isinstance(first, Defer) and first.record.job == {"driver_id": "driver-20261121100236-0001"}
        assert store.data[STATE_KEY]["phase"] == "submitted"
    else:
        assert first is None
        assert store.data[STATE_KEY]["phase"] == "submitting" and store.data[STATE_KEY]["job"] is None
    master.faults.clear()
    decision = await start_protocol(client, store, try_number=2)  # find by token first
    assert isinstance(decision, Defer), decision
    assert len(master.created) == 1, master.created  # adopted, or submitted once when nothing was created
    assert decision.adopted is False  # a recorded driver is re-attached; a fresh one submitted
    assert decision.record.job == {"driver_id": "driver-20261121100236-0001"}


async def test_a_307_on_create_is_never_re_posted(master: FakeSparkMaster, elsewhere: FakeSparkMaster) -> None:
    client = make_client(master)
    store = DictStore()
    master.faults["create"] = lambda r: redirect(f"{elsewhere.url}/v1/submissions/create")
    with pytest.raises(RetryLater, match="never re-sent"):
        await start_protocol(client, store)
    assert elsewhere.requests == [] and elsewhere.created == []  # the submission (and its properties) stayed home
    assert master.created == []
    master.faults.clear()
    decision = await start_protocol(client, store, try_number=2)
    assert isinstance(decision, Defer) and len(master.created) == 1 and elsewhere.created == []


async def test_ha_moves_a_refused_or_redirected_create_to_the_next_master(
    master: FakeSparkMaster, elsewhere: FakeSparkMaster
) -> None:
    standby = await FakeSparkMaster(bearer=SECRET).start()
    try:
        standby.faults["create"] = lambda r: redirect(f"{elsewhere.url}/v1/submissions/create")
        client = SparkStandaloneClient(
            SparkStandaloneConfig(
                rest_urls=("http://127.0.0.1:1", standby.url, master.url),
                ui_urls=(master.url,),
                bearer_token=SECRET,
                timeout=1,
            )
        )
        loc = await client.submit(APP, "dj0123456789abcdef0123")
        assert loc == {"driver_id": "driver-20261121100236-0001"}
        assert standby.created == [] and elsewhere.requests == [] and len(master.created) == 1
    finally:
        await standby.stop()


# --- find: a hostile /json/ or log page never submits blindly --------------------------------------------------------


FIND_FAULTS: dict[str, tuple[str, Callable[[FakeSparkMaster], Fault]]] = {
    "/json/ activedrivers null": ("json", lambda m: doc_with(m, activedrivers=None)),
    "/json/ starttime is a list": ("json", lambda m: lambda r: json_body(_with_entries(m, starttime=[1]))),
    "/json/ mainclass is null": ("json", lambda m: lambda r: json_body(_with_entries(m, mainclass=None))),
    "/json/ worker is a number": ("json", lambda m: lambda r: json_body(_with_entries(m, worker=1))),
    "/json/ workers' address is a list": (
        "json",
        lambda m: doc_with(m, workers=[{"id": "worker-1", "webuiaddress": [m.url]}]),
    ),
    "/json/ truncated": ("json", lambda m: lambda r: truncated(r, json.dumps(m.json_document()).encode())),
    "/json/ HTML 500": ("json", lambda m: lambda r: html(500)),
    "/json/ 401 echo": ("json", lambda m: echo_headers_401),
    "/json/ hang": ("json", lambda m: lambda r: hang(r, 5.0)),
    "log page HTML 503": ("log", lambda m: lambda r: html(503)),
    "log page huge": (
        "log",
        lambda m: lambda r: raw_body(b"Launch Command: " + b"x" * (2 << 20), content_type="text/plain"),
    ),
    "log page hangs": ("log", lambda m: lambda r: hang(r, 5.0)),
    "log page 307 elsewhere": ("log", lambda m: lambda r: redirect("http://127.0.0.2:1/log/")),
}


def _with_entries(master: FakeSparkMaster, **changes: Any) -> dict[str, Any]:
    doc = master.json_document()
    for d in doc["activedrivers"]:
        d.update(changes)
    return doc


@pytest.mark.parametrize("case", list(FIND_FAULTS))
async def test_find_on_hostile_answers_retries_later_never_submits(master: FakeSparkMaster, case: str) -> None:
    client = make_client(master)
    store = DictStore()
    failpoints.configure(f"{failpoints.AFTER_SUBMIT}=raise")
    try:
        with pytest.raises(failpoints.SimulatedCrash):
            await start_protocol(client, store)
    finally:
        failpoints.configure("")
    assert len(master.created) == 1 and store.data[STATE_KEY]["phase"] == "submitting"
    kind, fault = FIND_FAULTS[case]
    master.faults[kind] = fault(master)
    with pytest.raises((RetryLater, AuthError)):  # cannot look (or refused): never "not found", never a submit
        await start_protocol(client, store, try_number=2)
    assert len(master.created) == 1
    master.faults.clear()
    decision = await start_protocol(client, store, try_number=3)
    assert isinstance(decision, Defer) and decision.adopted and len(master.created) == 1


# --- clock skew on the crash-recovery path ----------------------------------------------------------------------


@pytest.mark.parametrize("master_skew", [-600.0, 0.0, 600.0])
@pytest.mark.parametrize("worker_skew", [-600.0, 0.0, 600.0])
async def test_clock_skew_of_ten_minutes_adopts_never_duplicates(
    master: FakeSparkMaster, monkeypatch: pytest.MonkeyPatch, master_skew: float, worker_skew: float
) -> None:
    """The crashed try's worker and the master disagree by up to 20 minutes: the next try still adopts."""
    import durable_jobs.record as record_mod
    from durable_jobs.clients.spark_standalone import listing as mod  # where _wall_clock is read

    master.clock_skew = master_skew
    client = make_client(master)
    store = DictStore()
    # an older driver of the same application, not ours, started just before the intent
    other = await client.submit(APP, "djffffffffffffffffffff")
    # a worker whose clock is `worker_skew` off writes the intent, submits, and dies before saving the id
    monkeypatch.setattr(record_mod, "time", _SkewedTime(worker_skew))
    monkeypatch.setattr(mod, "_wall_clock", _SkewedTime(worker_skew).time)
    failpoints.configure(f"{failpoints.AFTER_SUBMIT}=raise")
    try:
        with pytest.raises(failpoints.SimulatedCrash):
            await start_protocol(client, store)
    finally:
        failpoints.configure("")
    assert len(master.created) == 2
    ours = {"driver_id": "driver-20261121100236-0002"}
    record = store.data[STATE_KEY]
    for next_worker_skew in (worker_skew, 0.0):  # the retry on the same worker, or on one with a right clock
        monkeypatch.setattr(mod, "_wall_clock", _SkewedTime(next_worker_skew).time)
        found = await client.find(record["token"], since=record["intent_at"], spec=APP)
        assert found == ours, (master_skew, worker_skew, next_worker_skew)
    decision = await start_protocol(client, store, try_number=2)
    assert isinstance(decision, Defer) and decision.adopted and decision.record.job == ours
    assert len(master.created) == 2 and other != ours


class _SkewedTime:
    def __init__(self, skew: float) -> None:
        self.skew = skew

    def time(self) -> float:
        return time.time() + self.skew


# --- a finished driver forgotten while nobody watched -----------------------------------------------------------


async def test_forgotten_by_rest_but_listed_finished_returns_success(master: FakeSparkMaster) -> None:
    client = make_client(master)
    master.drivers[A] = "FINISHED"
    master.rest_forgets.add(A)  # evicted from what the REST server answers; /json/ still shows it finished
    store = DictStore()
    store.data[STATE_KEY] = submitted_record(A)
    decision = await start_protocol(client, store)
    assert isinstance(decision, Finished), decision
    assert store.data[STATE_KEY]["outcome"] == "succeeded" and master.created == []


async def test_forgotten_everywhere_fails_without_resubmitting(master: FakeSparkMaster) -> None:
    client = make_client(master)
    master.drivers[A] = "FINISHED"
    store = DictStore()
    store.data[STATE_KEY] = submitted_record(A)
    # Spark 4's POST /v1/submissions/clear: every completed driver is forgotten
    auth = {"Authorization": f"Bearer {SECRET}"}
    async with aiohttp.ClientSession() as session, session.post(f"{master.url}/v1/submissions/clear", headers=auth):
        pass
    assert A not in master.drivers
    for try_number in (1, 2):  # a later try with the same record refuses again
        with pytest.raises(JobLost, match="not submitted again"):
            await start_protocol(client, store, try_number=try_number)
    assert master.created == [] and store.data[STATE_KEY]["outcome"] == "lost"
    # a clear of the task counts as asking: the next try submits generation 1
    decision = await start_protocol(client, store, try_number=3, clear_number=1)
    assert isinstance(decision, Defer) and decision.record.generation == 1 and len(master.created) == 1


async def test_json_unreadable_means_unknown_never_lost(master: FakeSparkMaster) -> None:
    client = make_client(master)
    master.faults["json"] = lambda r: html(500)
    store = DictStore()
    store.data[STATE_KEY] = submitted_record(A)  # REST does not know A, and /json/ cannot be read
    decision = await start_protocol(client, store)
    assert isinstance(decision, Defer) and decision.status is not None
    assert decision.status.state.value == "unknown" and "could not be read" in decision.status.message
    assert master.created == []


# --- credential rotation while triggers wait ------------------------------------------------------------------------


def _conn_env(master: FakeSparkMaster, token: str) -> str:
    return json.dumps(
        {
            "conn_type": "spark_standalone_rest",
            "host": "127.0.0.1",
            "port": master.port,
            "password": token,
            "extra": {"master_ui_urls": master.url, "timeout": 2},
        }
    )


@pytest.mark.parametrize("ui_protected", [True, False])
async def test_credential_rotation_reaches_waiting_triggers(
    master: FakeSparkMaster, monkeypatch: pytest.MonkeyPatch, caplog: Any, ui_protected: bool
) -> None:
    """JWT rotated at the master and in the connection while triggers wait: every trigger still succeeds,
    one created after the rotation too, and the connection is fetched again once, not once per trigger."""
    caplog.set_level(logging.DEBUG)
    old, new = SECRET, SECRET.replace("c2ln", "bmV3")
    conn_id = f"spark_rot_{uuid.uuid4().hex[:8]}"
    env = f"AIRFLOW_CONN_{conn_id.upper()}"
    master.bearer = old
    master.protect_ui = ui_protected  # spark.ui.filters protects /json/ too, or only REST is protected
    monkeypatch.setenv(env, _conn_env(master, old))
    fetches: list[str] = []
    real = SparkStandaloneHook.aget_connection.__func__  # type: ignore[attr-defined]

    async def counting(cls: Any, conn_id_: str) -> Any:
        fetches.append(conn_id_)
        return await real(cls, conn_id_)

    monkeypatch.setattr(SparkStandaloneHook, "aget_connection", classmethod(counting))
    SparkStandaloneHook.clear_cache()
    try:
        drivers = [f"driver-20261121100236-{i:04d}" for i in range(1, 5)]
        for d in drivers:
            master.drivers[d] = "RUNNING"
        triggers = [
            SparkStandaloneTrigger(job={"driver_id": d}, conn_id=conn_id, token="t", generation=0, poll_interval=0.2)
            for d in drivers[:3]
        ]
        waiting = [asyncio.create_task(_first_event(t)) for t in triggers]
        await asyncio.sleep(0.6)  # every trigger waits, polled with the old token
        assert not any(w.done() for w in waiting) and fetches == [conn_id]
        # rotate: the connection first, then the master (a refetch in between would still get the old one)
        monkeypatch.setenv(env, _conn_env(master, new))
        master.bearer = new
        for d in drivers[:3]:
            master.drivers[d] = "FINISHED"
        # one driver's status must come over REST (with the new token): it is gone from /json/ but finished
        master.json_hidden.add(drivers[0])
        events = await asyncio.wait_for(asyncio.gather(*waiting), 20)
        assert [e["status"] for e in events] == ["succeeded"] * 3, events
        assert fetches == [conn_id, conn_id], fetches  # one refetch for the rotation, not one per trigger
        # a trigger created after the rotation
        master.drivers[drivers[3]] = "FINISHED"
        late = SparkStandaloneTrigger(
            job={"driver_id": drivers[3]}, conn_id=conn_id, token="t", generation=0, poll_interval=0.2
        )
        event = await asyncio.wait_for(_first_event(late), 20)
        assert event["status"] == "succeeded", event
        assert fetches == [conn_id, conn_id]
        assert f"Bearer {new}" in master.auth_seen[-1]
        assert old not in caplog.text and new not in caplog.text
    finally:
        SparkStandaloneHook.clear_cache()


async def _first_event(trigger: SparkStandaloneTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("no event")


# --- a 4xx about one driver ------------------------------------------------------------------------------------------


async def test_a_4xx_about_one_driver_is_unknown_for_it_only(master: FakeSparkMaster) -> None:
    client = make_client(master)
    master.json_hidden.add(A)
    master.faults["status"] = only_for(A, lambda r: json_body({"action": "ErrorResponse", "message": "no"}, 400))
    with pytest.raises(TransientError, match="400"):  # the worker's check: unknown, defer again
        await client.status({"driver_id": A})
    ra, rb, _ = await watch_two(master, client)
    assert (ra.status, rb.status) == ("timeout", "succeeded")
    assert poller_for(client, SETTINGS.interval).restarts == 0
