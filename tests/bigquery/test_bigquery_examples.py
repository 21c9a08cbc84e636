"""The BigQuery example DAG parses without a project, and builds the specs the operator inserts."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from durable_jobs.operators.bigquery import BigQueryJobOperator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DAG_ID = "durable_bigquery_query"


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(EXAMPLES))


def test_the_example_imports_without_errors(dagbag: DagBag) -> None:
    assert {path: err for path, err in dagbag.import_errors.items() if "bigquery" in Path(path).name} == {}
    for task in dagbag.dags[DAG_ID].tasks:
        assert type(task) is BigQueryJobOperator and task.retries >= 1
        assert task.deferrable and task.conn_id == "google_cloud_default"


def test_the_example_builds_its_jobs(dagbag: DagBag) -> None:
    dag = dagbag.dags[DAG_ID]
    report, export = dag.get_task("daily_report"), dag.get_task("export")
    assert export.upstream_task_ids == {"daily_report"}
    context = {"ds": "2026-12-03", "ds_nodash": "20261203"}
    report.render_template_fields(context)
    spec = report.build_spec(None)
    query = spec.configuration["query"]
    assert "DATE(created_at) = '2026-12-03'" in query["query"] and "durable-fake" not in query["query"]
    assert query["destinationTable"] == {"datasetId": "analytics", "tableId": "daily_orders_20261203"}
    assert "labels" not in spec.configuration and spec.location == "EU"
    assert spec.labels == {"team": "analytics", "airflow-dag": DAG_ID, "airflow-task": "daily_report"}
    export.render_template_fields(context)
    extract = export.build_spec(None)
    assert extract.configuration["extract"]["destinationUris"] == ["gs://example-exports/orders/2026-12-03/part-*.csv"]
    assert extract.job_id_prefix == "airflow_export_"


def test_the_demo_script_reaches_the_query_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DURABLE_JOBS_EXAMPLE_BIGQUERY_SCRIPT", "durable-fake:5s:DONE")
    bag = DagBag(dag_folder=str(EXAMPLES / "bigquery_query.py"))
    report = bag.dags[DAG_ID].get_task("daily_report")
    report.render_template_fields({"ds": "2026-12-03", "ds_nodash": "20261203"})
    assert report.build_spec(None).configuration["query"]["query"].endswith("\n-- durable-fake:5s:DONE")
