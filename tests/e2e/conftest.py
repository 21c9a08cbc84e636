"""One real Airflow 3.3 and one real Spark standalone cluster for the whole crash matrix.

Both are started once per session from the installed packages (nothing skips: a missing JDK or pyspark
fails the run) and stopped by PID at the end. The Airflow home (logs, DB) and the Spark run dir are kept
when a test failed (or ``DURABLE_JOBS_E2E_KEEP`` is set), and the failing test prints the tails of every
component's log and of its run's task and trigger logs.

``DURABLE_JOBS_E2E_DB=postgres`` runs Airflow on a private PostgreSQL cluster instead of SQLite;
``DURABLE_JOBS_E2E_REPORT`` moves the report (default ``build/e2e-report.json``).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from durable_jobs_harness.airflow_env import AirflowEnv
from durable_jobs_harness.spark_cluster import SparkCluster, TestApps, build_test_apps

from .observe import Row

REPO = Path(__file__).resolve().parents[2]
DAGS = Path(__file__).resolve().parent / "dags"
CONN_ID = "spark_standalone_default"


def _require_tools() -> None:
    missing = [tool for tool in ("java", "javac", "jar") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"the end-to-end tests need a JDK 17+: {', '.join(missing)} not on PATH")


class Report:
    """Rows of ``build/e2e-report.json``, written when the session ends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        self.started = time.monotonic()

    def add(self, row: Row) -> None:
        self.rows = [r for r in self.rows if r["scenario"] != row.scenario] + [row.to_json()]

    def write(self, database: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "airflow": importlib.metadata.version("apache-airflow"),
            "pyspark": importlib.metadata.version("pyspark"),
            "database": database,
            "suite_seconds": round(time.monotonic() - self.started, 1),
            "rows": self.rows,
        }
        self.path.write_text(json.dumps(doc, indent=2) + "\n", "utf-8")


class Failures:
    count = 0


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep = yield
    if rep.failed:
        Failures.count += 1
    setattr(item, f"rep_{rep.when}", rep)
    return rep


@pytest.fixture(scope="session")
def report() -> Iterator[Report]:
    path = Path(os.environ.get("DURABLE_JOBS_E2E_REPORT") or REPO / "build" / "e2e-report.json")
    rep = Report(path)
    yield rep
    rep.write(os.environ.get("DURABLE_JOBS_E2E_DB", "sqlite"))
    print(f"\ne2e report: {path}")


@pytest.fixture(scope="session")
def e2e_root() -> Iterator[Path]:
    # not under pytest's basetemp: parallel pytest sessions prune it, and these logs must survive a failure
    root = Path(tempfile.mkdtemp(prefix="durable-jobs-e2e-")).resolve()
    yield root
    if Failures.count or os.environ.get("DURABLE_JOBS_E2E_KEEP"):
        print(f"\ne2e: Airflow home (logs, DB) and Spark dirs kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def spark_apps(e2e_root: Path) -> TestApps:
    _require_tools()
    return build_test_apps(e2e_root / "apps")


@pytest.fixture(scope="session")
def spark(e2e_root: Path) -> Iterator[SparkCluster]:
    _require_tools()
    # worker cores are a scheduling number: enough that no driver waits for a slot while scenarios overlap
    cluster = SparkCluster(e2e_root / "spark", worker_cores=24, worker_memory="12g")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def airflow(e2e_root: Path, spark: SparkCluster, spark_apps: TestApps) -> Iterator[AirflowEnv]:
    from .test_crash_matrix import ALL_DAG_IDS

    conn = {
        "conn_type": "spark_standalone_rest",
        "host": "127.0.0.1",
        "port": spark.ports.rest,
        # a short request timeout: a paused master shows up as failed polls within seconds
        "extra": {"master_ui_urls": spark.master_ui_url, "timeout": 3},
    }
    env = {
        f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(conn),
        "DURABLE_JOBS_E2E_JAR": str(spark_apps.jar),
        "DURABLE_JOBS_E2E_MAIN_CLASS": spark_apps.main_class,
        "DURABLE_JOBS_E2E_ONCE_ROOT": str(e2e_root / "failpoints"),
    }
    started = time.monotonic()
    af = AirflowEnv(DAGS, home=e2e_root / "airflow", env=env, database=os.environ.get("DURABLE_JOBS_E2E_DB", "sqlite"))
    af.start()
    try:
        af.wait_dags(ALL_DAG_IDS)
        print(f"\nAirflow ready in {time.monotonic() - started:.1f}s at {af.base_url} (home {af.home})")
        yield af
    finally:
        af.stop(keep_home=True)


@pytest.fixture(autouse=True)
def _logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is None or not rep.failed or "airflow" not in request.fixturenames:
        return
    af: AirflowEnv = request.getfixturevalue("airflow")
    spark: SparkCluster = request.getfixturevalue("spark")
    print(f"\n===== component logs (home {af.home}) =====\n{af.logs_tail(60)}")
    print(f"===== spark =====\n{spark.logs_tail(30)}")
    for dag_id, run_id in getattr(request.node, "e2e_runs", ()):
        for path, text in af.task_logs(dag_id, run_id).items():
            tail = "\n".join(text.splitlines()[-30:])
            print(f"===== {path.relative_to(af.logs_dir)} =====\n{tail}")
