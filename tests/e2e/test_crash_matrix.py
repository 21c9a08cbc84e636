"""The crash matrix: a real Airflow 3.3, every system's endpoint, and processes dying on purpose.

Each scenario is a test per system and a row of ``build/e2e-report.json`` (see :mod:`tests.e2e.observe` for how
submissions, duplicates and orphans are counted on the endpoint). Scenario code speaks only through the system
adapter (``systems/``): one function per scenario, parametrized over every matrix system.

Scenarios that only disturb their own task (a worker killed at a fail-point, clear, mark failed, the deadline,
a failing job) run side by side, each in its own DAG: the first of them to run triggers every selected
(system, scenario) at once. Scenarios that disturb the whole deployment (a triggerer killed or stopped, a
second triggerer, the endpoints paused) run one at a time, after the others have finished, but for every
system at once: each system's DAG of the scenario is triggered together, the triggerer is killed once, and
each system's test then checks its own row.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from durable_jobs_harness.airflow_env import AirflowEnv, wait_until

from .conftest import Report
from .dags.e2e_common import BATCH, CRASH, dag_id
from .observe import (
    Row,
    events_of,
    observe,
    reaper_callbacks,
    trigger_job_ids_watching,
    trigger_logs,
    triggerer_log_events,
    wait_watching,
    worker_log,
)
from .systems import SYSTEMS, E2ESystem, selected

pytestmark = [pytest.mark.spark, pytest.mark.timeout(900)]

MATRIX = [name for name in selected() if SYSTEMS[name].matrix]
# test function -> its scenario (crash tests are parametrized by scenario)
BATCH_TESTS = {
    "test_clear_while_deferred": "clear_deferred",
    "test_mark_failed_while_deferred": "mark_failed",
    "test_deadline_cancels_the_job": "deadline",
    "test_failed_job_submits_the_next_generation_once": "job_fails",
}
RUN_TIMEOUT = 420.0
Systems = dict[str, E2ESystem]


@dataclass(frozen=True)
class Run:
    system: str
    scenario: str
    dag_id: str
    run_id: str


def start(af: AirflowEnv, system: str, scenario: str) -> Run:
    name = dag_id(system, scenario)
    return Run(system, scenario, name, af.api.trigger(name))


def track(request: pytest.FixtureRequest, dag_id: str, run_id: str) -> None:
    """Name the run to the failure hook (which prints its task and trigger logs)."""
    runs = getattr(request.node, "e2e_runs", [])
    runs.append((dag_id, run_id))
    request.node.e2e_runs = runs


def wait_quiet(af: AirflowEnv) -> None:
    """No DAG run in flight: the next scenario disturbs the whole deployment."""
    wait_until("no DAG run in flight", lambda: not af.api.dag_runs(states=["queued", "running"]), timeout=RUN_TIMEOUT)


def selected_params(session: pytest.Session, test_name: str | None = None) -> set[tuple[str, str | None]]:
    """(system, scenario) of the collected items (of one test function, if named)."""
    out: set[tuple[str, str | None]] = set()
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        name = getattr(item, "originalname", "")
        if callspec is None or "system" not in callspec.params or (test_name and name != test_name):
            continue
        scenario = callspec.params.get("scenario") or BATCH_TESTS.get(name)
        out.add((callspec.params["system"], scenario))
    return out


# batch scenarios whose user action must land while the trigger runs: done as soon as it does, for every system
ACTIONS: dict[str, Callable[[AirflowEnv, Run], Any]] = {
    "clear_deferred": lambda af, run: af.api.clear(run.dag_id, run.run_id, ["job"]),
    "mark_failed": lambda af, run: af.api.set_state(run.dag_id, run.run_id, "job", "failed"),
}


class Matrix:
    """The session's Airflow, systems and report, and the runs of this module's scenarios.

    :meth:`batch` triggers every selected side-by-side (system, scenario) at once, on first use; :meth:`once`
    runs a one-at-a-time scenario for every selected system at once; :meth:`row` waits for a run and records it.
    """

    def __init__(self, session: pytest.Session, af: AirflowEnv, systems: Systems, report: Report) -> None:
        self.session, self.af, self.systems, self.report = session, af, systems, report
        self.batch_runs: dict[tuple[str, str], Run] | None = None
        self.done: dict[str, dict[str, Any]] = {}
        self.started: dict[str, float] = {}

    def batch(self, system: str, scenario: str) -> Run:
        """The run of a side-by-side scenario. The first call triggers them all, then clears or marks failed each
        run of ACTIONS as soon as its trigger watches the job (the tests run one after the other, and a job must
        not end before its action)."""
        if self.batch_runs is None:
            wanted = sorted((s, sc) for s, sc in selected_params(self.session) if sc in BATCH)
            self.report.timings["batch_started"] = round(time.monotonic() - self.report.started, 1)
            self.batch_runs = {(s, sc): start(self.af, s, sc) for s, sc in wanted}
            pending = {key: run for key, run in self.batch_runs.items() if key[1] in ACTIONS}

            def act_on_watching() -> bool:
                for key, run in list(pending.items()):
                    ti = self.af.api.task_instance(run.dag_id, run.run_id, "job")
                    tried = int(ti.get("try_number") or 0)
                    if ti.get("state") == "deferred" and trigger_job_ids_watching(
                        self.af, run.dag_id, run.run_id, "job", tried
                    ):
                        ACTIONS[key[1]](self.af, run)
                        del pending[key]
                return not pending

            what = "the triggers of the clear and mark-failed runs to watch their job"
            wait_until(what, act_on_watching, timeout=RUN_TIMEOUT)
        return self.batch_runs[(system, scenario)]

    def once(
        self, request: pytest.FixtureRequest, scenario: str, act: Callable[[dict[str, Run]], dict[str, Any]]
    ) -> dict[str, Any]:
        """After every side-by-side run, trigger the scenario's DAG of every selected system, then ``act`` on them."""
        if scenario not in self.done:
            for run in (self.batch_runs or {}).values():
                self.af.api.wait_run_finished(run.dag_id, run.run_id, timeout=RUN_TIMEOUT)
            if self.batch_runs and "batch" not in self.report.timings:
                batch = time.monotonic() - self.report.started - self.report.timings["batch_started"]
                self.report.timings["batch"] = round(batch, 1)
            wait_quiet(self.af)
            self.started[scenario] = time.monotonic()
            names = sorted(s for s, _ in selected_params(self.session, request.node.originalname))
            runs = {s: start(self.af, s, scenario) for s in names}
            self.done[scenario] = {"runs": runs, **act(runs)}
        return self.done[scenario]

    def row(self, request: pytest.FixtureRequest, run: Run, notes: str) -> Row:
        """Wait for the run, then record its row (also when the wait timed out)."""
        track(request, run.dag_id, run.run_id)
        try:
            return finish(self.af, self.systems[run.system], self.report, run, notes)
        finally:
            if run.scenario in self.started:  # one at a time: the scenario lasted until its last row
                took = time.monotonic() - self.started[run.scenario]
                self.report.timings[f"isolated_{run.scenario}"] = round(took, 1)


def finish(af: AirflowEnv, system: E2ESystem, report: Report, run: Run, notes: str, executor: str = "local") -> Row:
    """Wait for the run, then record its row (also when the wait timed out)."""
    try:
        af.api.wait_run_finished(run.dag_id, run.run_id, timeout=RUN_TIMEOUT)
    finally:
        row = observe(system, run.scenario, af, run.dag_id, run.run_id, notes=notes, executor=executor)
        report.add(row)
    return row


@pytest.fixture(scope="module")
def matrix(request: pytest.FixtureRequest, airflow: AirflowEnv, systems: Systems, report: Report) -> Matrix:
    return Matrix(request.session, airflow, systems, report)


def assert_clean(row: Row, *, submissions: int) -> None:
    assert row.submissions == submissions, row
    assert row.duplicates == 0, row
    assert row.unowned == 0, row
    assert row.orphans == 0, row


def log_events(af: AirflowEnv, run: Run, task_id: str, try_number: int) -> list[str]:
    return events_of(worker_log(af, run.dag_id, run.run_id, task_id, try_number))


def task_log_text(af: AirflowEnv, run: Run, try_number: int) -> str:
    (text,) = [
        t for p, t in af.task_logs(run.dag_id, run.run_id, "job").items() if p.name == f"attempt={try_number}.log"
    ]
    return text


def trigger_events(af: AirflowEnv, run: Run, *, try_number: int | None = None, job_id: int | None = None) -> list[str]:
    """Log events of the run's triggers (of one try, of one triggerer job).

    Without ``job_id``, the run's lines that landed in the triggerers' own logs count too (a line logged after the
    per-trigger file closed, often "trigger completed"); with it, only that triggerer's per-trigger files.
    """
    out: list[str] = []
    for path, lines in trigger_logs(af, run.dag_id, run.run_id).items():
        if try_number is not None and not path.name.startswith(f"attempt={try_number}.log.trigger."):
            continue
        if job_id is not None and not path.name.endswith(f".trigger.{job_id}.log"):
            continue
        out += events_of(lines)
    if job_id is None:
        out += [e for key, e in triggerer_log_events(af, run.dag_id, run.run_id) if try_number in (None, key[2])]
    return out


def active_jobs(system: E2ESystem, run: Run, tasks: list[str]) -> list[str]:
    return [j.id for j in system.jobs(run.dag_id, run.run_id, [(t, -1) for t in tasks]) if j.active]


each_system = pytest.mark.parametrize("system", MATRIX)


# ---------------------------------------------------------------------------------------------------
# Side by side


@each_system
@pytest.mark.parametrize("scenario", CRASH)
def test_worker_killed_at_failpoint(system: str, scenario: str, request: pytest.FixtureRequest, matrix: Matrix) -> None:
    """The task process dies (``os._exit``) at a protocol step; the retry adopts or reattaches: one job."""
    sys_, run = matrix.systems[system], matrix.batch(system, scenario)
    row = matrix.row(request, run, notes=f"worker exits at {scenario.removeprefix('crash_')} in try 1")
    check_crash(matrix.af, sys_, run, row, scenario)


def check_crash(airflow: AirflowEnv, sys_: E2ESystem, run: Run, row: Row, scenario: str) -> None:
    """The row of a task process killed at a fail-point in try 1 (``crash_<point>``; also on CeleryExecutor)."""
    point = scenario.removeprefix("crash_")
    assert row.final_state == "success", row
    assert_clean(row, submissions=1)
    # one event at most: a retry that finds the job already ended (a short job, a slow worker start) returns its
    # result without deferring; before_outcome dies after the trigger's event
    assert row.events == 1 if point == "before_outcome" else row.events <= 1, row
    # a try really died at the fail-point: its marker exists and the supervisor saw exit code 70, in exactly one try
    once_root = Path(airflow.env["DURABLE_JOBS_E2E_ONCE_ROOT"])
    assert len(list((once_root / run.dag_id).rglob(f"fired-{point}"))) == 1, f"the fail-point {point} did not fire"
    died = [
        n
        for n in range(1, row.tries + 1)
        if any(
            line.get("event") == "Process exited abnormally" and line.get("exit_code") == 70
            for line in worker_log(airflow, run.dag_id, run.run_id, "job", n)
        )
    ]
    assert len(died) == 1, (died, [log_events(airflow, run, "job", n) for n in range(1, row.tries + 1)])
    # try 1, unless Airflow ended try 1 first: on a busy host LocalExecutor may report the process that deferred
    # after the trigger's event re-queued the task, and the scheduler fails try 1's resumed process before it
    # reaches a later fail-point (before_outcome); the next try reaches it instead, still with one job
    for n in range(1, died[0]):
        said = log_events(airflow, run, "job", n)
        assert any(e.startswith("Server indicated the task shouldn't be running anymore") for e in said), (n, said)
    # a later try decided from the record as expected (usually try 2; a busy endpoint may make find undecidable
    # for a moment, which costs a try and never a submission)
    assert row.tries > died[0], row
    later = [e for n in range(died[0] + 1, row.tries + 1) for e in log_events(airflow, run, "job", n)]
    assert any(e.startswith(sys_.after_crash[scenario]) for e in later), later


@each_system
def test_clear_while_deferred(system: str, request: pytest.FixtureRequest, matrix: Matrix) -> None:
    """Clear while deferred: the new try reattaches; the old trigger's on_kill sees a live TI and spares the job."""
    airflow = matrix.af
    sys_, run = matrix.systems[system], matrix.batch(system, "clear_deferred")
    row = matrix.row(request, run, notes="cleared while deferred (try 1's trigger running)")
    assert row.final_state == "success", row
    # try 2 reattaches; on a busy host Airflow's LocalExecutor may report try 2's first process (it deferred)
    # after the trigger's event re-queued it, and the scheduler then fails that try: more tries, never a job
    assert row.tries >= 2, row
    assert_clean(row, submissions=1)
    assert not any(j["cancelled"] for j in row.jobs), row  # not cancelled by the old trigger
    old = trigger_events(airflow, run, try_number=1)
    assert any("invoking on_kill" in e for e in old), old
    assert any("not cancelling it" in e for e in old), old
    assert "Trigger fired event" not in old, old
    second = log_events(airflow, run, "job", 2)
    assert any(e.startswith(f"Found {sys_.job_noun} ") for e in second), second
    # each later try fires at most one event (none when it finds the job already ended and returns it)
    assert row.events <= row.tries - 1, row
    if row.tries == 2 and not any("returning its result without running anything" in e for e in second):
        assert row.events == 1, (row, second)


@each_system
def test_mark_failed_while_deferred(system: str, request: pytest.FixtureRequest, matrix: Matrix) -> None:
    """Mark failed while deferred: on_kill reads the TI state (failed) and cancels the job on the system."""
    airflow = matrix.af
    sys_, run = matrix.systems[system], matrix.batch(system, "mark_failed")
    row = matrix.row(request, run, notes="marked failed while deferred")
    assert row.final_state == "failed", row
    assert row.tries == 1, row
    assert_clean(row, submissions=1)
    assert [j["cancelled"] for j in row.jobs] == [True], row
    events = trigger_events(airflow, run)
    by_on_kill = any(e.startswith(f"Task instance is failed: cancelling {sys_.job_noun} ") for e in events)
    # the mark also queued the reaper's callback: when it cancels first, the trigger may see the job end before
    # its own cancellation reaches it (one event, which Airflow ignores: the task is failed)
    if not by_on_kill:
        wait_until(
            "the reaper's callback to say it cancelled the job",
            lambda: any(
                c[0] == "success" and c[1].startswith("durable_jobs reaper: cancelled ")
                for c in reaper_callbacks(airflow, run)
            ),
            timeout=120,
            on_timeout=lambda: f"trigger events {events}; callbacks {reaper_callbacks(airflow, run)}",
        )
    assert row.events <= (0 if by_on_kill else 1), row


@each_system
def test_deadline_cancels_the_job(system: str, request: pytest.FixtureRequest, matrix: Matrix) -> None:
    """The absolute deadline (job_timeout=20s) passes while the job sleeps: cancelled, the task fails."""
    airflow = matrix.af
    sys_, run = matrix.systems[system], matrix.batch(system, "deadline")
    row = matrix.row(request, run, notes="job_timeout 20s, job sleeps 300s, no retries")
    assert row.final_state == "failed", row
    assert row.tries == 1, row
    assert_clean(row, submissions=1)
    assert [j["cancelled"] for j in row.jobs] == [True], row
    assert row.events == 1, row
    events = log_events(airflow, run, "job", 1)
    assert any(e.startswith(f"Deadline passed: cancelling {sys_.job_noun} ") for e in events), events
    # the task's error says why, with the job's final state
    text = task_log_text(airflow, run, 1)
    assert "deadline passed; job cancelled (final state " in text
    # retries=0: the error says no retry follows, and what a clear does
    assert "This task has no retries left, so nothing is resubmitted; clearing the task submits generation 1." in text


@each_system
def test_failed_job_submits_the_next_generation_once(
    system: str, request: pytest.FixtureRequest, matrix: Matrix
) -> None:
    """Generation 0 exits with code 3 (failed); the retry submits generation 1 exactly once, which succeeds."""
    airflow = matrix.af
    sys_, run = matrix.systems[system], matrix.batch(system, "job_fails")
    row = matrix.row(request, run, notes="generation 0 exits 3; retry submits generation 1")
    assert row.final_state == "success", row
    assert row.tries == 2, row
    assert_clean(row, submissions=2)
    assert sorted(j["generation"] for j in row.jobs) == [0, 1], row
    assert not any(j["cancelled"] for j in row.jobs), row
    assert row.events == 2, row
    text, later = task_log_text(airflow, run, 1), log_events(airflow, run, "job", 2)
    if "(generation 0) ended FAILED" in text:
        # retries=1: try 1's error says how the job ended (with the system's detail) and the retry that follows
        assert sys_.failure_detail in text and "A retry (try 2 of 2) submits generation 1." in text
        assert any(
            e.startswith(f"{sys_.job_noun} ") and "(generation 0) ended FAILED" in e and "submitting generation 1" in e
            for e in later
        ), later
    else:
        # apache/airflow#72716: Airflow lost try 1's resume and ran execute() again, counted as try 2 (seen on
        # 2026-12-03, same ti_id): try 2 finds generation 0 FAILED in the system and submits generation 1
        assert any(
            e.startswith(f"Found {sys_.job_noun} ")
            and "from try 1; it ended FAILED" in e
            and "submitting generation 1" in e
            for e in later
        ), later


# ---------------------------------------------------------------------------------------------------
# One at a time, every system at once


def the_one_triggerer(af: AirflowEnv, runs: dict[str, Run]) -> int:
    """Wait until every run's trigger runs; return the (single) triggerer job running them all."""
    holders = {s: wait_watching(af, r.dag_id, r.run_id) for s, r in runs.items()}
    ids = set().union(*holders.values())
    assert len(ids) == 1, holders
    return ids.pop()


def stop_the_triggerer(
    af: AirflowEnv, runs: dict[str, Run], sig: signal.Signals, meanwhile: Callable[[], Any] = lambda: None
) -> dict[str, Any]:
    """Send ``sig`` to the one triggerer running every run's trigger, call ``meanwhile``, start a new triggerer and
    wait until it runs them all. Returns the old job id, what ``meanwhile`` said and the takeover's seconds."""
    job_id = the_one_triggerer(af, runs)
    victim = af.triggerer_for_job(job_id)
    af.kill(victim, sig)
    code = af.wait_exited(victim)
    assert sig is signal.SIGKILL or code == 0, code  # a SIGTERM is a clean shutdown
    stopped = time.monotonic()
    seen = meanwhile()
    new_job = af.components[af.start_triggerer()].job_id
    assert new_job is not None and new_job != job_id
    for r in runs.values():
        wait_watching(af, r.dag_id, r.run_id, by=new_job, timeout=RUN_TIMEOUT)
    return {"job_id": job_id, "meanwhile": seen, "takeover": time.monotonic() - stopped}


@each_system
def test_triggerer_sigkill_while_deferred(system: str, request: pytest.FixtureRequest, matrix: Matrix) -> None:
    """The triggerer (and its runner) is SIGKILLed while deferred; a new triggerer resumes: one event, one job."""
    airflow = matrix.af
    done = matrix.once(request, "triggerer_sigkill", lambda runs: stop_the_triggerer(airflow, runs, signal.SIGKILL))
    run: Run = done["runs"][system]
    notes = f"triggerer SIGKILLed; a new one resumed {done['takeover']:.0f}s later"
    row = matrix.row(request, run, notes=notes)
    assert "Trigger fired event" not in trigger_events(airflow, run, job_id=done["job_id"])  # the dead one never fired
    assert row.final_state == "success", row
    assert row.tries == 1, row
    assert_clean(row, submissions=1)
    assert row.events == 1, row


@each_system
def test_triggerer_sigterm_while_deferred(system: str, request: pytest.FixtureRequest, matrix: Matrix) -> None:
    """SIGTERM: the triggerer cleans its triggers up without on_kill, the job keeps running, the next one resumes."""
    airflow = matrix.af

    def act(runs: dict[str, Run]) -> dict[str, Any]:
        # what the shutdown left running, read before another triggerer could act
        def active() -> dict[str, list[str]]:
            return {s: active_jobs(matrix.systems[s], r, ["job"]) for s, r in runs.items()}

        return stop_the_triggerer(airflow, runs, signal.SIGTERM, active)

    done = matrix.once(request, "triggerer_sigterm", act)
    run: Run = done["runs"][system]
    old = trigger_events(airflow, run, try_number=1)
    assert "trigger completed" in old, old  # the shutdown ran the trigger's cleanup
    assert not any("on_kill" in e for e in old), old
    assert len(done["meanwhile"][system]) == 1, done  # cleanup did not cancel the job
    row = matrix.row(request, run, notes="triggerer SIGTERMed while deferred; another one resumed")
    assert row.final_state == "success", row
    assert row.tries == 1, row
    assert_clean(row, submissions=1)
    assert row.events == 1, row


@each_system
def test_two_triggerers_one_killed(system: str, request: pytest.FixtureRequest, matrix: Matrix) -> None:
    """Two triggerers; one running our triggers is SIGKILLed; the other takes over: one event per task."""
    airflow = matrix.af

    def act(runs: dict[str, Run]) -> dict[str, Any]:
        if len(airflow.triggerers()) < 2:
            airflow.start_triggerer()
        holders = [wait_watching(airflow, r.dag_id, r.run_id, f"job_{i}") for r in runs.values() for i in range(2)]
        job_id = min(holders[0])
        victim = airflow.triggerer_for_job(job_id)
        assert [n for n in airflow.triggerers() if n != victim], airflow.triggerers()
        airflow.kill(victim, signal.SIGKILL)
        airflow.wait_exited(victim)
        return {"job_id": job_id}

    done = matrix.once(request, "two_triggerers", act)
    run: Run = done["runs"][system]
    job_id = done["job_id"]
    notes = f"2 tasks; triggerer job {job_id} SIGKILLed, the other took over"
    row = matrix.row(request, run, notes=notes)
    check_two_triggerers(airflow, run, row, job_id)


def check_two_triggerers(airflow: AirflowEnv, run: Run, row: Row, job_id: int) -> None:
    """The row of two triggerers, triggerer job ``job_id`` SIGKILLed while it ran job_0's trigger."""
    assert row.final_state == "success", row
    assert row.tries == 1, row
    assert_clean(row, submissions=2)
    assert {j["task"] for j in row.jobs} == {"job_0", "job_1"}, row
    assert row.events == 2, row  # each task's one try resumed from an event
    fired = [
        p.name
        for p, lines in trigger_logs(airflow, run.dag_id, run.run_id).items()
        if "Trigger fired event" in events_of(lines)
    ]
    # from a surviving triggerer (a late heartbeat can make two triggerers fire for one try; Airflow resumes it once)
    assert not [n for n in fired if n.endswith(f".trigger.{job_id}.log")], fired


def unknown_lines(af: AirflowEnv, run: Run) -> int:
    """The poller says once per endpoint that its answers stopped (not once per job or per poll)."""
    return sum(" is unknown: " in e and "nothing is failed or resubmitted" in e for e in trigger_events(af, run))


@each_system
def test_endpoint_unreachable_while_deferred(system: str, request: pytest.FixtureRequest, matrix: Matrix) -> None:
    """Every endpoint is paused (SIGSTOP) during the wait: polls fail, the task neither fails nor resubmits."""
    airflow = matrix.af

    def act(runs: dict[str, Run]) -> dict[str, Any]:
        for r in runs.values():
            wait_watching(airflow, r.dag_id, r.run_id)
        paused = dict(runs)
        states: dict[str, str] = {}
        since = time.monotonic()
        try:
            for s in paused:
                matrix.systems[s].pause()
            # each endpoint stays paused until its poller reported it unknown (at most its max_pause: Spark's is
            # well below spark.worker.timeout, past which the resumed master would drop the worker and its driver)
            while paused:
                for s, r in list(paused.items()):
                    reported = unknown_lines(airflow, r) >= 1
                    if reported or time.monotonic() - since > matrix.systems[s].max_pause:
                        states[s] = str(airflow.api.task_instance(r.dag_id, r.run_id, "job")["state"])
                        matrix.systems[s].resume()
                        del paused[s]
                time.sleep(0.5)
        finally:
            for s in paused:
                matrix.systems[s].resume()
        return {"states": states, "paused_for": round(time.monotonic() - since)}

    done = matrix.once(request, "endpoint_unreachable", act)
    run: Run = done["runs"][system]
    assert done["states"][system] == "deferred", done
    notes = "endpoint SIGSTOPped until the poller reported it unreachable"
    row = matrix.row(request, run, notes=notes)
    assert row.final_state == "success", row
    assert row.tries == 1, row
    assert_clean(row, submissions=1)
    assert row.events == 1, row
    events = trigger_events(airflow, run)
    assert unknown_lines(airflow, run) == 1, events  # logged once, not once per poll
    assert any(" answers again after " in e for e in events), events
