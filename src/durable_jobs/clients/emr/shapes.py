"""What is read of EMR on EC2's answers (typed schemas), and its step and cluster ids.

Shared by :mod:`~durable_jobs.clients.emr.steps` and :mod:`~durable_jobs.clients.emr.clusters`. Every
answer is typed; each listed item is decoded on its own, so a malformed step or cluster makes that job
unknown and no other. An id read from an answer that does not fit is a malformed answer, not a bad record.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec

from durable_jobs.clients.emr.aws_decoding import epoch
from durable_jobs.errors import MalformedAnswer, RecordError

CLUSTER_ID_RE = re.compile(r"^j-[A-Z0-9]{1,64}\Z")
STEP_ID_RE = re.compile(r"^s-[A-Z0-9]{1,64}\Z")


class _Schema(msgspec.Struct, rename="pascal", frozen=True, gc=False):
    """EMR's answers use PascalCase names; unknown fields are ignored, read ones have exact types."""


class Reason(_Schema, frozen=True):
    code: str | None = None
    message: str | None = None


class FailureDetails(_Schema, frozen=True):
    reason: str | None = None
    message: str | None = None
    log_file: str | None = None


class Timeline(_Schema, frozen=True):
    creation_date_time: datetime | None = None


class StepStatusView(_Schema, frozen=True):
    state: str
    state_change_reason: Reason = Reason()
    failure_details: FailureDetails | None = None
    timeline: Timeline = Timeline()


class StepView(_Schema, frozen=True):
    """A step of ``DescribeStep`` or a ``StepSummary`` of ``ListSteps``."""

    id: str
    status: StepStatusView
    name: str = ""
    log_uri: str | None = None


class DescribeStepAnswer(_Schema, frozen=True):
    step: StepView


class AddJobFlowStepsAnswer(_Schema, frozen=True):
    step_ids: list[str]


class CancelStepsInfo(_Schema, frozen=True):
    step_id: str | None = None
    status: str | None = None
    reason: str | None = None


class CancelStepsAnswer(_Schema, frozen=True):
    cancel_steps_info_list: list[CancelStepsInfo] = []


class ErrorDetail(_Schema, frozen=True):
    error_code: str | None = None
    error_message: str | None = None


class ClusterStatusView(_Schema, frozen=True):
    state: str
    state_change_reason: Reason = Reason()
    error_details: list[ErrorDetail] = []
    timeline: Timeline = Timeline()


class ClusterView(_Schema, frozen=True):
    """A cluster of ``DescribeCluster`` or a ``ClusterSummary`` of ``ListClusters``."""

    id: str
    status: ClusterStatusView
    name: str = ""
    log_uri: str | None = None
    master_public_dns_name: str | None = None


class DescribeClusterAnswer(_Schema, frozen=True):
    cluster: ClusterView


class RunJobFlowAnswer(_Schema, frozen=True):
    job_flow_id: str


def validate_cluster_id(value: Any) -> str:
    if not isinstance(value, str) or not CLUSTER_ID_RE.match(value):
        raise RecordError(f"invalid EMR cluster id {value!r} (expected j-XXXXXXXXXXXXX)")
    return value


def validate_step_id(value: Any) -> str:
    if not isinstance(value, str) or not STEP_ID_RE.match(value):
        raise RecordError(f"invalid EMR step id {value!r} (expected s-XXXXXXXXXXXXX)")
    return value


def answered_id(value: Any, check: Callable[[Any], str], what: str) -> str:
    """An id read from an answer: a malformed one is a malformed answer (unknown), not a bad record."""
    try:
        return check(value)
    except RecordError as exc:
        raise MalformedAnswer(f"{what}: {exc}") from None


def raw_created(item: Any) -> float | None:
    """The creation time of a raw listed step or cluster, or None when it cannot be read."""
    status = item.get("Status") if isinstance(item, dict) else None
    timeline = status.get("Timeline") if isinstance(status, dict) else None
    value = timeline.get("CreationDateTime") if isinstance(timeline, dict) else None
    return epoch(value) if isinstance(value, datetime) else None


__all__ = [
    "AddJobFlowStepsAnswer",
    "CancelStepsAnswer",
    "ClusterStatusView",
    "ClusterView",
    "DescribeClusterAnswer",
    "DescribeStepAnswer",
    "RunJobFlowAnswer",
    "StepStatusView",
    "StepView",
    "answered_id",
    "raw_created",
    "validate_cluster_id",
    "validate_step_id",
]
