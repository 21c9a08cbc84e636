"""The crash matrix's DAGs, declared once for every system: the scenario catalogue and the crash mixin.

Each system's DAG file (``e2e_<system>.py``) defines ``make_task`` (its operator running a job that sleeps
``seconds`` then exits ``exit_code``) and calls :func:`scenarios`, which declares one DAG per scenario with
the id ``e2e_<system>_<scenario>``. A system that ``DURABLE_JOBS_E2E_SYSTEMS`` (set by the test session for
every Airflow component) does not select declares nothing, so the dag-processor parses only what runs.

Settings come from the environment the harness gives every Airflow process; ``DURABLE_JOBS_E2E_ONCE_ROOT``
is where fail-points remember that they fired, one directory per task instance, so that the retry after
the crash survives. :class:`Crashing` arms its task's fail-points in the worker process before the protocol
runs (``DURABLE_JOBS_FAILPOINTS`` is process-wide, and scenarios run side by side in one Airflow).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from airflow.sdk import DAG, BaseOperator

from durable_jobs import failpoints as _failpoints

ONCE_ROOT_ENV = "DURABLE_JOBS_E2E_ONCE_ROOT"
SYSTEMS_ENV = "DURABLE_JOBS_E2E_SYSTEMS"
POLL_INTERVAL = 2.0

CRASH = [f"crash_{point}" for point in _failpoints.ALL]
# scenarios that only disturb their own task: run side by side
BATCH = [*CRASH, "clear_deferred", "mark_failed", "deadline", "job_fails"]
# scenarios that disturb the whole deployment: one at a time (every system's DAG of it at once)
ISOLATED = ["triggerer_sigkill", "triggerer_sigterm", "two_triggerers", "endpoint_unreachable"]
# the reaper (docs/reaper.md): a task marked while no trigger of it runs; one at a time (one stops every triggerer)
REAPER = ["reaper_before_trigger", "reaper_triggerers_down", "reaper_mark_success"]
REAPER_POLL_INTERVAL = 30.0  # the operator's default: the cancel must land within two of them
STANDARD = [*BATCH, *ISOLATED, *REAPER]
# overload (Kubernetes' own DAG): 50 mapped tasks of 75 s; the workers of five map indexes die at after_submit
OVERLOAD_TASKS = 50
OVERLOAD_CRASHED = [3, 14, 25, 36, 47]
OVERLOAD_SECONDS = 75


def dag_id(system: str, scenario: str) -> str:
    return f"e2e_{system}_{scenario}"


def enabled(system: str) -> bool:
    """Whether the session selected this system (every system when the variable is unset)."""
    raw = os.environ.get(SYSTEMS_ENV, "")
    return not raw or system in {s.strip() for s in raw.split(",")}


class Crashing(BaseOperator):
    """Mixed into a system's operator (first base): per-task fail-points, and another exit code for the first try.

    A BaseOperator itself, so that ``partial()``/``expand()`` accept its arguments (Airflow checks a mapped
    operator's arguments against the BaseOperator classes of its MRO).

    :param failpoints: ``DURABLE_JOBS_FAILPOINTS`` syntax (``after_submit=exit``), armed once per task instance.
    :param failpoint_map_indexes: arm them only in these map indexes (mapped tasks; default every one).
    :param first_try_exit_code: the job's exit code on try 1 (None: the same as the other tries).
    """

    def __init__(
        self,
        *,
        failpoints: str = "",
        failpoint_map_indexes: list[int] | None = None,
        first_try_exit_code: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.failpoints = failpoints
        self.failpoint_map_indexes = failpoint_map_indexes
        self.first_try_exit_code = first_try_exit_code
        super().__init__(**kwargs)

    @staticmethod
    def first_try(context: Any) -> bool:
        return context is not None and int(context["ti"].try_number) == 1

    def exit_code(self, context: Any, exit_code: int) -> int:
        """The job's exit code for this try."""
        if self.first_try_exit_code is not None and self.first_try(context):
            return self.first_try_exit_code
        return exit_code

    def _arm(self, context: Any) -> None:
        ti = context["ti"]
        wanted = self.failpoint_map_indexes is None or int(ti.map_index) in self.failpoint_map_indexes
        if not self.failpoints or not wanted:
            _failpoints.configure("")
            return
        root = Path(os.environ.get(ONCE_ROOT_ENV, "/tmp/durable-jobs-e2e-once"))
        once = root / ti.dag_id / ti.run_id.replace("/", "_") / f"{ti.task_id}.{ti.map_index}"
        os.environ["DURABLE_JOBS_FAILPOINTS_ONCE"] = str(once)
        _failpoints.configure(self.failpoints)

    def execute(self, context: Any) -> Any:
        self._arm(context)
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        self._arm(context)
        return super().execute_complete(context, event, **kwargs)  # type: ignore[attr-defined]


class MakeTask(Protocol):
    """A system's task factory: its operator (mixing in :class:`Crashing`) running one job."""

    def __call__(
        self,
        task_id: str,
        *,
        seconds: float,
        exit_code: int,
        first_try_exit_code: int | None,
        failpoints: str,
        poll_interval: float,
        job_timeout: timedelta,
    ) -> BaseOperator: ...


@dataclass(frozen=True)
class Scenario:
    """One standard scenario's DAG: ``tasks`` jobs of ``seconds`` each."""

    seconds: float
    tasks: int = 1
    retries: int = 2
    job_timeout: timedelta = timedelta(minutes=10)
    failpoints: str = ""
    first_try_exit_code: int | None = None
    poll_interval: float = POLL_INTERVAL


SPECS: dict[str, Scenario] = {
    # the worker dies (os._exit) at each protocol step, once; the retry adopts or reattaches
    **{f"crash_{p}": Scenario(seconds=4, retries=3, failpoints=f"{p}=exit") for p in _failpoints.ALL},
    # user actions while deferred
    "clear_deferred": Scenario(seconds=60),  # still running when try 2 (scheduled, parsed) reattaches
    "mark_failed": Scenario(seconds=300, retries=0),
    # the deadline passes: the job is cancelled, the task fails with the reason
    "deadline": Scenario(seconds=300, retries=0, job_timeout=timedelta(seconds=20)),
    # generation 0 fails (exit code 3); the retry submits generation 1, which succeeds. Each runs 20 s: a job
    # that ends before the scheduler has read the deferring worker's exit gets its resumed try failed by
    # Airflow (apache/airflow#72716), and with retries=1 that failed a CI run when generation 1 took 5 s
    "job_fails": Scenario(seconds=20, retries=1, first_try_exit_code=3),
    # losing the triggerer while deferred (every system's run at once): the job keeps running, another resumes
    "triggerer_sigkill": Scenario(seconds=40),
    "triggerer_sigterm": Scenario(seconds=50),  # still running after the graceful shutdown
    "two_triggerers": Scenario(seconds=40, tasks=2),
    # the endpoint is unreachable (SIGSTOP) for a while during the wait
    "endpoint_unreachable": Scenario(seconds=40),
    # marked while no trigger of the task runs (or while it does, for success): the reaper cancels the job
    # (one retry: a try lost before it starts, on a busy host, must not end the scenario before the mark)
    **{name: Scenario(seconds=600, retries=1, poll_interval=REAPER_POLL_INTERVAL) for name in REAPER},
}


@contextmanager
def scenario_dag(system: str, scenario: str, *, retries: int, **dag_kwargs: Any) -> Iterator[DAG]:
    """The DAG of one (system, scenario): ``e2e_<system>_<scenario>``, unscheduled, one run at a time."""
    with DAG(
        dag_id=dag_id(system, scenario),
        schedule=None,
        catchup=False,
        max_active_runs=1,
        tags=["durable_jobs", "e2e", system],
        default_args={"retries": retries, "retry_delay": timedelta(seconds=2)},
        **dag_kwargs,
    ) as dag:
        yield dag


def scenarios(system: str, make_task: MakeTask) -> list[DAG]:
    """Declare the standard scenarios' DAGs for one system (none when the session did not select it)."""
    if not enabled(system):
        return []
    dags = []
    for name, spec in SPECS.items():
        with scenario_dag(system, name, retries=spec.retries) as dag:
            for i in range(spec.tasks):
                make_task(
                    "job" if spec.tasks == 1 else f"job_{i}",
                    seconds=spec.seconds,
                    exit_code=0,
                    first_try_exit_code=spec.first_try_exit_code,
                    failpoints=spec.failpoints,
                    poll_interval=spec.poll_interval,
                    job_timeout=spec.job_timeout,
                )
        dags.append(dag)
    return dags
