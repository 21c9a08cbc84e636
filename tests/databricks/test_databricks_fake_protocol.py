"""The submit-once protocol over Databricks, at every crash point, against the contract fake.

The operators run as on a worker (sync, in a thread, with Airflow's real TaskStateStoreAccessor over an
in-memory store); their connection points at the fake, which serves from the test's own event loop, where the
trigger waits too. Fail-points (``durable_jobs.failpoints``, action ``raise``) end a try at each step; the next
try then leaves exactly one run per generation on the workspace, whose idempotency token is that generation's.
A FAILED run is followed by a new generation with a new token; a SUCCESS run by no new run at all.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, TaskDeferred

from durable_jobs import failpoints
from durable_jobs.failpoints import SimulatedCrash
from durable_jobs.hooks.databricks import DatabricksHook
from durable_jobs.operators.databricks import DatabricksRunNowOperator, DatabricksSubmitRunOperator
from durable_jobs.record import STATE_KEY, make_token
from durable_jobs.testing.state_store import InMemoryStateStore
from durable_jobs.transport.http import close_sessions
from durable_jobs.triggers.base import DurableJobTrigger
from durable_jobs_harness.airflow_ctx import run_until_deferred, task_context
from durable_jobs_harness.fake_databricks import FakeDatabricks, FakeRun

pytestmark = pytest.mark.timeout(60)

CONN_ID = "dbx_fake"
ROW = ("dag", "run1", "etl", -1)
JOB_NAME = "nightly-etl"
#: runs last until the test ends them (FakeDatabricks.finish)
LONG = "durable-fake:3600s:SUCCESS"
KINDS = ("submit", "run_now")
#: where a try can end before its run is recorded, and right after
SUBMIT_POINTS = (failpoints.BEFORE_INTENT, failpoints.AFTER_INTENT, failpoints.AFTER_SUBMIT, failpoints.AFTER_PERSIST)
#: a crash at these leaves the generation's run behind, unrecorded or recorded
RUN_LEFT_BEHIND = (failpoints.AFTER_SUBMIT, failpoints.AFTER_PERSIST)

Operator = DatabricksSubmitRunOperator | DatabricksRunNowOperator


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDatabricks]:
    """The fake on the test's loop, as the Airflow connection ``dbx_fake`` (a PAT)."""
    async with FakeDatabricks(time_scale=0.01) as workspace:
        workspace.create_job(JOB_NAME)
        conn = {"conn_type": "databricks_durable", "host": workspace.url, "password": workspace.pat}
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
        DatabricksHook.clear_cache()
        try:
            yield workspace
        finally:
            await close_sessions()
            DatabricksHook.clear_cache()


def operator(kind: str) -> Operator:
    common: dict[str, Any] = {"task_id": "etl", "databricks_conn_id": CONN_ID, "polling_period_seconds": 0.05}
    if kind == "submit":
        notebook = {"notebook_path": "/etl/daily", "base_parameters": {"script": LONG}}
        return DatabricksSubmitRunOperator(tasks=[{"task_key": "main", "notebook_task": notebook}], **common)
    return DatabricksRunNowOperator(job_name=JOB_NAME, job_parameters={"script": LONG}, **common)


def ctx(store: InMemoryStateStore, try_number: int) -> dict[str, Any]:
    return task_context(store, ROW, try_number)


def record(store: InMemoryStateStore) -> dict[str, Any]:
    value: dict[str, Any] = store.rows[ROW][STATE_KEY]
    return value


def token(generation: int) -> str:
    return make_token(*ROW, generation)


async def worker(call: Callable[[], Any]) -> Any:
    """A worker's sync call (execute, execute_complete), in a thread: the fake answers from this loop."""
    return await asyncio.to_thread(call)


async def deferred(kind: str, store: InMemoryStateStore, try_number: int) -> DurableJobTrigger:
    """One try's ``execute``, which must defer; its trigger."""
    deferral: TaskDeferred = await worker(lambda: run_until_deferred(operator(kind), ctx(store, try_number)))
    trigger = deferral.trigger
    assert isinstance(trigger, DurableJobTrigger)
    return trigger


async def event_of(trigger: DurableJobTrigger) -> dict[str, Any]:
    """The trigger run as the triggerer runs it, until its one event."""

    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            payload: dict[str, Any] = event.payload
            return payload
        raise AssertionError("the trigger ended without an event")

    return await asyncio.wait_for(first(), 20)


async def ended(fake: FakeDatabricks, trigger: DurableJobTrigger, result: str) -> dict[str, Any]:
    """End the trigger's run with ``result`` on the workspace; the trigger's event."""
    fake.finish(trigger.job["run_id"], result)
    return await event_of(trigger)


def runs_by_generation(fake: FakeDatabricks, kind: str) -> dict[int, FakeRun]:
    """The runs on the workspace, by the generation whose token they carry: exactly one run per token."""
    tokens = {token(g): g for g in range(4)}
    out: dict[int, FakeRun] = {}
    for run in fake.runs:
        assert run.token in tokens, f"run {run.run_id} carries {run.token}, no generation's token"
        generation = tokens[run.token]
        assert generation not in out, f"two runs for generation {generation}: {out[generation].run_id}, {run.run_id}"
        out[generation] = run
        if kind == "submit":
            assert run.run_name == f"airflow-durable-dag.etl [{run.token}]"
        else:
            assert (run.run_type, run.run_name) == ("JOB_RUN", JOB_NAME)
    return out


async def fail_generation_0(fake: FakeDatabricks, store: InMemoryStateStore, kind: str) -> FakeRun:
    """Try 1 submits generation 0, whose run FAILS; the try fails. Generation 0's run."""
    trigger = await deferred(kind, store, 1)
    event = await ended(fake, trigger, "FAILED")
    assert event["status"] == "failed" and "failed tasks: main TERMINATED/FAILED" in event["message"]
    with pytest.raises(AirflowException, match="FAILED"):
        await worker(lambda: operator(kind).execute_complete(ctx(store, 1), event=event))
    assert record(store)["phase"] == "finished" and record(store)["outcome"] == "failed"
    return runs_by_generation(fake, kind)[0]


# --- a crash at each step of the submission, then the next try ----------------------------------------------------


@pytest.mark.parametrize("generation", [0, 1])
@pytest.mark.parametrize("point", SUBMIT_POINTS)
@pytest.mark.parametrize("kind", KINDS)
async def test_a_crash_then_the_next_try_leaves_one_run_per_generation(
    fake: FakeDatabricks, store: InMemoryStateStore, kind: str, point: str, generation: int
) -> None:
    earlier = await fail_generation_0(fake, store, kind) if generation else None
    crashed_try = generation + 1
    failpoints.configure(f"{point}=raise")
    with pytest.raises(SimulatedCrash, match=point):
        await worker(lambda: operator(kind).execute(ctx(store, crashed_try)))
    failpoints.configure("")
    left = runs_by_generation(fake, kind)
    assert (generation in left) is (point in RUN_LEFT_BEHIND)
    trigger = await deferred(kind, store, crashed_try + 1)
    runs = runs_by_generation(fake, kind)
    assert sorted(runs) == list(range(generation + 1))  # one run for each generation, no more
    run = runs[generation]
    assert trigger.job == {"run_id": run.run_id} == record(store)["job"]
    assert trigger.token == record(store)["token"] == run.token == token(generation)
    assert trigger.generation == generation
    if generation in left:
        assert left[generation].run_id == run.run_id  # the crashed try's run, adopted or re-attached
    if earlier is not None:
        assert runs[0].run_id == earlier.run_id != run.run_id
    # and the run that was kept is the one the task's result is about
    event = await ended(fake, trigger, "SUCCESS")
    assert event["status"] == "succeeded"
    result = await worker(lambda: operator(kind).execute_complete(ctx(store, crashed_try + 1), event=event))
    assert result["outcome"] == "succeeded" and result["run_id"] == run.run_id
    assert result["run_page_url"] == run.page_url(fake.url)
    assert sorted(runs_by_generation(fake, kind)) == list(range(generation + 1))


# --- after the run ended ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_a_crash_before_the_success_is_recorded_then_retries_start_no_new_run(
    fake: FakeDatabricks, store: InMemoryStateStore, kind: str
) -> None:
    trigger = await deferred(kind, store, 1)
    event = await ended(fake, trigger, "SUCCESS")
    assert event["status"] == "succeeded" and event["details"]["last"]["raw_state"] == "TERMINATED/SUCCESS"
    failpoints.configure(f"{failpoints.BEFORE_OUTCOME}=raise")
    with pytest.raises(SimulatedCrash):
        await worker(lambda: operator(kind).execute_complete(ctx(store, 1), event=event))
    failpoints.configure("")
    assert record(store)["phase"] == "submitted"  # the success was not recorded
    for try_number in (2, 3):  # the retry finds the run succeeded; a later one returns the recorded success
        result = await worker(lambda n=try_number: operator(kind).execute(ctx(store, n)))  # type: ignore[misc]
        assert result["outcome"] == "succeeded" and result["generation"] == 0
        assert result["job"] == trigger.job and result["token"] == token(0)
        assert record(store)["phase"] == "finished"
    (run,) = fake.runs
    assert run.run_id == trigger.job["run_id"] and run.token == token(0)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_failed_run_is_followed_by_a_new_run_with_a_new_token(
    fake: FakeDatabricks, store: InMemoryStateStore, kind: str
) -> None:
    first = await fail_generation_0(fake, store, kind)
    trigger = await deferred(kind, store, 2)
    runs = runs_by_generation(fake, kind)
    assert sorted(runs) == [0, 1]
    second = runs[1]
    assert trigger.generation == 1 and trigger.token == token(1) == second.token != first.token
    assert trigger.job == {"run_id": second.run_id} and second.run_id != first.run_id  # never the old run
    assert [h["token"] for h in record(store)["history"]] == [token(0)]
    # a crash of the next try before it records anything new re-attaches to generation 1's run, not 0's
    again = await deferred(kind, store, 3)
    assert again.job == trigger.job and again.generation == 1 and len(fake.runs) == 2
