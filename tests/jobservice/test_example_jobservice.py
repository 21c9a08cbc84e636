"""The example system of ``examples/jobservice``: its client passes the contract suite, and its operator runs
end to end in-process against the tiny job service on 127.0.0.1 (submit, defer, trigger event, complete), a
crash after the submit leading the retry to adopt the job instead of submitting another."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from airflow.sdk.module_loading import import_string
from examples.jobservice.client import JobServiceClient, JobSpec
from examples.jobservice.hooks import JobServiceHook
from examples.jobservice.operators import JobServiceOperator
from examples.jobservice.server import JobService
from examples.jobservice.triggers import JobServiceTrigger

from durable_jobs import failpoints
from durable_jobs.clients.base import JobClient, Locator
from durable_jobs.failpoints import SimulatedCrash
from durable_jobs.status import JobState
from durable_jobs.testing.contract import JobClientContract
from durable_jobs.testing.state_store import InMemoryStateStore
from durable_jobs.transport.http import close_sessions
from durable_jobs_harness.airflow_ctx import run_until_deferred, task_context

T = TypeVar("T")
SECRET = "example-service-token"


class ThreadedJobService:
    """The service on its own event loop in a thread, so the (sync) operator and async tests both reach it."""

    def __init__(self) -> None:
        self.service = JobService(bearer=SECRET)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def __enter__(self) -> ThreadedJobService:
        self.thread.start()
        self.call(self.service.start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call(self.service.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture
def jobservice(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadedJobService]:
    with ThreadedJobService() as running:
        conn = {"conn_type": "jobservice", "host": "127.0.0.1", "port": running.service.port, "password": SECRET}
        monkeypatch.setenv("AIRFLOW_CONN_JOBSERVICE_DEFAULT", json.dumps(conn))
        JobServiceHook.clear_cache()
        try:
            yield running
        finally:
            JobServiceHook.clear_cache()


class TestJobServiceContract(JobClientContract):
    settle_timeout = 5.0

    @pytest.fixture(autouse=True)
    def _service(self, jobservice: ThreadedJobService) -> None:
        self.running = jobservice

    async def make_client(self) -> JobClient[Any]:
        return JobServiceHook.get_client("jobservice_default")  # as the worker builds it, from the connection

    def make_spec(self) -> JobSpec:
        return JobSpec(command="sleep")

    async def end_job(self, locator: Locator, state: JobState) -> None:
        self.running.service.finish(locator["job_id"], state.value)

    async def vanish(self, locator: Locator) -> None:
        self.running.service.forget(locator["job_id"])

    @contextlib.asynccontextmanager
    async def unreachable(self) -> AsyncIterator[None]:
        self.running.call(self.running.service.stop())
        try:
            yield
        finally:
            self.running.call(self.running.service.start())


def test_the_client_refuses_a_wrong_token() -> None:
    """The contract suite runs with the right token; without it the service refuses, as an AuthError."""
    from durable_jobs.errors import AuthError

    async def submit(url: str) -> None:
        try:
            await JobServiceClient(url).submit(JobSpec("sleep"), "dj" + "0" * 20)
        finally:
            await close_sessions()

    with ThreadedJobService() as running, pytest.raises(AuthError, match="401"):
        asyncio.run(submit(running.service.url))
    assert running.service.submissions == []


def wait_in_the_triggerer(trigger: Any) -> dict[str, Any]:
    """What the triggerer does with a deferral: rebuild the trigger from its stored form, run it, take its event."""
    classpath, kwargs = trigger.serialize()
    rebuilt = import_string(classpath)(**json.loads(json.dumps(kwargs)))

    async def run() -> dict[str, Any]:
        try:
            events = [event async for event in rebuilt.run()]
        finally:
            await close_sessions()
        assert len(events) == 1
        return dict(events[0].payload)

    return asyncio.run(run())


def operator(**kwargs: Any) -> JobServiceOperator:
    return JobServiceOperator(task_id="hello", command="echo hello", poll_interval=0.1, deferrable=True, **kwargs)


def test_the_operator_submits_defers_and_completes(jobservice: ThreadedJobService, store: InMemoryStateStore) -> None:
    row = ("example", "run1", "hello", -1)
    op = operator(seconds=0.5)
    deferred = run_until_deferred(op, task_context(store, row))
    assert isinstance(deferred.trigger, JobServiceTrigger)
    classpath, kwargs = deferred.trigger.serialize()
    assert classpath == "examples.jobservice.triggers.JobServiceTrigger"
    assert kwargs["conn_id"] == "jobservice_default" and SECRET not in json.dumps(kwargs)
    (job_id,) = jobservice.service.jobs

    event = wait_in_the_triggerer(deferred.trigger)
    assert (event["status"], event["job"]) == ("succeeded", {"job_id": job_id})

    result = op.execute_complete(task_context(store, row), event=event)
    assert result["outcome"] == "succeeded" and result["job"] == {"job_id": job_id}
    assert len(jobservice.service.submissions) == 1


def test_a_failed_job_fails_the_task_and_the_retry_submits_the_next_generation(
    jobservice: ThreadedJobService, store: InMemoryStateStore
) -> None:
    from airflow.sdk.exceptions import AirflowException

    row = ("example", "run1", "fails", -1)
    op = JobServiceOperator(task_id="fails", command="false", seconds=0.2, poll_interval=0.1, deferrable=True)
    event = wait_in_the_triggerer(run_until_deferred(op, task_context(store, row)).trigger)
    assert event["status"] == "failed"
    with pytest.raises(AirflowException, match="ended FAILED: exit code 1"):
        op.execute_complete(task_context(store, row), event=event)
    run_until_deferred(op, task_context(store, row, try_number=2))
    assert len(jobservice.service.submissions) == 2 and len(set(jobservice.service.submissions)) == 2


def test_a_crash_after_the_submit_is_adopted_by_the_retry(
    jobservice: ThreadedJobService, store: InMemoryStateStore
) -> None:
    row = ("example", "run1", "crashes", -1)
    op = operator()
    failpoints.configure(f"{failpoints.AFTER_SUBMIT}=raise")
    with pytest.raises(SimulatedCrash):
        op.execute(task_context(store, row))  # the job exists, its id was never recorded
    failpoints.configure("")
    (job_id,) = jobservice.service.jobs

    deferred = run_until_deferred(op, task_context(store, row, try_number=2))
    assert deferred.trigger.job == {"job_id": job_id}  # adopted: found by its token
    assert len(jobservice.service.submissions) == 1

    jobservice.service.finish(job_id, "succeeded")
    event = wait_in_the_triggerer(deferred.trigger)
    result = op.execute_complete(task_context(store, row, try_number=2), event=event)
    assert result["outcome"] == "succeeded" and len(jobservice.service.submissions) == 1
