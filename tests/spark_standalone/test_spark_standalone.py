"""The Spark standalone client, poller, protocol and trigger against a real local Spark 4.3 cluster.

Every test talks to real Master/Worker JVMs started from the pyspark package (see conftest.py). Drivers
are the tiny ``SleepExit`` jar and ``sleep_exit.py`` script from :func:`build_test_apps`, which take
``<sleep seconds> <exit code> <ok|throw>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import secrets
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from durable_jobs import failpoints
from durable_jobs.clients.base import Locator
from durable_jobs.clients.spark_standalone import (
    TOKEN_PROPERTY,
    SparkApplication,
    SparkStandaloneClient,
)
from durable_jobs.errors import AuthError, UndecidableError
from durable_jobs.hooks.spark_standalone import SparkStandaloneHook
from durable_jobs.polling import PollSettings, WaitResult, poller_for, wait_for_outcome
from durable_jobs.protocol import Defer, JobFailed, JobLost, JobProtocol, ProtocolSettings, RetryLater
from durable_jobs.record import STATE_KEY, TaskIdentity
from durable_jobs.status import JobState, JobStatus
from durable_jobs.transport.http import close_sessions
from durable_jobs.triggers.spark_standalone import SparkStandaloneTrigger
from durable_jobs_harness.spark_cluster import SparkCluster, TestApps, make_jwt, new_jwt_secret
from durable_jobs_harness.spark_fixtures import DRIVER_CONF, make_client

pytestmark = pytest.mark.spark

FAST = PollSettings(interval=0.5)
# generous upper bounds: they only stop a broken test from hanging, a healthy driver takes seconds
RUN_LIMIT = 90.0


# --- helpers ---------------------------------------------------------------------------------------------


def new_token() -> str:
    return "dj" + secrets.token_hex(10)


def jar_app(apps: TestApps, args: Sequence[str], name: str, **kwargs: Any) -> SparkApplication:
    return SparkApplication(
        app_resource=f"file:{apps.jar}",
        main_class=apps.main_class,
        name=name,
        app_args=tuple(args),
        conf=dict(DRIVER_CONF),
        **kwargs,
    )


def py_app(apps: TestApps, args: Sequence[str], name: str) -> SparkApplication:
    return SparkApplication(
        app_resource=f"file:{apps.python_script}",
        name=name,
        app_args=tuple(args),
        conf=dict(DRIVER_CONF),
    )


def all_drivers(cluster: SparkCluster) -> list[dict[str, Any]]:
    state = cluster.json_state()
    return [*state.get("activedrivers", ()), *state.get("completeddrivers", ())]


def driver_ids(cluster: SparkCluster) -> set[str]:
    return {str(d["id"]) for d in all_drivers(cluster)}


def diag(cluster: SparkCluster, driver_id: str | None = None) -> str:
    """Context for a failed assertion: the driver's stderr/stdout and the daemon logs."""
    parts = []
    if driver_id:
        for kind in ("stderr", "stdout"):
            parts.append(f"--- {driver_id} {kind} ---\n{cluster.driver_log(driver_id, kind)[-3000:]}")
    parts.append(cluster.logs_tail(30))
    return "\n".join(parts)


async def wait_until(
    client: SparkStandaloneClient,
    locator: Locator,
    accept: Callable[[JobStatus], bool],
    *,
    timeout: float = 60.0,
    what: str = "condition",
) -> JobStatus:
    """Poll the status until ``accept`` holds, with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        status = await client.status(locator)
        if accept(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last status {status}")
        await asyncio.sleep(0.1)


def sync_wait_until(check: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


async def run_to_end(client: SparkStandaloneClient, app: SparkApplication) -> tuple[Locator, WaitResult]:
    loc = await client.submit(app, new_token())
    result = await wait_for_outcome(client, loc, FAST, deadline=time.time() + RUN_LIMIT)
    return loc, result


class DictStore:
    """The task state store, in memory (as in tests/core/test_protocol.py)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        assert value is not None
        self.data[key] = json.loads(json.dumps(value))  # what a real store keeps: JSON


class LoopRunner:
    """A private event loop for the sync protocol, closed with its sessions and pollers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def __call__(self, aw: Any) -> Any:
        return self.loop.run_until_complete(aw)

    def close(self) -> None:
        try:
            self.loop.run_until_complete(close_sessions())
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        finally:
            self.loop.close()


def protocol(
    client: SparkStandaloneClient,
    store: DictStore,
    run: LoopRunner,
    app: SparkApplication,
    *,
    run_id: str,
    try_number: int,
    on_lost: str = "fail",
    max_tries: int | None = None,
) -> JobProtocol:
    return JobProtocol(
        client=client,
        store=store,
        identity=TaskIdentity("it_dag", run_id, "spark_task", -1, try_number, 0),
        spec=lambda _record: app,
        run=run,
        settings=ProtocolSettings(confirm_delay=0.2, on_lost=on_lost, max_tries=max_tries),
    )


def record_submissions(client: SparkStandaloneClient) -> list[Locator]:
    """The locators ``client.submit`` returns from now on, in order (the list fills as the client submits)."""
    submitted: list[Locator] = []
    real_submit = client.submit

    async def recording_submit(spec: SparkApplication, token: str, *, reserved: Locator | None = None) -> Locator:
        loc = await real_submit(spec, token, reserved=reserved)
        submitted.append(loc)
        return loc

    client.submit = recording_submit  # type: ignore[method-assign]
    return submitted


def launch_command(cluster: SparkCluster, driver_id: str) -> str:
    """The ``Launch Command:`` line the worker wrote at the top of the driver's stderr ("" if not yet)."""
    for line in cluster.driver_log(driver_id, "stderr").splitlines():
        if line.startswith("Launch Command:"):
            return line
    return ""


def token_args(cluster: SparkCluster, driver_id: str) -> list[str]:
    """The launch-command arguments that should carry the token (for failure messages)."""
    line = launch_command(cluster, driver_id)
    return [a for a in line.split('" "') if a.startswith(("-Dspark.app.name=", f"-D{TOKEN_PROPERTY}="))]


def drivers_with_token(cluster: SparkCluster, token: str, since_epoch: float) -> list[str]:
    """Drivers started since ``since_epoch`` whose launch command carries ``token``.

    The token travels twice: as ``spark.app.name=<name> [<token>]`` and as the ``TOKEN_PROPERTY``
    property. Either counts (the worker may redact the property's value in the launch command).
    """
    needles = (f'"-D{TOKEN_PROPERTY}={token}"', f' [{token}]"')
    return [
        str(d["id"])
        for d in all_drivers(cluster)
        if float(d.get("starttime", 0)) >= since_epoch * 1000 - 1000
        and any(n in launch_command(cluster, str(d["id"])) for n in needles)
    ]


# --- 1-5: the final states of a driver -------------------------------------------------------------------


async def test_success(spark: SparkCluster, spark_apps: TestApps, client: SparkStandaloneClient) -> None:
    loc, result = await run_to_end(client, jar_app(spark_apps, ["1", "0", "ok"], "it-success"))
    assert result.status == "succeeded", (result, diag(spark, loc["driver_id"]))
    assert result.last is not None and result.last.raw_state == "FINISHED"
    status = await client.status(loc)
    assert status.state is JobState.SUCCEEDED and status.raw_state == "FINISHED"
    assert status.extra.get("workerId"), status  # placed on our worker
    assert "SleepExit: sleeping 1.0s" in spark.driver_log(loc["driver_id"], "stdout")


async def test_nonzero_exit_is_failed(spark: SparkCluster, spark_apps: TestApps, client: SparkStandaloneClient) -> None:
    loc, result = await run_to_end(client, jar_app(spark_apps, ["0.5", "3", "ok"], "it-exit3"))
    assert result.status == "failed", (result, diag(spark, loc["driver_id"]))
    assert result.last is not None and result.last.raw_state == "FAILED"
    assert "Spark does not report the code" in result.message
    status = await client.status(loc)
    assert status.raw_state == "FAILED" and "does not report the code" in status.message


def test_a_failed_driver_names_its_log_and_whether_a_retry_resubmits(spark: SparkCluster, spark_apps: TestApps) -> None:
    """The task's error for a failed driver: the driver, its log page on the worker, and what comes next."""
    client = make_client(spark)
    with contextlib.closing(LoopRunner()) as run:
        app = jar_app(spark_apps, ["0.5", "3", "ok"], "it-fail-message")
        task = functools.partial(protocol, client, DictStore(), run, app, run_id=f"fail-{uuid.uuid4().hex[:8]}")
        first = task(try_number=1).start()
        assert isinstance(first, Defer) and first.record.job is not None
        driver = first.record.job["driver_id"]
        result = run(wait_for_outcome(client, first.record.job, FAST, deadline=time.time() + RUN_LIMIT))
        assert result.status == "failed" and result.last is not None, (result, diag(spark, driver))
        event = {"status": "failed", "job": first.record.job, "message": result.message}
        with pytest.raises(JobFailed) as failed:  # retries=0: Airflow's ti.max_tries is 0
            task(try_number=1, max_tries=0).complete({**event, "details": {"last": result.last.to_json()}})
    message = str(failed.value)
    assert message.startswith(f"Spark driver {driver} (generation 0) ended FAILED: "), message
    assert message.endswith(
        "This task has no retries left, so nothing is resubmitted; clearing the task submits generation 1."
    ), message
    log_url = message.split("Driver log: ", 1)[1].split(". ", 1)[0]
    assert f"driverId={driver}" in log_url and "logType=stderr" in log_url, message
    # the link is the worker's page of the driver's stderr, which starts with the launch command
    with urllib.request.urlopen(log_url, timeout=10) as page:
        assert "Launch Command" in page.read().decode(), log_url


async def test_exception_is_failed(spark: SparkCluster, spark_apps: TestApps, client: SparkStandaloneClient) -> None:
    loc, result = await run_to_end(client, jar_app(spark_apps, ["0.5", "0", "throw"], "it-throw"))
    assert result.status == "failed", (result, diag(spark, loc["driver_id"]))
    assert result.last is not None and result.last.raw_state == "FAILED"
    assert "IllegalStateException: boom" in spark.driver_log(loc["driver_id"], "stderr")


async def test_missing_jar_is_error_with_message(
    spark: SparkCluster, spark_apps: TestApps, tmp_path: Any, client: SparkStandaloneClient
) -> None:
    missing = tmp_path / "does-not-exist.jar"
    app = SparkApplication(
        app_resource=f"file:{missing}",
        main_class=spark_apps.main_class,
        name="it-missing-jar",
        conf=dict(DRIVER_CONF),
    )
    loc, result = await run_to_end(client, app)
    assert result.status == "failed", (result, diag(spark, loc["driver_id"]))
    assert result.last is not None and result.last.raw_state == "ERROR"
    assert "Exception from the cluster" in result.message, result.message
    assert "does-not-exist.jar" in result.message, result.message
    status = await client.status(loc)
    assert status.raw_state == "ERROR" and "Exception" in status.message


async def test_kill_running_driver_and_kill_again(
    spark: SparkCluster, spark_apps: TestApps, client: SparkStandaloneClient
) -> None:
    loc = await client.submit(jar_app(spark_apps, ["60", "0", "ok"], "it-kill"), new_token())
    await wait_until(client, loc, lambda s: s.raw_state == "RUNNING", what="RUNNING")
    await client.cancel(loc)
    result = await wait_for_outcome(client, loc, FAST, deadline=time.time() + 30)
    assert result.status == "cancelled", (result, diag(spark, loc["driver_id"]))
    assert result.last is not None and result.last.raw_state == "KILLED"
    await client.cancel(loc)  # already killed: "has already finished or does not exist", not an error
    assert (await client.status(loc)).raw_state == "KILLED"


# --- 6: unknown ids are LOST, and only after confirmation ---------------------------------------------------


async def test_unknown_driver_is_lost_after_confirmations(client: SparkStandaloneClient) -> None:
    loc = {"driver_id": "driver-20000101000000-9999"}
    status = await client.status(loc)
    assert status.state is JobState.LOST and status.raw_state == "success:false"
    assert "does not know" in status.message

    settings = PollSettings(interval=0.2, lost_confirmations=3)
    poller = poller_for(client, settings.interval)
    polls_before = poller.polls
    started = time.monotonic()
    result = await wait_for_outcome(client, loc, settings, deadline=time.time() + 30)
    elapsed = time.monotonic() - started
    assert result.status == "lost", result
    assert poller.polls - polls_before >= 3, poller.polls
    assert elapsed >= 2 * settings.interval * 0.9, elapsed  # three observations, two intervals apart


# --- 7: a master restart forgets the driver; on_lost='resubmit' starts generation 1 -----------------------


def test_master_restart_lost_then_protocol_submits_next_generation(
    spark_own: SparkCluster, spark_apps: TestApps
) -> None:
    run = LoopRunner()
    try:
        client = make_client(spark_own)
        store = DictStore()
        app = jar_app(spark_apps, ["120", "0", "ok"], "it-restart")
        run_id = f"restart-{uuid.uuid4().hex[:8]}"

        first = protocol(client, store, run, app, run_id=run_id, try_number=1).start()
        assert isinstance(first, Defer) and first.record.generation == 0
        old = first.record.job
        assert old is not None
        run(wait_until(client, old, lambda s: s.raw_state == "RUNNING", what="RUNNING"))

        spark_own.restart_master()

        lost = run(
            wait_for_outcome(client, old, PollSettings(interval=0.2, lost_confirmations=3), deadline=time.time() + 30)
        )
        assert lost.status == "lost", (lost, diag(spark_own))
        assert lost.last is not None and lost.last.raw_state == "success:false"

        before = driver_ids(spark_own)
        assert old["driver_id"] not in before
        # the default on_lost="fail": a forgotten driver may have succeeded, so it is not run again
        with pytest.raises(JobLost, match="not submitted again"):
            protocol(client, store, run, app, run_id=run_id, try_number=2).start()
        assert driver_ids(spark_own) == before
        # the user asked for it (on_lost="resubmit"): generation 1
        second = protocol(client, store, run, app, run_id=run_id, try_number=3, on_lost="resubmit").start()
        after = driver_ids(spark_own)

        assert isinstance(second, Defer), second
        rec = second.record
        assert rec.generation == 1
        assert rec.job is not None and rec.job != old
        assert rec.token != first.record.token
        assert rec.history and rec.history[-1]["outcome"] == "lost" and rec.history[-1]["job"] == old
        assert after - before == {rec.job["driver_id"]}, (before, after)
        assert store.data[STATE_KEY]["phase"] == "submitted"
        assert store.data[STATE_KEY]["job"] == rec.job
        run(client.cancel(rec.job))
    finally:
        run.close()


# --- 8: JWT-protected REST -------------------------------------------------------------------------------


async def test_jwt_auth(spark_jwt: SparkCluster, spark_apps: TestApps) -> None:
    assert spark_jwt.jwt_secret is not None
    app = jar_app(spark_apps, ["0.5", "0", "ok"], "it-jwt")
    some_driver = {"driver_id": "driver-20000101000000-0001"}
    try:
        anonymous = make_client(spark_jwt)
        with pytest.raises(AuthError) as exc_info:
            await anonymous.submit(app, new_token())
        assert exc_info.value.status == 403
        with pytest.raises(AuthError):
            await anonymous.status(some_driver)

        forged = make_client(spark_jwt, token=make_jwt(new_jwt_secret()))
        with pytest.raises(AuthError):
            await forged.submit(app, new_token())
        with pytest.raises(AuthError):
            await forged.status(some_driver)

        authed = make_client(spark_jwt, token=make_jwt(spark_jwt.jwt_secret))
        assert await authed.readyz() is True
        loc = await authed.submit(app, new_token())
        result = await wait_for_outcome(authed, loc, FAST, deadline=time.time() + RUN_LIMIT)
        assert result.status == "succeeded", (result, diag(spark_jwt, loc["driver_id"]))
        assert result.last is not None and result.last.raw_state == "FINISHED"
        assert authed.config.bearer_token and authed.config.bearer_token not in repr(authed.config)
        # nothing was submitted by the refused clients
        assert driver_ids(spark_jwt) == {loc["driver_id"]}
    finally:
        await close_sessions()


# --- 9: Python drivers through PythonRunner ----------------------------------------------------------------


async def test_python_driver_success_and_exit_code(
    spark: SparkCluster, spark_apps: TestApps, client: SparkStandaloneClient
) -> None:
    (ok_loc, ok), (bad_loc, bad) = await asyncio.gather(
        run_to_end(client, py_app(spark_apps, ["1", "0", "ok"], "it-py-ok")),
        run_to_end(client, py_app(spark_apps, ["0.5", "2", "ok"], "it-py-exit2")),
    )
    assert ok.status == "succeeded", (ok, diag(spark, ok_loc["driver_id"]))
    assert ok.last is not None and ok.last.raw_state == "FINISHED"
    assert "sleep_exit: sleeping 1.0s" in spark.driver_log(ok_loc["driver_id"], "stdout")
    assert bad.status == "failed", (bad, diag(spark, bad_loc["driver_id"]))
    assert bad.last is not None and bad.last.raw_state == "FAILED"
    assert "org.apache.spark.deploy.PythonRunner" in spark.driver_log(bad_loc["driver_id"], "stderr")


# --- 10: a crash between submit and persist; the next try adopts by token --------------------------------


def test_crash_after_submit_then_retry_adopts_the_same_driver(spark: SparkCluster, spark_apps: TestApps) -> None:
    run = LoopRunner()
    client = make_client(spark)
    submitted = record_submissions(client)
    try:
        store = DictStore()
        app = jar_app(spark_apps, ["60", "0", "ok"], "it-adopt")
        run_id = f"adopt-{uuid.uuid4().hex[:8]}"
        failpoints.configure(f"{failpoints.AFTER_SUBMIT}=raise")
        try:
            with pytest.raises(failpoints.SimulatedCrash):
                protocol(client, store, run, app, run_id=run_id, try_number=1).start()
        finally:
            failpoints.configure("")
        assert len(submitted) == 1
        record = store.data[STATE_KEY]
        assert record["phase"] == "submitting" and record["job"] is None
        token, intent_at = record["token"], record["intent_at"]

        # The next try must find the driver by its token; while the launch command is not readable yet
        # the protocol says RetryLater (never a blind resubmit). Retry, bounded.
        retry_later: list[str] = []
        deadline = time.monotonic() + 60
        try_number = 2
        while True:
            try:
                decision = protocol(client, store, run, app, run_id=run_id, try_number=try_number).start()
                break
            except RetryLater as exc:
                retry_later.append(str(exc))
                if time.monotonic() > deadline:
                    raise AssertionError(f"never adopted: {retry_later[-3:]}\n{diag(spark)}") from exc
                time.sleep(0.3)
                try_number += 1

        assert isinstance(decision, Defer), decision
        assert len(submitted) == 1, (
            f"the retry submitted a duplicate driver instead of adopting: {submitted}; find looked for "
            f"{token} in the launch command, where the worker wrote: {token_args(spark, submitted[0]['driver_id'])}"
        )
        assert decision.adopted is True, decision
        assert decision.record.job == submitted[0], (decision.record.job, submitted)
        assert store.data[STATE_KEY]["phase"] == "submitted"
        assert store.data[STATE_KEY]["job"] == submitted[0]
        assert decision.status is not None and decision.status.state in (JobState.RUNNING, JobState.PENDING)

        assert drivers_with_token(spark, token, intent_at) == [submitted[0]["driver_id"]]
        since_intent = [
            d
            for d in all_drivers(spark)
            if float(d.get("starttime", 0)) >= intent_at * 1000 - 1000 and d.get("mainclass") == app.main_class
        ]
        assert [d["id"] for d in since_intent] == [submitted[0]["driver_id"]], since_intent
    finally:
        failpoints.configure("")
        for loc in submitted:
            run(client.cancel(loc))
        run.close()


async def test_find_never_denies_a_driver_that_exists(
    spark: SparkCluster, spark_apps: TestApps, client: SparkStandaloneClient
) -> None:
    """Right after submit, find may say "cannot tell yet" (UndecidableError) but never "no such job".

    Hits the window between submit and the worker writing the launch command: the worker's /log/ page
    then answers HTTP 200 with "Error: invalid log directory ..." (or just a "==== Bytes 0-0 ====" header).
    """
    # warm the worker UI so that the first find is not slowed down past the window
    for _ in range(3):
        with urllib.request.urlopen(
            f"{spark.worker_ui_url}/log/?driverId=driver-20000101000000-0000&logType=stderr&offset=0&byteLength=10",
            timeout=5,
        ) as resp:
            resp.read()
    app = jar_app(spark_apps, ["30", "0", "ok"], "it-find-race")
    token = new_token()
    since = time.time()
    pages: list[str] = []  # what the worker's /log/ page answered, for the failure message
    real_head = client._driver_stderr_head

    async def recording_head(worker_ui: str, driver_id: str) -> str:
        text = await real_head(worker_ui, driver_id)
        pages.append(f"{driver_id}: {text[:160]!r}")
        return text

    client._driver_stderr_head = recording_head  # type: ignore[method-assign]
    loc = await client.submit(app, token)
    answers: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                found = await client.find(token, since=since, spec=app)
            except UndecidableError as exc:
                answers.append(f"undecidable: {exc}")
            else:
                assert found is not None, (
                    f"find said no driver carries {token} although {loc} does; answers so far {answers}; "
                    f"the launch command (written since) has: {token_args(spark, loc['driver_id'])}; "
                    f"the worker log page answered find with: {pages}"
                )
                assert found == loc
                break
            assert time.monotonic() < deadline, answers[-3:]
            await asyncio.sleep(0.05)
    finally:
        await client.cancel(loc)


# --- 11: the Airflow trigger, connection from the environment -------------------------------------------


async def test_trigger_run_yields_one_succeeded_event(
    spark: SparkCluster, spark_apps: TestApps, client: SparkStandaloneClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn_id = f"spark_it_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps(
            {
                "conn_type": "spark_standalone_rest",
                "host": "127.0.0.1",
                "port": spark.ports.rest,
                "extra": {"master_ui_urls": spark.master_ui_url},
            }
        ),
    )
    SparkStandaloneHook.clear_cache()
    try:
        token = new_token()
        loc = await client.submit(jar_app(spark_apps, ["1", "0", "ok"], "it-trigger"), token)
        trigger = SparkStandaloneTrigger(
            job=loc,
            conn_id=conn_id,
            token=token,
            generation=0,
            poll_interval=0.5,
            deadline=None,
        )
        # a trigger is rebuilt from its serialized kwargs in the triggerer: they must hold no secret
        path, kwargs = trigger.serialize()
        assert path == "durable_jobs.triggers.spark_standalone.SparkStandaloneTrigger"
        trigger = SparkStandaloneTrigger(**kwargs)

        events = await asyncio.wait_for(_collect(trigger.run()), RUN_LIMIT)
        assert len(events) == 1, events
        payload = events[0].payload
        assert payload["status"] == "succeeded", (payload, diag(spark, loc["driver_id"]))
        assert payload["job"] == loc and payload["token"] == token and payload["generation"] == 0
        assert payload["details"]["last"]["raw_state"] == "FINISHED"
        hook_client = await SparkStandaloneHook.aget_client(conn_id)
        assert hook_client.config.rest_urls == (spark.rest_url,)
    finally:
        SparkStandaloneHook.clear_cache()


async def _collect(events: Any) -> list[Any]:
    return [e async for e in events]


# --- 12: one batched status call per tick for many waiters ----------------------------------------------


async def test_batched_polling_one_call_per_tick(
    spark: SparkCluster, spark_apps: TestApps, client: SparkStandaloneClient
) -> None:
    locs = []
    for i, secs in enumerate(("1", "1.5", "2")):
        locs.append(await client.submit(jar_app(spark_apps, [secs, "0", "ok"], f"it-batch-{i}"), new_token()))

    calls: list[int] = []
    real_statuses = client.statuses

    async def counting_statuses(locators: Sequence[Locator]) -> dict[str, JobStatus]:
        calls.append(len(locators))
        return await real_statuses(locators)

    client.statuses = counting_statuses  # type: ignore[method-assign]
    settings = PollSettings(interval=0.5)
    poller = poller_for(client, settings.interval)
    assert poller.polls == 0
    results = await asyncio.gather(
        *(wait_for_outcome(client, loc, settings, deadline=time.time() + RUN_LIMIT) for loc in locs)
    )
    for loc, result in zip(locs, results, strict=True):
        assert result.status == "succeeded", (result, diag(spark, loc["driver_id"]))
        assert result.last is not None and result.last.raw_state == "FINISHED"
    ticks = poller.polls
    assert ticks >= 2, ticks
    assert len(calls) <= ticks, (calls, ticks)  # one statuses() call per tick, not one per job
    assert calls[0] == 3, calls  # the first tick carried all three jobs in one batch
    assert sum(calls) > len(calls), calls


# --- 13, 14 ------------------------------------------------------------------------------------------------


async def test_readyz(client: SparkStandaloneClient) -> None:
    assert await client.readyz() is True


async def test_deadline_then_cancel(spark: SparkCluster, spark_apps: TestApps, client: SparkStandaloneClient) -> None:
    loc = await client.submit(jar_app(spark_apps, ["60", "0", "ok"], "it-deadline"), new_token())
    started = time.monotonic()
    result = await wait_for_outcome(client, loc, FAST, deadline=time.time() + 2)
    elapsed = time.monotonic() - started
    try:
        assert result.status == "timeout", result
        assert 1.5 <= elapsed < 10, elapsed
        assert result.last is None or not result.last.state.is_terminal
    finally:
        await client.cancel(loc)
    final = await wait_for_outcome(client, loc, FAST, deadline=time.time() + 30)
    assert final.status == "cancelled", (final, diag(spark, loc["driver_id"]))


# --- 15: clock skew on find, against the real master's clock ---------------------------------------------------


async def test_find_adopts_with_a_worker_clock_ten_minutes_off(
    spark: SparkCluster, spark_apps: TestApps, client: SparkStandaloneClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The intent's time came from a worker whose clock is 10 minutes ahead or behind the master's."""
    from durable_jobs.clients.spark_standalone import listing as spark_mod  # where _wall_clock is read
    from durable_jobs.transport.http import request

    # the real master sends its clock with /json/ (find reads it)
    resp = await request(client._ui[0], "GET", "/json/", what="master state")
    offset = spark_mod._clock_offset(resp, time.time())
    assert offset is not None and abs(offset) < 5, resp.headers.get("Date")

    app = jar_app(spark_apps, ["30", "0", "ok"], "it-skew")
    token = new_token()
    since = time.time()
    loc = await client.submit(app, token)
    try:
        await wait_until(client, loc, lambda s: s.raw_state == "RUNNING", what="RUNNING")
        sync_wait_until(lambda: launch_command(spark, loc["driver_id"]), timeout=30, what="the launch command")
        for skew in (-600.0, 600.0):
            # the crashed try's worker was `skew` off; this one is right
            assert await client.find(token, since=since + skew, spec=app) == loc, skew
            # the same worker, still `skew` off: the master's Date header corrects it
            monkeypatch.setattr(spark_mod, "_wall_clock", lambda s=skew: time.time() + s)
            assert await client.find(token, since=since + skew, spec=app) == loc, skew
            monkeypatch.setattr(spark_mod, "_wall_clock", time.time)
        assert await client.find(new_token(), since=since - 600, spec=app) is None
    finally:
        await client.cancel(loc)


# --- 16: a finished driver forgotten (POST /v1/submissions/clear) while no trigger watched it -------------------


def test_a_cleared_finished_driver_is_never_resubmitted(spark: SparkCluster, spark_apps: TestApps) -> None:
    run = LoopRunner()
    client = make_client(spark)
    try:
        store = DictStore()
        app = jar_app(spark_apps, ["0.5", "0", "ok"], "it-evicted")
        run_id = f"evict-{uuid.uuid4().hex[:8]}"
        first = protocol(client, store, run, app, run_id=run_id, try_number=1).start()
        assert isinstance(first, Defer) and first.record.job is not None
        job = first.record.job
        # the triggerer is down: nobody watches the driver finish
        run(wait_until(client, job, lambda s: s.raw_state == "FINISHED", timeout=RUN_LIMIT, what="FINISHED"))
        # the master forgets it (what spark.deploy.retainedDrivers does to old drivers, all at once)
        req = urllib.request.Request(f"{spark.rest_url}/v1/submissions/clear", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert json.loads(resp.read())["success"] is True
        assert job["driver_id"] not in driver_ids(spark)
        status = run(client.status(job))
        assert status.state is JobState.LOST, status  # REST and /json/ agree
        before = driver_ids(spark)
        for try_number in (2, 3):  # the next try, and the one after, refuse: never resubmitted
            with pytest.raises(JobLost, match="not submitted again"):
                protocol(client, store, run, app, run_id=run_id, try_number=try_number).start()
        assert driver_ids(spark) == before
        assert store.data[STATE_KEY]["outcome"] == "lost" and store.data[STATE_KEY]["generation"] == 0
    finally:
        run.close()
