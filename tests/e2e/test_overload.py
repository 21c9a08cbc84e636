"""Overload (issue 15, item 5): 50 mapped tasks deferred at once on the Kubernetes endpoint, and crashes meanwhile.

One DAG run maps one Kubernetes Job task over 50 map indexes (``e2e_kubernetes_overload``). The workers of five
map indexes die at ``after_submit`` in try 1 (their retry must adopt the Job it submitted), and once half of the
tasks are deferred the triggerer running them is SIGKILLed and a new one started (it must resume all of them).
Expected: exactly 50 Jobs on the apiserver (one per map index and generation 0), 50 successes, no duplicate and
no orphan. It runs after the crash matrix, alone.
"""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest

from durable_jobs_harness.airflow_env import AirflowEnv, wait_until

from .conftest import Report
from .dags.e2e_common import dag_id
from .dags.e2e_kubernetes import OVERLOAD_CRASHED, OVERLOAD_TASKS
from .observe import events_of, observe, trigger_logs, worker_log
from .systems import E2ESystem
from .test_crash_matrix import RUN_TIMEOUT, track, wait_quiet

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(1500)]

SYSTEM = "kubernetes"
SCENARIO = "overload"


def watching_per_triggerer(af: AirflowEnv, dag: str, run_id: str) -> Counter[int]:
    """How many map indexes each triggerer job has started watching (from the trigger log file names)."""
    out: Counter[int] = Counter()
    for path, lines in trigger_logs(af, dag, run_id).items():
        if any(e.startswith("Watching ") for e in events_of(lines)):
            out[int(path.name.rsplit(".trigger.", 1)[1].split(".", 1)[0])] += 1
    return out


def test_fifty_mapped_jobs_with_crashes_and_a_triggerer_killed(
    request: pytest.FixtureRequest, airflow: AirflowEnv, systems: dict[str, E2ESystem], report: Report
) -> None:
    system = systems[SYSTEM]
    wait_quiet(airflow)
    started = time.monotonic()
    dag = dag_id(SYSTEM, SCENARIO)
    run_id = airflow.api.trigger(dag)
    track(request, dag, run_id)

    def half_deferred() -> Counter[int] | None:
        holders = watching_per_triggerer(airflow, dag, run_id)
        return holders if sum(holders.values()) >= OVERLOAD_TASKS // 2 else None

    holders = wait_until("half of the mapped tasks to be deferred", half_deferred, timeout=RUN_TIMEOUT)
    victim_job, _ = holders.most_common(1)[0]
    victim = airflow.triggerer_for_job(victim_job)
    airflow.kill(victim, signal.SIGKILL)
    airflow.wait_exited(victim)
    airflow.start_triggerer()
    notes = (
        f"{OVERLOAD_TASKS} mapped tasks; workers of map indexes {OVERLOAD_CRASHED} exit at after_submit in try 1; "
        f"triggerer job {victim_job} SIGKILLed with {sum(holders.values())} watched, a new one started"
    )
    try:
        airflow.api.wait_run_finished(dag, run_id, timeout=1200)
    finally:
        row = observe(system, SCENARIO, airflow, dag, run_id, settle=120, notes=notes)
        report.add(row)
        report.timings[SCENARIO] = round(time.monotonic() - started, 1)
    assert row.final_state == "success", row
    assert row.submissions == OVERLOAD_TASKS, row
    assert row.duplicates == 0 and row.unowned == 0 and row.orphans == 0, row
    assert sorted((j["map_index"], j["generation"]) for j in row.jobs) == [(i, 0) for i in range(OVERLOAD_TASKS)]
    assert not any(j["cancelled"] for j in row.jobs), row
    assert row.events == OVERLOAD_TASKS, row
    # the five crashed map indexes really died after submit, and their retry adopted the Job
    tis = {int(ti["map_index"]): ti for ti in airflow.api.task_instances(dag, run_id)}
    for i in OVERLOAD_CRASHED:
        assert int(tis[i]["try_number"]) >= 2, tis[i]
        later = [
            str(line.get("event", ""))
            for n in range(2, int(tis[i]["try_number"]) + 1)
            for line in worker_log(airflow, dag, run_id, "job", n, map_index=i)
        ]
        assert any(e.startswith(system.after_crash["crash_after_submit"]) for e in later), (i, later)
    assert all(int(tis[i]["try_number"]) == 1 for i in tis if i not in OVERLOAD_CRASHED), tis
