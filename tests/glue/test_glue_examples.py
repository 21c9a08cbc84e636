"""The Glue example DAG parses without AWS, and builds the specs the operator starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.definitions.mappedoperator import MappedOperator

from durable_jobs.clients.glue import GlueJobRunSpec
from durable_jobs.operators.glue import GlueJobRunOperator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DAG_ID = "durable_glue_job_run"


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(EXAMPLES / "glue_job_run.py"))


def test_the_example_imports_without_errors(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dags) == {DAG_ID}
    for task in dagbag.dags[DAG_ID].tasks:
        op = task.operator_class if isinstance(task, MappedOperator) else type(task)
        assert op is GlueJobRunOperator and task.retries >= 1
        if not isinstance(task, MappedOperator):
            assert task.deferrable and task.conn_id == "aws_default"


def test_the_example_builds_its_runs(dagbag: DagBag) -> None:
    dag = dagbag.dags[DAG_ID]
    nightly = dag.get_task("nightly_etl")
    nightly.render_template_fields({"ds": "2026-12-03"})
    assert nightly.build_spec(None) == GlueJobRunSpec(
        job_name="nightly-etl",
        arguments={"--day": "2026-12-03", "--full_refresh": "false"},
        worker_type="G.1X",
        number_of_workers=10,
        timeout=180,
    )
    per_region = dag.get_task("per_region")
    assert isinstance(per_region, MappedOperator) and per_region.upstream_task_ids == {"nightly_etl"}
    expanded = per_region.expand_input.value["script_args"]
    assert [args["--region"] for args in expanded] == ["eu", "us", "apac"]
    eu = per_region.unmap({"script_args": expanded[0]})  # what a map index runs
    eu.render_template_fields({"ds": "2026-12-03"})
    assert eu.build_spec(None) == GlueJobRunSpec(
        job_name="nightly-etl", arguments={"--day": "2026-12-03", "--region": "eu"}, execution_class="FLEX"
    )


def test_the_job_name_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DURABLE_JOBS_EXAMPLE_GLUE_JOB", "other-job")
    bag = DagBag(dag_folder=str(EXAMPLES / "glue_job_run.py"))
    assert {
        task.partial_kwargs["job_name"] if hasattr(task, "partial_kwargs") else task.job_name
        for task in bag.dags[DAG_ID].tasks
    } == {"other-job"}
