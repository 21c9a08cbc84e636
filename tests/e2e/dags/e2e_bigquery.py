"""The crash matrix's Airflow DAGs for BigQuery (``e2e_bigquery_<scenario>``): query jobs on the fake BigQuery.

Each task is a :class:`BigQueryJobOperator` whose query carries the fake's script
``durable-fake:<seconds>s:DONE`` (``FAILED`` for a non-zero exit code), which the fake plays out (see
``durable_jobs_harness.fake_bigquery``); the connection ``bigquery_e2e`` holds its key file, project and URL.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from e2e_common import Crashing, scenarios

from durable_jobs.clients.bigquery import BigQueryJobSpec
from durable_jobs.operators.bigquery import BigQueryJobOperator
from durable_jobs.record import JobRecord


def query(seconds: float, exit_code: int) -> dict[str, Any]:
    script = f"durable-fake:{seconds:g}s:{'DONE' if exit_code == 0 else 'FAILED'}"
    return {"query": {"query": f"SELECT 1 -- {script}", "useLegacySql": False}}


class CrashingBigQueryJobOperator(Crashing, BigQueryJobOperator):
    """The BigQuery job operator with per-task fail-points; the job's result may differ on try 1."""

    def __init__(self, *, seconds: float, exit_code: int, **kwargs: Any) -> None:
        self.seconds = seconds
        self.job_exit_code = exit_code
        super().__init__(configuration=query(seconds, exit_code), **kwargs)

    def build_spec(self, context: Any, record: JobRecord | None = None) -> BigQueryJobSpec:
        spec = super().build_spec(context, record)
        return replace(spec, configuration=query(self.seconds, self.exit_code(context, self.job_exit_code)))


def make_task(task_id: str, **job: Any) -> CrashingBigQueryJobOperator:
    """``e2e_common.MakeTask``: the job's arguments (seconds, exit codes, fail-points, poll interval, timeout)."""
    return CrashingBigQueryJobOperator(task_id=task_id, gcp_conn_id="bigquery_e2e", **job)


scenarios("bigquery", make_task)
