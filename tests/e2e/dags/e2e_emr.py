"""The crash matrix's Airflow DAGs for EMR: Serverless job runs (``e2e_emr_<scenario>``) and steps
(``e2e_emr_steps_<scenario>``), on the moto server processes of the session.

Each Serverless task starts a run on the session's application (``DURABLE_JOBS_E2E_EMR_APPLICATION``) whose
``jobDriver`` says "sleep N seconds, exit with C"; each step task adds a step to the session's cluster
(``DURABLE_JOBS_E2E_EMR_CLUSTER``) running ``bash -c "sleep N; exit C"`` (both built by
:mod:`durable_jobs_harness.emr_sleep_exit`); the servers play them out.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any, ClassVar

from e2e_common import Crashing, scenarios

from durable_jobs.operators.emr import EmrServerlessJobOperator, EmrStepOperator
from durable_jobs.record import JobRecord
from durable_jobs_harness.emr_sleep_exit import sleep_exit_args, sleep_exit_driver

APPLICATION = os.environ.get("DURABLE_JOBS_E2E_EMR_APPLICATION", "00e2eapplication")
CLUSTER = os.environ.get("DURABLE_JOBS_E2E_EMR_CLUSTER", "j-E2ECLUSTER")
ROLE_ARN = "arn:aws:iam::123456789012:role/emr-job-role"  # moto's account


class SleepExit(Crashing):
    """Per-task fail-points, and the job's spec field (:attr:`job_field`) saying "sleep, then exit" per try."""

    job_field: ClassVar[str]
    make_job: ClassVar[Callable[[float, int], Any]]

    def __init__(self, *, seconds: float, exit_code: int = 0, **kwargs: Any) -> None:
        self.seconds = seconds
        self.job_exit_code = exit_code
        super().__init__(**{self.job_field: type(self).make_job(seconds, exit_code)}, **kwargs)

    def build_spec(self, context: Any, record: JobRecord | None = None) -> Any:
        spec = super().build_spec(context, record)  # type: ignore[misc]
        job = type(self).make_job(self.seconds, self.exit_code(context, self.job_exit_code))
        return replace(spec, **{self.job_field: job})


class CrashingEmrServerlessJobOperator(SleepExit, EmrServerlessJobOperator):
    job_field = "job_driver"
    make_job = staticmethod(sleep_exit_driver)


class CrashingEmrStepOperator(SleepExit, EmrStepOperator):
    job_field = "args"
    make_job = staticmethod(sleep_exit_args)


def make_task(operator: type[SleepExit], task_id: str, **job: Any) -> SleepExit:
    """``e2e_common.MakeTask`` once the operator and where it runs are bound: the job's arguments pass through."""
    return operator(task_id=task_id, **job)


serverless = partial(
    make_task,
    CrashingEmrServerlessJobOperator,
    conn_id="aws_e2e",
    application_id=APPLICATION,
    execution_role_arn=ROLE_ARN,
)
scenarios("emr", serverless)
scenarios("emr_steps", partial(make_task, CrashingEmrStepOperator, conn_id="aws_e2e_steps", cluster_id=CLUSTER))
