"""The YARN example DAGs parse without a cluster, and build the specs the operators submit."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from durable_jobs.clients.yarn import SparkSubmitApplication, YarnApplication
from durable_jobs.operators.yarn import SparkOnYarnOperator, YarnApplicationOperator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(EXAMPLES))


def test_yarn_examples_import_without_errors(dagbag: DagBag) -> None:
    errors = {path: err for path, err in dagbag.import_errors.items() if "yarn" in Path(path).name}
    assert errors == {}
    assert {"durable_yarn_rest", "durable_yarn_spark"} <= set(dagbag.dags)


def test_rest_example_builds_a_submission_with_yarn_markers_intact(dagbag: DagBag) -> None:
    (task,) = dagbag.dags["durable_yarn_rest"].tasks
    assert isinstance(task, YarnApplicationOperator) and task.deferrable and task.retries >= 1
    spec = task.build_spec(None)
    assert isinstance(spec, YarnApplication)
    body = spec.request_body("application_1_1", "dj0123456789abcdef0123")
    assert body["am-container-spec"]["commands"]["command"].startswith("{{JAVA_HOME}}/bin/java")
    assert body["application-tags"]["tag"][0] == "dj0123456789abcdef0123"
    assert "command" not in task.template_fields  # Jinja would eat {{JAVA_HOME}}


def test_spark_example_builds_a_cluster_mode_command(dagbag: DagBag) -> None:
    dag = dagbag.dags["durable_yarn_spark"]
    pi = dag.get_task("spark_pi")
    assert isinstance(pi, SparkOnYarnOperator) and pi.conn_id == "yarn_default"
    spec = pi.build_spec(None)
    assert isinstance(spec, SparkSubmitApplication)
    argv = spec.command("dj0123456789abcdef0123")
    assert argv[:5] == ["spark-submit", "--master", "yarn", "--deploy-mode", "cluster"]
    assert "spark.yarn.tags=dj0123456789abcdef0123,example" in argv
    assert "spark.executor.instances=2" in argv
    assert "application_args" in dag.get_task("pyspark_job").template_fields
