"""Airflow as the protocol meets it, in miniature: task instances of one DAG run, their tries, the triggerer's
wait, and a user's clears and marks.

Why a model and not Airflow: the simulation runs ten thousand schedules a CI run, each with crashes at any
point. What it keeps of Airflow is what the protocol relies on (docs/simulation.md lists it):

* a try's ``try_number`` goes up at each new try, not at a resume from the triggerer; a clear raises the
  *DAG run's* ``clear_number`` (one counter for every task of the run, as ``clear_task_instances`` does) and,
  unless the try is running (RESTARTING), ``max_tries`` to ``try_number + retries``;
* a try that dies or is found a zombie fails and is retried while ``try_number <= max_tries``; a zombie may
  still run, but the execution API refuses its state-store calls once a newer try exists;
* the operator's glue: ``execute`` is :meth:`JobProtocol.start`, ``execute_complete`` is
  :meth:`JobProtocol.complete`; a ``RecordError`` or a ``JobLost`` fails without retry;
* the trigger polls with the real :class:`~durable_jobs.watch.Watch` rules and fires the real event shape;
  a resume can be lost (apache/airflow#72716: ``execute`` runs again in the same try);
* a mark while deferred runs the real reaper plan (tombstone, then a cancel queued for a triggerer) and the
  trigger's own cleanup (the task is finished: cancel); a clear while deferred leaves the job to the next try.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from durable_jobs.errors import DurableJobError, RecordError, TransientError
from durable_jobs.protocol import Defer, Finished, JobLost, JobProtocol, ProtocolSettings
from durable_jobs.reaper.orphan import DurableTrigger, MarkedTask, Reap, plan
from durable_jobs.record import STATE_KEY, TaskIdentity
from durable_jobs.status import JobState, JobStatus
from durable_jobs.triggers.base import DurableJobTrigger
from durable_jobs.watch import PollSettings, Watch

from .world import Crash, Fiber, SimSystem, Store, StoreError, point, run_sync

DAG, RUN, TASK = "sim", "run1", "job"
RETRIES = 2
POLL = PollSettings(interval=10.0, unknown_budget=300.0, lost_confirmations=3)
HOOK = "durable_jobs.hooks.spark_standalone.SparkStandaloneHook"  # any durable hook: the plan only names it
_QUIET = logging.getLogger("durable_jobs.simulation")
_QUIET.disabled = True  # ten thousand schedules of INFO lines help nobody


@dataclass
class Trigger:
    """A deferred try's trigger, as the triggerer runs it."""

    job: dict[str, Any]
    token: str
    generation: int
    deadline: float | None
    watch: Watch
    cancelling: bool = False  # it started past its deadline: it cancels first (``DurableJobTrigger.wait``)
    cancel_taken: bool = False

    @classmethod
    def of(cls, decision: Defer, now: float) -> Trigger:
        rec = decision.record
        assert rec.job is not None
        late = rec.deadline is not None and rec.deadline <= now
        return cls(dict(rec.job), rec.token, rec.generation, rec.deadline, Watch(rec.job, POLL, rec.deadline), late)

    def poll(self, system: SimSystem) -> dict[str, Any] | None:
        """One poll; the event when the wait ends (the rules of ``polling.wait_for_outcome``, and of
        ``DurableJobTrigger._cancel_then_wait`` for a trigger that started past its deadline)."""
        if self.cancelling and not self.cancel_taken:
            try:
                run_sync(system.cancel(self.job))
            except TransientError:
                return None  # repeated until the system takes it
            self.cancel_taken = True
        try:
            status = run_sync(system.status(self.job))
        except TransientError as exc:
            status = JobStatus.unknown_from(exc)
        w = self.watch
        w.offer(status, system.clock.now)
        latest = w.latest
        if latest is not None and latest.state.is_terminal:
            if self.cancelling and latest.state in (JobState.FAILED, JobState.CANCELLED):
                event = self._event("timeout", latest, "deadline passed; the triggerer cancelled the job")
                event["details"]["cancelled"] = True
                return event
            return self._event(latest.state.value, latest, latest.message)
        if w.budget_spent:
            return self._event("unknown", latest, "status unknown for the whole budget")
        if not self.cancelling and self.deadline is not None and system.clock.now >= self.deadline:
            return self._event("timeout", latest, "deadline passed")
        return None

    def _event(self, status: str, last: JobStatus | None, message: str) -> dict[str, Any]:
        me = SimpleNamespace(token=self.token, generation=self.generation)
        return DurableJobTrigger._event(me, status, self.job, message, last)  # type: ignore[arg-type]


@dataclass
class TaskInstance:
    """One mapped task instance of the run."""

    index: int
    store: Store = field(default_factory=Store)
    state: str = "scheduled"  # scheduled, running, deferred, up_for_retry, success, failed
    try_number: int = 0
    max_tries: int = RETRIES
    fiber: Fiber | None = None
    zombies: list[Fiber] = field(default_factory=list)
    trigger: Trigger | None = None
    event: dict[str, Any] | None = None  # fired, not resumed yet
    bugs: list[str] = field(default_factory=list)  # errors the protocol must never raise

    @property
    def finished(self) -> bool:
        return self.state in ("success", "failed")

    @property
    def can_start(self) -> bool:
        return self.state in ("scheduled", "up_for_retry")

    def identity(self, clear_number: int) -> TaskIdentity:
        return TaskIdentity(DAG, RUN, TASK, self.index, self.try_number, clear_number)


@dataclass
class Airflow:
    """The run's task instances and what the scheduler, the triggerer and a user do to them."""

    system: SimSystem
    tasks: list[TaskInstance]
    plans: list[list[tuple[float, str]]]  # per task, per generation: (seconds, planned end)
    timeout: float = 400.0
    on_lost: str = "fail"
    rerun_on_clear: bool = False
    clear_number: int = 0
    callbacks: list[dict[str, Any]] = field(default_factory=list)  # the reaper's queued cancels
    asked: list[tuple[int, float]] = field(default_factory=list)  # (task, time): a user cleared it

    # --- the worker ------------------------------------------------------------------------------------------

    def spec(self, ti: TaskInstance, generation: int) -> dict[str, Any]:
        plans = self.plans[ti.index]
        seconds, ends = plans[generation] if generation < len(plans) else (10.0, "succeeded")
        return {"seconds": seconds, "ends": ends, "task": ti.index, "generation": generation}

    def protocol(self, ti: TaskInstance) -> JobProtocol:
        def sleep(seconds: float) -> None:
            point("sleep")
            self.system.advance(seconds)

        return JobProtocol(
            client=self.system,
            store=ti.store.accessor(ti.try_number),
            identity=ti.identity(self.clear_number),
            spec=lambda rec: self.spec(ti, rec.generation),
            run=run_sync,
            settings=ProtocolSettings(
                timeout=self.timeout,
                rerun_on_clear=self.rerun_on_clear,
                confirm_delay=2.0,
                cancel_wait=20.0,
                on_lost=self.on_lost,
                max_tries=ti.max_tries,
                deadline_pad=60.0,
            ),
            sleep=sleep,
            logger=_QUIET,
            run_after=self.system.clock.now - 1e6,
            conn_id="sim_default",
            hook=HOOK,
        )

    def start_try(self, ti: TaskInstance) -> None:
        assert ti.can_start
        ti.try_number += 1
        ti.store.current_try = ti.try_number
        ti.state, ti.event, ti.trigger = "running", None, None
        proto = self.protocol(ti)
        ti.fiber = Fiber(f"task{ti.index}-try{ti.try_number}", proto.start)

    def resume(self, ti: TaskInstance, *, lost: bool = False) -> None:
        """The triggerer's event resumes the try (``lost``: Airflow ran ``execute`` again instead)."""
        assert ti.state == "deferred" and ti.event is not None
        event, ti.event, ti.trigger = ti.event, None, None
        ti.state = "running"
        proto = self.protocol(ti)
        ti.fiber = Fiber(
            f"task{ti.index}-try{ti.try_number}-resume", proto.start if lost else (lambda: proto.complete(event))
        )

    def settle(self, ti: TaskInstance) -> None:
        """The try's process ended: what Airflow makes of how it ended."""
        fiber = ti.fiber
        assert fiber is not None and fiber.done
        ti.fiber = None
        err = fiber.error
        if err is None:
            decision = fiber.result
            if isinstance(decision, Finished):
                ti.state = "success"
            else:
                assert isinstance(decision, Defer)
                ti.state, ti.trigger = "deferred", Trigger.of(decision, self.system.clock.now)
            return
        if not isinstance(err, (Crash, DurableJobError, StoreError)):
            ti.bugs.append(f"{type(err).__name__}: {err} at {fiber.at} after {fiber.points}")
        if isinstance(err, (RecordError, JobLost)):
            ti.state = "failed"  # AirflowFailException: no retry
            return
        self.fail_try(ti)

    def fail_try(self, ti: TaskInstance) -> None:
        ti.state = "up_for_retry" if ti.try_number <= ti.max_tries else "failed"

    def crash(self, ti: TaskInstance) -> None:
        """The try's process dies where it stands; the scheduler fails the try."""
        assert ti.fiber is not None
        ti.fiber.crash()
        ti.fiber = None
        self.fail_try(ti)

    def zombie(self, ti: TaskInstance) -> None:
        """The scheduler gives the try up (no heartbeat) while its process still runs."""
        assert ti.fiber is not None
        ti.zombies.append(ti.fiber)
        ti.fiber = None
        self.fail_try(ti)

    # --- the triggerer ---------------------------------------------------------------------------------------

    def poll(self, ti: TaskInstance) -> None:
        assert ti.trigger is not None and ti.event is None
        ti.event = ti.trigger.poll(self.system)

    def restart_triggerer(self) -> None:
        for ti in self.tasks:
            if ti.trigger is not None and ti.event is None:
                t = ti.trigger
                t.watch, t.cancel_taken = Watch(t.job, POLL, t.deadline), False

    def run_callbacks(self) -> None:
        """The reaper's queued cancels: each is retried on transient errors until it gets through."""
        left = []
        for cb in self.callbacks:
            try:
                run_sync(self.system.cancel(cb["job"]))
            except TransientError:
                left.append(cb)
        self.callbacks = left

    # --- a user ---------------------------------------------------------------------------------------------

    def clear(self, ti: TaskInstance) -> None:
        if ti.fiber is not None:
            # RESTARTING: the supervisor kills the running try; clear_task_instances leaves max_tries alone
            ti.fiber.crash()
            ti.fiber = None
        else:
            ti.max_tries = ti.try_number + RETRIES
        # a deferred try's trigger goes; its cleanup finds the task not finished and leaves the job to the next try
        ti.trigger, ti.event = None, None
        ti.state = "scheduled"
        self.clear_number += 1
        self.asked.append((ti.index, self.system.clock.now))

    def mark(self, ti: TaskInstance, state: str) -> None:
        """Mark failed or success through the API: the reaper's listener, then the trigger's cleanup."""
        if ti.finished:
            return
        trigger = ti.trigger
        if ti.fiber is not None:  # the task runner is told at its next heartbeat and kills the try
            ti.zombies.append(ti.fiber)
            ti.fiber = None
        ti.state, ti.trigger, ti.event = state, None, None
        ti.store.current_try = -1  # the marked try's later store calls are refused (it is no longer running)
        stored = ti.store.row.get(STATE_KEY)
        durable = (
            None
            if trigger is None
            else DurableTrigger(HOOK, "sim_default", dict(trigger.job), trigger.token, trigger.generation)
        )
        marked = MarkedTask(DAG, RUN, TASK, ti.index, f"ti-{ti.index}-{ti.try_number}", f"mark_{state}")
        decision = plan(marked, None if stored is None else json.dumps(stored), durable, now=self.system.clock.now)
        if isinstance(decision, Reap):
            if decision.tombstone is not None:
                ti.store.row[STATE_KEY] = json.loads(decision.tombstone)
            self.callbacks.append(decision.kwargs)
        if trigger is not None:  # the trigger's on_kill: the task is finished, so it cancels (one attempt)
            with contextlib.suppress(TransientError):
                run_sync(self.system.cancel(trigger.job))
