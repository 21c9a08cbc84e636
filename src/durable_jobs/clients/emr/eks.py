"""EMR on EKS job runs, system ``emr-eks`` (``emr-containers``: ``StartJobRun``, ``DescribeJobRun``,
``ListJobRuns``, ``CancelJobRun``).

The token is the ``clientToken`` (which EMR on EKS also returns with each run), ends the run's name
(``"<name>-<token>"``: names allow only ``.-_/#``, letters and digits, at most 64 characters) and is a
``durable-jobs:token`` tag; ``ListJobRuns`` returns whole runs, so ``find`` matches any of the three.
States: ``PENDING`` and ``SUBMITTED`` -> pending; ``RUNNING`` and ``CANCEL_PENDING`` -> running;
``COMPLETED`` -> succeeded; ``FAILED`` -> failed; ``CANCELLED`` -> cancelled. ``failureReason``
(``USER_ERROR``, ``CLUSTER_UNAVAILABLE``...) and ``stateDetails`` make the message; the S3 log location
of a run with S3 monitoring is ``<logUri>/<virtual cluster>/jobs/<run>/``. The schemas below say what
is read of each answer (``DescribeJobRun``'s ``jobRun``, a ``ListJobRuns`` item, ``StartJobRun``). What
runs share with EMR Serverless is :mod:`~durable_jobs.clients.emr.runs`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgspec

from durable_jobs.clients.emr.aws import TOKEN_TAG
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

SYSTEM = "emr-eks"
MAX_NAME = 64
_NAME_BAD = re.compile(r"[^.\-_/#A-Za-z0-9]+")
_OWN = (
    "virtualClusterId",
    "clientToken",
    "name",
    "executionRoleArn",
    "releaseLabel",
    "jobDriver",
    "configurationOverrides",
    "tags",
)


class EksRun(RunView, frozen=True):
    """A run of ``DescribeJobRun`` or ``ListJobRuns`` (the same shape)."""

    run_id: str = msgspec.field(default="", name="id")
    container_id: str | None = msgspec.field(default=None, name="virtualClusterId")


class DescribeJobRunAnswer(_Schema, frozen=True):
    job_run: EksRun


class StartJobRunAnswer(StartAnswer, frozen=True):
    run_id: str = msgspec.field(name="id")
    container_id: str = msgspec.field(name="virtualClusterId")


def run_name(name: str, token: str) -> str:
    """``"<name>-<token>"`` in EMR on EKS's name alphabet and length."""
    suffix = f"-{token}"
    clean = _NAME_BAD.sub("-", name).strip("-") or "job"
    return clean[: MAX_NAME - len(suffix)] + suffix


@dataclass(frozen=True)
class EmrEksJob(RunSpec):
    """A job run on an EMR on EKS virtual cluster.

    ``extra`` holds further ``StartJobRun`` fields (``jobTemplateId``, ``jobTemplateParameters``,
    ``retryPolicyConfiguration``); with a job template, role, release and driver may come from it.
    """

    virtual_cluster_id: str
    name: str
    execution_role_arn: str | None = None
    release_label: str | None = None
    job_driver: Mapping[str, Any] | None = None
    configuration_overrides: Mapping[str, Any] | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_spec_id(self.virtual_cluster_id, "EMR on EKS virtual cluster id")
        refuse_own_fields(self.extra, _OWN)
        if "jobTemplateId" not in self.extra and not (
            self.execution_role_arn and self.release_label and self.job_driver
        ):
            raise ValueError("execution_role_arn, release_label and job_driver are required without a job template")

    def token_name(self, token: str) -> str:
        return run_name(self.name, token)

    def own_fields(self) -> dict[str, Any]:
        return {
            "virtualClusterId": self.virtual_cluster_id,
            "executionRoleArn": self.execution_role_arn or None,
            "releaseLabel": self.release_label or None,
            "jobDriver": dict(self.job_driver) if self.job_driver else None,
            "configurationOverrides": dict(self.configuration_overrides) if self.configuration_overrides else None,
        }


class EmrEksClient(JobRunClient[EmrEksJob]):
    """Locator: ``{"virtual_cluster_id": ..., "job_run_id": ...}``."""

    system: ClassVar[str] = SYSTEM
    service: ClassVar[str] = "emr-containers"
    container_field: ClassVar[str] = "virtual_cluster_id"
    container_param: ClassVar[str] = "virtualClusterId"
    run_param: ClassVar[str] = "id"
    get_operation: ClassVar[str] = "describe_job_run"
    get_action: ClassVar[str] = "DescribeJobRun"
    get_schema: ClassVar[type[Any]] = DescribeJobRunAnswer
    summary_schema: ClassVar[type[RunView]] = EksRun
    start_schema: ClassVar[type[StartAnswer]] = StartJobRunAnswer
    created_after_param: ClassVar[str] = "createdAfter"
    kind: ClassVar[str] = "EMR on EKS job run"
    container_kind: ClassVar[str] = "virtual cluster"
    log_path: ClassVar[tuple[str, ...]] = ("{virtual_cluster_id}", "jobs", "{job_run_id}")
    console_page: ClassVar[str] = "emr/home?region={region}#/eks/clusters/{virtual_cluster_id}"  # lists its runs
    states: ClassVar[Mapping[str, JobState]] = {
        "PENDING": JobState.PENDING,
        "SUBMITTED": JobState.PENDING,
        "RUNNING": JobState.RUNNING,
        "CANCEL_PENDING": JobState.RUNNING,
        "COMPLETED": JobState.SUCCEEDED,
        "FAILED": JobState.FAILED,
        "CANCELLED": JobState.CANCELLED,
    }
    active_states: ClassVar[tuple[str, ...]] = ("PENDING", "SUBMITTED", "RUNNING", "CANCEL_PENDING")

    def carries(self, run: RunView, token: str) -> bool:
        return run.client_token == token or run.tags.get(TOKEN_TAG) == token or (run.name or "").endswith(f"-{token}")

    def message(self, run: RunView) -> str:
        return ": ".join(p for p in (run.failure_reason, run.state_details) if p)


__all__ = ["SYSTEM", "EmrEksClient", "EmrEksJob", "run_name"]
