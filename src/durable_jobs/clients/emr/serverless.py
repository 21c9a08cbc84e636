"""EMR Serverless job runs (``StartJobRun``, ``GetJobRun``, ``ListJobRuns``, ``CancelJobRun``).

The token is the ``clientToken``, ends the run's name (``"<name> [<token>]"``) and is a
``durable-jobs:token`` tag. ``ListJobRuns`` returns summaries without tags, so ``find`` matches the
name. States: ``SUBMITTED``, ``PENDING``, ``SCHEDULED`` and ``QUEUED`` -> pending; ``RUNNING`` and
``CANCELLING`` -> running; ``SUCCESS`` -> succeeded; ``FAILED`` -> failed; ``CANCELLED`` -> cancelled.
``stateDetails`` is the message; the S3 log location of a run with S3 monitoring is
``<logUri>/applications/<application>/jobs/<run>/``. The schemas below say what is read of each answer
(``GetJobRun``'s ``jobRun``, a ``ListJobRuns`` summary, ``StartJobRun``). What runs share with EMR on
EKS is :mod:`~durable_jobs.clients.emr.runs`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgspec

from durable_jobs.clients.emr.aws import TOKEN_TAG, named
from durable_jobs.clients.emr.runs import (
    JobRunClient,
    RunSpec,
    RunView,
    StartAnswer,
    _Schema,
    check_spec_id,
    refuse_own_fields,
)
from durable_jobs.status import JobState

SYSTEM = "emr-serverless"
_OWN = ("applicationId", "clientToken", "executionRoleArn", "jobDriver", "configurationOverrides", "name", "tags")
#: ``"<name> [<token>]"`` within the 256 characters of a run's name
run_name = named


class ServerlessRun(RunView, frozen=True):
    """``GetJobRun``'s ``jobRun``."""

    run_id: str = msgspec.field(default="", name="jobRunId")
    container_id: str | None = msgspec.field(default=None, name="applicationId")


class ServerlessRunSummary(ServerlessRun, frozen=True):
    """A ``ListJobRuns`` summary: the run's id is ``id``."""

    run_id: str = msgspec.field(default="", name="id")


class GetJobRunAnswer(_Schema, frozen=True):
    job_run: ServerlessRun


class StartJobRunAnswer(StartAnswer, frozen=True):
    container_id: str = msgspec.field(name="applicationId")
    run_id: str = msgspec.field(name="jobRunId")


@dataclass(frozen=True)
class EmrServerlessJob(RunSpec):
    """A job run on an EMR Serverless application.

    ``extra`` holds further ``StartJobRun`` fields (``mode``, ``retryPolicy``, ``executionIamPolicy``...).
    """

    application_id: str
    execution_role_arn: str
    job_driver: Mapping[str, Any]
    name: str
    configuration_overrides: Mapping[str, Any] | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    execution_timeout_minutes: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_spec_id(self.application_id, "EMR Serverless application id")
        if not self.execution_role_arn:
            raise ValueError("execution_role_arn is required")
        if not self.job_driver:
            raise ValueError("job_driver is required (e.g. {'sparkSubmit': {'entryPoint': 's3://...'}})")
        refuse_own_fields(self.extra, (*_OWN, "executionTimeoutMinutes"))

    def token_name(self, token: str) -> str:
        return run_name(self.name, token)

    def own_fields(self) -> dict[str, Any]:
        timeout = self.execution_timeout_minutes
        return {
            "applicationId": self.application_id,
            "executionRoleArn": self.execution_role_arn,
            "jobDriver": dict(self.job_driver),
            "configurationOverrides": dict(self.configuration_overrides) if self.configuration_overrides else None,
            "executionTimeoutMinutes": int(timeout) if timeout is not None else None,
        }


class EmrServerlessClient(JobRunClient[EmrServerlessJob]):
    """Locator: ``{"application_id": ..., "job_run_id": ...}``."""

    system: ClassVar[str] = SYSTEM
    service: ClassVar[str] = "emr-serverless"
    container_field: ClassVar[str] = "application_id"
    container_param: ClassVar[str] = "applicationId"
    run_param: ClassVar[str] = "jobRunId"
    get_operation: ClassVar[str] = "get_job_run"
    get_action: ClassVar[str] = "GetJobRun"
    get_schema: ClassVar[type[Any]] = GetJobRunAnswer
    summary_schema: ClassVar[type[RunView]] = ServerlessRunSummary
    start_schema: ClassVar[type[StartAnswer]] = StartJobRunAnswer
    created_after_param: ClassVar[str] = "createdAtAfter"
    kind: ClassVar[str] = "EMR Serverless job run"
    container_kind: ClassVar[str] = "application"
    log_path: ClassVar[tuple[str, ...]] = ("applications", "{application_id}", "jobs", "{job_run_id}")
    console_page: ClassVar[str] = (
        "emr/home?region={region}#/serverless-applications/{application_id}/job-runs/{job_run_id}"
    )
    states: ClassVar[Mapping[str, JobState]] = {
        "SUBMITTED": JobState.PENDING,
        "PENDING": JobState.PENDING,
        "SCHEDULED": JobState.PENDING,
        "QUEUED": JobState.PENDING,
        "RUNNING": JobState.RUNNING,
        "CANCELLING": JobState.RUNNING,
        "SUCCESS": JobState.SUCCEEDED,
        "FAILED": JobState.FAILED,
        "CANCELLED": JobState.CANCELLED,
    }
    active_states: ClassVar[tuple[str, ...]] = ("SUBMITTED", "PENDING", "SCHEDULED", "QUEUED", "RUNNING", "CANCELLING")

    def carries(self, run: RunView, token: str) -> bool:
        return f"[{token}]" in (run.name or "") or run.tags.get(TOKEN_TAG) == token


__all__ = ["SYSTEM", "EmrServerlessClient", "EmrServerlessJob", "run_name"]
