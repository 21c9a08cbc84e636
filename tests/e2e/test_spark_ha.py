"""Spark standalone HA on real Airflow (issue 15, item 6): the active master SIGKILLed, the standby takes over.

The ``spark_ha`` system (``systems/spark_ha.py``) is two masters recovering through a real ZooKeeper and a
worker registered with both; the Airflow connection names both masters. Each scenario kills whichever master
is active, waits for the other to take over (the seconds from the kill to the new master being ALIVE with the
worker back go to the row's notes and the report's timings), and starts the killed master again as the new
standby. Expected: the new master recovered the drivers under the same ids, the triggers (and the paused
worker) follow it, 0 duplicates, 0 orphans, no task failed. Runs one scenario at a time, after the matrix.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from durable_jobs.failpoints import PAUSE_LIMIT
from durable_jobs_harness.airflow_env import AirflowEnv, wait_until

from .conftest import Report
from .dags.e2e_common import ONCE_ROOT_ENV, dag_id
from .dags.e2e_spark_ha_plan import (
    AFTER_SUBMIT,
    DEFERRED,
    DEFERRED_TASKS,
    PAUSE_POINT,
    SYSTEM,
)
from .observe import wait_watching
from .systems import E2ESystem
from .systems.spark_ha import SparkHASystem
from .test_crash_matrix import Run, assert_clean, finish, track, wait_quiet

pytestmark = [pytest.mark.spark, pytest.mark.airflow, pytest.mark.timeout(900)]


@pytest.fixture
def ha(systems: dict[str, E2ESystem]) -> Iterator[SparkHASystem]:
    """The HA system; a master killed by the test is started again (as the standby) afterwards."""
    system = systems[SYSTEM]
    assert isinstance(system, SparkHASystem)
    yield system
    cluster = system.ha()
    for name in ("a", "b"):
        if cluster.pid_of(name) is None:
            cluster.start_master(name)


def failover(system: SparkHASystem, report: Report, scenario: str) -> str:
    """SIGKILL the active master, wait for the takeover; a note for the row."""
    cluster = system.ha()
    killed = cluster.active_master()
    assert killed is not None, cluster.logs_tail()
    cluster.kill_master(killed)
    new, seconds = cluster.wait_for_takeover()
    report.time(f"spark_ha_takeover_{scenario}", seconds)
    return f"master {killed} SIGKILLed; master {new} ALIVE with the worker re-registered {seconds:.1f}s later"


def running_drivers(system: SparkHASystem) -> int:
    return sum(1 for d in system.ha().json_state().get("activedrivers", ()) if d.get("state") == "RUNNING")


def test_active_master_killed_while_jobs_are_deferred(
    request: pytest.FixtureRequest, airflow: AirflowEnv, ha: SparkHASystem, report: Report
) -> None:
    """Several tasks deferred on running drivers; the active master dies; the triggers follow the standby."""
    wait_quiet(airflow)
    name = dag_id(SYSTEM, DEFERRED)
    run = Run(SYSTEM, DEFERRED, name, airflow.api.trigger(name))
    track(request, run.dag_id, run.run_id)
    tasks = [f"job_{i}" for i in range(DEFERRED_TASKS)]
    for task in tasks:
        wait_watching(airflow, run.dag_id, run.run_id, task)
    wait_until("every driver to run", lambda: running_drivers(ha) >= DEFERRED_TASKS, timeout=120)

    notes = f"{DEFERRED_TASKS} tasks deferred; " + failover(ha, report, DEFERRED)
    row = finish(airflow, ha, report, run, notes=notes)

    assert row.final_state == "success", row
    assert_clean(row, submissions=DEFERRED_TASKS)
    # the drivers the dead master launched ran to the end under the new one: recovered, never resubmitted
    assert sorted((j["task"], j["generation"], j["state"]) for j in row.jobs) == [(t, 0, "FINISHED") for t in tasks], (
        row
    )
    assert row.tries == 1 and row.events == DEFERRED_TASKS, row


def test_active_master_killed_between_submit_and_persist(
    request: pytest.FixtureRequest, airflow: AirflowEnv, ha: SparkHASystem, report: Report
) -> None:
    """The worker waits at ``after_submit`` (the master answered with the driver id, nothing is recorded yet);
    the master that answered dies and the standby takes over; then the worker records the id and defers, and
    the trigger finds the driver on the new master."""
    wait_quiet(airflow)
    name = dag_id(SYSTEM, AFTER_SUBMIT)
    run = Run(SYSTEM, AFTER_SUBMIT, name, airflow.api.trigger(name))
    track(request, run.dag_id, run.run_id)
    once = Path(airflow.env[ONCE_ROOT_ENV]) / run.dag_id / run.run_id.replace("/", "_") / "job.-1"
    fired = once / f"fired-{PAUSE_POINT}"
    wait_until(f"the worker to pause at {PAUSE_POINT}", lambda: fired.is_file() and fired.read_text(), timeout=180)
    paused_at = time.monotonic()
    try:
        notes = f"worker paused at {PAUSE_POINT}; " + failover(ha, report, AFTER_SUBMIT)
    finally:
        (once / f"resume-{PAUSE_POINT}").touch()  # let the worker go on, whatever happened
    assert time.monotonic() - paused_at < PAUSE_LIMIT, "the worker's pause ran out before the takeover"
    row = finish(airflow, ha, report, run, notes=notes + "; then the worker went on")

    assert row.final_state == "success", row
    assert_clean(row, submissions=1)
    assert [(j["generation"], j["state"]) for j in row.jobs] == [(0, "FINISHED")], row
    assert row.tries == 1 and row.events == 1, row
