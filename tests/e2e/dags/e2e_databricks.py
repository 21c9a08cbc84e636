"""The crash matrix's Airflow DAGs for Databricks (``e2e_databricks_<scenario>``): one-time runs on the fake workspace.

Each task is a :class:`DatabricksSubmitRunOperator` whose Python task's parameter is the fake's script
``durable-fake:<seconds>s:SUCCESS`` (``FAILED`` for a non-zero exit code), which the fake plays out (see
``durable_jobs_harness.fake_databricks``); the connection ``databricks_e2e`` carries a PAT.
"""

from __future__ import annotations

from typing import Any

from e2e_common import Crashing, scenarios

from durable_jobs.clients.databricks import SubmitRunSpec
from durable_jobs.operators.databricks import DatabricksSubmitRunOperator
from durable_jobs.record import JobRecord


def script(seconds: float, exit_code: int) -> str:
    return f"durable-fake:{seconds:g}s:{'SUCCESS' if exit_code == 0 else 'FAILED'}"


def python_task(seconds: float, exit_code: int) -> dict[str, Any]:
    return {"python_file": "dbfs:/e2e/sleep_exit.py", "parameters": [script(seconds, exit_code)]}


class CrashingDatabricksOperator(Crashing, DatabricksSubmitRunOperator):
    """The one-time run operator with per-task fail-points; the run's result may differ on try 1."""

    def __init__(self, *, seconds: float, exit_code: int, **kwargs: Any) -> None:
        self.seconds = seconds
        self.job_exit_code = exit_code
        super().__init__(spark_python_task=python_task(seconds, exit_code), **kwargs)

    def build_spec(self, context: Any, record: JobRecord | None = None) -> SubmitRunSpec:
        spec = super().build_spec(context, record)
        task = python_task(self.seconds, self.exit_code(context, self.job_exit_code))
        return SubmitRunSpec({**spec.payload, "spark_python_task": task})


def make_task(task_id: str, **job: Any) -> CrashingDatabricksOperator:
    """``e2e_common.MakeTask``: the job's arguments (seconds, exit codes, fail-points, poll interval, timeout)."""
    return CrashingDatabricksOperator(
        task_id=task_id, databricks_conn_id="databricks_e2e", existing_cluster_id="e2e-cluster", **job
    )


scenarios("databricks", make_task)
