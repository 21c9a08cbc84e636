"""The fake BigQuery as its own process (what the end-to-end tests run against): the key it writes is accepted
by the client's JWT grant, a submit is seen by the unauthenticated admin listener with its label, and the process
is gone after ``stop()``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psutil
import pytest

from durable_jobs.clients.bigquery import BigQueryClient, ServiceAccountAuth
from durable_jobs.status import JobState
from durable_jobs.transport.http import close_sessions
from durable_jobs_harness.bigquery_process import BigQueryProcess
from tests.bigquery.conftest import spec

pytestmark = pytest.mark.timeout(120)
TOKEN = "dj" + "5" * 20


def test_a_submit_over_the_key_file_is_seen_by_the_admin_listener(tmp_path: Path) -> None:
    proc = BigQueryProcess(tmp_path / "bq", time_scale=0.1)
    try:
        proc.start()
        pid = proc.pid
        assert pid is not None and psutil.pid_exists(pid)
        key = proc.key_info()
        assert key["type"] == "service_account" and key["token_uri"] == f"{proc.url}/token"
        assert (proc.key_file.stat().st_mode & 0o777) == 0o600

        async def submit() -> tuple[dict[str, object], JobState]:
            client = BigQueryClient(proc.project, auth=ServiceAccountAuth(key), base_url=proc.url)
            try:
                loc = await client.submit(spec(), TOKEN)
                return loc, (await client.status(loc)).state
            finally:
                await close_sessions()

        loc, state = asyncio.run(submit())
        assert state.is_active
        (job,) = proc.jobs()
        assert job["job_id"] == loc["job_id"] and job["labels"]["durable_jobs_token"] == TOKEN
        assert job["state"] in ("PENDING", "RUNNING") and job["error"] is None
        assert proc.finish(str(loc["job_id"]), "FAILED")["error"]["reason"] == "invalidQuery"
        assert proc.forget(str(loc["job_id"]))["forgotten"] is True
    finally:
        proc.stop()
    assert proc.pid is None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert "fake BigQuery stopped" in proc.logs_tail()
