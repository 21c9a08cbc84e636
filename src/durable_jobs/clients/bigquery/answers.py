"""BigQuery's answers, typed: the :mod:`msgspec` schemas of every answer read (REST v2), and their decoders.

Only the fields read are declared. A wrong type, a truncated, empty, HTML or oversized body is *malformed*:
unknown for what it concerns, never lost, failed or permanent (docs/bad-answers.md). Counters of
``statistics`` are int64 values sent as JSON strings (``"1024"``); one that cannot be read is left out of a
result, it does not make the job unknown. A ``jobs.list`` page is read entry by entry, so one entry that cannot
be read touches its own job only (or, when even its id cannot be read, makes the listing incomplete: nothing
absent from it may then be called lost).
"""

from __future__ import annotations

import msgspec

from durable_jobs.clients.bigquery.specs import TOKEN_LABEL
from durable_jobs.clients.listing import EntryReader, Listing, decode_or_none
from durable_jobs.decoding import decode_json
from durable_jobs.errors import MalformedAnswer
from durable_jobs.messages import cut


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


def error_of(body: bytes) -> ErrorAnswer | None:
    """The ``{"error": {...}}`` of an error body, or None when the body is not one."""
    return decode_or_none(body, ErrorAnswer)


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


def _stateless(job: Job, earlier: Job | None) -> str | None:
    return "has no state" if job.status is None and job.state is None else None


class JobsListing(Listing[str, Job]):
    """``jobs.list`` pages, entry by entry (:class:`~durable_jobs.clients.listing.Listing`)."""

    __slots__ = ()
    READER = EntryReader(
        entry=msgspec.json.Decoder(Job),
        key=lambda job: job.jobReference.jobId,
        key_of_raw=lambda raw: msgspec.json.decode(raw, type=_RefOnly).jobReference.jobId,
        name=lambda job_id: f"job {cut(job_id, 200)}",
        problem=_stateless,
    )

    @property
    def jobs(self) -> dict[str, Job]:
        return self.found


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
