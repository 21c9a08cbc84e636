"""The crash matrix: a real Airflow 3.3 and a real Spark standalone cluster, and processes dying on purpose.

Each scenario is a test and a row of ``build/e2e-report.json`` (see :mod:`tests.e2e.observe` for how
submissions, duplicates and orphans are counted on the Spark master).

Scenarios that only disturb their own task (a worker killed at a fail-point, clear, mark failed, the
deadline, a failing job) run side by side, each in its own DAG: the first of them to run triggers all
the selected ones at once. Scenarios that disturb everything (a triggerer killed or stopped, a second
triggerer, the master paused) run one at a time, after the others have finished.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from durable_jobs import failpoints
from durable_jobs_harness.airflow_env import AirflowEnv, wait_until
from durable_jobs_harness.spark_cluster import SparkCluster

from .conftest import Report
from .observe import (
    Row,
    drivers_of_run,
    events_of,
    observe,
    trigger_logs,
    wait_watching,
    worker_log,
)

pytestmark = [pytest.mark.spark, pytest.mark.timeout(900)]

CRASH_SCENARIOS = [f"crash_{point}" for point in failpoints.ALL]
BATCH = [*CRASH_SCENARIOS, "clear_deferred", "mark_failed", "deadline", "job_fails"]
ISOLATED = ["triggerer_sigkill", "triggerer_sigterm", "two_triggerers", "master_unreachable"]
ALL_DAG_IDS = [f"e2e_{name}" for name in (*BATCH, *ISOLATED)]
# test function -> its scenario (crash tests are parametrized by scenario)
BATCH_TESTS = {
    "test_clear_while_deferred": "clear_deferred",
    "test_mark_failed_while_deferred": "mark_failed",
    "test_deadline_cancels_the_job": "deadline",
    "test_failed_job_starts_the_next_generation_once": "job_fails",
}
RUN_TIMEOUT = 420.0

# what the try after the crash must have decided (a line of its log)
AFTER_CRASH = {
    "crash_before_intent": "No job recorded for",
    "crash_after_intent": "No job carries token",
    "crash_after_submit": "Adopted Spark driver driver-",
    "crash_after_persist": "Found Spark driver driver-",
    "crash_before_outcome": "Found Spark driver driver-",
}


@dataclass(frozen=True)
class Run:
    scenario: str
    dag_id: str
    run_id: str


def _wanted_batch(session: pytest.Session) -> list[str]:
    wanted: set[str] = set()
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("scenario") in BATCH:
            wanted.add(callspec.params["scenario"])
        name = getattr(item, "originalname", "")
        if name in BATCH_TESTS:
            wanted.add(BATCH_TESTS[name])
    return [s for s in BATCH if s in wanted]


@pytest.fixture(scope="module")
def batch(request: pytest.FixtureRequest, airflow: AirflowEnv) -> dict[str, Run]:
    """Trigger every selected side-by-side scenario at once."""
    return {s: Run(s, f"e2e_{s}", airflow.api.trigger(f"e2e_{s}")) for s in _wanted_batch(request.session)}


@pytest.fixture
def quiet(airflow: AirflowEnv, batch: dict[str, Run]) -> None:
    """No other run in flight: the scenario disturbs the whole deployment."""
    for run in batch.values():
        airflow.api.wait_run_finished(run.dag_id, run.run_id, timeout=RUN_TIMEOUT)
    wait_until(
        "no DAG run in flight",
        lambda: not airflow.api.dag_runs(states=["queued", "running"]),
        timeout=RUN_TIMEOUT,
    )


StartRun = Callable[[str], Run]
Batch = dict[str, Run]


@pytest.fixture
def start_run(request: pytest.FixtureRequest, airflow: AirflowEnv) -> StartRun:
    def start(scenario: str) -> Run:
        run = Run(scenario, f"e2e_{scenario}", airflow.api.trigger(f"e2e_{scenario}"))
        _track(request, run)
        return run

    return start


def _track(request: pytest.FixtureRequest, run: Run) -> None:
    runs = getattr(request.node, "e2e_runs", [])
    runs.append((run.dag_id, run.run_id))
    request.node.e2e_runs = runs


def finish(af: AirflowEnv, spark: SparkCluster, report: Report, run: Run, notes: str = "") -> Row:
    """Wait for the run, then record its row (also when the wait timed out)."""
    try:
        af.api.wait_run_finished(run.dag_id, run.run_id, timeout=RUN_TIMEOUT)
    finally:
        row = observe(run.scenario, af, spark, run.dag_id, run.run_id, notes=notes)
        report.add(row)
    return row


def assert_clean(row: Row, *, submissions: int) -> None:
    assert row.submissions == submissions, row
    assert row.duplicates == 0, row
    assert row.unowned == 0, row
    assert row.orphans == 0, row


def log_events(af: AirflowEnv, run: Run, task_id: str, try_number: int) -> list[str]:
    return events_of(worker_log(af, run.dag_id, run.run_id, task_id, try_number))


def trigger_events(af: AirflowEnv, run: Run, *, try_number: int | None = None, job_id: int | None = None) -> list[str]:
    """Log events of the run's triggers (of one try, of one triggerer job)."""
    out: list[str] = []
    for path, lines in trigger_logs(af, run.dag_id, run.run_id).items():
        if try_number is not None and not path.name.startswith(f"attempt={try_number}.log.trigger."):
            continue
        if job_id is not None and not path.name.endswith(f".trigger.{job_id}.log"):
            continue
        out += events_of(lines)
    return out


def driver_state(spark: SparkCluster, driver_id: str) -> str:
    state = spark.json_state()
    for d in (*state.get("activedrivers", ()), *state.get("completeddrivers", ())):
        if d.get("id") == driver_id:
            return str(d.get("state"))
    return "absent"


# ---------------------------------------------------------------------------------------------------
# Side by side


@pytest.mark.parametrize("scenario", CRASH_SCENARIOS)
def test_worker_killed_at_failpoint(
    scenario: str,
    request: pytest.FixtureRequest,
    airflow: AirflowEnv,
    spark: SparkCluster,
    report: Report,
    batch: Batch,
) -> None:
    """The task process dies (``os._exit``) at a protocol step; the retry adopts or reattaches: one driver."""
    run = batch[scenario]
    _track(request, run)
    point = scenario.removeprefix("crash_")
    row = finish(airflow, spark, report, run, notes=f"worker exits at {point} in try 1")
    assert row.final_state == "success", row
    assert_clean(row, submissions=1)
    assert row.events == 1, row
    # try 1 really died at the fail-point: its marker exists and the supervisor saw exit code 70
    once_root = Path(airflow.env["DURABLE_JOBS_E2E_ONCE_ROOT"])
    assert len(list((once_root / run.dag_id).rglob(f"fired-{point}"))) == 1, f"the fail-point {point} did not fire"
    assert any(
        line.get("event") == "Process exited abnormally" and line.get("exit_code") == 70
        for line in worker_log(airflow, run.dag_id, run.run_id, "job", 1)
    ), log_events(airflow, run, "job", 1)
    # a later try decided from the record as expected (usually try 2; a busy master may make find undecidable
    # for a moment, which costs a try and never a submission)
    assert row.tries >= 2, row
    later = [e for n in range(2, row.tries + 1) for e in log_events(airflow, run, "job", n)]
    assert any(e.startswith(AFTER_CRASH[scenario]) for e in later), later


def test_clear_while_deferred(
    request: pytest.FixtureRequest, airflow: AirflowEnv, spark: SparkCluster, report: Report, batch: Batch
) -> None:
    """Clear while deferred: the new try reattaches; the old trigger's on_kill sees a live TI and spares the job."""
    run = batch["clear_deferred"]
    _track(request, run)
    wait_watching(airflow, run.dag_id, run.run_id)
    airflow.api.clear(run.dag_id, run.run_id, ["job"])
    row = finish(airflow, spark, report, run, notes="cleared while deferred (try 1's trigger running)")
    assert row.final_state == "success", row
    assert row.tries == 2, row
    assert_clean(row, submissions=1)
    assert [d["state"] for d in row.drivers] == ["FINISHED"], row  # not cancelled by the old trigger
    old = trigger_events(airflow, run, try_number=1)
    assert any("invoking on_kill" in e for e in old), old
    assert any("not cancelling it" in e for e in old), old
    assert "Trigger fired event" not in old, old
    assert any(e.startswith("Found Spark driver driver-") for e in log_events(airflow, run, "job", 2))
    assert row.events == 1, row


def test_mark_failed_while_deferred(
    request: pytest.FixtureRequest, airflow: AirflowEnv, spark: SparkCluster, report: Report, batch: Batch
) -> None:
    """Mark failed while deferred: on_kill reads the TI state (failed) and cancels the driver on the cluster."""
    run = batch["mark_failed"]
    _track(request, run)
    wait_watching(airflow, run.dag_id, run.run_id)
    airflow.api.set_state(run.dag_id, run.run_id, "job", "failed")
    row = finish(airflow, spark, report, run, notes="marked failed while deferred")
    assert row.final_state == "failed", row
    assert row.tries == 1, row
    assert_clean(row, submissions=1)
    assert [d["state"] for d in row.drivers] == ["KILLED"], row
    events = trigger_events(airflow, run)
    assert any(e.startswith("Task instance is failed: cancelling Spark driver") for e in events), events
    assert row.events == 0, row


def test_deadline_cancels_the_job(
    request: pytest.FixtureRequest, airflow: AirflowEnv, spark: SparkCluster, report: Report, batch: Batch
) -> None:
    """The absolute deadline (job_timeout=20s) passes while the driver sleeps: cancelled, the task fails."""
    run = batch["deadline"]
    _track(request, run)
    row = finish(airflow, spark, report, run, notes="job_timeout 20s, driver sleeps 300s, no retries")
    assert row.final_state == "failed", row
    assert row.tries == 1, row
    assert_clean(row, submissions=1)
    assert [d["state"] for d in row.drivers] == ["KILLED"], row
    assert row.events == 1, row
    events = log_events(airflow, run, "job", 1)
    assert any(e.startswith("Deadline passed: cancelling Spark driver") for e in events), events
    # the task's error says why, with the job's final state
    (text,) = [t for p, t in airflow.task_logs(run.dag_id, run.run_id, "job").items() if p.name == "attempt=1.log"]
    assert "deadline passed; job cancelled (final state KILLED)" in text
    # retries=0: the error says no retry follows, and what a clear does
    assert "This task has no retries left, so nothing is resubmitted; clearing the task submits generation 1." in text


def test_failed_job_starts_the_next_generation_once(
    request: pytest.FixtureRequest, airflow: AirflowEnv, spark: SparkCluster, report: Report, batch: Batch
) -> None:
    """Generation 0 exits with code 3 (FAILED); the retry submits generation 1 exactly once, which succeeds."""
    run = batch["job_fails"]
    _track(request, run)
    row = finish(airflow, spark, report, run, notes="generation 0 exits 3; retry submits generation 1")
    assert row.final_state == "success", row
    assert row.tries == 2, row
    assert_clean(row, submissions=2)
    assert sorted((d["generation"], d["state"]) for d in row.drivers) == [(0, "FAILED"), (1, "FINISHED")], row
    assert row.events == 2, row
    assert any(
        e.startswith("Spark driver driver-") and "(generation 0) ended FAILED" in e and "submitting generation 1" in e
        for e in log_events(airflow, run, "job", 2)
    )
    # retries=1: try 1's error names the driver's log and the retry that follows
    (text,) = [t for p, t in airflow.task_logs(run.dag_id, run.run_id, "job").items() if p.name == "attempt=1.log"]
    assert "(generation 0) ended FAILED" in text and "Driver log: http" in text
    assert "A retry (try 2 of 2) submits generation 1." in text


# ---------------------------------------------------------------------------------------------------
# One at a time


@pytest.mark.usefixtures("quiet")
def test_triggerer_sigkill_while_deferred(
    airflow: AirflowEnv, spark: SparkCluster, report: Report, start_run: StartRun
) -> None:
    """The triggerer (and its runner) is SIGKILLed while deferred; a new triggerer resumes: one event, one job."""
    run = start_run("triggerer_sigkill")
    (job_id,) = wait_watching(airflow, run.dag_id, run.run_id)
    victim = airflow.triggerer_for_job(job_id)
    airflow.kill(victim, signal.SIGKILL)
    airflow.wait_exited(victim)
    killed = time.monotonic()
    new_job = airflow.components[airflow.start_triggerer()].job_id
    assert new_job is not None and new_job != job_id
    wait_watching(airflow, run.dag_id, run.run_id, by=new_job, timeout=RUN_TIMEOUT)
    takeover = time.monotonic() - killed
    row = finish(airflow, spark, report, run, notes=f"triggerer SIGKILLed; a new one resumed {takeover:.0f}s later")
    assert "Trigger fired event" not in trigger_events(airflow, run, job_id=job_id)  # the dead one never fired
    assert row.final_state == "success", row
    assert row.tries == 1, row
    assert_clean(row, submissions=1)
    assert row.events == 1, row


@pytest.mark.usefixtures("quiet")
def test_triggerer_sigterm_while_deferred(
    airflow: AirflowEnv, spark: SparkCluster, report: Report, start_run: StartRun
) -> None:
    """SIGTERM: the triggerer cleans its triggers up without on_kill, the job keeps running, the next one resumes."""
    run = start_run("triggerer_sigterm")
    (job_id,) = wait_watching(airflow, run.dag_id, run.run_id)
    victim = airflow.triggerer_for_job(job_id)
    (driver,) = drivers_of_run(spark, run.dag_id, run.run_id, ["job"])
    airflow.kill(victim, signal.SIGTERM)
    assert airflow.wait_exited(victim) == 0
    old = trigger_events(airflow, run)
    assert "trigger completed" in old, old  # the shutdown ran the trigger's cleanup
    assert not any("on_kill" in e for e in old), old
    assert driver_state(spark, driver.id) == "RUNNING"  # cleanup did not cancel the job
    new_job = airflow.components[airflow.start_triggerer()].job_id
    wait_watching(airflow, run.dag_id, run.run_id, by=new_job, timeout=RUN_TIMEOUT)
    row = finish(airflow, spark, report, run, notes="triggerer SIGTERMed while deferred; another one resumed")
    assert row.final_state == "success", row
    assert row.tries == 1, row
    assert_clean(row, submissions=1)
    assert row.events == 1, row


@pytest.mark.usefixtures("quiet")
def test_two_triggerers_one_killed(
    airflow: AirflowEnv, spark: SparkCluster, report: Report, start_run: StartRun
) -> None:
    """Two triggerers; the one running our triggers is SIGKILLed; the other takes over: one event per task."""
    running = airflow.triggerers()
    if len(running) < 2:
        airflow.start_triggerer()
    run = start_run("two_triggerers")
    holders = [wait_watching(airflow, run.dag_id, run.run_id, f"job_{i}") for i in range(2)]
    job_id = min(holders[0])
    victim = airflow.triggerer_for_job(job_id)
    survivors = [n for n in airflow.triggerers() if n != victim]
    assert survivors, airflow.triggerers()
    airflow.kill(victim, signal.SIGKILL)
    airflow.wait_exited(victim)
    row = finish(airflow, spark, report, run, notes=f"2 tasks; triggerer job {job_id} SIGKILLed, the other took over")
    assert row.final_state == "success", row
    assert row.tries == 1, row
    assert_clean(row, submissions=2)
    assert {d["task"] for d in row.drivers} == {"job_0", "job_1"}, row
    assert row.events == 2, row
    for i in range(2):
        fired = [
            p
            for p, lines in trigger_logs(airflow, run.dag_id, run.run_id).items()
            for e in events_of(lines)
            if e == "Trigger fired event" and p.parent.name == f"task_id=job_{i}"
        ]
        assert len(fired) == 1, fired  # one event per task
        assert not fired[0].name.endswith(f".trigger.{job_id}.log"), fired  # from a surviving triggerer


@pytest.mark.usefixtures("quiet")
def test_master_unreachable_while_deferred(
    airflow: AirflowEnv, spark: SparkCluster, report: Report, start_run: StartRun
) -> None:
    """The master JVM is paused (SIGSTOP) during the wait: polls time out, the task neither fails nor resubmits."""
    run = start_run("master_unreachable")
    wait_watching(airflow, run.dag_id, run.run_id)
    pid = spark.master_pid
    assert pid is not None
    failed = 0

    def polls_failed() -> bool:
        nonlocal failed
        # the poller says once per endpoint that its answers stopped (not once per job or per poll)
        failed = sum(
            " is unknown: " in e and "nothing is failed or resubmitted" in e for e in trigger_events(airflow, run)
        )
        return failed >= 1

    os.kill(pid, signal.SIGSTOP)
    try:
        # well below spark.worker.timeout (60s): past it, the resumed master would drop the worker and its driver
        wait_until("the status polls to time out while the master is paused", polls_failed, timeout=45)
        ti = airflow.api.task_instance(run.dag_id, run.run_id, "job")
        assert ti["state"] == "deferred", ti
    finally:
        os.kill(pid, signal.SIGCONT)
    row = finish(airflow, spark, report, run, notes="master SIGSTOPped until the poller reported it unreachable")
    assert row.final_state == "success", row
    assert row.tries == 1, row
    assert_clean(row, submissions=1)
    assert row.events == 1, row
    events = trigger_events(airflow, run)
    assert sum(" is unknown: " in e for e in events) == 1, events  # logged once, not once per poll
    assert any(" answers again after " in e for e in events), events
