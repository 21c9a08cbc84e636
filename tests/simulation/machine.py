"""The schedules: a hypothesis state machine whose rules are everything that can happen to a durable task,
and whose invariants are what "never a duplicate, never lost" means.

Why a state machine: hypothesis draws the rules in any order, with any arguments, and shrinks a failing run
to the shortest schedule that still fails; that schedule becomes a test in ``test_regressions.py``.
``SimulatedRun`` is subclassed per kind of system (``test_simulation.py``).
"""

from __future__ import annotations

from typing import ClassVar
from unittest import mock

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from durable_jobs import failpoints, protocol, record
from durable_jobs.errors import DurableJobError
from durable_jobs.record import STATE_KEY, JobRecord, TaskIdentity

from .airflow_model import DAG, POLL, RUN, TASK, Airflow, TaskInstance
from .world import Clock, Crash, Job, SimSystem, StoreError, point

TASKS = 2
FOREVER = 1e7  # a job that never ends by itself (a streaming job): only a cancel ends it
plans = st.lists(
    st.tuples(st.sampled_from([5.0, 30.0, 120.0, FOREVER]), st.sampled_from(["succeeded", "failed"])),
    min_size=6,
    max_size=6,
)
task_index = st.integers(0, TASKS - 1)


class SimulatedRun(RuleBasedStateMachine):
    """Two mapped task instances of one DAG run on one system, and every fault the issue lists."""

    idempotent: ClassVar[bool] = True
    lookup: ClassVar[bool] = True
    zombies: ClassVar[bool] = True  # two tries of a task may overlap
    forgetting: ClassVar[bool] = True  # the system may lose a job (LOST)
    rerun_on_clear: ClassVar[bool] = False  # the operator's option: a clear reruns even a succeeded job

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.system = SimSystem(clock=self.clock, idempotent=self.idempotent, lookup=self.lookup)
        self.system.on_submit = self._submitted
        self.violations: list[str] = []
        self._patches = [
            mock.patch.object(protocol, "time", self.clock),
            mock.patch.object(record, "time", self.clock),
            mock.patch.object(failpoints, "failpoint", point),
        ]
        for p in self._patches:
            p.start()
        self.af: Airflow | None = None

    @initialize(plan=st.lists(plans, min_size=TASKS, max_size=TASKS))
    def setup(self, plan: list[list[tuple[float, str]]]) -> None:
        self.af = Airflow(
            self.system, [TaskInstance(i) for i in range(TASKS)], plan, rerun_on_clear=self.rerun_on_clear
        )

    @property
    def tis(self) -> list[TaskInstance]:
        assert self.af is not None
        return self.af.tasks

    def _ti(self, i: int) -> TaskInstance:
        return self.tis[i]

    # --- the scheduler and the workers ---------------------------------------------------------------------

    @rule(i=task_index)
    def start_try(self, i: int) -> None:
        ti = self._ti(i)
        if ti.can_start and ti.fiber is None:
            assert self.af is not None
            self.af.start_try(ti)

    @rule(i=task_index, steps=st.integers(1, 4))
    def step(self, i: int, steps: int) -> None:
        ti = self._ti(i)
        for _ in range(steps):
            if ti.fiber is None:
                return
            ti.fiber.step()
            if ti.fiber.done:
                assert self.af is not None
                self.af.settle(ti)

    @rule(i=task_index)
    def run_to_end(self, i: int) -> None:
        ti = self._ti(i)
        if ti.fiber is not None:
            ti.fiber.finish()
            assert self.af is not None
            self.af.settle(ti)

    @rule(i=task_index)
    def crash(self, i: int) -> None:
        ti = self._ti(i)
        if ti.fiber is not None and not ti.fiber.done:
            assert self.af is not None
            self.af.crash(ti)

    @precondition(lambda self: self.zombies)
    @rule(i=task_index)
    def become_zombie(self, i: int) -> None:
        ti = self._ti(i)
        if ti.fiber is not None and not ti.fiber.done:
            assert self.af is not None
            self.af.zombie(ti)

    @rule(i=task_index, kill=st.booleans())
    def zombie_goes_on(self, i: int, kill: bool) -> None:
        ti = self._ti(i)
        if ti.zombies:
            z = ti.zombies[0]
            z.crash() if kill else z.step()
            if z.done:
                ti.zombies.pop(0)
                self._check_zombie(ti, z.error)

    # --- the triggerer ---------------------------------------------------------------------------------------

    @rule(i=task_index)
    def poll(self, i: int) -> None:
        ti = self._ti(i)
        if ti.trigger is not None and ti.event is None:
            assert self.af is not None
            self.af.poll(ti)

    @rule(i=task_index, lost=st.booleans())
    def resume(self, i: int, lost: bool) -> None:
        ti = self._ti(i)
        if ti.state == "deferred" and ti.event is not None and ti.fiber is None:
            assert self.af is not None
            self.af.resume(ti, lost=lost)

    @rule()
    def restart_triggerer(self) -> None:
        assert self.af is not None
        self.af.restart_triggerer()

    @rule()
    def run_reaper_callbacks(self) -> None:
        assert self.af is not None
        self.af.run_callbacks()

    # --- time and the system -----------------------------------------------------------------------------------

    @rule(seconds=st.sampled_from([1.0, POLL.interval, 60.0, 400.0]))
    def time_passes(self, seconds: float) -> None:
        self.system.advance(seconds)

    @rule(down=st.booleans())
    def endpoint(self, down: bool) -> None:
        self.system.down = down

    @rule()
    def lose_next_answer(self) -> None:
        self.system.lose_answer = True

    @rule(kind=st.sampled_from(["unknown", "malformed"]))
    def bad_status_answer(self, kind: str) -> None:
        self.system.answers.append(kind)

    @precondition(lambda self: self.forgetting)
    @rule(n=st.integers(0, 20))
    def system_forgets_a_job(self, n: int) -> None:
        # a job some record names: one nobody recorded, once forgotten, is the same as one never submitted
        recorded = {((ti.store.row.get(STATE_KEY) or {}).get("job") or {}).get("id") for ti in self.tis}
        jobs = [j for j in self.system.jobs.values() if j.id in recorded]
        if jobs:
            jobs[n % len(jobs)].forgotten = True

    @rule(i=task_index, slow=st.booleans())
    def store_fails_next(self, i: int, slow: bool) -> None:
        store = self._ti(i).store
        if slow:
            store.slow_next = True
        else:
            store.fail_next = True

    # --- a user ------------------------------------------------------------------------------------------------

    @rule(i=task_index)
    def clear(self, i: int) -> None:
        assert self.af is not None
        self.af.clear(self._ti(i))

    @rule(i=task_index, state=st.sampled_from(["failed", "success"]))
    def mark(self, i: int, state: str) -> None:
        assert self.af is not None
        self.af.mark(self._ti(i), state)

    # --- the invariants -----------------------------------------------------------------------------------------

    def _submitted(self, job: Job) -> None:
        """Called by the system as it creates a job: was its intent recorded, may it rerun a success?"""
        task, generation = int(job.spec["task"]), int(job.spec["generation"])
        ti = self._ti(task)
        stored = ti.store.row.get(STATE_KEY)
        if not isinstance(stored, dict) or stored.get("token") != job.token:
            self.violations.append(f"job {job.id} of task {task} generation {generation} submitted without its intent")
        ident = TaskIdentity(DAG, RUN, TASK, task)
        for g in range(generation):
            for old in self.system.of_token(ident.token(g)):
                maybe_succeeded = old.state.value == "succeeded" or (
                    old.forgotten and old.state.value in ("running", "succeeded")
                )
                asked = any(t == task and at >= old.submitted_at for t, at in self._asked())
                if maybe_succeeded and not asked:
                    self.violations.append(
                        f"task {task} generation {generation} submitted although {old.id} (generation {g}) "
                        f"{'was forgotten' if old.forgotten else 'SUCCEEDED'} and nobody asked for a rerun"
                    )
        live = [j for j in self.system.jobs.values() if j.live and int(j.spec["task"]) == task]
        if live:
            self.violations.append(f"task {task}: {job.id} submitted while {[j.id for j in live]} still run")

    def _asked(self) -> list[tuple[int, float]]:
        assert self.af is not None
        return self.af.asked

    def _check_zombie(self, ti: TaskInstance, err: BaseException | None) -> None:
        if err is not None and not isinstance(err, (Crash, DurableJobError, StoreError)):
            ti.bugs.append(f"zombie: {type(err).__name__}: {err}")

    @invariant()
    def nothing_violated(self) -> None:
        assert not self.violations, self.violations

    @invariant()
    def one_job_per_token(self) -> None:
        tokens = [j.token for j in self.system.jobs.values()]
        assert len(tokens) == len(set(tokens)), f"two jobs carry one token: {sorted(tokens)}"

    @invariant()
    def records_validate(self) -> None:
        if self.af is None:
            return
        for ti in self.tis:
            raw = ti.store.row.get(STATE_KEY)
            if raw is not None:
                rec = JobRecord.from_json(raw, system="sim", identity=TaskIdentity(DAG, RUN, TASK, ti.index))
                if rec.job is not None:
                    self.system.validate_locator(rec.job)
            assert not ti.bugs, ti.bugs

    def teardown(self) -> None:
        try:
            if self.af is not None:
                self._heal_and_check()
        finally:
            for ti in self.tis if self.af is not None else []:
                for f in [*ti.zombies, *([ti.fiber] if ti.fiber else [])]:
                    f.crash()
            for p in self._patches:
                p.stop()

    def _heal_and_check(self) -> None:
        """Every fault heals; the tasks run to their end; then no finished task may leave a job running."""
        af, system = self.af, self.system
        assert af is not None
        system.down, system.lose_answer, system.answers = False, False, []
        for ti in af.tasks:
            ti.store.fail_next = ti.store.slow_next = False
            for z in ti.zombies:
                z.crash()
            ti.zombies.clear()
        for _ in range(400):
            if all(ti.finished for ti in af.tasks) and not af.callbacks:
                break
            for ti in af.tasks:
                if ti.fiber is not None:
                    ti.fiber.finish()
                    af.settle(ti)
                elif ti.state == "deferred" and ti.event is not None:
                    af.resume(ti)
                elif ti.state == "deferred":
                    af.poll(ti)
                elif ti.can_start:
                    af.start_try(ti)
            af.run_callbacks()
            system.advance(POLL.interval)
        for ti in af.tasks:
            assert ti.finished, f"task {ti.index} never ended: {ti.state}"
            assert not ti.bugs, ti.bugs
        assert not self.violations, self.violations
        for job in system.jobs.values():
            ti = af.tasks[int(job.spec["task"])]
            named = ((ti.store.row.get(STATE_KEY) or {}).get("job") or {}).get("id") == job.id
            # a job no record names (its submit's answer was lost on the last try) is left to a clear, which
            # adopts it by its token: not an orphan of the library's making (docs/simulation.md)
            assert not (job.live and named), f"{job.id} (task {ti.index}) still runs after its task ended: an orphan"
