"""The minimal schedules the simulation found, kept as tests (each names what it broke and the fix).

Each runs the machine's rules in order, with the invariants checked after every step, as hypothesis does.
"""

from __future__ import annotations

from typing import Any

import pytest

from .machine import SimulatedRun
from .test_simulation import ListingSystem, LookupSystem, RerunOnClear

pytestmark = pytest.mark.filterwarnings("ignore:coroutine 'JobClient.links' was never awaited:RuntimeWarning")
QUICK = [(5.0, "succeeded")] * 6


def replay(machine: type[SimulatedRun], plan: list[Any], *steps: tuple[str, dict[str, Any]]) -> SimulatedRun:
    m = machine()
    m.setup(plan=plan)
    try:
        for name, kwargs in steps:
            getattr(m, name)(**kwargs)
            m.nothing_violated()
            m.one_job_per_token()
            m.records_validate()
    finally:
        m.teardown()
    return m


def step_to(m: SimulatedRun, i: int, at: str) -> None:
    """Run task ``i``'s try until it stands at point ``at``."""
    fiber = m.tis[i].fiber
    assert fiber is not None
    while fiber.at != at:
        assert not fiber.done, f"the try ended before reaching {at}: {fiber.points}"
        fiber.step()


def test_deadline_over_a_forgotten_job_is_a_loss_not_a_rerun() -> None:
    """The cancel after a deadline found the job LOST and recorded CANCELLED, so the retry submitted the next
    generation: a rerun of a job that may have succeeded. Fixed in ``JobProtocol._cancel_after_deadline``."""
    for machine in (LookupSystem, ListingSystem):
        m = replay(
            machine,
            [QUICK, QUICK],
            ("start_try", {"i": 0}),
            ("run_to_end", {"i": 0}),
            ("system_forgets_a_job", {"n": 0}),
            ("time_passes", {"seconds": 400.0}),
        )
        assert m.tis[0].state == "failed"
        assert [j.spec["generation"] for j in m.system.jobs.values() if j.spec["task"] == 0] == [0]


def outcome_then_another_clear(m: SimulatedRun) -> None:
    """Task 0 resumes with its event, records the outcome and dies there; a user clears task 1; task 0 retries."""
    m.resume(i=0, lost=False)
    step_to(m, 0, "store.set:acted")  # the outcome is recorded
    m.crash(i=0)
    m.clear(i=1)
    m.start_try(i=0)
    m.run_to_end(i=0)
    m.nothing_violated()


def test_a_clear_of_another_task_does_not_rerun_a_succeeded_job_under_rerun_on_clear() -> None:
    """The same with ``rerun_on_clear``: a try that recorded SUCCEEDED and died before the task's success was
    committed, retried after a clear of another task, reran the succeeded job."""
    m = RerunOnClear()
    m.setup(plan=[QUICK, QUICK])
    try:
        m.start_try(i=0)
        m.run_to_end(i=0)
        m.time_passes(seconds=10.0)
        m.poll(i=0)
        outcome_then_another_clear(m)
        assert m.tis[0].state == "success"
        m.clear(i=0)  # a clear of this task does ask for the rerun
        m.start_try(i=0)
        m.run_to_end(i=0)
        assert [j.spec["generation"] for j in m.system.jobs.values() if j.spec["task"] == 0] == [0, 1]
    finally:
        m.teardown()


def test_a_clear_of_another_task_does_not_rerun_a_lost_job() -> None:
    """Airflow counts clears per DAG run (``DagRun.clear_number``), not per task: a try that recorded a LOST
    job and died before failing the task, retried after a user cleared *another* task of the run, read the
    bigger count as a clear of its own task and reran the lost job."""
    m = LookupSystem()
    m.setup(plan=[QUICK, QUICK])
    try:
        m.start_try(i=0)
        m.run_to_end(i=0)
        m.system_forgets_a_job(n=0)
        for _ in range(3):
            m.poll(i=0)
        outcome_then_another_clear(m)
        assert m.tis[0].state == "failed"
    finally:
        m.teardown()


def test_a_deadline_through_a_long_outage_leaves_no_job_running() -> None:
    """The deadline passed while the endpoint was down through every retry: each try failed its cancel, the
    last one failed the task, and the job ran on for good. A try now waits again instead of failing, and its
    trigger, started past the deadline, cancels until the system takes it."""
    forever = [(1e7, "succeeded")] * 6
    m = LookupSystem()
    m.setup(plan=[forever, QUICK])
    try:
        m.start_try(i=0)
        m.run_to_end(i=0)
        m.endpoint(down=True)
        for _ in range(3):
            m.time_passes(seconds=400.0)
            m.poll(i=0)
            m.resume(i=0, lost=False)
            m.run_to_end(i=0)
            m.nothing_violated()
        assert m.tis[0].state == "deferred" and m.tis[0].try_number == 1  # no try failed
        m.endpoint(down=False)
        m.poll(i=0)  # the trigger's cancel gets through
        m.poll(i=0)
        m.resume(i=0, lost=False)
        m.run_to_end(i=0)
        assert m.tis[0].state == "up_for_retry"  # the deadline failed the try, with the job cancelled
        assert not any(j.live for j in m.system.jobs.values() if j.spec["task"] == 0)
    finally:
        m.teardown()
