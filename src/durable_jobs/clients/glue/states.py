"""Glue job run states as the library's, and what a run's status says (message, logs, console link).

``STARTING`` and ``WAITING`` (queued for resources) -> pending; ``RUNNING`` and ``STOPPING`` -> running
(a stop is not done until Glue says ``STOPPED``); ``SUCCEEDED``; ``FAILED``, ``TIMEOUT``, ``ERROR`` and
``EXPIRED`` (a Flex run that never got capacity) -> failed; ``STOPPED`` -> cancelled. Any other word is
unknown, never a failure. A failed run's message is Glue's ``ErrorMessage`` and where its error log is:
the log group ``<LogGroupName>/error`` (``/aws-glue/jobs/error`` by default), stream = the run id.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from durable_jobs.clients.emr.aws_decoding import state_of, unknown_state
from durable_jobs.clients.glue.answers import JobRunView
from durable_jobs.status import JobState, JobStatus

GLUE_STATES = {
    "STARTING": JobState.PENDING,
    "WAITING": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "STOPPING": JobState.RUNNING,
    "SUCCEEDED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
    "TIMEOUT": JobState.FAILED,
    "ERROR": JobState.FAILED,
    "EXPIRED": JobState.FAILED,
    "STOPPED": JobState.CANCELLED,
}
DEFAULT_LOG_GROUP = "/aws-glue/jobs"
_ENDED_WORDS = {
    "TIMEOUT": "the run exceeded its timeout",
    "EXPIRED": "the Flex run expired before it got capacity",
    "STOPPED": "the run was stopped",
}


def error_log_group(run: JobRunView) -> str:
    return f"{(run.log_group_name or DEFAULT_LOG_GROUP).rstrip('/')}/error"


def run_message(run: JobRunView) -> str:
    """Glue's ``ErrorMessage`` (or what the state says), and the error log of an ended run that did not succeed."""
    raw = run.job_run_state
    said = run.error_message or _ENDED_WORDS.get(raw, "")
    if GLUE_STATES.get(raw) in (JobState.FAILED, JobState.CANCELLED):
        logs = f"(error log: group {error_log_group(run)}, stream {run.id})"
        return f"{said} {logs}" if said else logs
    return said


def run_url(region: str, domain: str, job_name: str, run_id: str) -> str:
    """The run's page in the Glue Studio console."""
    return f"https://{region}.{domain}/gluestudio/home?region={region}#/job/{quote(job_name, safe='')}/run/{run_id}"


def run_status(run: JobRunView, url: str) -> JobStatus:
    raw = run.job_run_state
    state = state_of(GLUE_STATES, raw)
    message = run_message(run)
    if state is JobState.UNKNOWN:
        message = unknown_state(raw, message)
    extra: dict[str, Any] = {"log_group": error_log_group(run), "log_stream": run.id}
    if run.attempt:
        extra["attempt"] = run.attempt
    return JobStatus(state, raw_state=raw, message=message, tracking_url=url, extra=extra)


__all__ = ["DEFAULT_LOG_GROUP", "GLUE_STATES", "error_log_group", "run_message", "run_status", "run_url"]
