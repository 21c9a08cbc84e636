"""The crash matrix's Airflow DAGs for EMR Serverless (``e2e_emr_<scenario>``): job runs on the moto server process.

Each task starts a run on the session's application (``DURABLE_JOBS_E2E_EMR_APPLICATION``) whose ``jobDriver``
says "sleep N seconds, exit with C" (:mod:`durable_jobs_harness.emr_sleep_exit`); the server plays it out.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta
from typing import Any

from e2e_common import Crashing, scenarios

from durable_jobs.clients.emr.serverless import EmrServerlessJob
from durable_jobs.operators.emr import EmrServerlessJobOperator
from durable_jobs.record import JobRecord
from durable_jobs_harness.emr_sleep_exit import sleep_exit_driver

CONN_ID = "aws_e2e"
APPLICATION = os.environ.get("DURABLE_JOBS_E2E_EMR_APPLICATION", "00e2eapplication")
ROLE_ARN = "arn:aws:iam::123456789012:role/emr-job-role"  # moto's account


class CrashingEmrServerlessJobOperator(Crashing, EmrServerlessJobOperator):
    """The EMR Serverless operator with per-task fail-points; the run's exit code may differ on try 1."""

    def __init__(self, *, seconds: float, exit_code: int = 0, **kwargs: Any) -> None:
        self.seconds = seconds
        self.job_exit_code = exit_code
        super().__init__(job_driver=sleep_exit_driver(seconds, exit_code), **kwargs)

    def build_spec(self, context: Any, record: JobRecord | None = None) -> EmrServerlessJob:
        spec = super().build_spec(context, record)
        return replace(spec, job_driver=sleep_exit_driver(self.seconds, self.exit_code(context, self.job_exit_code)))


def make_task(
    task_id: str,
    *,
    seconds: float,
    exit_code: int,
    first_try_exit_code: int | None,
    failpoints: str,
    poll_interval: float,
    job_timeout: timedelta,
) -> CrashingEmrServerlessJobOperator:
    return CrashingEmrServerlessJobOperator(
        task_id=task_id,
        conn_id=CONN_ID,
        application_id=APPLICATION,
        execution_role_arn=ROLE_ARN,
        seconds=seconds,
        exit_code=exit_code,
        first_try_exit_code=first_try_exit_code,
        failpoints=failpoints,
        poll_interval=poll_interval,
        job_timeout=job_timeout,
    )


scenarios("emr", make_task)
