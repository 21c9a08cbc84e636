"""The triggerer benchmark's Databricks stub answers as the Jobs API 2.2 does, or its request counts mean nothing.

`make bench` compares our batched poller (one `runs/list?active_only=true` walk per poll) with the provider's
trigger (`runs/get` per run and poll) on this stub: its pages, cursor, limits and auth are checked here.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_servers import FakeDatabricks

from durable_jobs_harness.fake_spark import free_port

AUTH = {"Authorization": f"Bearer {FakeDatabricks.PAT}"}


@pytest.fixture
async def stub() -> AsyncIterator[tuple[FakeDatabricks, aiohttp.ClientSession]]:
    fake = FakeDatabricks()
    await fake.start(free_port())
    try:
        async with aiohttp.ClientSession(headers=AUTH) as session:
            yield fake, session
    finally:
        await fake.runner.cleanup()


async def _get(session: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, Any]:
    async with session.get(url, **kw) as resp:
        return resp.status, await resp.json()


async def test_an_active_walk_lists_every_running_run_once_newest_first_even_as_runs_end(
    stub: tuple[FakeDatabricks, aiohttp.ClientSession],
) -> None:
    fake, session = stub
    ids = fake.reset(60)
    url = f"{fake.url}/api/2.2/jobs/runs/list"
    params = {"active_only": "true", "run_type": "SUBMIT_RUN", "limit": "24"}
    status, first = await _get(session, url, params=params)
    assert status == 200 and len(first["runs"]) == 24 and first["has_more"]
    assert [r["run_id"] for r in first["runs"]] == ids[::-1][:24]
    assert "tasks" not in first["runs"][0] and first["runs"][0]["state"]["life_cycle_state"] == "RUNNING"
    # runs on the next pages end during the walk: the cursor shifts no page, and ended runs are not listed
    for i in (0, 5, 30):
        fake.finish(i)
    seen = [r["run_id"] for r in first["runs"]]
    token, pages = first["next_page_token"], 1
    while token:
        status, page = await _get(session, url, params={**params, "page_token": token})
        assert status == 200
        seen += [r["run_id"] for r in page.get("runs", [])]
        token, pages = page.get("next_page_token"), pages + 1
        assert page["has_more"] == (token is not None)
    assert pages == 3 and seen == [r for r in ids[::-1] if r not in (ids[0], ids[5], ids[30])]
    status, done = await _get(session, f"{fake.url}/api/2.2/jobs/runs/get", params={"run_id": str(ids[5])})
    assert status == 200 and done["state"]["result_state"] == "SUCCESS" and done["status"]["state"] == "TERMINATED"
    assert done["tasks"][0]["state"]["life_cycle_state"] == "TERMINATED"
    assert fake.tally.kinds == {"runs/list": 3, "runs/get": 1}


async def test_limits_auth_and_the_run_id_in_a_get_body(stub: tuple[FakeDatabricks, aiohttp.ClientSession]) -> None:
    fake, session = stub
    ids = fake.reset(3)
    base = f"{fake.url}/api/2.2/jobs"
    status, err = await _get(session, f"{base}/runs/list", params={"limit": "25"})
    assert status == 400 and err["error_code"] == "INVALID_PARAMETER_VALUE"
    async with aiohttp.ClientSession() as anonymous:
        status, err = await _get(anonymous, f"{base}/runs/get", params={"run_id": str(ids[0])})
    assert status == 401 and "error_code" in err
    # the databricks provider's async hook sends runs/get's run id as a JSON body
    status, run = await _get(session, f"{base}/runs/get", json={"run_id": ids[1]})
    assert status == 200 and run["run_id"] == ids[1] and run["run_type"] == "SUBMIT_RUN"
    status, err = await _get(session, f"{base}/runs/get", params={"run_id": "7"})
    assert status == 404 and err["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    status, empty = await _get(session, f"{base}/runs/list", params={"run_type": "JOB_RUN"})
    assert status == 200 and "runs" not in empty and empty["has_more"] is False
