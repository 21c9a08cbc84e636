"""The example DAGs parse, and ``scripts/demo.py`` (``make demo``) runs them on a real Airflow and Spark."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

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
    assert task.application_args == ["15", "0", "ok"]
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


def _demo_env() -> dict[str, str]:
    # A clean environment: the demo sets up its own AIRFLOW_HOME, DB, connection and fail-points.
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DURABLE_JOBS"))}


def run_demo(*args: str) -> tuple[subprocess.CompletedProcess[str], str]:
    proc = subprocess.run(
        [sys.executable, str(DEMO), *args],
        cwd=REPO,
        env=_demo_env(),
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    return proc, lines[-1] if lines else ""


def _explain(stdout: str, stderr: str = "", code: int | None = None) -> str:
    return f"exit code {code}\n{stdout[-6000:]}\n--- stderr tail ---\n{stderr[-3000:]}"


SUMMARY = re.compile(
    r"demo: dag=(?P<dag>\S+) driver=(?P<drivers>\S+) submissions=(?P<subs>\d+) tries=(?P<tries>\d+) "
    r"state=(?P<state>success|failed)"
)


@pytest.mark.spark
@pytest.mark.timeout(600)
def test_demo_kills_the_worker_after_submit_and_the_retry_adopts_the_driver() -> None:
    """``make demo``: real Airflow processes; try 1's worker dies after submitting; one driver in the end."""
    proc, last = run_demo()
    why = _explain(proc.stdout, proc.stderr, proc.returncode)
    summary = SUMMARY.fullmatch(last)
    assert summary is not None, why
    assert summary["dag"] == "durable_spark_quickstart", why
    assert (summary["subs"], summary["state"]) == ("1", "success"), why
    assert int(summary["tries"]) >= 2, why
    assert proc.returncode == 0, why
    # try 1's task process really died at the fail-point, and a later try adopted the driver it had submitted
    assert re.search(r"sleep_exit try 1 +the task process died \(exit code 70\)", proc.stdout), why
    adopted = re.search(r"sleep_exit try \d+ +Adopted Spark driver (driver-[\w-]+) ", proc.stdout)
    assert adopted is not None, why
    assert adopted[1] == summary["drivers"], why
    assert re.search(
        rf"Spark master: 1 driver\(s\) submitted\n\[demo\]   {re.escape(adopted[1])}  FINISHED", proc.stdout
    )


def _read_until(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


@pytest.mark.spark
@pytest.mark.timeout(600)
def test_demo_keep_running_serves_airflow_and_spark_until_interrupted(tmp_path: Path) -> None:
    """``make demo-ui``: the PySpark example (a task and a mapped task); the UI answers; Ctrl-C stops it all."""
    stderr = (tmp_path / "stderr").open("w")
    proc = subprocess.Popen(
        [sys.executable, str(DEMO), "--keep-running", "--dag", "durable_spark_python"],
        cwd=REPO,
        env=_demo_env(),
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    out: list[str] = []
    lines: queue.Queue[str | None] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=_read_until, args=(proc.stdout, lines), daemon=True).start()
    try:
        deadline = time.monotonic() + 420
        while not out or out[-1] != "[demo] press Ctrl-C to stop everything":
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, _explain("\n".join(out), code=proc.poll())
            out.append(line)
        text = "\n".join(out)
        ui = re.search(r"Airflow UI   (http://127\.0\.0\.1:\d+)  user admin  password (\S+)", text)
        master = re.search(r"Spark master (http://127\.0\.0\.1:\d+)$", text, re.M)
        assert ui is not None and master is not None, _explain(text)
        # what a person would do: log in, look at the run, look at the drivers
        token = _post_json(f"{ui[1]}/auth/token", {"username": "admin", "password": ui[2]})["access_token"]
        runs = _get_json(f"{ui[1]}/api/v2/dags/durable_spark_python/dagRuns", token)["dag_runs"]
        assert [r["state"] for r in runs] == ["success"], runs
        drivers = _get_json(f"{master[1]}/json/")["completeddrivers"]
        assert sorted(d["state"] for d in drivers) == ["FINISHED"] * 3, drivers
    finally:
        proc.send_signal(signal.SIGINT)  # the demo stops Airflow and Spark by PID, then prints its summary
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        finally:
            stderr.close()
    while (line := lines.get(timeout=10)) is not None:
        out.append(line)
    text = "\n".join(out)
    why = _explain(text, (tmp_path / "stderr").read_text(), proc.returncode)
    summary = SUMMARY.fullmatch(out[-1])
    assert summary is not None, why
    # one driver for sleep_once (adopted after the crash), one per map index of sleep_many
    assert (summary["dag"], summary["subs"], summary["state"]) == ("durable_spark_python", "3", "success"), why
    assert proc.returncode == 0, why
    assert re.search(r"sleep_once try 1 +the task process died \(exit code 70\)", text), why
    # everything was stopped: nobody answers on the UI or the master any more
    for url in (ui[1], master[1]):
        with pytest.raises(OSError):
            urllib.request.urlopen(f"{url}/", timeout=5)


def _get_json(url: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as resp:
        return json.loads(resp.read())


def _post_json(url: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())
