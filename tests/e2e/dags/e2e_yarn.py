"""The crash matrix's Airflow DAGs for YARN (``e2e_yarn_<scenario>``): REST submissions to the fake RM behind SPNEGO.

Each task is a :class:`YarnApplicationOperator` whose AM command is ``sleep <seconds>; exit <code>``, which the
fake RM's timed lifecycle runs (see ``durable_jobs_harness.fake_yarn``); the connection ``yarn_e2e`` logs in
from a keytab.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from e2e_common import Crashing, scenarios

from durable_jobs.clients.yarn import YarnApplication
from durable_jobs.operators.yarn import YarnApplicationOperator
from durable_jobs.record import JobRecord


def command(seconds: float, exit_code: int) -> str:
    return f"sleep {seconds:g}; exit {exit_code}"


class CrashingYarnOperator(Crashing, YarnApplicationOperator):
    """The YARN REST operator with per-task fail-points; the AM's exit code may differ on try 1."""

    def __init__(self, *, seconds: float, exit_code: int, **kwargs: Any) -> None:
        self.seconds = seconds
        self.job_exit_code = exit_code
        super().__init__(command=command(seconds, exit_code), **kwargs)

    def build_spec(self, context: Any, record: JobRecord | None = None) -> YarnApplication:
        spec = super().build_spec(context, record)
        return replace(spec, command=command(self.seconds, self.exit_code(context, self.job_exit_code)))


def make_task(task_id: str, **job: Any) -> CrashingYarnOperator:
    """``e2e_common.MakeTask``: the job's arguments (seconds, exit codes, fail-points, poll interval, timeout)."""
    return CrashingYarnOperator(task_id=task_id, conn_id="yarn_e2e", memory_mb=256, **job)


scenarios("yarn", make_task)
