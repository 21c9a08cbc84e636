"""EMR Serverless job runs (``StartJobRun``, ``GetJobRun``, ``ListJobRuns``, ``CancelJobRun``).

The token is the ``clientToken``, ends the run's name (``"<name> [<token>]"``) and is a
``durable-jobs:token`` tag. ``ListJobRuns`` returns summaries without tags, so ``find`` matches the
name. States: ``SUBMITTED``, ``PENDING``, ``SCHEDULED`` and ``QUEUED`` -> pending; ``RUNNING`` and
``CANCELLING`` -> running; ``SUCCESS`` -> succeeded; ``FAILED`` -> failed; ``CANCELLED`` -> cancelled.
``stateDetails`` is the message; the S3 log location of a run with S3 monitoring is
``<logUri>/applications/<application>/jobs/<run>/``. The schemas below say what is read of each answer
(``GetJobRun``'s ``jobRun``, a ``ListJobRuns`` summary, ``StartJobRun``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from durable_jobs.clients.aws import TOKEN_TAG, join_uri
from durable_jobs.clients.base import Locator
from durable_jobs.clients.emr_runs import (
    JobRunClient,
    RunView,
    StartAnswer,
    _Schema,
    refuse_own_fields,
    s3_log_base,
    validate_id,
)
from durable_jobs.errors import RecordError
from durable_jobs.status import JobState

SYSTEM = "emr-serverless"
MAX_NAME = 256
_OWN = ("applicationId", "clientToken", "executionRoleArn", "jobDriver", "configurationOverrides", "name", "tags")


class ServerlessRun(RunView, frozen=True):
    """``GetJobRun``'s ``jobRun``."""

    job_run_id: str = ""
    application_id: str | None = None

    @property
    def run_id(self) -> str:
        return self.job_run_id

    @property
    def container_id(self) -> str | None:
        return self.application_id


class ServerlessRunSummary(RunView, frozen=True):
    """A ``ListJobRuns`` summary."""

    id: str = ""
    application_id: str | None = None

    @property
    def run_id(self) -> str:
        return self.id

    @property
    def container_id(self) -> str | None:
        return self.application_id


class GetJobRunAnswer(_Schema, frozen=True):
    job_run: ServerlessRun


class StartJobRunAnswer(StartAnswer, frozen=True):
    application_id: str
    job_run_id: str

    @property
    def run_id(self) -> str:
        return self.job_run_id

    @property
    def container_id(self) -> str:
        return self.application_id


def run_name(name: str, token: str) -> str:
    suffix = f" [{token}]"
    return name[: MAX_NAME - len(suffix)] + suffix


@dataclass(frozen=True)
class EmrServerlessJob:
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
        try:
            validate_id(self.application_id, "EMR Serverless application id")
        except RecordError as exc:
            raise ValueError(str(exc)) from None
        if not self.execution_role_arn:
            raise ValueError("execution_role_arn is required")
        if not self.job_driver:
            raise ValueError("job_driver is required (e.g. {'sparkSubmit': {'entryPoint': 's3://...'}})")
        refuse_own_fields(self.extra, (*_OWN, "executionTimeoutMinutes"))

    def request(self, token: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            **dict(self.extra),
            "applicationId": self.application_id,
            "clientToken": token,
            "executionRoleArn": self.execution_role_arn,
            "jobDriver": dict(self.job_driver),
            "name": run_name(self.name, token),
            "tags": {**{k: str(v) for k, v in self.tags.items()}, TOKEN_TAG: token},
        }
        if self.configuration_overrides:
            body["configurationOverrides"] = dict(self.configuration_overrides)
        if self.execution_timeout_minutes is not None:
            body["executionTimeoutMinutes"] = int(self.execution_timeout_minutes)
        return body


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

    def container_of(self, spec: EmrServerlessJob) -> str:
        return spec.application_id

    def start_request(self, spec: EmrServerlessJob, token: str) -> dict[str, Any]:
        return spec.request(token)

    def carries(self, run: RunView, token: str) -> bool:
        return f"[{token}]" in (run.name or "") or run.tags.get(TOKEN_TAG) == token

    def log_uri(self, locator: Locator, run: RunView) -> str | None:
        base = s3_log_base(run)
        if not base:
            return None
        return join_uri(base, "applications", locator["application_id"], "jobs", locator["job_run_id"])


__all__ = ["SYSTEM", "EmrServerlessClient", "EmrServerlessJob", "run_name"]
