"""The Databricks example DAGs parse without a workspace, and build the specs the operators submit."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.definitions.mappedoperator import MappedOperator

from durable_jobs.clients.databricks import RunNowSpec, SubmitRunSpec
from durable_jobs.operators.databricks import DatabricksRunNowOperator, DatabricksSubmitRunOperator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DAGS = {"durable_databricks_submit_run", "durable_databricks_run_now"}


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(EXAMPLES))


def test_the_examples_import_without_errors(dagbag: DagBag) -> None:
    assert {path: err for path, err in dagbag.import_errors.items() if "databricks" in Path(path).name} == {}
    assert set(dagbag.dags) >= DAGS
    for dag_id in DAGS:
        for task in dagbag.dags[dag_id].tasks:
            op = task.operator_class if isinstance(task, MappedOperator) else type(task)
            assert op in (DatabricksSubmitRunOperator, DatabricksRunNowOperator)
            assert task.retries >= 1
            if not isinstance(task, MappedOperator):
                assert task.deferrable and task.conn_id == "databricks_default"


def test_the_submit_example_builds_its_runs(dagbag: DagBag) -> None:
    dag = dagbag.dags["durable_databricks_submit_run"]
    report, aggregate = dag.get_task("daily_report"), dag.get_task("aggregate")
    assert aggregate.upstream_task_ids == {"daily_report"}
    report.render_template_fields({"ds": "2026-12-03"})
    spec = report.build_spec(None)
    assert isinstance(spec, SubmitRunSpec)
    assert spec.payload["run_name"] == "airflow-durable-durable_databricks_submit_run.daily_report"
    assert spec.payload["notebook_task"]["base_parameters"] == {"day": "2026-12-03"}
    assert spec.payload["new_cluster"]["num_workers"] == 2 and spec.payload["timeout_seconds"] == 3 * 3600
    aggregate.render_template_fields({"ds": "2026-12-03"})
    (task,) = aggregate.build_spec(None).payload["tasks"]
    assert task["spark_python_task"]["parameters"] == ["--day", "2026-12-03"]
    assert aggregate.build_spec(None).payload["run_name"] == "daily aggregates 2026-12-03"


def test_the_run_now_example_runs_a_job_by_name(dagbag: DagBag) -> None:
    dag = dagbag.dags["durable_databricks_run_now"]
    nightly = dag.get_task("nightly_etl")
    nightly.render_template_fields({"ds": "2026-12-03"})
    assert nightly.build_spec(None) == RunNowSpec(
        {"job_parameters": {"day": "2026-12-03", "full_refresh": "false"}}, job_name="nightly etl"
    )
    per_region = dag.get_task("per_region")
    assert isinstance(per_region, MappedOperator) and per_region.upstream_task_ids == {"nightly_etl"}
    expanded = per_region.expand_input.value["job_parameters"]
    assert [params["region"] for params in expanded] == ["eu", "us", "apac"]
    eu = per_region.unmap({"job_parameters": expanded[0]})  # what a map index runs
    eu.render_template_fields({"ds": "2026-12-03"})
    assert eu.build_spec(None) == RunNowSpec(
        {"job_parameters": {"day": "2026-12-03", "region": "eu"}}, job_name="nightly etl"
    )


def test_the_demo_script_reaches_the_runs_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DURABLE_JOBS_EXAMPLE_DATABRICKS_SCRIPT", "durable-fake:5s:SUCCESS")
    bag = DagBag(dag_folder=str(EXAMPLES / "databricks_submit_run.py"))
    aggregate = bag.dags["durable_databricks_submit_run"].get_task("aggregate")
    aggregate.render_template_fields({"ds": "2026-12-03"})
    (task,) = aggregate.build_spec(None).payload["tasks"]
    assert task["spark_python_task"]["parameters"][-1] == "durable-fake:5s:SUCCESS"
    bag = DagBag(dag_folder=str(EXAMPLES / "databricks_run_now.py"))
    nightly = bag.dags["durable_databricks_run_now"].get_task("nightly_etl")
    assert nightly.json["job_parameters"]["demo"] == "durable-fake:5s:SUCCESS"
