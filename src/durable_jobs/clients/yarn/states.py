"""YARN's application states as :class:`~durable_jobs.status.JobStatus`: what an RM report means for a job.

``FINISHED`` is not success: only ``FINISHED`` with ``finalStatus`` ``SUCCEEDED`` is. A state or final
status YARN does not define is unknown, never failed; an application that does not carry our tag is not
believed; LOST is said only once both sources agree (docs/bad-answers.md, "Lost").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from durable_jobs.clients.yarn.answers import AppInfo
from durable_jobs.decoding import convert
from durable_jobs.errors import MalformedAnswer
from durable_jobs.messages import MESSAGE_LIMIT, cut
from durable_jobs.status import JobState, JobStatus, safe_url

FINISHED_STATES = ("FINISHED", "FAILED", "KILLED")

_PENDING = {"NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED"}
# FinalApplicationStatus values that end a FINISHED application without success
_FINISHED_BADLY = {"FAILED": JobState.FAILED, "UNDEFINED": JobState.FAILED, "ENDED": JobState.FAILED}


def normalize(state: str, final_status: str) -> JobState:
    """YARN's (state, finalStatus) as a :class:`JobState`: only FINISHED + SUCCEEDED is success.

    A state or a final status YARN does not define is UNKNOWN (never FAILED).
    """
    if state in _PENDING:
        return JobState.PENDING
    if state == "RUNNING":
        return JobState.RUNNING
    if state == "FINISHED":
        if final_status == "SUCCEEDED":
            return JobState.SUCCEEDED
        if final_status == "KILLED":
            return JobState.CANCELLED
        return _FINISHED_BADLY.get(final_status, JobState.UNKNOWN)
    if state == "FAILED":
        return JobState.FAILED
    if state == "KILLED":
        return JobState.CANCELLED
    return JobState.UNKNOWN


def status_from_app(app: AppInfo | Mapping[str, Any]) -> JobStatus:
    """The status an application's report shows (a mapping is checked against :class:`AppInfo` first)."""
    if not isinstance(app, AppInfo):
        app = convert(dict(app), AppInfo, what="application")
    state, final = app.state, app.finalStatus
    extra = {
        k: v
        for k, v in (
            ("finalStatus", final),
            ("progress", app.progress),
            ("user", app.user),
            ("queue", app.queue),
            ("applicationType", app.applicationType),
            ("amContainerLogs", app.amContainerLogs),
            ("finishedTime", app.finishedTime),
        )
        if v is not None and v != ""
    }
    return JobStatus(
        state=normalize(state, final),
        raw_state=f"{state}/{final}" if final else state,
        message=(app.diagnostics or "")[: 2 * MESSAGE_LIMIT].strip(),
        tracking_url=safe_url(app.trackingUrl),
        extra=extra,
    )


def status_with_tag(app: AppInfo, tag: str | None) -> JobStatus:
    """The status of our application; one that does not carry our tag is not believed (unknown)."""
    if tag and tag not in app.tags:
        raise MalformedAnswer(
            f"{app.id} does not carry tag {tag} (its tags: {cut(str(sorted(app.tags)), 300)}); not believing it"
        )
    return status_from_app(app)


def status_or_unknown(app: AppInfo, tag: str | None) -> JobStatus:
    try:
        return status_with_tag(app, tag)
    except MalformedAnswer as exc:
        return JobStatus.unknown_from(exc)


def lost(app_id: str, source: str) -> JobStatus:
    return JobStatus(
        state=JobState.LOST,
        raw_state="404",
        message=(
            f"the ResourceManager does not know {app_id} (GET: 404 NotFoundException, and {source} do not include "
            "it): it was never submitted, was evicted (yarn.resourcemanager.max-completed-applications), or the "
            "RM restarted without recovery"
        ),
    )


__all__ = [
    "FINISHED_STATES",
    "lost",
    "normalize",
    "safe_url",
    "status_from_app",
    "status_or_unknown",
    "status_with_tag",
]
