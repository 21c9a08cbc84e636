"""The crash matrix's Airflow DAGs for EMR steps (``e2e_emr_steps_<scenario>``): steps on the moto server's cluster.

Each task adds a step to the session's cluster (``DURABLE_JOBS_E2E_EMR_CLUSTER``) whose command is
``bash -c "sleep N; exit C"`` (:mod:`durable_jobs_harness.emr_sleep_exit`); the server plays it out.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta
from typing import Any

from e2e_common import Crashing, scenarios

from durable_jobs.clients.emr import EmrStep
from durable_jobs.operators.emr import EmrStepOperator
from durable_jobs.record import JobRecord
from durable_jobs_harness.emr_sleep_exit import sleep_exit_args

CONN_ID = "aws_e2e_steps"
CLUSTER = os.environ.get("DURABLE_JOBS_E2E_EMR_CLUSTER", "j-E2ECLUSTER")


class CrashingEmrStepOperator(Crashing, EmrStepOperator):
    """The EMR step operator with per-task fail-points; the step's exit code may differ on try 1."""

    def __init__(self, *, seconds: float, exit_code: int = 0, **kwargs: Any) -> None:
        self.seconds = seconds
        self.job_exit_code = exit_code
        super().__init__(args=sleep_exit_args(seconds, exit_code), **kwargs)

    def build_spec(self, context: Any, record: JobRecord | None = None) -> EmrStep:
        spec = super().build_spec(context, record)
        return replace(spec, args=sleep_exit_args(self.seconds, self.exit_code(context, self.job_exit_code)))


def make_task(
    task_id: str,
    *,
    seconds: float,
    exit_code: int,
    first_try_exit_code: int | None,
    failpoints: str,
    poll_interval: float,
    job_timeout: timedelta,
) -> CrashingEmrStepOperator:
    return CrashingEmrStepOperator(
        task_id=task_id,
        conn_id=CONN_ID,
        cluster_id=CLUSTER,
        seconds=seconds,
        exit_code=exit_code,
        first_try_exit_code=first_try_exit_code,
        failpoints=failpoints,
        poll_interval=poll_interval,
        job_timeout=job_timeout,
    )


scenarios("emr_steps", make_task)
