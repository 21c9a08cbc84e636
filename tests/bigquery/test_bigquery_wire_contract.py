"""BigQuery's REST v2 jobs contract as the client relies on it: against the fake, and against real BigQuery when
``DURABLE_JOBS_BIGQUERY_PROJECT`` is set with Google credentials (application-default: a key file in
``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's, or the metadata server), as a ``real-bigquery`` target (marker
``bigquery_real``) of every test. Unset, the same tests run against the fake only (nothing skips). The jobs are
``SELECT 1`` queries (free: no bytes scanned), in ``DURABLE_JOBS_BIGQUERY_LOCATION`` (default US).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from durable_jobs.clients.bigquery import BigQueryClient, BigQueryJobSpec, ServiceAccountAuth, application_default
from durable_jobs.clients.bigquery.answers import Job
from durable_jobs.errors import PermanentError
from durable_jobs.status import JobState
from durable_jobs.transport.http import close_sessions
from durable_jobs_harness.fake_bigquery import FakeBigQuery

pytestmark = pytest.mark.timeout(300)

REAL_PROJECT = os.environ.get("DURABLE_JOBS_BIGQUERY_PROJECT")
TARGETS = [pytest.param("fake", id="fake-bigquery")]
if REAL_PROJECT:
    TARGETS.append(pytest.param("real", id="real-bigquery", marks=pytest.mark.bigquery_real))


@dataclass
class Target:
    client: BigQueryClient
    location: str


@pytest.fixture(params=TARGETS)
async def target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    if request.param == "fake":
        async with FakeBigQuery(time_scale=0.01) as fake:
            sa = ServiceAccountAuth(fake.service_account_info())
            yield Target(BigQueryClient(fake.project, auth=sa, base_url=fake.url), "US")
    else:
        assert REAL_PROJECT is not None
        adc = await asyncio.to_thread(application_default)
        yield Target(BigQueryClient(REAL_PROJECT, auth=adc), os.environ.get("DURABLE_JOBS_BIGQUERY_LOCATION", "US"))
    await close_sessions()


def token() -> str:
    return "dj" + uuid.uuid4().hex[:20]


def query(target: Target, seconds: int = 1) -> BigQueryJobSpec:
    return BigQueryJobSpec(
        {"query": {"query": f"SELECT 1 AS x -- durable-fake:{seconds}s:DONE", "useLegacySql": False}},
        location=target.location,
        labels={"suite": "durable-jobs-contract"},
        job_id_prefix="durable_jobs_contract_",
    )


async def until_done(target: Target, job_id: str) -> Job:
    deadline = time.monotonic() + 120
    while True:
        job = await target.client.get(target.client.project, job_id, target.location)
        assert job is not None and job.status is not None
        if job.status.state == "DONE":
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job.status.state}"
        await asyncio.sleep(0.5)


async def test_insert_answers_the_job_with_its_reference_and_labels(target: Target) -> None:
    tok = token()
    spec = query(target)
    job = await target.client.insert(
        target.client.project, spec.request_body(target.client.project, tok), spec.job_id(tok)
    )
    assert job.jobReference.jobId == spec.job_id(tok) and job.jobReference.projectId == target.client.project
    assert (job.jobReference.location or "").lower() == target.location.lower()
    assert job.token == tok and job.status is not None
    assert job.status.state in ("PENDING", "RUNNING", "DONE")


async def test_the_same_id_again_is_a_duplicate_and_adopted_by_its_label(target: Target) -> None:
    tok = token()
    first = await target.client.submit(query(target), tok)
    assert await target.client.submit(query(target), tok) == first
    assert await target.client.find(tok, since=0, spec=query(target)) == first


async def test_an_unknown_id_is_not_found(target: Target) -> None:
    assert (
        await target.client.get(target.client.project, f"durable_jobs_contract_none_{token()}", target.location) is None
    )
    assert await target.client.find(token(), since=0, spec=query(target)) is None


async def test_a_finished_query_succeeds_with_statistics(target: Target) -> None:
    loc = await target.client.submit(query(target), token())
    await until_done(target, loc["job_id"])
    status = await target.client.status(loc)
    assert status.state is JobState.SUCCEEDED
    result = await target.client.result(loc)
    assert result["destination_table"] and result["destination_table"].startswith(f"{target.client.project}.")
    assert isinstance(result["total_bytes_processed"], int) and isinstance(result["total_slot_ms"], int)


async def test_the_active_listing_shows_a_running_job_and_statuses_read_it(target: Target) -> None:
    loc = await target.client.submit(query(target, 30), token())
    answer = await target.client.statuses([loc])
    (status,) = answer.values()
    assert status.state in (JobState.PENDING, JobState.RUNNING, JobState.SUCCEEDED)


async def test_cancel_answers_and_is_idempotent(target: Target) -> None:
    loc = await target.client.submit(query(target, 30), token())
    await target.client.cancel(loc)
    await target.client.cancel(loc)
    job = await until_done(target, loc["job_id"])
    assert job.status is not None
    # a query that ended before the cancel took effect succeeded; otherwise it was stopped
    assert job.status.errorResult is None or job.status.errorResult.reason == "stopped"


async def test_a_configuration_the_api_refuses_is_permanent(target: Target) -> None:
    bad = BigQueryJobSpec({"query": {"query": "SELECT 1", "noSuchField": 1}}, location=target.location)
    with pytest.raises(PermanentError):
        await target.client.submit(bad, token())
