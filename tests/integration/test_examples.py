"""The example DAGs parse, and ``scripts/demo.py`` (``make demo``) runs them for real against Spark."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.definitions.mappedoperator import MappedOperator

from durable_jobs.operators.spark_standalone import SparkStandaloneOperator

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
DEMO = REPO / "scripts" / "demo.py"
DAG_IDS = {"durable_spark_quickstart", "durable_spark_python"}


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    # Parsing needs no metadata DB in Airflow 3.3 (and DAG files must not need Spark or the network).
    return DagBag(dag_folder=str(EXAMPLES))


def test_examples_import_without_errors(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dags) >= DAG_IDS


def test_example_tasks_are_deferrable_spark_standalone_operators(dagbag: DagBag) -> None:
    for dag_id in DAG_IDS:
        dag = dagbag.dags[dag_id]
        assert dag.tasks, dag_id
        for task in dag.tasks:
            if isinstance(task, MappedOperator):
                assert task.operator_class is SparkStandaloneOperator
                assert task.partial_kwargs.get("deferrable", True) is not False
                continue
            assert isinstance(task, SparkStandaloneOperator), (dag_id, task.task_id)
            assert task.deferrable is True
            assert task.conn_id == "spark_standalone_default"
            assert task.retries >= 1


def test_quickstart_settings(dagbag: DagBag) -> None:
    dag = dagbag.dags["durable_spark_quickstart"]
    assert dag.schedule is None
    (task,) = dag.tasks
    assert isinstance(task, SparkStandaloneOperator)
    assert task.main_class == os.environ.get("DURABLE_JOBS_EXAMPLE_MAIN_CLASS", "demo.SleepExit")
    assert task.application_args == ["2", "0", "ok"]
    assert task.retries == 2
    assert task.poll_interval == 2
    assert task.conf["spark.driver.memory"] == "512m"
    spec = task.build_spec(None)
    assert not spec.is_python


def test_python_example_uses_python_runner_and_expand(dagbag: DagBag) -> None:
    dag = dagbag.dags["durable_spark_python"]
    once = dag.get_task("sleep_once")
    assert isinstance(once, SparkStandaloneOperator)
    assert once.build_spec(None).effective_main_class == "org.apache.spark.deploy.PythonRunner"
    many = dag.get_task("sleep_many")
    assert isinstance(many, MappedOperator)
    assert "application_args" in many.expand_input.value


def run_demo(*args: str) -> tuple[subprocess.CompletedProcess[str], str]:
    # A clean environment: the demo sets up its own AIRFLOW_HOME, DB, connection and fail-points.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DURABLE_JOBS"))}
    proc = subprocess.run(
        [sys.executable, str(DEMO), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    last = lines[-1] if lines else ""
    return proc, last


def _explain(proc: subprocess.CompletedProcess[str]) -> str:
    demo_lines = [line for line in proc.stdout.splitlines() if line.startswith(("[demo]", "demo:"))]
    return f"exit code {proc.returncode}\n" + "\n".join(demo_lines) + f"\n--- stderr tail ---\n{proc.stderr[-3000:]}"


@pytest.mark.spark
@pytest.mark.timeout(600)
def test_demo_crash_after_submit_is_adopted_with_one_submission() -> None:
    proc, last = run_demo()
    assert re.fullmatch(r"demo: dag=durable_spark_quickstart driver=\S+ submissions=1 tries=\d+ state=success", last), (
        _explain(proc)
    )
    assert re.search(r"demo: .* submissions=1 .* state=success", last)
    assert proc.returncode == 0, _explain(proc)
    # the crash really happened
    assert "crash: durable_jobs.failpoints.SimulatedCrash: after_submit" in proc.stdout, _explain(proc)
    # try 1 crashed, a later try finished: with one submission, that try adopted the crashed try's driver
    tries = int(re.search(r"tries=(\d+)", last)[1])  # type: ignore[index]
    assert tries >= 2, _explain(proc)


@pytest.mark.spark
@pytest.mark.timeout(600)
def test_demo_python_dag_with_mapped_task() -> None:
    # the first task to submit (sleep_once) crashes after submitting; its retry adopts the driver
    proc, last = run_demo("--dag", "durable_spark_python")
    # one driver for sleep_once, one per map index of sleep_many: nothing submitted twice
    assert re.fullmatch(r"demo: dag=durable_spark_python driver=\S+ submissions=3 tries=\d+ state=success", last), (
        _explain(proc)
    )
    assert proc.returncode == 0, _explain(proc)
    assert re.search(r"sleep_once\[-1\]  state=success  tries=2 ", proc.stdout), _explain(proc)
    assert re.search(r"sleep_many\[0\]  state=success", proc.stdout), _explain(proc)
    assert re.search(r"sleep_many\[1\]  state=success", proc.stdout), _explain(proc)
