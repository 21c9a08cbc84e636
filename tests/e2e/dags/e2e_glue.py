"""The crash matrix's Airflow DAGs for Glue (``e2e_glue_<scenario>``): runs of one job on the moto Glue server.

Each task is a :class:`GlueJobRunOperator` running the session's job (``DURABLE_JOBS_E2E_GLUE_JOB``) with the
argument ``--durable_fake`` = ``durable-fake:<seconds>s:SUCCEEDED`` (``FAILED`` for a non-zero exit code), which
the server plays out (see ``durable_jobs_harness.moto_glue_server``); the connection ``aws_e2e_glue`` points at it.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from e2e_common import Crashing, scenarios

from durable_jobs.clients.glue import GlueJobRunSpec
from durable_jobs.operators.glue import GlueJobRunOperator
from durable_jobs.record import JobRecord

JOB_NAME = os.environ.get("DURABLE_JOBS_E2E_GLUE_JOB", "durable-jobs-e2e")


def script_args(seconds: float, exit_code: int) -> dict[str, str]:
    return {"--durable_fake": f"durable-fake:{seconds:g}s:{'SUCCEEDED' if exit_code == 0 else 'FAILED'}"}


class CrashingGlueJobRunOperator(Crashing, GlueJobRunOperator):
    """The Glue run operator with per-task fail-points; the run's result may differ on try 1."""

    def __init__(self, *, seconds: float, exit_code: int, **kwargs: Any) -> None:
        self.seconds = seconds
        self.job_exit_code = exit_code
        super().__init__(script_args=script_args(seconds, exit_code), **kwargs)

    def build_spec(self, context: Any, record: JobRecord | None = None) -> GlueJobRunSpec:
        spec = super().build_spec(context, record)
        return replace(spec, arguments=script_args(self.seconds, self.exit_code(context, self.job_exit_code)))


def make_task(task_id: str, **job: Any) -> CrashingGlueJobRunOperator:
    """``e2e_common.MakeTask``: the job's arguments (seconds, exit codes, fail-points, poll interval, timeout)."""
    return CrashingGlueJobRunOperator(task_id=task_id, aws_conn_id="aws_e2e_glue", job_name=JOB_NAME, **job)


scenarios("glue", make_task)
