"""The Spark REST client's handling of the error zoo, standby masters and outages (fake master)."""

from __future__ import annotations

import asyncio

import pytest

from durable_jobs.clients.spark_standalone import (
    SparkApplication,
    SparkStandaloneClient,
    SparkStandaloneConfig,
    validate_driver_id,
)
from durable_jobs.errors import AuthError, PermanentError, RecordError, TransientError, UndecidableError
from durable_jobs.status import JobState
from durable_jobs.transport.http import close_sessions
from tests.support.fake_spark import FakeSparkMaster, free_port

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
    with pytest.raises(TransientError, match="cannot connect"):
        await c.status({"driver_id": "driver-1"})


async def test_kill_is_idempotent(master):
    c = client_for(master.url)
    loc = await c.submit(APP, "dj0123456789abcdef0123")
    await c.cancel(loc)
    await c.cancel(loc)  # "already finished or does not exist" is fine
    assert (await c.status(loc)).state is JobState.CANCELLED


async def test_batched_statuses_use_one_json_call(master):
    c = client_for(master.url, ui=(master.url,))
    locs = [await c.submit(APP, "dj0123456789abcdef0123") for _ in range(5)]
    master.requests.clear()
    out = await c.statuses(locs)
    assert {s.state for s in out.values()} == {JobState.RUNNING}
    assert master.requests == ["json"]
    master.drivers[locs[0]["driver_id"]] = "FINISHED"
    master.requests.clear()
    await c.statuses(locs)
    assert master.requests == ["json", "status"]  # only the changed, terminal one is confirmed over REST


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


# a master's /json/ as Spark 4 sends it: drivers, apps and workers all carry an id and a state
MASTER_JSON = {
    "url": "spark://127.0.0.1:7077",
    "workers": [
        {"id": "worker-20261121100200-127.0.0.1-40000", "host": "127.0.0.1", "state": "ALIVE", "resources": {}},
        {"id": "worker-20261121100200-127.0.0.1-40001", "host": "127.0.0.1", "state": "DEAD", "resources": {}},
    ],
    "activeapps": [{"id": "app-20261121100300-0000", "name": "a", "state": "RUNNING", "user": "u"}],
    "completedapps": [],
    "activedrivers": [
        {"id": "driver-20261121100236-0001", "starttime": "1", "state": "RUNNING", "mainclass": "demo.Main"},
        {"id": "driver-20261121100236-0002", "starttime": "2", "state": "SUBMITTED", "worker": None},
    ],
    "completeddrivers": [{"id": "driver-20261121100236-0000", "starttime": "0", "state": "ERROR", "cores": 1}],
    "status": "ALIVE",
}


def test_lean_master_state_reads_the_same_ids_and_states_as_the_full_document():
    import json

    from durable_jobs.clients.spark_standalone import _lean_json
    from durable_jobs.transport.http import HttpResponse

    resp = HttpResponse(200, {"Content-Type": "application/json"}, json.dumps(MASTER_JSON), "http://m/json/")
    lean = _lean_json(resp)
    assert lean["status"] == "ALIVE" and lean["url"] == MASTER_JSON["url"]  # the document itself stays a dict
    for key in ("workers", "activeapps", "completedapps", "activedrivers", "completeddrivers"):
        assert lean[key] == [(d["id"], d["state"]) for d in MASTER_JSON[key]], key
    html = HttpResponse(500, {"Content-Type": "text/html"}, "<html>oops</html>", "http://m/json/")
    assert _lean_json(html) is None
    broken = HttpResponse(200, {"Content-Type": "application/json"}, '{"activedrivers": [', "http://m/json/")
    assert _lean_json(broken) is None


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
