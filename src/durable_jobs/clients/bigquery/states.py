"""BigQuery job states as :class:`~durable_jobs.status.JobStatus`: what a job object means for a job.

``status.state`` is PENDING, RUNNING or DONE. A DONE job without ``status.errorResult`` succeeded; with one it
failed, except the reason ``stopped`` (a cancel): CANCELLED. ``status.errors`` may list errors of a job that
succeeded (warnings, retried failures): only ``errorResult`` decides. Another state word is UNKNOWN, never
FAILED or LOST. A ``jobs.list`` entry carries ``state`` and ``errorResult`` beside ``status`` as well; when they
contradict ``status`` the job is unknown for this look.
"""

from __future__ import annotations

from typing import Any

from durable_jobs.clients.bigquery.answers import ErrorProto, Job, int64
from durable_jobs.clients.bigquery.specs import job_url
from durable_jobs.messages import cut
from durable_jobs.status import JobState, JobStatus

STATES = {"PENDING": JobState.PENDING, "RUNNING": JobState.RUNNING}
#: the errorResult reason of a cancelled job
CANCELLED_REASON = "stopped"


def _state_of(word: str, error: ErrorProto | None) -> JobState:
    if word in STATES:
        return STATES[word]
    if word != "DONE":
        return JobState.UNKNOWN
    if error is None:
        return JobState.SUCCEEDED
    return JobState.CANCELLED if error.reason == CANCELLED_REASON else JobState.FAILED


def _error_text(error: ErrorProto) -> str:
    where = f" at {cut(error.location, 100)}" if error.location else ""
    return f"{cut(error.reason or 'error', 100)}{where}: {cut(error.message or '', 1000)}".rstrip(": ")


def status_from_job(job: Job) -> JobStatus:
    """The status a job object shows."""
    ref, status = job.jobReference, job.status
    word = status.state if status is not None else job.state or ""
    error = status.errorResult if status is not None else job.errorResult
    state = _state_of(word, error)
    raw = word if error is None else f"{word}/{error.reason or ''}"
    message = ""
    if status is not None and job.state is not None and _state_of(job.state, job.errorResult or error) is not state:
        state = JobState.UNKNOWN
        message = f"job {ref.jobId}: the listing says {cut(job.state, 40)} and its status {cut(word, 40)}"
    elif state is JobState.UNKNOWN:
        message = f"job {ref.jobId} is {cut(word, 40)!r}, a state BigQuery does not document (yet)"
    elif error is not None:
        others = [e for e in (status.errors if status is not None else None) or () if e != error][:5]
        message = "; ".join(_error_text(e) for e in (error, *others))
    extra: dict[str, Any] = {"location": ref.location} if ref.location else {}
    stats = job.statistics
    if stats is not None:
        for key, value in (("total_bytes_processed", stats.totalBytesProcessed), ("total_slot_ms", stats.totalSlotMs)):
            number = int64(value)
            if number is not None:
                extra[key] = number
    return JobStatus(
        state=state,
        raw_state=raw,
        message=message,
        tracking_url=job_url(ref.projectId, ref.location, ref.jobId),
        extra=extra,
    )


def lost(job_id: str, source: str) -> JobStatus:
    return JobStatus(
        state=JobState.LOST,
        raw_state="notFound",
        message=(
            f"BigQuery does not know job {job_id} (jobs.get: 404 notFound, and {source} does not show it): it was "
            "deleted, or is older than BigQuery keeps jobs (180 days)"
        ),
    )


def result_of(job: Job) -> dict[str, Any]:
    """What a finished job leaves for XCom: its destination table, bytes processed and slot milliseconds."""
    config, stats = job.configuration, job.statistics
    table = None
    for part in (config.query, config.load, config.copy) if config is not None else ():
        if part is not None and part.destinationTable is not None:
            t = part.destinationTable
            table = f"{t.projectId}.{t.datasetId}.{t.tableId}"
            break
    query = stats.query if stats is not None else None
    processed = int64(stats.totalBytesProcessed) if stats is not None else None
    slot_ms = int64(stats.totalSlotMs) if stats is not None else None
    if query is not None:
        processed = processed if processed is not None else int64(query.totalBytesProcessed)
        slot_ms = slot_ms if slot_ms is not None else int64(query.totalSlotMs)
    return {"destination_table": table, "total_bytes_processed": processed, "total_slot_ms": slot_ms}


__all__ = ["CANCELLED_REASON", "STATES", "lost", "result_of", "status_from_job"]
