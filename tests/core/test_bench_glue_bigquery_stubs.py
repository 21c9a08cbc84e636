"""The triggerer benchmark's Glue and BigQuery endpoints answer as AWS Glue and BigQuery do, or their request
counts mean nothing.

`make bench` compares our batched pollers (a `GetJobRuns` walk per job name; a `jobs.list` walk of the pending
and running jobs per project) with the providers' triggers (`GetJobRun`, `jobs.get` per job and poll) on these
endpoints: their pages, cursors, errors, auth and per-service counts are checked here.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_servers import BenchBigQuery, FakeAws, FakeEmr, FakeGlue

from durable_jobs.clients.bigquery.auth import GOOGLE_TOKEN_URI, JWT_BEARER
from durable_jobs_harness.fake_spark import free_port


@pytest.fixture
async def aws() -> AsyncIterator[tuple[FakeAws, aiohttp.ClientSession]]:
    fake = FakeAws({"ElasticMapReduce": FakeEmr(), "AWSGlue": FakeGlue()})
    await fake.start(free_port())
    try:
        async with aiohttp.ClientSession() as session:
            yield fake, session
    finally:
        await fake.runner.cleanup()


async def _call(session: aiohttp.ClientSession, url: str, target: str, body: dict[str, Any]) -> tuple[int, Any]:
    headers = {"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"}
    async with session.post(url + "/", json=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_glue_lists_a_jobs_runs_newest_first_in_pages_and_gets_one_run(
    aws: tuple[FakeAws, aiohttp.ClientSession],
) -> None:
    fake, session = aws
    glue: FakeGlue = fake.services["AWSGlue"]
    ids = glue.reset(450, runs_per_job=300)  # two jobs: 300 runs and 150
    assert glue.job_of[0] == glue.job_of[299] != glue.job_of[300] and all(i.startswith("jr_") for i in ids)
    assert all(len(i) == 67 for i in ids)
    first_job = glue.job_of[0]
    status, page = await _call(session, fake.url, "AWSGlue.GetJobRuns", {"JobName": first_job, "MaxResults": 200})
    assert status == 200 and len(page["JobRuns"]) == 200 and page["NextToken"]
    assert [r["Id"] for r in page["JobRuns"]][:2] == [ids[299], ids[298]]  # newest first
    assert page["JobRuns"][0]["JobRunState"] == "RUNNING" and "--durable_jobs_token" in page["JobRuns"][0]["Arguments"]
    glue.finish(10)
    body = {"JobName": first_job, "MaxResults": 200, "NextToken": page["NextToken"]}
    status, rest = await _call(session, fake.url, "AWSGlue.GetJobRuns", body)
    assert status == 200 and len(rest["JobRuns"]) == 100 and "NextToken" not in rest
    assert {r["Id"]: r["JobRunState"] for r in rest["JobRuns"]}[ids[10]] == "SUCCEEDED"
    status, run = await _call(session, fake.url, "AWSGlue.GetJobRun", {"JobName": first_job, "RunId": ids[10]})
    assert status == 200 and run["JobRun"]["JobRunState"] == "SUCCEEDED" and run["JobRun"]["CompletedOn"] > 0
    # a run of another job, an unknown job, a page too large: Glue's errors
    status, err = await _call(session, fake.url, "AWSGlue.GetJobRun", {"JobName": first_job, "RunId": ids[300]})
    assert status == 400 and err["__type"] == "EntityNotFoundException"
    status, err = await _call(session, fake.url, "AWSGlue.GetJobRuns", {"JobName": "nope"})
    assert status == 400 and err["__type"] == "EntityNotFoundException"
    status, err = await _call(session, fake.url, "AWSGlue.GetJobRuns", {"JobName": first_job, "MaxResults": 201})
    assert status == 400 and err["__type"] == "InvalidInputException"
    assert glue.tally.kinds == {"GetJobRuns": 4, "GetJobRun": 2}


async def test_one_aws_endpoint_serves_emr_and_glue_each_counted_on_its_own(
    aws: tuple[FakeAws, aiohttp.ClientSession],
) -> None:
    fake, session = aws
    emr: FakeEmr = fake.services["ElasticMapReduce"]
    glue: FakeGlue = fake.services["AWSGlue"]
    steps, runs = emr.reset(3), glue.reset(3)
    body = {"ClusterId": emr.cluster_of[0], "StepId": steps[0]}
    status, step = await _call(session, fake.url, "ElasticMapReduce.DescribeStep", body)
    assert status == 200 and step["Step"]["Id"] == steps[0]
    status, run = await _call(session, fake.url, "AWSGlue.GetJobRun", {"JobName": glue.job_of[1], "RunId": runs[1]})
    assert status == 200 and run["JobRun"]["Id"] == runs[1]
    status, err = await _call(session, fake.url, "AWSGlue.StartJobRun", {"JobName": glue.job_of[1]})
    assert status == 400 and err["__type"] == "UnknownOperationException"
    status, err = await _call(session, fake.url, "AmazonEMR.DescribeStep", body)
    assert status == 400 and err["__type"] == "UnknownOperationException"
    assert emr.tally.kinds == {"DescribeStep": 1} and glue.tally.kinds == {"GetJobRun": 1, "StartJobRun": 1}


@pytest.fixture
async def bigquery() -> AsyncIterator[tuple[BenchBigQuery, aiohttp.ClientSession]]:
    fake = BenchBigQuery()
    await fake.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield fake, session
    finally:
        await fake.stop()


def _assertion(fake: BenchBigQuery, audience: str) -> str:
    info = fake.service_account_info()
    now = int(time.time())
    claims = {"iss": info["client_email"], "aud": audience, "iat": now, "exp": now + 3600, "scope": "x"}
    return jwt.encode(claims, info["private_key"], algorithm="RS256", headers={"kid": info["private_key_id"]})


async def test_bigquery_trades_a_signed_assertion_for_the_bearer_token_every_read_needs(
    bigquery: tuple[BenchBigQuery, aiohttp.ClientSession],
) -> None:
    fake, session = bigquery
    ids = fake.reset(2)
    get = f"{fake.url}/bigquery/v2/projects/{fake.PROJECT}/jobs/{ids[0]}"
    async with session.get(get) as resp:
        assert resp.status == 401 and (await resp.json())["error"]["errors"][0]["reason"] == "unauthorized"
    tokens = []
    # the key's token_uri (our client signs for it) and Google's token URI (google-auth signs for it, always)
    for audience in (fake.token_uri, GOOGLE_TOKEN_URI):
        form = {"grant_type": JWT_BEARER, "assertion": _assertion(fake, audience)}
        async with session.post(fake.token_uri, data=form) as resp:
            assert resp.status == 200
            tokens.append((await resp.json())["access_token"])
    async with session.post(fake.token_uri, data={"grant_type": JWT_BEARER, "assertion": _assertion(fake, "x")}) as r:
        assert r.status == 400
    async with session.get(get, headers={"Authorization": f"Bearer {tokens[1]}"}) as resp:
        job = await resp.json()
    assert resp.status == 200 and job["jobReference"]["jobId"] == ids[0] and job["status"]["state"] == "RUNNING"
    assert job["configuration"]["labels"]["durable_jobs_token"] and job["configuration"]["query"]["query"]
    assert fake.tally.kinds == {"jobs.get": 2, "token": 3}


async def test_bigquery_lists_the_active_jobs_newest_first_with_a_cursor_as_jobs_end(
    bigquery: tuple[BenchBigQuery, aiohttp.ClientSession],
) -> None:
    fake, session = bigquery
    ids = fake.reset(2500)
    auth = {"Authorization": f"Bearer {fake.issue_token()}"}
    url = f"{fake.url}/bigquery/v2/projects/{fake.PROJECT}/jobs"
    params: list[tuple[str, str]] = [("stateFilter", "pending"), ("stateFilter", "running"), ("projection", "minimal")]
    async with session.get(url, params=params, headers=auth) as resp:
        first = await resp.json()
    assert len(first["jobs"]) == 1000 and first["jobs"][0]["jobReference"]["jobId"] == ids[-1]
    assert "configuration" not in first["jobs"][0] and first["jobs"][0]["state"] == "RUNNING"
    for i in (0, 1200, 2400):  # one on each page, one already given
        fake.end(i)
    seen = [j["jobReference"]["jobId"] for j in first["jobs"]]
    token, pages = first.get("nextPageToken"), 1
    while token:
        async with session.get(url, params=[*params, ("pageToken", token)], headers=auth) as resp:
            page = await resp.json()
        seen += [j["jobReference"]["jobId"] for j in page.get("jobs", [])]
        token, pages = page.get("nextPageToken"), pages + 1
    assert pages == 3 and seen == [j for j in reversed(ids) if j not in (ids[0], ids[1200])]
    async with session.get(f"{url}/{ids[1200]}", params={"location": "US"}, headers=auth) as resp:
        done = await resp.json()
    assert done["status"] == {"state": "DONE"} and done["statistics"]["endTime"]
    async with session.get(f"{url}/{ids[1]}", params={"location": "EU"}, headers=auth) as resp:
        assert resp.status == 404 and (await resp.json())["error"]["errors"][0]["reason"] == "notFound"
    async with session.get(url, params={"stateFilter": "done"}, headers=auth) as resp:
        assert resp.status == 400
    assert fake.tally.kinds == {"jobs.list": 4, "jobs.get": 2}
