"""The Spark REST client's handling of the error zoo, standby masters and outages (fake master)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import json
import socket
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from durable_jobs.clients.base import locator_key
from durable_jobs.clients.spark_standalone import (
    SparkApplication,
    SparkStandaloneClient,
    SparkStandaloneConfig,
    listing,
    validate_driver_id,
)
from durable_jobs.errors import (
    AuthError,
    MalformedAnswer,
    PermanentError,
    RecordError,
    TransientError,
    UndecidableError,
)
from durable_jobs.status import JobState
from durable_jobs.transport.http import close_sessions
from durable_jobs_harness.fake_spark import FakeSparkMaster, free_port, html, json_body, raw_body

APP = SparkApplication(app_resource="file:/apps/a.jar", main_class="demo.Main", name="n")


@pytest.fixture
async def master():
    m = await FakeSparkMaster().start()
    yield m
    await m.stop()
    await close_sessions()


def client_for(*urls: str, ui: tuple[str, ...] = ()) -> SparkStandaloneClient:
    return SparkStandaloneClient(SparkStandaloneConfig(rest_urls=urls, ui_urls=ui, timeout=5))


async def test_submit_sends_token_forces_cluster_mode_and_no_supervise(master):
    loc = await client_for(master.url).submit(APP, "dj0123456789abcdef0123")
    assert loc == {"driver_id": "driver-20261121100236-0001"}
    props = master.created[0]["sparkProperties"]
    assert props["spark.durable_jobs.submission_tag"] == "dj0123456789abcdef0123"
    assert "dj0123456789abcdef0123" in props["spark.app.name"]
    assert props["spark.driver.supervise"] == "false" and props["spark.submit.deployMode"] == "cluster"
    assert master.created[0]["mainClass"] == "demo.Main"


def test_python_app_goes_through_python_runner():
    body = SparkApplication(app_resource="file:/apps/job.py", py_files=["/apps/lib.zip"], app_args=["1"]).request_body(
        "dj0123456789abcdef0123", "spark://m:7077"
    )
    assert body["mainClass"] == "org.apache.spark.deploy.PythonRunner"
    assert body["appArgs"] == ["/apps/job.py", "/apps/lib.zip", "1"]
    assert body["sparkProperties"]["spark.submit.pyFiles"] == "/apps/lib.zip"


def test_supervise_true_is_refused_and_jar_needs_main_class():
    with pytest.raises(ValueError, match="supervise"):
        SparkApplication(app_resource="/a.jar", main_class="M", conf={"spark.driver.supervise": True})
    with pytest.raises(ValueError, match="main_class"):
        SparkApplication(app_resource="/a.jar")


@pytest.mark.parametrize("bad", ["driver-1/../../x", "", "a b", "../etc", "driver-1?x=1", 7, None, "x" * 200])
def test_driver_ids_are_validated_before_any_url(bad):
    with pytest.raises(RecordError):
        validate_driver_id(bad)


async def test_unknown_id_is_lost_not_failed(master):
    st = await client_for(master.url).status({"driver_id": "driver-20000101000000-9999"})
    assert st.state is JobState.LOST and "does not know" in st.message


async def test_error_state_carries_the_message(master):
    master.drivers["driver-1"] = "ERROR"
    st = await client_for(master.url).status({"driver_id": "driver-1"})
    assert st.state is JobState.FAILED and "FileNotFoundException" in st.message


@pytest.mark.parametrize(
    ("status", "ctype", "body", "exc", "match"),
    [
        (500, "text/html", "<html><body>HTTP ERROR 500 ClassNotFoundException</body></html>", TransientError, "500"),
        (503, "text/html", "<html>busy</html>", TransientError, "503"),
        (403, "text/html", "<html>Authorization header is missing.</html>", AuthError, "JWT"),
        (405, "text/html", "<html>405</html>", PermanentError, "405"),
        (
            413,
            "application/json",
            '{"action":"ErrorResponse","message":"The request body exceeds the maximum"}',
            PermanentError,
            "exceeds",
        ),
        (
            468,
            "application/json",
            '{"action":"ErrorResponse","highestProtocolVersion":"v1","message":"Unknown protocol version \'v2\'"}',
            PermanentError,
            "protocol",
        ),
        (
            400,
            "application/json",
            '{"action":"ErrorResponse","message":"Malformed request: x\\n\\tat a.b(c)"}',
            PermanentError,
            "Malformed request: x$",
        ),
    ],
)
async def test_error_zoo_is_classified(master, status, ctype, body, exc, match):
    master.next_error = (status, ctype, body)
    with pytest.raises(exc, match=match):
        await client_for(master.url).submit(APP, "dj0123456789abcdef0123")
    assert master.created == []


async def test_standby_and_dead_masters_are_skipped(master):
    standby = await FakeSparkMaster(standby=True).start()
    dead = f"http://127.0.0.1:{free_port()}"
    try:
        c = client_for(dead, standby.url, master.url)
        loc = await c.submit(APP, "dj0123456789abcdef0123")
        assert (await c.status(loc)).state is JobState.RUNNING
        assert standby.requests.count("create") == 1 and master.requests.count("create") == 1
    finally:
        await standby.stop()


async def test_all_masters_down_is_transient():
    c = client_for(f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(TransientError, match="cannot connect"):
            await c.status({"driver_id": "driver-1"})
    finally:
        await close_sessions()


async def test_kill_is_idempotent(master):
    c = client_for(master.url)
    loc = await c.submit(APP, "dj0123456789abcdef0123")
    await c.cancel(loc)
    await c.cancel(loc)  # "already finished or does not exist" is fine
    assert (await c.status(loc)).state is JobState.CANCELLED


@pytest.mark.parametrize("sliced", [False, True], ids=["direct", "sliced"])
async def test_batched_statuses_use_one_json_call(master, monkeypatch, sliced):
    if sliced:  # a /json/ above DIRECT_DECODE_MAX (about 125,000 drivers) is decoded a slice at a time
        # patched where they are read (the listing module), not on the package that re-exports the client
        monkeypatch.setattr(listing, "DIRECT_DECODE_MAX", 0)
        monkeypatch.setattr(listing, "LISTING_SLICE", 2)
    slices: list[bytes] = []
    real_decode = listing.decode_json

    def counting_decode(data, *args, **kwargs):
        slices.append(bytes(data))
        return real_decode(data, *args, **kwargs)

    monkeypatch.setattr(listing, "decode_json", counting_decode)
    c = client_for(master.url, ui=(master.url,))
    locs = [await c.submit(APP, "dj0123456789abcdef0123") for _ in range(5)]
    master.requests.clear()
    out = await c.statuses(locs)
    assert {s.state for s in out.values()} == {JobState.RUNNING}
    assert master.requests == ["json"]
    # sliced: 5 drivers in slices of 2 (the patched constants took effect); direct: no slice at all
    assert len(slices) == (3 if sliced else 0)
    master.drivers[locs[0]["driver_id"]] = "FINISHED"
    master.drivers[locs[1]["driver_id"]] = "ERROR"
    master.requests.clear()
    out = await c.statuses(locs)
    # /json/ settles FINISHED; only ERROR is asked over REST, for its message
    assert master.requests == ["json", "status"]
    assert out[locator_key(locs[0])].state is JobState.SUCCEEDED
    assert "FileNotFoundException" in out[locator_key(locs[1])].message


async def test_bearer_token_is_sent_but_not_in_repr(master):
    seen: list[str] = []

    @__import__("aiohttp").web.middleware
    async def capture(request, handler):
        seen.append(request.headers.get("Authorization", ""))
        return await handler(request)

    cfg = SparkStandaloneConfig(rest_urls=(master.url,), bearer_token="secret-jwt-value")
    assert "secret-jwt-value" not in repr(cfg)
    m2 = FakeSparkMaster()
    app_runner = None
    try:
        from aiohttp import web

        app = web.Application(middlewares=[capture])
        app.router.add_get("/v1/submissions/status/{id}", m2._status)
        app_runner = web.AppRunner(app)
        await app_runner.setup()
        await web.TCPSite(app_runner, "127.0.0.1", m2.port).start()
        c = SparkStandaloneClient(SparkStandaloneConfig(rest_urls=(m2.url,), bearer_token="secret-jwt-value"))
        await c.status({"driver_id": "driver-1"})
        assert seen == ["Bearer secret-jwt-value"]
    finally:
        if app_runner:
            await app_runner.cleanup()
    await asyncio.sleep(0)


async def test_batched_statuses_fall_back_to_rest_when_the_ui_is_unreachable(master):
    c = client_for(master.url, ui=(f"http://127.0.0.1:{free_port()}",))
    locs = [await c.submit(APP, "dj0123456789abcdef0123") for _ in range(3)]
    out = await c.statuses(locs)
    assert [s.state for s in out.values()] == [JobState.RUNNING] * 3
    assert master.requests.count("status") == 3


TOKEN = "dj0123456789abcdef0123"
OTHER = "djffffffffffffffffffff"


def launch_command(token: str, *, redacted: bool = False, name: str = "n") -> str:
    tag = "*********(redacted)" if redacted else token
    return (
        f'Launch Command: "java" "-cp" "x" "-Dspark.app.name={name} [{token}]" '
        f'"-Dspark.durable_jobs.submission_tag={tag}" "-Dspark.master=spark://127.0.0.1:7077" '
        '"org.apache.spark.deploy.worker.DriverWrapper"\n'
    )


async def test_find_reads_the_token_from_the_launch_command(master):
    c = client_for(master.url, ui=(master.url,))
    master.drivers.update({"driver-a": "RUNNING", "driver-b": "RUNNING"})
    master.launch.update({"driver-a": launch_command(OTHER), "driver-b": launch_command(TOKEN)})
    assert await c.find(TOKEN, since=0, spec=APP) == {"driver_id": "driver-b"}
    assert await c.find("dj" + "1" * 20, since=0, spec=APP) is None


async def test_find_survives_spark_redaction_of_the_tag(master):
    c = client_for(master.url, ui=(master.url,))
    master.drivers["driver-a"] = "RUNNING"
    # Spark's default spark.redaction.regex hides values of keys like *token*; the app name still tells
    master.launch["driver-a"] = launch_command(TOKEN, redacted=True)
    assert await c.find(TOKEN, since=0, spec=APP) == {"driver_id": "driver-a"}
    # another durable job's driver, redacted: its app name says it is not ours
    master.launch["driver-a"] = launch_command(OTHER, redacted=True)
    assert await c.find(TOKEN, since=0, spec=APP) is None
    # everything redacted (a user name that matches the regex too): undecidable, never "not found"
    master.launch["driver-a"] = launch_command(TOKEN, redacted=True).replace(f"n [{TOKEN}]", "*********(redacted)")
    with pytest.raises(UndecidableError, match="redacted"):
        await c.find(TOKEN, since=0, spec=APP)


async def test_find_cannot_decide_while_a_driver_waits_for_a_worker(master):
    c = client_for(master.url, ui=(master.url,))
    master.drivers["driver-a"] = "SUBMITTED"  # no worker, no launch command yet: the open window
    with pytest.raises(UndecidableError, match="no worker yet"):
        await c.find(TOKEN, since=0, spec=APP)
    master.drivers["driver-a"] = "ERROR"  # terminal without a launch command: not a candidate
    assert await c.find(TOKEN, since=0, spec=APP) is None


@pytest.mark.parametrize(
    "page", ["==== Bytes 0-0 of 0 of /work/driver-a/stderr ====\n", "Error: invalid log directory /work/driver-a"]
)
async def test_find_treats_a_log_page_without_launch_command_as_not_written_yet(master, page):
    c = client_for(master.url, ui=(master.url,))
    master.drivers["driver-a"] = "RUNNING"
    master.launch["driver-a"] = page  # what a real worker answers (HTTP 200) before the driver started
    with pytest.raises(UndecidableError, match="not written yet"):
        await c.find(TOKEN, since=0, spec=APP)


async def test_batched_statuses_share_one_status_per_running_state(master):
    c = client_for(master.url, ui=(master.url,))
    locs = [await c.submit(APP, "dj0123456789abcdef0123") for _ in range(4)]
    master.drivers[locs[3]["driver_id"]] = "SUBMITTED"
    out = await c.statuses(locs)
    running = [out[k] for k in out if out[k].raw_state == "RUNNING"]
    assert len(running) == 3 and all(s is running[0] for s in running)  # one immutable object, shared
    one_by_one = [await c.status(loc) for loc in locs]
    assert [s.state for s in out.values()] == [s.state for s in one_by_one]
    assert [s.raw_state for s in out.values()] == [s.raw_state for s in one_by_one]


# --- typed decoding: malformed is unknown, never lost --------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        {"success": "true", "driverState": "RUNNING"},
        {"success": 1, "driverState": "RUNNING"},
        {"success": "false"},
        {"success": 0},
        {"success": None},
        {"driverState": "FINISHED"},  # no success at all
        {"success": True},  # no driverState
        {"success": True, "driverState": 7},
        {"success": True, "driverState": "FAILED", "message": ["x"]},
        {"success": True, "driverState": "RUNNING", "workerId": {"a": 1}},
        [1, 2],
        "success",
    ],
)
async def test_a_malformed_status_answer_is_unknown_never_lost(master, answer):
    master.faults["status"] = lambda request: json_body(answer)
    c = client_for(master.url, ui=(master.url,))
    with pytest.raises(MalformedAnswer):
        await c.status({"driver_id": "driver-1"})
    [st] = (await c.statuses([{"driver_id": "driver-1"}])).values()
    assert st.state is JobState.UNKNOWN


async def test_success_false_for_a_live_driver_is_what_json_lists_with_one_job_or_many(master):
    c = client_for(master.url, ui=(master.url,))
    master.drivers.update({"driver-a": "RUNNING", "driver-b": "FINISHED", "driver-c": "KILLED", "driver-d": "ERROR"})
    master.rest_forgets.update(master.drivers)  # REST says success:false for all of them
    expected = {
        "driver-a": JobState.RUNNING,
        "driver-b": JobState.SUCCEEDED,
        "driver-c": JobState.CANCELLED,
        "driver-d": JobState.FAILED,
        "driver-gone": JobState.LOST,
    }
    for d, state in expected.items():
        assert (await c.status({"driver_id": d})).state is state, d  # one job: REST, then /json/
    locs = [{"driver_id": d} for d in expected]
    out = await c.statuses(locs)  # many jobs: /json/, then REST for what it does not settle
    assert {loc["driver_id"]: out[locator_key(loc)].state for loc in locs} == expected


async def test_lost_needs_json_to_be_readable(master):
    c = client_for(master.url, ui=(master.url,))
    master.faults["json"] = lambda request: html(500)
    st = await c.status({"driver_id": "driver-gone"})
    assert st.state is JobState.UNKNOWN and "could not be read to confirm" in st.message
    master.faults["json"] = lambda request: json_body(
        {"status": "ALIVE", "activedrivers": None, "completeddrivers": []}
    )
    assert (await c.status({"driver_id": "driver-gone"})).state is JobState.UNKNOWN
    master.faults.clear()
    assert (await c.status({"driver_id": "driver-gone"})).state is JobState.LOST


async def test_one_bad_follow_up_touches_only_its_driver(master):
    c = client_for(master.url, ui=(master.url,))
    master.drivers.update({"driver-a": "ERROR", "driver-b": "ERROR", "driver-c": "RUNNING"})

    def bad_for_a(request):
        if request.match_info["id"] == "driver-a":
            return raw_body(b'{"success": tr')  # a truncated 200 body: malformed, never permanent
        return None

    master.faults["status"] = bad_for_a
    locs = [{"driver_id": d} for d in ("driver-a", "driver-b", "driver-c", "driver-gone")]
    out = await c.statuses(locs)
    states = {loc["driver_id"]: out[locator_key(loc)].state for loc in locs}
    assert states == {
        "driver-a": JobState.UNKNOWN,
        "driver-b": JobState.FAILED,
        "driver-c": JobState.RUNNING,
        "driver-gone": JobState.LOST,
    }
    master.faults["status"] = lambda request: json_body({"action": "ErrorResponse", "message": "v2?"}, status=468)
    out = await c.statuses(locs)
    states = {loc["driver_id"]: out[locator_key(loc)].state for loc in locs}
    # a 4xx will not change: /json/ says how ERROR drivers ended; an unlisted one stays unconfirmed
    assert states == {
        "driver-a": JobState.FAILED,
        "driver-b": JobState.FAILED,
        "driver-c": JobState.RUNNING,
        "driver-gone": JobState.UNKNOWN,
    }


async def test_a_failing_json_costs_at_most_status_concurrency_rest_calls_per_poll(master):
    c = client_for(master.url, ui=(master.url,))
    locs = []
    for i in range(50):
        master.drivers[f"driver-{i}"] = "RUNNING"
        locs.append({"driver_id": f"driver-{i}"})
    master.faults["json"] = lambda request: html(503)
    seen: set[str] = set()
    for _ in range(4):
        master.requests.clear()
        out = await c.statuses(locs)
        assert master.requests.count("json") == 1
        assert master.requests.count("status") == c.status_concurrency
        assert len(out) == c.status_concurrency and {s.state for s in out.values()} == {JobState.RUNNING}
        seen.update(out)
    assert len(seen) == 50  # each poll asks the next drivers in turn: four polls reach all 50
    # REST down too: nothing known (a failed poll for the poller), after one REST request, not a status per job
    master.faults["status"] = lambda request: html(502)
    master.requests.clear()
    [st] = (await c.statuses(locs)).values()
    assert st.state is JobState.UNKNOWN and "HTTP 502" in st.message
    assert master.requests.count("json") == 1 and master.requests.count("status") == 1


async def test_a_driver_rest_forgot_is_unknown_while_json_fails(master):
    c = client_for(master.url, ui=(master.url,))
    master.drivers.update({"driver-a": "RUNNING", "driver-b": "RUNNING"})
    master.rest_forgets.add("driver-a")
    master.faults["json"] = lambda request: html(500)
    master.requests.clear()
    out = await c.statuses([{"driver_id": "driver-a"}, {"driver_id": "driver-b"}])
    assert out[locator_key({"driver_id": "driver-a"})].state is JobState.UNKNOWN
    assert out[locator_key({"driver_id": "driver-b"})].state is JobState.RUNNING
    assert master.requests.count("json") == 1  # not fetched again per driver


async def test_submit_answers_that_are_not_a_usable_id_are_transient(master):
    c = client_for(master.url)
    for answer in (
        {"success": True},
        {"success": True, "submissionId": "../../etc"},
        {"success": "true", "submissionId": "driver-1"},
        {"success": True, "submissionId": 12},
    ):
        master.faults["create"] = lambda request, a=answer: json_body(a)
        with pytest.raises(MalformedAnswer):
            await c.submit(APP, TOKEN)
    master.faults["create"] = lambda request: json_body({"success": False, "message": "Driver submission failed"})
    with pytest.raises(PermanentError, match="refused"):
        await c.submit(APP, TOKEN)


async def test_key_and_endpoints_carry_no_credentials_and_the_size_limit():
    def conn(password: str | None, extra: dict) -> SimpleNamespace:
        return SimpleNamespace(
            conn_id="c", host="m1,m2", port=6066, schema="http", password=password, extra_dejson=extra
        )

    from durable_jobs.hooks.spark_standalone import SparkStandaloneHook

    before = SparkStandaloneHook.client_from_connection(conn("old-token-value", {"max_response_bytes": "64MiB"}))
    after = SparkStandaloneHook.client_from_connection(conn("new-token-value", {"max_response_bytes": "64MiB"}))
    assert before.key == after.key and "token" not in repr(before.key)
    assert before.config.max_response_bytes == 64 * 1024 * 1024
    assert before._rest[0].max_body == 64 * 1024 * 1024
    assert before._rest[0].redirect_hosts == ("http://m2:6066",)
    assert before._ui[1].redirect_hosts == ("http://m1:8080",)
    with pytest.raises(ValueError, match="max_response_bytes"):
        SparkStandaloneHook.client_from_connection(conn(None, {"max_response_bytes": "lots"}))


# --- find: the master's clock, a wide window, the token decides ------------------------------------------------


@pytest.mark.parametrize("skew", [-1800.0, -600.0, 600.0, 1800.0])
async def test_find_uses_the_masters_clock(master, skew):
    """The master's clock is off by ``skew`` (its Date header shows it): its drivers are still found."""
    master.clock_skew = skew
    c = client_for(master.url, ui=(master.url,))
    since = time.time()
    loc = await c.submit(APP, TOKEN)
    await c.submit(APP, OTHER)
    assert await c.find(TOKEN, since=since, spec=APP) == loc
    assert await c.find("dj" + "2" * 20, since=since, spec=APP) is None


@pytest.mark.parametrize("skew", [-600.0, 600.0])
async def test_find_adopts_when_this_workers_clock_is_off(master, monkeypatch, skew):
    from durable_jobs.clients.spark_standalone import listing as mod  # where _wall_clock is read

    c = client_for(master.url, ui=(master.url,))
    loc = await c.submit(APP, TOKEN)
    # the worker that wrote the intent and looks now runs `skew` seconds off: the Date header corrects it
    monkeypatch.setattr(mod, "_wall_clock", lambda: time.time() + skew)
    assert await c.find(TOKEN, since=time.time() + skew - 1, spec=APP) == loc
    # the intent was written by another worker, `skew` off, and this one is right: the margin covers it
    monkeypatch.setattr(mod, "_wall_clock", time.time)
    assert await c.find(TOKEN, since=time.time() + skew - 1, spec=APP) == loc


async def test_find_without_a_date_header_still_covers_ten_minutes(master):
    from durable_jobs.clients.spark_standalone import listing as mod  # where _clock_offset is read
    from durable_jobs.testing.transport import response

    assert mod._clock_offset(response(200, b"{}"), time.time()) is None
    assert mod._clock_offset(response(200, b"{}", headers={"Date": "yesterday"}), time.time()) is None
    skewed = email.utils.formatdate(time.time() + 600, usegmt=True)
    assert 598 < (mod._clock_offset(response(200, b"{}", headers={"Date": skewed}), time.time()) or 0) < 602
    c = client_for(master.url, ui=(master.url,))
    loc = await c.submit(APP, TOKEN)
    master.faults["json"] = lambda request: raw_body(json.dumps(master.json_document()))  # aiohttp adds a Date
    real_offset = mod._clock_offset
    mod_offset_calls: list[float | None] = []

    def no_date(resp, received):
        mod_offset_calls.append(None)
        return None

    mod._clock_offset = no_date  # type: ignore[assignment]
    try:
        # a worker 10 minutes ahead wrote the intent; without the master's clock the margin still covers it
        assert await c.find(TOKEN, since=time.time() + 600, spec=APP) == loc
        assert mod_offset_calls
    finally:
        mod._clock_offset = real_offset


async def test_find_never_adopts_a_driver_without_our_token_and_never_denies_an_unreadable_one(master):
    c = client_for(master.url, ui=(master.url,))
    master.drivers.update({"driver-a": "RUNNING"})
    master.launch["driver-a"] = launch_command(OTHER)
    assert await c.find(TOKEN, since=0, spec=APP) is None
    master.faults["log"] = lambda request: html(503)
    with pytest.raises(UndecidableError, match="unreadable"):
        await c.find(TOKEN, since=0, spec=APP)
    master.faults["log"] = lambda request: html(403)
    with pytest.raises(UndecidableError, match="refused"):
        await c.find(TOKEN, since=0, spec=APP)


async def test_links_point_at_the_driver_log(master):
    c = client_for(master.url, ui=(master.url,))
    loc = await c.submit(APP, TOKEN)
    links = await c.links(loc)
    assert links["master_ui_url"] == master.url
    assert links["driver_ui_url"] == f"{master.url}/logPage/?driverId={loc['driver_id']}&logType=stderr"
    master.faults["json"] = lambda request: json_body({"status": "ALIVE", "activedrivers": 3, "completeddrivers": []})
    assert await c.links(loc) == {"master_ui_url": master.url}


async def test_a_refusal_on_one_follow_up_is_about_that_driver_while_others_get_through(master):
    c = client_for(master.url, ui=(master.url,))
    master.drivers.update({"driver-a": "ERROR", "driver-b": "ERROR", "driver-c": "RUNNING"})
    master.faults["status"] = lambda request: html(403) if request.match_info["id"] == "driver-a" else None
    locs = [{"driver_id": d} for d in ("driver-a", "driver-b", "driver-c")]
    out = await c.statuses(locs)
    assert [out[locator_key(loc)].state for loc in locs] == [JobState.UNKNOWN, JobState.FAILED, JobState.RUNNING]
    master.faults["status"] = lambda request: html(403)  # refused for everyone: our credentials
    with pytest.raises(AuthError):
        await c.statuses(locs)


# --- HA: a master whose host is down, and the master that answered asked first ---------------------------------


@contextlib.contextmanager
def unreachable_master() -> Iterator[str]:
    """A URL whose connections are never made: a listening socket that never accepts, its backlog already full,
    so the kernel drops further SYNs (what a master whose host is down looks like: no refusal, no answer)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        fillers = []
        try:
            for _ in range(4):  # more than the backlog holds; the last ones stay pending
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(server.getsockname())
                fillers.append(s)
            yield f"http://127.0.0.1:{server.getsockname()[1]}"
        finally:
            for s in fillers:
                s.close()


async def test_a_master_that_cannot_be_connected_to_is_skipped_like_a_dead_one(master):
    """Regression: a connect timeout (the first master's host is down) was a plain transient error, so the client
    never reached the active master: submit and status failed on every call. Nothing was sent, so the next
    master is tried, as after a refused connection."""
    with unreachable_master() as down:
        c = client_for(down, master.url, ui=(down, f"{master.url}"))
        c._rest[0] = dataclasses.replace(c._rest[0], connect_timeout=0.3)
        c._ui[0] = dataclasses.replace(c._ui[0], connect_timeout=0.3)
        loc = await c.submit(APP, "dj0123456789abcdef0123")
        assert master.requests.count("create") == 1
        assert (await c.status(loc)).state is JobState.RUNNING
        assert (await c.statuses([loc, {"driver_id": "driver-20000101000000-9999"}]))[locator_key(loc)].state is (
            JobState.RUNNING
        )


async def test_the_master_that_answered_as_active_is_asked_first(master):
    """Regression: after a takeover every request went to the first configured master before the active one (a
    connect timeout each, when that master's host is down), and the master UI link stayed on the first master."""
    standby = await FakeSparkMaster(standby=True).start()
    try:
        c = client_for(standby.url, master.url, ui=(standby.url, master.url))
        loc = await c.submit(APP, "dj0123456789abcdef0123")
        for _ in range(3):
            assert (await c.status(loc)).state is JobState.RUNNING
            await c.statuses([loc, {"driver_id": "driver-20000101000000-9999"}])
        assert standby.requests.count("create") == 1 and standby.requests.count("status") == 0
        assert standby.requests.count("json") == 1  # the first listing only
        assert c.master_ui_url == master.url
        # the standby takes over: the client moves back to it at the next request
        standby.standby, master.standby = False, True
        standby.drivers.update(master.drivers)
        assert (await c.status(loc)).state is JobState.RUNNING
        assert c.master_ui_url == master.url  # REST moved; the UI moves at the next listing
        await c.statuses([loc, {"driver_id": "driver-20000101000000-9999"}])
        assert c.master_ui_url == standby.url
    finally:
        await standby.stop()
