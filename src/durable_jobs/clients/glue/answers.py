"""What is read of AWS Glue's answers (typed schemas), and the ids a Glue locator holds.

Every answer is decoded against a schema below (:func:`durable_jobs.decoding.convert`, strict types);
each run of a ``GetJobRuns`` page is decoded on its own, so a malformed run makes that run unknown and no
other. An id read from an answer that does not fit its rules is a malformed answer, not a bad record.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import msgspec

from durable_jobs.errors import MalformedAnswer, RecordError

#: ``jr_`` and 64 lower-case hex digits (a retry attempt's ``jr_…_attempt_N`` is not a locator)
RUN_ID_RE = re.compile(r"^jr_[0-9a-f]{64}\Z")
#: the console's rule for Glue job names (letters, digits, hyphens, underscores; dots too), 1 to 255 characters.
#: The API's NameString would take any line of text: a name that needs quoting in a URL or a log line (space,
#: ``/``, ``?``, ``#``, ``%``, control characters) is refused, so a stored locator can never be one.
JOB_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,255}\Z")


class _Schema(msgspec.Struct, rename="pascal", frozen=True, gc=False):
    """Glue answers in PascalCase; unknown fields are ignored, read ones have exact types."""


class JobRunView(_Schema, frozen=True):
    """A ``JobRun`` of ``GetJobRun`` or of a ``GetJobRuns`` page."""

    id: str
    job_run_state: str
    job_name: str | None = None
    started_on: datetime | None = None
    arguments: dict[str, str] = {}
    error_message: str | None = None
    log_group_name: str | None = None
    attempt: int | None = None
    previous_run_id: str | None = None


class GetJobRunAnswer(_Schema, frozen=True):
    job_run: JobRunView


class StartJobRunAnswer(_Schema, frozen=True):
    job_run_id: str


class StopErrorDetail(_Schema, frozen=True):
    error_code: str | None = None
    error_message: str | None = None


class StopError(_Schema, frozen=True):
    job_run_id: str | None = None
    job_name: str | None = None
    error_detail: StopErrorDetail = StopErrorDetail()


class StopSubmission(_Schema, frozen=True):
    job_run_id: str | None = None
    job_name: str | None = None


class BatchStopJobRunAnswer(_Schema, frozen=True):
    successful_submissions: list[StopSubmission] = []
    errors: list[StopError] = []


def validate_job_name(value: Any) -> str:
    if not isinstance(value, str) or not JOB_NAME_RE.match(value):
        raise RecordError(f"invalid Glue job name {value!r} (1 to 255 letters, digits, hyphens, underscores or dots)")
    return value


def validate_run_id(value: Any) -> str:
    if not isinstance(value, str) or not RUN_ID_RE.match(value):
        raise RecordError(f"invalid Glue job run id {value!r} (expected jr_ and 64 hex digits)")
    return value


def answered_run_id(value: Any, what: str) -> str:
    """A run id read from an answer: a malformed one is a malformed answer (unknown), not a bad record."""
    try:
        return validate_run_id(value)
    except RecordError as exc:
        raise MalformedAnswer(f"{what}: {exc}") from None


__all__ = [
    "BatchStopJobRunAnswer",
    "GetJobRunAnswer",
    "JobRunView",
    "StartJobRunAnswer",
    "StopError",
    "answered_run_id",
    "validate_job_name",
    "validate_run_id",
]
