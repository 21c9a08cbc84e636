"""One real Airflow 3.3 and every system's endpoint for the whole crash matrix.

The session starts each system of ``tests/e2e/systems`` (``DURABLE_JOBS_E2E_SYSTEMS=spark,kubernetes`` selects a
subset; an unknown name fails) as its own processes, merges their environments into one :class:`AirflowEnv`,
and stops everything by PID at the end. Nothing skips: a missing JDK or pyspark fails the run. The Airflow home
(logs, DB) and the endpoints' run dirs are kept when a test failed (or ``DURABLE_JOBS_E2E_KEEP`` is set), and a
failing test prints the tails of every component's log, of every endpoint's log and of its runs' task and
trigger logs.

``DURABLE_JOBS_E2E_DB`` is ``postgres`` (a private PostgreSQL cluster; CI's default) or ``sqlite`` (the default
here); ``DURABLE_JOBS_E2E_REPORT`` moves the report (default ``build/e2e-report.json``).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from durable_jobs_harness.airflow_env import AirflowEnv
from durable_jobs_harness.airflow_env.processes import PostgresServer

from .dags import e2e_common
from .observe import Row
from .systems import SYSTEMS, E2ESystem, selected

REPO = Path(__file__).resolve().parents[2]
# the overload scenario is Kubernetes' own: not collected when the session does not run Kubernetes
collect_ignore = [] if "kubernetes" in selected() else ["test_overload.py"]
DAGS = Path(__file__).resolve().parent / "dags"


class Report:
    """Rows of ``build/e2e-report.json`` (keyed by system and scenario), written when the session ends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        self.started = time.monotonic()
        self.database = "?"
        self.systems: list[str] = []
        self.timings: dict[str, float] = {}

    def add(self, row: Row) -> None:
        self.rows = [r for r in self.rows if (r["system"], r["scenario"]) != row.key] + [row.to_json()]

    def time(self, phase: str, seconds: float) -> None:
        self.timings[phase] = round(self.timings.get(phase, 0.0) + seconds, 1)

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "airflow": importlib.metadata.version("apache-airflow"),
            "pyspark": importlib.metadata.version("pyspark"),
            "database": self.database,
            "systems": self.systems,
            "suite_seconds": round(time.monotonic() - self.started, 1),
            "timings": self.timings,
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
    rep.write()
    print(f"\ne2e report: {path}")


@pytest.fixture(scope="session")
def e2e_root() -> Iterator[Path]:
    # not under pytest's basetemp: parallel pytest sessions prune it, and these logs must survive a failure
    root = Path(tempfile.mkdtemp(prefix="durable-jobs-e2e-")).resolve()
    yield root
    if Failures.count or os.environ.get("DURABLE_JOBS_E2E_KEEP"):
        print(f"\ne2e: Airflow home (logs, DB) and the endpoints' dirs kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def systems(e2e_root: Path) -> Iterator[dict[str, E2ESystem]]:
    """Every selected system's endpoint, started (each its own processes) and stopped by PID."""
    started: dict[str, E2ESystem] = {}
    try:
        for name in selected():
            system = SYSTEMS[name]()
            started[name] = system
            system.start(e2e_root / "systems")
        yield started
    finally:
        for system in started.values():
            system.stop()


def scenarios_of(system: type[E2ESystem]) -> list[str]:
    """The scenarios (DAGs) one system runs: the standard set for a matrix system, plus its own."""
    return [*(e2e_common.STANDARD if system.matrix else ()), *system.extra_scenarios]


def database_name(af: AirflowEnv) -> str:
    """What the report names the metadata database: ``postgresql 15.14``, ``sqlite 3.40.1``."""
    if af.postgres is None:
        return f"sqlite {sqlite3.sqlite_version}"
    out = subprocess.run([PostgresServer.binary("postgres"), "--version"], capture_output=True, text=True, check=True)
    version = re.search(r"\(PostgreSQL\) (\S+)", out.stdout)  # "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    return f"postgresql {version[1] if version else out.stdout.strip()}"


@pytest.fixture(scope="session")
def airflow(e2e_root: Path, systems: dict[str, E2ESystem], report: Report) -> Iterator[AirflowEnv]:
    env = {
        e2e_common.SYSTEMS_ENV: ",".join(systems),
        e2e_common.ONCE_ROOT_ENV: str(e2e_root / "failpoints"),
    }
    for system in systems.values():
        env.update(system.airflow_env())
    dag_ids = [e2e_common.dag_id(n, s) for n, system in systems.items() for s in scenarios_of(type(system))]
    started = time.monotonic()
    database = os.environ.get("DURABLE_JOBS_E2E_DB", "sqlite")
    af = AirflowEnv(DAGS, home=e2e_root / "airflow", env=env, database=database)
    af.start()
    try:
        af.wait_dags(dag_ids)
        report.database = database_name(af)
        report.systems = list(systems)
        report.time("airflow_start", time.monotonic() - started)
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
    print(f"\n===== component logs (home {af.home}) =====\n{af.logs_tail(60)}")
    for name, system in request.getfixturevalue("systems").items():
        print(f"===== {name} =====\n{system.logs_tail(30)}")
    for dag_id, run_id in getattr(request.node, "e2e_runs", ()):
        for path, text in af.task_logs(dag_id, run_id).items():
            tail = "\n".join(text.splitlines()[-30:])
            print(f"===== {path.relative_to(af.logs_dir)} =====\n{tail}")
