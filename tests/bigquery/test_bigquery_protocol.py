"""The submit-once protocol over BigQuery, against the contract fake: a crash at every point of a try leaves
exactly one job per generation (the job id is the token's, and a second insert is a duplicate adopted by its
label); a failure starts exactly one new generation; a record lost after a submit is found again by its token."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from durable_jobs import failpoints
from durable_jobs.clients.bigquery import BigQueryClient, ServiceAccountAuth
from durable_jobs.protocol import Defer, Finished, JobFailed, JobProtocol, ProtocolSettings
from durable_jobs.record import STATE_KEY, TaskIdentity
from durable_jobs.transport.http import close_sessions
from durable_jobs_harness.fake_bigquery import FakeBigQuery
from tests.bigquery.conftest import spec

pytestmark = pytest.mark.timeout(120)


class DictStore:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value


class World:
    """The fake and the worker's event loop (the protocol runs its client calls on it, the fake serves on it)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.fake = self.loop.run_until_complete(FakeBigQuery(time_scale=0.01).start())
        self.key = self.fake.service_account_info()
        self.store = DictStore()

    def proto(self, try_number: int = 1) -> JobProtocol:
        client = BigQueryClient(self.fake.project, auth=ServiceAccountAuth(self.key), base_url=self.fake.url)
        return JobProtocol(
            client=client,
            store=self.store,
            identity=TaskIdentity("bq_dag", "run1", "query", -1, try_number, 0),
            spec=lambda _record: spec(),
            run=self.loop.run_until_complete,
            settings=ProtocolSettings(confirm_delay=0.0),
            sleep=lambda s: None,
        )

    def jobs_of(self, generation: int) -> list[str]:
        token = TaskIdentity("bq_dag", "run1", "query", -1, 1, 0).token(generation)
        return [j.job_id for j in self.fake.jobs.values() if j.labels.get("durable_jobs_token") == token]

    def close(self) -> None:
        self.loop.run_until_complete(close_sessions())
        self.loop.run_until_complete(self.fake.stop())
        self.loop.close()


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    try:
        yield w
    finally:
        w.close()


@pytest.mark.parametrize(
    "point", [failpoints.BEFORE_INTENT, failpoints.AFTER_INTENT, failpoints.AFTER_SUBMIT, failpoints.AFTER_PERSIST]
)
def test_a_crash_at_each_point_leaves_exactly_one_job(world: World, point: str) -> None:
    failpoints.configure(f"{point}=raise")
    with pytest.raises(failpoints.SimulatedCrash):
        world.proto().start()
    failpoints.configure("")
    decision = world.proto(try_number=2).start()
    assert isinstance(decision, Defer)
    assert len(world.fake.jobs) == 1 and len(world.jobs_of(0)) == 1
    (job_id,) = world.fake.jobs
    assert decision.record.job == {"project": "fake-project", "location": "US", "job_id": job_id}
    assert decision.adopted is (point == failpoints.AFTER_SUBMIT)
    # a third try only reattaches
    assert isinstance(world.proto(try_number=3).start(), Defer) and len(world.fake.jobs) == 1


def test_a_crash_before_the_outcome_returns_without_a_new_job(world: World) -> None:
    first = world.proto().start()
    assert isinstance(first, Defer) and first.record.job is not None
    world.fake.finish(first.record.job["job_id"])
    failpoints.configure(f"{failpoints.BEFORE_OUTCOME}=raise")
    with pytest.raises(failpoints.SimulatedCrash):
        world.proto().complete({"status": "succeeded", "job": first.record.job})
    failpoints.configure("")
    again = world.proto(try_number=2).start()
    assert isinstance(again, Finished) and len(world.fake.jobs) == 1


def test_a_failure_starts_exactly_one_new_generation_even_through_crashes(world: World) -> None:
    first = world.proto().start()
    assert isinstance(first, Defer) and first.record.job is not None
    world.fake.finish(first.record.job["job_id"], "FAILED")
    with pytest.raises(JobFailed, match="generation 0"):
        world.proto().complete({"status": "failed", "job": first.record.job, "message": "invalidQuery"})
    failpoints.configure(f"{failpoints.AFTER_SUBMIT}=raise")
    with pytest.raises(failpoints.SimulatedCrash):
        world.proto(try_number=2).start()
    failpoints.configure("")
    second = world.proto(try_number=3).start()
    assert isinstance(second, Defer) and second.record.generation == 1 and second.adopted
    assert len(world.jobs_of(0)) == 1 and len(world.jobs_of(1)) == 1 and len(world.fake.jobs) == 2


def test_a_record_lost_after_the_submit_is_found_by_its_token(world: World) -> None:
    first = world.proto().start()
    assert isinstance(first, Defer)
    world.store.data.pop(STATE_KEY)  # the record is gone (deleted, or the store lost it)
    again = world.proto(try_number=2).start()
    assert isinstance(again, Defer) and again.record.job == first.record.job
    assert len(world.fake.jobs) == 1
