"""The protocol over YARN behind real Kerberos: the operators on a (simulated) worker with Airflow's real
TaskStateStoreAccessor, the trigger on an event loop, the fake RM accepting SPNEGO against a real MIT KDC.

A crash after new-application, after the id is recorded, after submit or after persist leaves exactly one
application; a failure starts a new generation; an unreachable RM is unknown, never failed; the trigger
watches through an outage with one negotiation.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException

from durable_jobs import failpoints
from durable_jobs.failpoints import SimulatedCrash
from durable_jobs.hooks.yarn import YarnHook
from durable_jobs.operators.yarn import SparkOnYarnOperator, YarnApplicationOperator
from durable_jobs.polling import active_pollers
from durable_jobs.record import STATE_KEY
from durable_jobs.testing.state_store import InMemoryStateStore
from durable_jobs.transport.http import close_sessions
from durable_jobs.triggers.yarn import YarnTrigger
from durable_jobs_harness.airflow_ctx import run_until_deferred, task_context
from durable_jobs_harness.fake_yarn import FakeSparkSubmit, FakeYarnRM, ThreadedFakeYarnRM
from durable_jobs_harness.yarn_fixtures import (
    KdcSetup,
    crash_after_id_recorded,
    crash_after_new_application,
    kdc,
    krb_env,
    threaded_rm,
)

__all__ = ["kdc", "krb_env"]

pytestmark = pytest.mark.timeout(120)

ROW = ("dag", "run1", "etl", -1)


@pytest.fixture
def threaded(krb_env: KdcSetup, monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadedFakeYarnRM]:
    extra = {"principal": "bob@EXAMPLE.TEST", "keytab": str(krb_env.bob_keytab), "kerberos_hostname": "localhost"}
    with threaded_rm(monkeypatch, "yarn_krb", "kerberos", {"extra": {**extra, "timeout": 5}}) as t:
        yield t


@pytest.fixture
def rm(threaded: ThreadedFakeYarnRM) -> FakeYarnRM:
    return threaded.rm


def ctx(store: InMemoryStateStore, try_number: int = 1) -> dict[str, Any]:
    return task_context(store, ROW, try_number)


def op(**kw: Any) -> YarnApplicationOperator:
    kw.setdefault("poll_interval", 0.1)
    return YarnApplicationOperator(task_id="etl", command="sleep 30", conn_id="yarn_krb", **kw)


def record(store: InMemoryStateStore) -> dict[str, Any]:
    return store.rows[ROW][STATE_KEY]


async def until(condition: Callable[[], bool], limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("crash", ["after_new_application", "after_id_recorded", "after_submit", "after_persist"])
def test_a_crash_leaves_exactly_one_application(rm, store, monkeypatch, crash):
    if crash == "after_new_application":
        crash_after_new_application(monkeypatch)
    elif crash == "after_id_recorded":
        crash_after_id_recorded(monkeypatch)
    else:
        failpoints.configure(f"{crash}=raise")
    with pytest.raises(SimulatedCrash):
        op().execute(ctx(store))
    failpoints.configure("")
    deferred = run_until_deferred(op(), ctx(store, try_number=2))
    assert len(rm.apps) == 1
    (app_id,) = rm.apps
    assert deferred.trigger.job == {"application_id": app_id, "tag": record(store)["token"]}
    assert rm.apps[app_id].user == "bob"  # submitted through SPNEGO as the keytab's principal
    assert {s.via for s in rm.seen} <= {"negotiate", "cookie"} and rm.negotiations >= 1


def test_a_failure_starts_a_new_generation(rm, store):
    first = run_until_deferred(op(), ctx(store))
    rm.advance(first.trigger.job["application_id"], "FINISHED", "FAILED", "User class threw exception: boom")
    with pytest.raises(AirflowException, match="boom"):
        op().execute_complete(ctx(store), event={"status": "failed", "job": first.trigger.job, "message": "boom"})
    second = run_until_deferred(op(), ctx(store, try_number=2))
    assert second.trigger.generation == 1 and len(rm.apps) == 2
    assert second.trigger.job["application_id"] != first.trigger.job["application_id"]


def test_an_unreachable_rm_is_unknown_not_failed(threaded, store):
    first = run_until_deferred(op(), ctx(store))
    threaded.stop_rm()
    again = run_until_deferred(op(), ctx(store, try_number=2))  # status unknown: re-attach, never fail, never resubmit
    assert again.trigger.job == first.trigger.job and record(store)["phase"] == "submitted"
    threaded.start_rm()
    assert len(threaded.rm.apps) == 1


def test_spark_on_yarn_with_kerberos_passes_the_keytab_and_finds_by_tag(rm, store, krb_env, monkeypatch):
    runner = FakeSparkSubmit(rm.cluster, user="bob")
    orig = YarnHook.client_from_connection.__func__  # type: ignore[attr-defined]

    def with_runner(cls, conn):
        client = orig(cls, conn)
        client.runner = runner
        return client

    monkeypatch.setattr(YarnHook, "client_from_connection", classmethod(with_runner))
    YarnHook.clear_cache()
    failpoints.configure("after_submit=raise")
    spark = SparkOnYarnOperator(task_id="etl", application="/apps/job.py", conn_id="yarn_krb", poll_interval=0.1)
    with pytest.raises(SimulatedCrash):
        spark.execute(ctx(store))
    failpoints.configure("")
    deferred = run_until_deferred(spark, ctx(store, try_number=2))
    assert len(runner.calls) == 1 and len(rm.apps) == 1
    argv = runner.calls[0][0]
    assert argv[argv.index("--principal") + 1] == "bob@EXAMPLE.TEST"
    assert argv[argv.index("--keytab") + 1] == str(krb_env.bob_keytab)
    assert deferred.trigger.job["application_id"] in rm.apps


async def test_the_trigger_watches_through_an_outage_with_one_negotiation(krb_env, monkeypatch):
    rm = await FakeYarnRM(auth="kerberos").start()
    port = rm.port
    monkeypatch.setenv(
        "AIRFLOW_CONN_YARN_KRB",
        json.dumps(
            {
                "conn_type": "yarn_rm",
                "host": "127.0.0.1",
                "port": port,
                "extra": {
                    "principal": "bob@EXAMPLE.TEST",
                    "keytab": str(krb_env.bob_keytab),
                    "kerberos_hostname": "localhost",
                },
            }
        ),
    )
    YarnHook.clear_cache()
    try:
        client = await YarnHook.aget_client("yarn_krb")
        spec = op().build_spec(None)
        jobs = []
        for i in range(5):
            tok = f"dj{i:020x}"
            jobs.append((tok, await client.submit(spec, tok, reserved=await client.reserve(spec, tok))))
        negotiations = rm.negotiations
        triggers = [
            YarnTrigger(job=job, conn_id="yarn_krb", token=tok, generation=0, poll_interval=0.1, unknown_budget=60)
            for tok, job in jobs
        ]
        runs = [asyncio.create_task(t.run().__anext__()) for t in triggers]
        await until(lambda: len(rm.requests("GET", "/ws/v1/cluster/apps")) >= 1)
        await rm.stop()  # the RM goes away: the triggers keep waiting, nothing fails
        (poller,) = active_pollers()
        polls = poller.polls
        await until(lambda: poller.polls >= polls + 3)  # three polls against a dead RM
        assert not any(r.done() for r in runs)
        rm.port = port
        await rm.start()
        for _, job in jobs:
            rm.advance(job["application_id"], "FINISHED", "SUCCEEDED")
        events = await asyncio.wait_for(asyncio.gather(*runs), 30)
        assert [e.payload["status"] for e in events] == ["succeeded"] * 5
        assert rm.negotiations == negotiations  # the session cookie outlived the outage
        polls = rm.requests("GET", "/ws/v1/cluster/apps")
        gets = [s for s in rm.seen if s.method == "GET" and s.path.startswith("/ws/v1/cluster/apps/")]
        assert len(polls) >= 2 and gets == []  # one list per tick served all five applications
    finally:
        await close_sessions()
        await rm.stop()
        YarnHook.clear_cache()
