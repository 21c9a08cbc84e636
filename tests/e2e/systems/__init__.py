"""The systems of the crash matrix: one adapter per endpoint, and the registry the session starts.

An adapter starts its endpoint as its own process(es), gives every Airflow component the environment its
DAGs need (the connection), lists the jobs of a run as the endpoint itself sees them (never through our
client code), and makes the endpoint unreachable on demand. Scenario code only speaks through this
interface, so one scenario function runs for every system.

Adding a system: write ``tests/e2e/systems/<name>.py`` defining ``SYSTEM`` (an :class:`E2ESystem` subclass)
and ``tests/e2e/dags/e2e_<name>.py``, then add ``<name>`` to :data:`MODULES`.
"""

from __future__ import annotations

import abc
import importlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

# one module per system, in the order of the report; each defines SYSTEM
MODULES: tuple[str, ...] = (
    "spark",
    "yarn",
    "kubernetes",
    "emr",
    "emr_steps",
    "databricks",
    "glue",
    "bigquery",
    "spark_ha",
)
# ``DURABLE_JOBS_E2E_SYSTEMS=spark,kubernetes`` selects a subset (default: every system of MODULES)
SELECT_ENV = "DURABLE_JOBS_E2E_SYSTEMS"
# every token of a task is looked up for these generations
MAX_GENERATIONS = 10


@dataclass(frozen=True)
class Job:
    """One job on the endpoint, attributed to a task and generation of a run through its token."""

    id: str  # the system's id (driver id, application id, Job name, job run id)
    state: str  # the system's own state word (RUNNING, FINISHED, KILLED, Complete, Deleted...)
    task_id: str
    map_index: int  # -1 for unmapped
    generation: int
    active: bool  # not yet in a terminal state on the system
    cancelled: bool  # ended because it was cancelled or killed

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "task": self.task_id,
            "map_index": self.map_index,
            "generation": self.generation,
            "cancelled": self.cancelled,
        }


class E2ESystem(abc.ABC):
    """One endpoint of the matrix (see /work/notes/i15-interface.md and docs/e2e.md)."""

    name: ClassVar[str]  # the report row's `system`, and the DAG ids' `e2e_<name>_<scenario>`
    conn_id: ClassVar[str]  # the Airflow connection the DAGs use
    job_noun: ClassVar[str]  # how our log lines name a job ("Spark driver", "Job")
    after_crash: ClassVar[Mapping[str, str]]  # crash scenario -> prefix of the decision line a later try logs
    matrix: ClassVar[bool] = True  # parametrized into the standard scenarios
    max_pause: ClassVar[float] = 120.0  # longest SIGSTOP the endpoint survives as an outage (not a failure)
    failure_detail: ClassVar[str] = ""  # what a failed job's error message carries (Spark: its driver log URL)
    extra_scenarios: ClassVar[tuple[str, ...]] = ()  # its own DAGs besides the standard ones (e.g. overload)

    @abc.abstractmethod
    def start(self, root: Path) -> None:
        """Start the endpoint process(es), with their files under ``root``."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop them by PID, in any state (also paused)."""

    @abc.abstractmethod
    def airflow_env(self) -> dict[str, str]:
        """Environment for every Airflow component: ``AIRFLOW_CONN_<CONN_ID>``, what the DAG file reads..."""

    @abc.abstractmethod
    def jobs(self, dag_id: str, run_id: str, task_keys: Sequence[tuple[str, int]]) -> list[Job]:
        """Every job on the endpoint carrying the token of one of these (task_id, map_index) keys, generations
        0 to MAX_GENERATIONS - 1, read from the endpoint's own view."""

    @abc.abstractmethod
    def pause(self) -> None:
        """Make the endpoint unreachable (SIGSTOP its process)."""

    @abc.abstractmethod
    def resume(self) -> None:
        """Undo :meth:`pause` (SIGCONT)."""

    def logs_tail(self, lines: int = 30) -> str:
        return ""

    def unattributed(self) -> list[str]:
        """Jobs submitted but not attributable to a token yet (e.g. a Spark driver waiting for a worker)."""
        return []

    def recorded_ids(self, record: Any) -> set[str]:
        """Job ids the task state store record owns: every string value of its and its history's ``job``."""
        if not isinstance(record, dict):
            return set()
        owned: set[str] = set()
        for entry in [record, *(record.get("history") or ())]:
            job = entry.get("job") if isinstance(entry, dict) else None
            if isinstance(job, dict):
                owned |= {str(v) for v in job.values() if isinstance(v, str) and v}
        return owned


def tokens_of(dag_id: str, run_id: str, task_keys: Sequence[tuple[str, int]]) -> dict[str, tuple[str, int, int]]:
    """token -> (task_id, map_index, generation) for every key and generation: how jobs are attributed."""
    from durable_jobs.record import make_token

    return {
        make_token(dag_id, run_id, task_id, map_index, gen): (task_id, map_index, gen)
        for task_id, map_index in task_keys
        for gen in range(MAX_GENERATIONS)
    }


def registry() -> dict[str, type[E2ESystem]]:
    """Every system of :data:`MODULES`, by name."""
    out: dict[str, type[E2ESystem]] = {}
    for module in MODULES:
        system: type[E2ESystem] = importlib.import_module(f"{__name__}.{module}").SYSTEM
        out[system.name] = system
    return out


SYSTEMS: dict[str, type[E2ESystem]] = registry()


def selected(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The names ``DURABLE_JOBS_E2E_SYSTEMS`` selects (default every one); an unknown name is an error."""
    known = list(SYSTEMS)
    raw = environ.get(SELECT_ENV, "").strip()
    if not raw:
        return known
    wanted = [s.strip() for s in raw.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise ValueError(f"{SELECT_ENV}: unknown system(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [s for s in known if s in wanted]
