"""BigQuery's answers, typed: the :mod:`msgspec` schemas of every answer read (REST v2), and their decoders.

Only the fields read are declared. A wrong type, a truncated, empty, HTML or oversized body is *malformed*:
unknown for what it concerns, never lost, failed or permanent (docs/bad-answers.md). Counters of
``statistics`` are int64 values sent as JSON strings (``"1024"``); one that cannot be read is left out of a
result, it does not make the job unknown. A ``jobs.list`` page is read entry by entry, so one entry that cannot
be read touches its own job only (or, when even its id cannot be read, makes the listing incomplete: nothing
absent from it may then be called lost).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from durable_jobs.clients.bigquery.specs import TOKEN_LABEL
from durable_jobs.decoding import decode_json
from durable_jobs.errors import MalformedAnswer
from durable_jobs.messages import cut

_UNREADABLE = (msgspec.ValidationError, msgspec.DecodeError, RecursionError)


class ErrorProto(msgspec.Struct, gc=False):
    """One ``{"reason", "message", "location"}`` of ``errorResult``, ``errors`` or an error answer."""

    reason: str | None = None
    message: str | None = None
    location: str | None = None


class ErrorBody(msgspec.Struct, gc=False):
    code: int
    message: str = ""
    errors: list[ErrorProto] | None = None
    status: str | None = None


class ErrorAnswer(msgspec.Struct, gc=False):
    """``{"error": {"code", "message", "errors": [{"reason"}]}}``: every error of the REST API."""

    error: ErrorBody

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(e.reason for e in self.error.errors or () if e.reason)


class JobReference(msgspec.Struct, gc=False):
    projectId: str
    jobId: str
    location: str | None = None


class TableReference(msgspec.Struct, gc=False):
    projectId: str
    datasetId: str
    tableId: str


class DestinationConfig(msgspec.Struct, gc=False):
    """The part of ``configuration.query``/``load``/``copy`` read: where the rows went."""

    destinationTable: TableReference | None = None


class JobConfiguration(msgspec.Struct, gc=False):
    jobType: str | None = None
    labels: dict[str, str] | None = None
    query: DestinationConfig | None = None
    load: DestinationConfig | None = None
    copy: DestinationConfig | None = None


class JobStatusAnswer(msgspec.Struct, gc=False):
    state: str
    errorResult: ErrorProto | None = None
    errors: list[ErrorProto] | None = None


class QueryStatistics(msgspec.Struct, gc=False):
    totalBytesProcessed: str | None = None
    totalSlotMs: str | None = None


class JobStatistics(msgspec.Struct, gc=False):
    creationTime: str | None = None
    startTime: str | None = None
    endTime: str | None = None
    totalBytesProcessed: str | None = None
    totalSlotMs: str | None = None
    query: QueryStatistics | None = None


class Job(msgspec.Struct, gc=False):
    """A job, from ``jobs.get``/``jobs.insert``, or an entry of ``jobs.list`` (which adds ``state``)."""

    jobReference: JobReference
    status: JobStatusAnswer | None = None  # always in jobs.get; a jobs.list entry may carry ``state`` only
    configuration: JobConfiguration | None = None
    statistics: JobStatistics | None = None
    user_email: str | None = None
    state: str | None = None  # jobs.list entries only
    errorResult: ErrorProto | None = None  # jobs.list entries only

    @property
    def token(self) -> str | None:
        labels = self.configuration.labels if self.configuration is not None else None
        return (labels or {}).get(TOKEN_LABEL)


class CancelAnswer(msgspec.Struct, gc=False):
    job: Job | None = None


class _JobsPage(msgspec.Struct, gc=False):
    jobs: list[msgspec.Raw] | None = None  # absent when there are none
    nextPageToken: str | None = None


class _RefOnly(msgspec.Struct, gc=False):
    jobReference: JobReference


_ENTRY = msgspec.json.Decoder(Job)
_ENTRY_REF = msgspec.json.Decoder(_RefOnly)


def error_of(body: bytes) -> ErrorAnswer | None:
    """The ``{"error": {...}}`` of an error body, or None when the body is not one."""
    try:
        return msgspec.json.decode(body, type=ErrorAnswer)
    except _UNREADABLE:
        return None


def decode_job(body: bytes, job_id: str, *, what: str) -> Job:
    """A job answer about ``job_id``; an answer about another job is malformed."""
    job = decode_json(body, Job, what=what)
    if job.status is None:
        raise MalformedAnswer(f"{what}: the job has no status")
    if job.jobReference.jobId != job_id:
        raise MalformedAnswer(f"{what}: the answer is about job {cut(job.jobReference.jobId, 200)!r}, not {job_id}")
    return job


def decode_cancel(body: bytes, job_id: str, *, what: str) -> None:
    answer = decode_json(body, CancelAnswer, what=what)
    if answer.job is not None and answer.job.jobReference.jobId != job_id:
        raise MalformedAnswer(f"{what}: the answer is about another job")


@dataclass(slots=True)
class JobsListing:
    """``jobs.list`` pages, entry by entry: one entry that cannot be read touches its own job only."""

    jobs: dict[str, Job] = field(default_factory=dict)  # job id -> job
    malformed: dict[str, str] = field(default_factory=dict)  # job id -> why its entry is unreadable
    unreadable: int = 0  # entries whose id could not be read either
    capped: bool = False  # more pages were left unread

    @property
    def complete(self) -> bool:
        """Every entry of every page was read: a job missing from it is really not listed."""
        return self.unreadable == 0 and not self.capped

    def add_page(self, entries: list[msgspec.Raw], what: str) -> None:
        for raw in entries:
            try:
                job = _ENTRY.decode(raw)
            except _UNREADABLE as exc:
                try:
                    job_id = _ENTRY_REF.decode(raw).jobReference.jobId
                except _UNREADABLE:
                    self.unreadable += 1
                else:
                    self.jobs.pop(job_id, None)
                    self.malformed[job_id] = (
                        f"{what}: the entry of job {cut(job_id, 200)} is malformed ({cut(str(exc), 300)})"
                    )
                continue
            job_id = job.jobReference.jobId
            if job.status is None and job.state is None:
                self.jobs.pop(job_id, None)
                self.malformed[job_id] = f"{what}: the entry of job {cut(job_id, 200)} has no state"
            elif job_id not in self.malformed:
                self.jobs[job_id] = job

    def seen(self, job_id: str) -> bool:
        return job_id in self.jobs or job_id in self.malformed


def decode_jobs_page(body: bytes, *, what: str) -> tuple[list[msgspec.Raw], str | None]:
    """One ``jobs.list`` page: its raw entries, and the next page's token (None at the end)."""
    page = decode_json(body, _JobsPage, what=what)
    return page.jobs or [], page.nextPageToken or None


def int64(value: str | None) -> int | None:
    """A ``statistics`` counter (an int64 sent as a string), or None when absent or unreadable."""
    if value is None or not value.isascii() or not value.lstrip("-").isdigit() or len(value) > 20:
        return None
    return int(value)


__all__ = [
    "CancelAnswer",
    "DestinationConfig",
    "ErrorAnswer",
    "ErrorBody",
    "ErrorProto",
    "Job",
    "JobConfiguration",
    "JobReference",
    "JobStatistics",
    "JobStatusAnswer",
    "JobsListing",
    "QueryStatistics",
    "TableReference",
    "decode_cancel",
    "decode_job",
    "decode_jobs_page",
    "error_of",
    "int64",
]
