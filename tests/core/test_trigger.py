"""The generic trigger and the shared poller."""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.module_loading import import_string

from durable_jobs.hooks.spark_standalone import SparkStandaloneHook
from durable_jobs.polling import PollSettings, poller_for, wait_for_outcome
from durable_jobs.status import JobState
from durable_jobs.testing.scripted import ScriptedClient
from durable_jobs.transport.http import close_sessions
from durable_jobs.triggers.spark_standalone import SparkStandaloneTrigger
from durable_jobs_harness.fake_spark import FakeSparkMaster

SECRET = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.signature-very-secret"


@pytest.fixture
async def master(monkeypatch):
    m = await FakeSparkMaster().start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_SPARK_FAKE",
        json.dumps(
            {
                "conn_type": "spark_standalone_rest",
                "host": "127.0.0.1",
                "port": m.port,
                "password": SECRET,
                "extra": {"master_ui_urls": m.url},
            }
        ),
    )
    SparkStandaloneHook.clear_cache()
    yield m
    await m.stop()
    await close_sessions()
    SparkStandaloneHook.clear_cache()


def make_trigger(**kw: Any) -> SparkStandaloneTrigger:
    args: dict[str, Any] = {
        "job": {"driver_id": "driver-20261121100236-0001"},
        "conn_id": "spark_fake",
        "token": "dj0123456789abcdef0123",
        "generation": 0,
        "poll_interval": 0.1,
        "deadline": None,
        "lost_confirmations": 2,
    }
    args.update(kw)
    return SparkStandaloneTrigger(**args)


def test_serialize_round_trips_through_import_by_classpath():
    trig = make_trigger(deadline=time.time() + 60)
    classpath, kwargs = trig.serialize()
    assert classpath == "durable_jobs.triggers.spark_standalone.SparkStandaloneTrigger"
    again = import_string(classpath)(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    json.dumps(kwargs)


async def test_kwargs_hold_no_secret(master):
    _, kwargs = make_trigger().serialize()
    text = json.dumps(kwargs)
    assert SECRET not in text and "password" not in text and "Bearer" not in text
    client = await SparkStandaloneHook.aget_client("spark_fake")
    assert client.config.bearer_token == SECRET  # resolved inside the triggerer, from the connection


async def test_outlasts_an_outage_and_yields_exactly_one_event(master):
    master.drivers["driver-20261121100236-0001"] = "RUNNING"
    trig = make_trigger()
    gen = trig.run()
    first = asyncio.create_task(gen.__anext__())
    await asyncio.sleep(0.3)
    port = master.port
    await master.stop()  # the master goes away: connection refused for a while
    await asyncio.sleep(1.5)
    assert not first.done()
    master.port = port
    await master.start()
    await asyncio.sleep(0.3)
    assert not first.done()
    master.drivers["driver-20261121100236-0001"] = "FINISHED"
    event = await asyncio.wait_for(first, 15)
    assert event.payload["status"] == "succeeded"
    assert event.payload["job"] == {"driver_id": "driver-20261121100236-0001"}
    with pytest.raises(StopAsyncIteration):
        await gen.__anext__()


async def test_unknown_id_must_be_confirmed_before_lost(master):
    client = await SparkStandaloneHook.aget_client("spark_fake")
    result = await wait_for_outcome(
        client, {"driver_id": "driver-x"}, PollSettings(interval=0.05, lost_confirmations=3)
    )
    assert result.status == "lost"
    assert master.requests.count("status") >= 3


async def test_deadline_gives_timeout_event(master):
    master.drivers["driver-20261121100236-0001"] = "RUNNING"
    events = [e async for e in make_trigger(deadline=time.time() + 0.5).run()]
    assert [e.payload["status"] for e in events] == ["timeout"]


async def test_unknown_budget_hands_back_to_the_worker():
    client = ScriptedClient()
    client.jobs.clear()
    client.down = {"status"}
    res = await wait_for_outcome(client, {"id": "job-1"}, PollSettings(interval=0.05, unknown_budget=0.3))
    assert res.status == "unknown" and "endpoint down" in res.message


class _Comms:
    def __init__(self, state: str | None) -> None:
        self.state = state

    async def asend(self, msg: Any) -> Any:
        return SimpleNamespace(task_states={"run1": {"spark": self.state}})


@pytest.mark.parametrize(
    ("ti_state", "cancels"),
    [("failed", True), ("success", True), (None, False), ("scheduled", False), ("deferred", False), ("queued", False)],
)
async def test_on_kill_cancels_only_when_no_new_try_owns_the_job(master, monkeypatch, ti_state, cancels):
    from airflow.sdk.execution_time import task_runner

    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", _Comms(ti_state), raising=False)
    master.drivers["driver-20261121100236-0001"] = "RUNNING"
    trig = make_trigger()
    trig.task_instance = SimpleNamespace(dag_id="d", run_id="run1", task_id="spark", map_index=-1, try_number=1)
    await trig.on_kill()
    assert (master.drivers["driver-20261121100236-0001"] == "KILLED") is cancels


async def test_on_kill_does_not_cancel_when_state_cannot_be_read(master, monkeypatch):
    from airflow.sdk.execution_time import task_runner

    class Broken:
        async def asend(self, msg: Any) -> Any:
            raise ConnectionError("supervisor gone")

    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", Broken(), raising=False)
    master.drivers["driver-20261121100236-0001"] = "RUNNING"
    trig = make_trigger()
    trig.task_instance = SimpleNamespace(dag_id="d", run_id="run1", task_id="spark", map_index=-1, try_number=1)
    await trig.on_kill()
    assert master.drivers["driver-20261121100236-0001"] == "RUNNING"


async def test_one_poller_batches_every_job_of_an_endpoint():
    client = ScriptedClient(scripts=[[JobState.RUNNING] * 5 + [JobState.SUCCEEDED]] * 200)
    locs = [await client.submit({}, "dj0123456789abcdef0123") for _ in range(200)]
    batches: list[int] = []
    orig = client.statuses

    async def counting(locators):
        batches.append(len(locators))
        return await orig(locators)

    client.statuses = counting  # type: ignore[method-assign]
    settings = PollSettings(interval=0.02)
    results = await asyncio.gather(*(wait_for_outcome(client, loc, settings) for loc in locs))
    assert {r.status for r in results} == {"succeeded"}
    assert max(batches) == 200 and len(batches) <= 12  # one call per tick for all 200 jobs
    assert poller_for(client, 0.02) is poller_for(client, 0.02)


class _NamedByToken(ScriptedClient):
    """A system whose ids carry the token (like a Kubernetes name derived from it)."""

    def locator_matches_token(self, locator: dict[str, Any], token: str) -> bool:
        return str(locator["id"]).endswith(token[-6:])


async def test_a_locator_that_does_not_carry_the_token_is_never_watched_nor_cancelled(monkeypatch):
    client = _NamedByToken()
    trig = make_trigger(job={"id": "job-someone-else"}, token="dj0123456789abcdef0123")
    event = await trig.wait(client)
    assert event["status"] == "error" and "does not carry token" in event["message"]
    assert client.calls == []  # not one request about someone else's job

    async def get_client() -> ScriptedClient:
        return client

    from airflow.sdk.execution_time import task_runner

    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", _Comms("failed"), raising=False)
    monkeypatch.setattr(trig, "get_client", get_client)
    trig.task_instance = SimpleNamespace(dag_id="d", run_id="run1", task_id="spark", map_index=-1, try_number=1)
    await trig.on_kill()
    assert "cancel" not in client.calls


async def test_an_event_stays_small_whatever_the_endpoint_said():
    client = ScriptedClient(scripts=[[JobState.FAILED]])
    loc = await client.submit({}, "dj0123456789abcdef0123")
    huge = "x" * 50_000_000
    orig = client.status

    async def chatty(locator: dict[str, Any]) -> Any:
        st = await orig(locator)
        return type(st)(st.state, st.raw_state * 10_000, huge, "http://u/" + "p" * 10_000, {"log": huge})

    client.status = chatty  # type: ignore[method-assign]
    event = await make_trigger(job=loc, poll_interval=0.02).wait(client)
    assert event["status"] == "failed"
    assert len(json.dumps(event)) < 10_000


async def test_a_wait_that_starts_past_its_deadline_cancels_until_the_system_takes_it():
    """The worker could not cancel after the deadline (its endpoint refused): the trigger cancels, repeating the
    cancel through the outage, and fires ``timeout`` once the job ended, marked as cancelled by the trigger."""
    from durable_jobs.errors import TransientError
    from durable_jobs.transport.retry import instant_waits

    client = ScriptedClient(scripts=[[JobState.RUNNING]])
    loc = await client.submit({}, "dj0123456789abcdef0123")
    refused = 0
    orig = client.cancel

    async def flaky_cancel(locator: dict[str, Any]) -> None:
        nonlocal refused
        if refused < 3:
            refused += 1
            raise TransientError("connection refused")
        await orig(locator)

    client.cancel = flaky_cancel  # type: ignore[method-assign]
    with instant_waits():
        event = await make_trigger(job=loc, poll_interval=0.02, deadline=time.time() - 5).wait(client)
    assert refused == 3 and client.jobs["job-1"].cancelled
    assert event["status"] == "timeout" and event["details"]["cancelled"] is True
    assert event["details"]["last"]["state"] == "cancelled"


async def test_a_job_that_succeeded_before_the_late_cancel_is_reported_as_succeeded():
    client = ScriptedClient(scripts=[[JobState.SUCCEEDED]])
    loc = await client.submit({}, "dj0123456789abcdef0123")
    event = await make_trigger(job=loc, poll_interval=0.02, deadline=time.time() - 5).wait(client)
    assert event["status"] == "succeeded" and "cancelled" not in event["details"]
