"""The reaper on real Airflow (issue 15, item 3): a task marked failed or success while no trigger of it runs.

Every scenario runs for every matrix system at once (one DAG per system, ``e2e_<system>_reaper_*``), one
scenario at a time, after the rest of the matrix: one of them stops every triggerer. Each row must end with
the job cancelled on the system and 0 orphans, and the cancel must land within two poll intervals (the
operator's default, 30 s) of the mark, or of the first triggerer to start when none was up.

* ``reaper_before_trigger``: the task is marked failed the moment it is deferred, before (or just as) a
  triggerer starts its trigger: the case ``on_kill`` alone missed;
* ``reaper_triggerers_down``: every triggerer is stopped (SIGTERM: cleanup without on_kill), the task is
  marked failed, the job is seen still running, then one triggerer starts (the time counts from its loop's
  start: on a busy host its process takes tens of seconds to get there);
* ``reaper_mark_success``: marked success while its trigger runs.

The evidence that the reaper acted: the record is a tombstone (``cancel.by``), and Airflow's callback table
holds the reaper's callback, ended ``success`` with its line ``durable_jobs reaper: cancelled <job>``.
"""

from __future__ import annotations

import signal
import time
from datetime import datetime
from typing import Any

import pytest

from durable_jobs.record import STATE_KEY
from durable_jobs_harness.airflow_env import AirflowEnv, AirflowEnvError, wait_until

from .dags.e2e_common import REAPER_POLL_INTERVAL
from .observe import Row, reaper_callbacks
from .systems import E2ESystem
from .test_crash_matrix import (
    RUN_TIMEOUT,
    Matrix,
    Run,
    active_jobs,
    assert_clean,
    each_system,
    trigger_events,
    wait_watching,
)
from .test_crash_matrix import matrix as matrix  # the module-scoped fixture

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(900)]

Systems = dict[str, E2ESystem]
WITHIN = 2 * REAPER_POLL_INTERVAL  # the bound: two poll intervals once a component that can act is up


def triggerer_up(af: AirflowEnv, name: str) -> float:
    """When triggerer ``name`` started its loop (epoch seconds, from its log's ``Starting the triggerer`` line):
    the moment a component that can act is up. Its process start is not: on a busy host the import of Airflow
    alone takes tens of seconds."""

    def started() -> float | None:
        for line in (af.logs_dir / f"{name}.log").read_text("utf-8", "replace").splitlines():
            if "Starting the triggerer" in line:
                return datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()
        return None

    return float(wait_until(f"{name} to start its loop", started, timeout=RUN_TIMEOUT))


def mark(af: AirflowEnv, run: Run, state: str) -> None:
    """Mark the task; again if the request failed. On SQLite a mark at the very moment the worker ends its try
    (and writes its XComs) can wait out the 30 s busy timeout and fail in Airflow's own audit-log commit,
    before any listener runs; the mark then did not happen (and a repeat that finds it done answers 409)."""
    for attempt in range(3):
        try:
            af.api.set_state(run.dag_id, run.run_id, "job", state)
            return
        except AirflowEnvError as exc:
            if " answered 409" in str(exc):
                return
            if attempt == 2:
                raise


def wait_deferred(af: AirflowEnv, run: Run) -> None:
    wait_until(
        f"{run.dag_id} to be deferred",
        lambda: af.api.task_instance(run.dag_id, run.run_id, "job")["state"] == "deferred",
        timeout=RUN_TIMEOUT,
        interval=0.1,
    )


def wait_cancelled(af: AirflowEnv, systems: Systems, runs: dict[str, Run], since: float) -> dict[str, float]:
    """Seconds from ``since`` until each system's job is no longer active (cancelled on the system)."""
    took: dict[str, float] = {}

    def all_ended() -> bool:
        for s, r in runs.items():
            if (
                s not in took
                and systems[s].jobs(r.dag_id, r.run_id, [("job", -1)])
                and not active_jobs(systems[s], r, ["job"])
            ):
                took[s] = round(time.time() - since, 1)
        return len(took) == len(runs)

    def diagnosis() -> str:
        """What each system still waiting shows: its jobs, the reaper's callbacks, the triggerers' reaper lines."""
        try:
            return _diagnosis()
        except Exception as exc:  # the diagnosis must not hide the timeout
            return f"(no diagnosis: {exc!r})"

    def _diagnosis() -> str:
        lines = []
        for s, r in runs.items():
            if s in took:
                continue
            try:
                jobs = [(j.id, j.active) for j in systems[s].jobs(r.dag_id, r.run_id, [("job", -1)])]
            except AirflowEnvError as exc:
                jobs = [("?", str(exc))]
            lines.append(f"{s}: jobs {jobs}, reaper callbacks {reaper_callbacks(af, r)}")
        for name in sorted(p.stem for p in af.logs_dir.glob("triggerer*.log")):
            text = (af.logs_dir / f"{name}.log").read_text("utf-8", "replace")
            said = [ln for ln in text.splitlines() if "reaper" in ln or "allback" in ln]
            lines.append(f"{name}.log, its reaper and callback lines (last 40):\n" + "\n".join(said[-40:]))
        return "\n".join(lines)

    wait_until(
        "every marked task's job to be cancelled",
        all_ended,
        timeout=RUN_TIMEOUT,
        interval=0.5,
        on_timeout=diagnosis,
    )
    return took


def check_row(af: AirflowEnv, row: Row, run: Run, state: str, by: str, took: float, sys_: E2ESystem) -> None:
    assert row.final_state == state, row
    assert row.tries >= 1, row  # a try that never started (a worker lost under load) may come before the job
    assert_clean(row, submissions=1)
    assert [j["cancelled"] for j in row.jobs] == [True], row
    record = af.api.state_store(run.dag_id, run.run_id, "job").get(STATE_KEY)
    assert isinstance(record, dict) and record["phase"] == "finished" and record["outcome"] == "cancelled", record
    assert record["cancel"]["by"] == by, record
    # the reaper's callback ran once the mark committed, and said what it cancelled
    job_id = row.jobs[0]["id"]
    callbacks = wait_until(
        "the reaper's callback to end",
        lambda: [c for c in reaper_callbacks(af, run) if c[0] in ("success", "failed")] or None,
        timeout=RUN_TIMEOUT,
    )
    assert [c[0] for c in callbacks] == ["success"], callbacks
    said = callbacks[0][1]
    # the client's own words for the job (Kubernetes says namespace/name; the row has the name)
    assert said.startswith(f"durable_jobs reaper: cancelled {sys_.job_noun} ") and job_id in said, callbacks
    assert took <= WITHIN, (took, row)


@each_system
def test_marked_failed_as_soon_as_deferred(system: str, request: pytest.FixtureRequest, matrix: Matrix) -> None:
    """Marked failed the moment the task is deferred (a triggerer up): the reaper cancels the job."""
    af, systems = matrix.af, matrix.systems

    def act(runs: dict[str, Run]) -> dict[str, Any]:
        marked: dict[str, float] = {}
        started: dict[str, bool] = {}
        for s, r in runs.items():
            wait_deferred(af, r)
            mark(af, r, "failed")
            marked[s] = time.time()  # the mark committed (the request answered)
            started[s] = any(e.startswith("Watching ") for e in trigger_events(af, r))
        took = wait_cancelled(af, systems, runs, min(marked.values()))
        return {"took": took, "trigger_started": started}

    done = matrix.once(request, "reaper_before_trigger", act)
    run: Run = done["runs"][system]
    took = done["took"][system]
    notes = (
        f"marked failed as soon as deferred (trigger {'already' if done['trigger_started'][system] else 'not yet'} "
        f"watching); job cancelled {took:.1f}s after the mark"
    )
    row = matrix.row(request, run, notes=notes)
    check_row(af, row, run, "failed", "mark_failed", took, systems[system])


@each_system
def test_marked_failed_while_every_triggerer_is_down(
    system: str, request: pytest.FixtureRequest, matrix: Matrix
) -> None:
    """Every triggerer stopped, the task marked failed: the job runs on until a triggerer starts, then is cancelled."""
    af, systems = matrix.af, matrix.systems

    def act(runs: dict[str, Run]) -> dict[str, Any]:
        for r in runs.values():
            wait_watching(af, r.dag_id, r.run_id)
        for name in af.triggerers():
            af.kill(name, signal.SIGTERM)
            af.wait_exited(name)
        for r in runs.values():
            mark(af, r, "failed")
        time.sleep(5)  # nothing that can act is up: the jobs must still run
        still = {s: active_jobs(systems[s], r, ["job"]) for s, r in runs.items()}
        name = af.start_triggerer()
        return {"still": still, "took": wait_cancelled(af, systems, runs, triggerer_up(af, name))}

    done = matrix.once(request, "reaper_triggerers_down", act)
    run: Run = done["runs"][system]
    assert len(done["still"][system]) == 1, done  # nobody cancelled it while no triggerer was up
    took = done["took"][system]
    notes = f"every triggerer stopped, marked failed; job cancelled {took:.1f}s after a triggerer started its loop"
    row = matrix.row(request, run, notes=notes)
    check_row(af, row, run, "failed", "mark_failed", took, systems[system])


@each_system
def test_marked_success_while_deferred(system: str, request: pytest.FixtureRequest, matrix: Matrix) -> None:
    """Marked success while its trigger runs: the job is cancelled (by on_kill or the reaper, whichever is first)."""
    af, systems = matrix.af, matrix.systems

    def act(runs: dict[str, Run]) -> dict[str, Any]:
        for r in runs.values():
            wait_watching(af, r.dag_id, r.run_id)
        t0 = time.time()
        for r in runs.values():
            mark(af, r, "success")
        return {"took": wait_cancelled(af, systems, runs, t0)}

    done = matrix.once(request, "reaper_mark_success", act)
    run: Run = done["runs"][system]
    took = done["took"][system]
    row = matrix.row(request, run, notes=f"marked success while deferred; cancelled {took:.1f}s later")
    check_row(af, row, run, "success", "mark_success", took, systems[system])
