"""The Databricks example DAGs run against the fake workspace (its own process), as a worker and a triggerer
would run them: each task submits its run, defers, the trigger sees the run end, the task resumes."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag

from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.testing.state_store import InMemoryStateStore
from durable_jobs_harness.databricks_process import DatabricksProcess

from ..example_runner import run_task

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
JOB = "nightly etl"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabricksProcess]:
    fake = DatabricksProcess(tmp_path_factory.mktemp("databricks"))
    try:
        yield fake.start()
    finally:
        fake.stop()


@pytest.fixture
def dagbag(workspace: DatabricksProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[DagBag]:
    conn = {"conn_type": "databricks_durable", "host": workspace.url, "password": workspace.pat}
    monkeypatch.setenv("AIRFLOW_CONN_DATABRICKS_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("DURABLE_JOBS_EXAMPLE_DATABRICKS_SCRIPT", "durable-fake:1s:SUCCESS")
    monkeypatch.setenv("DURABLE_JOBS_EXAMPLE_DATABRICKS_JOB", JOB)
    DurableJobHook.clear_cache()
    try:
        yield DagBag(dag_folder=str(EXAMPLES))
    finally:
        DurableJobHook.clear_cache()


def _quick(task: Any) -> Any:
    """The example's task polling every second (its own interval is for a real workspace)."""
    task = copy.copy(task)
    task.poll_interval = 1.0
    return task


def _runs_of(workspace: DatabricksProcess, run_id: int) -> list[dict[str, Any]]:
    return [r for r in workspace.runs() if r["run_id"] == run_id]


def test_the_submit_run_example_runs_its_two_tasks(workspace: DatabricksProcess, dagbag: DagBag) -> None:
    dag = dagbag.dags["durable_databricks_submit_run"]
    store, xcoms = InMemoryStateStore(), {}
    with store.installed():
        results = [
            run_task(_quick(dag.get_task(t)), store, xcoms, extra_context={"ds": "2026-12-03"}) for t in dag.task_ids
        ]
    assert [r["outcome"] for r in results] == ["succeeded", "succeeded"]
    for result in results:
        (run,) = _runs_of(workspace, result["run_id"])
        assert run["run_type"] == "SUBMIT_RUN" and run["token"] == result["token"]
        assert run["run_name"].endswith(f"[{result['token']}]")
        assert (run["life_cycle_state"], run["result_state"]) == ("TERMINATED", "SUCCESS")
        assert result["run_page_url"].startswith(workspace.url) and str(result["run_id"]) in result["run_page_url"]
    assert results[0]["token"] != results[1]["token"]


def test_the_run_now_example_runs_the_job_by_its_name(workspace: DatabricksProcess, dagbag: DagBag) -> None:
    job_id = workspace.create_job(JOB)
    task = _quick(dagbag.dags["durable_databricks_run_now"].get_task("nightly_etl"))
    store = InMemoryStateStore()
    with store.installed():
        result = run_task(task, store, {}, extra_context={"ds": "2026-12-03"})
    assert result["outcome"] == "succeeded"
    (run,) = _runs_of(workspace, result["run_id"])
    assert (run["run_type"], run["job_id"], run["token"]) == ("JOB_RUN", job_id, result["token"])
    assert (run["life_cycle_state"], run["result_state"]) == ("TERMINATED", "SUCCESS")
    # a second execute of the same try (a crash after the outcome was saved) starts nothing: the record answers
    with store.installed():
        again = run_task(task, store, {}, extra_context={"ds": "2026-12-03"})
    assert again["run_id"] == result["run_id"] and len([r for r in workspace.runs() if r["job_id"] == job_id]) == 1
