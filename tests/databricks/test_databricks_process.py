"""The fake workspace as its own process (what the end-to-end tests run against): a submit over HTTP is seen
by the unauthenticated admin listener with its token, and the process is gone after ``stop()``."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil
import pytest

from durable_jobs_harness.databricks_process import DatabricksProcess
from tests.databricks.workspace import API, new_token

pytestmark = pytest.mark.timeout(120)


def post(url: str, body: Mapping[str, Any], token: str | None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return dict(json.load(resp))


def test_a_submit_is_seen_by_the_admin_listener_and_stop_ends_the_process(tmp_path: Path) -> None:
    proc = DatabricksProcess(tmp_path / "dbx", time_scale=0.1)
    try:
        proc.start()
        pid = proc.pid
        assert pid is not None and psutil.pid_exists(pid)
        tok = new_token()
        body = {
            "run_name": f"airflow-durable-dag.task [{tok}]",
            "tasks": [{"task_key": "main", "notebook_task": {"notebook_path": "/x"}}],
            "idempotency_token": tok,
        }
        with pytest.raises(urllib.error.HTTPError) as refused:
            post(f"{proc.url}{API}/runs/submit", body, None)
        assert refused.value.code == 401
        run_id = post(f"{proc.url}{API}/runs/submit", body, proc.pat)["run_id"]
        job_id = proc.create_job("nightly")
        job_run = post(f"{proc.url}{API}/run-now", {"job_id": job_id}, proc.pat)["run_id"]
        runs = {r["run_id"]: r for r in proc.runs()}
        assert set(runs) == {run_id, job_run}
        assert (runs[run_id]["token"], runs[run_id]["run_type"], runs[run_id]["deleted"]) == (tok, "SUBMIT_RUN", False)
        assert (runs[job_run]["job_id"], runs[job_run]["run_type"]) == (job_id, "JOB_RUN")
        assert runs[run_id]["run"]["run_page_url"] == f"{proc.url}/?o=0#run/{run_id}"
        assert proc.finish(job_run, "FAILED")["result_state"] == "FAILED"
        assert proc.forget_run(job_run)["forgotten"] is True
        assert proc.delete_run(run_id)["deleted"] is True
        with pytest.raises(urllib.error.HTTPError) as deleted:
            post(f"{proc.url}{API}/runs/submit", body, proc.pat)
        assert deleted.value.code == 400
        assert {r["run_id"] for r in proc.runs()} == {run_id, job_run}  # the admin listener still shows both
    finally:
        proc.stop()
    assert proc.pid is None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert "fake Databricks stopped" in proc.logs_tail()
