"""Databricks run states as :class:`~durable_jobs.status.JobStatus`: what a run object means for a job.

A run says how it is twice: the legacy ``state`` (``life_cycle_state`` + ``result_state``) and, on newer
workspaces, ``status`` (``state`` + ``termination_details.code``/``type``). Each is mapped on its own; when
only one is known that one is used, and when both are known and contradict each other (one says ended, the
other not, or one says success and the other not) the run is unknown for this look, never failed.

The choices:

* QUEUED, PENDING, BLOCKED, WAITING_FOR_RETRY are PENDING; RUNNING and TERMINATING are RUNNING.
* TERMINATED + SUCCESS is SUCCEEDED.
* **SUCCESS_WITH_FAILURES is SUCCEEDED.** Databricks itself counts it as a success (a job-completion trigger
  fires on it): the leaf tasks succeeded, and the tasks that failed had dependents configured to run anyway
  (``run_if``). Failing it would make the next generation rerun a job that did its work. The message names
  the tasks that failed.
* FAILED, TIMEDOUT, INTERNAL_ERROR (a life-cycle state) and a failure ``termination_details`` are FAILED;
  CANCELED (and USER_CANCELED) is CANCELLED.
* **A run that was skipped did nothing**: the SKIPPED life-cycle state, and the results
  MAXIMUM_CONCURRENT_RUNS_REACHED, EXCLUDED, UPSTREAM_FAILED, UPSTREAM_CANCELED and DISABLED, are FAILED,
  with a message saying that the run was skipped and did not run (never SUCCEEDED: nothing was produced).
* A word Databricks does not define (yet) is UNKNOWN, never FAILED or LOST; except a new termination code
  whose documented ``type`` is an error (CLIENT_ERROR, INTERNAL_ERROR, CLOUD_FAILURE): that is FAILED.

For a multi-task run that failed, the message names the failed tasks and their state messages, and the
tracking URL is the first failed task's run page.
"""

from __future__ import annotations

from dataclasses import dataclass

from durable_jobs.clients.databricks.answers import Run, RunState, RunStatusInfo, TaskRun
from durable_jobs.messages import cut
from durable_jobs.status import JobState, JobStatus, safe_url

PENDING_STATES = frozenset({"QUEUED", "PENDING", "BLOCKED", "WAITING_FOR_RETRY"})
RUNNING_STATES = frozenset({"RUNNING", "TERMINATING"})
#: results of a run that did not run at all
SKIPPED_RESULTS = frozenset(
    {"SKIPPED", "MAXIMUM_CONCURRENT_RUNS_REACHED", "EXCLUDED", "UPSTREAM_FAILED", "UPSTREAM_CANCELED", "DISABLED"}
)
RESULTS: dict[str, JobState] = {
    "SUCCESS": JobState.SUCCEEDED,
    "SUCCESS_WITH_FAILURES": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
    "TIMEDOUT": JobState.FAILED,
    "CANCELED": JobState.CANCELLED,
    **dict.fromkeys(SKIPPED_RESULTS, JobState.FAILED),
}
#: ``status.termination_details.code`` (Databricks may add codes: see FAILURE_TYPES)
CODES: dict[str, JobState] = {
    "SUCCESS": JobState.SUCCEEDED,
    "SUCCESS_WITH_FAILURES": JobState.SUCCEEDED,
    "USER_CANCELED": JobState.CANCELLED,
    "CANCELED": JobState.CANCELLED,
    **dict.fromkeys(SKIPPED_RESULTS, JobState.FAILED),
    **dict.fromkeys(
        (
            "INTERNAL_ERROR",
            "DRIVER_ERROR",
            "CLUSTER_ERROR",
            "REPOSITORY_CHECKOUT_FAILED",
            "INVALID_CLUSTER_REQUEST",
            "WORKSPACE_RUN_LIMIT_EXCEEDED",
            "FEATURE_DISABLED",
            "CLUSTER_REQUEST_LIMIT_EXCEEDED",
            "STORAGE_ACCESS_ERROR",
            "RUN_EXECUTION_ERROR",
            "UNAUTHORIZED_ERROR",
            "LIBRARY_INSTALLATION_ERROR",
            "MAX_CONCURRENT_RUNS_EXCEEDED",
            "MAX_SPARK_CONTEXTS_EXCEEDED",
            "RESOURCE_NOT_FOUND",
            "INVALID_RUN_CONFIGURATION",
            "CLOUD_FAILURE",
            "MAX_JOB_QUEUE_SIZE_EXCEEDED",
            "BUDGET_POLICY_LIMIT_EXCEEDED",
            "BREAKING_CHANGE",
            "TIMEDOUT",
            "FAILED",
        ),
        JobState.FAILED,
    ),
}
#: ``termination_details.type`` values that say the run ended in error, whatever its (possibly new) code
FAILURE_TYPES = frozenset({"CLIENT_ERROR", "INTERNAL_ERROR", "CLOUD_FAILURE"})


@dataclass(frozen=True, slots=True)
class Reading:
    """What one of the two sources says: the state, its raw words, and whether the run was skipped."""

    state: JobState
    raw: str
    skipped: bool = False


def _active(word: str, raw: str) -> Reading | None:
    """PENDING or RUNNING for the words that say so (in ``state`` and ``status`` alike), else None."""
    if word in PENDING_STATES:
        return Reading(JobState.PENDING, raw)
    if word in RUNNING_STATES:
        return Reading(JobState.RUNNING, raw)
    return None


def from_state(state: RunState | None) -> Reading | None:
    """The legacy ``state``; None when it has no life-cycle state."""
    if state is None or not state.life_cycle_state:
        return None
    life, result = state.life_cycle_state, state.result_state
    raw = f"{life}/{result}" if result else life
    active = _active(life, raw)
    if active is not None:
        return active
    if life == "SKIPPED":
        return Reading(JobState.FAILED, raw, skipped=True)
    if life == "INTERNAL_ERROR":
        return Reading(JobState.FAILED, raw)
    if life == "TERMINATED" and result:
        return Reading(RESULTS.get(result, JobState.UNKNOWN), raw, skipped=result in SKIPPED_RESULTS)
    return Reading(JobState.UNKNOWN, raw)


def from_status(status: RunStatusInfo | None) -> Reading | None:
    """The newer ``status``; None when it has no state."""
    if status is None or not status.state:
        return None
    word, details = status.state, status.termination_details
    code = details.code if details is not None else None
    kind = details.type if details is not None else None
    raw = f"{word}/{code}" if code else word
    active = _active(word, raw)
    if active is not None:
        return active
    if word == "TERMINATED":
        if code in CODES:
            return Reading(CODES[code], raw, skipped=code in SKIPPED_RESULTS)
        if kind in FAILURE_TYPES:
            return Reading(JobState.FAILED, raw)
    return Reading(JobState.UNKNOWN, raw)


def combine(legacy: Reading | None, new: Reading | None) -> Reading:
    """One reading from the two sources; a contradiction about the end or about success is UNKNOWN."""
    if legacy is None or new is None:
        return legacy or new or Reading(JobState.UNKNOWN, "")
    if legacy.state is new.state or new.state is JobState.UNKNOWN:
        return legacy
    if legacy.state is JobState.UNKNOWN:
        return new
    if legacy.state.is_active and new.state.is_active:
        return legacy if legacy.state is JobState.RUNNING else new  # the further along of the two
    if legacy.state.is_terminal and new.state.is_terminal and JobState.SUCCEEDED not in (legacy.state, new.state):
        return legacy  # FAILED vs CANCELLED (a TIMEDOUT run that status calls CANCELED): its result says more
    return Reading(JobState.UNKNOWN, f"{legacy.raw}|{new.raw}")


def _reading_of(state: RunState | None, status: RunStatusInfo | None) -> Reading:
    return combine(from_state(state), from_status(status))


def _message_of(state: RunState | None, status: RunStatusInfo | None) -> str:
    details = status.termination_details if status is not None else None
    for text in (state.state_message if state else None, details.message if details else None):
        if text and text.strip():
            return text.strip()
    return ""


def _failed_tasks(tasks: list[TaskRun] | None) -> list[tuple[TaskRun, Reading]]:
    out = []
    for task in tasks or ():
        reading = _reading_of(task.state, task.status)
        if reading.state in (JobState.FAILED, JobState.CANCELLED):
            out.append((task, reading))
    return out


def status_from_run(run: Run) -> JobStatus:
    """The status a run object shows."""
    reading = _reading_of(run.state, run.status)
    state = reading.state
    message = _message_of(run.state, run.status)
    url = safe_url(run.run_page_url)
    if state is JobState.UNKNOWN:
        why = "state and status disagree" if "|" in reading.raw else "a state Databricks does not document (yet)"
        message = f"run {run.run_id} is {reading.raw or 'without a state'} ({why}); {message}".rstrip("; ")
    elif reading.skipped:
        message = f"run {run.run_id} was skipped ({reading.raw}): it did not run. {message}".strip()
    failed = _failed_tasks(run.tasks) if state.is_terminal else []
    if failed:
        named = "; ".join(
            f"{cut(task.task_key or str(task.run_id), 100)} {tr.raw}"
            + (f": {cut(m, 500)}" if (m := _message_of(task.state, task.status)) else "")
            for task, tr in failed[:10]
        )
        more = f" and {len(failed) - 10} more" if len(failed) > 10 else ""
        message = f"failed tasks: {named}{more}. {message}".strip()
        url = next((u for task, _ in failed if (u := safe_url(task.run_page_url))), url)
    extra: dict[str, object] = {}
    if run.state is not None and run.state.user_cancelled_or_timedout is not None:
        extra["user_cancelled_or_timedout"] = run.state.user_cancelled_or_timedout
    for key, value in (("run_type", run.run_type), ("job_id", run.job_id), ("end_time", run.end_time)):
        if value is not None:
            extra[key] = value
    return JobStatus(state=state, raw_state=reading.raw, message=message, tracking_url=url, extra=extra)


def lost(run_id: int, source: str) -> JobStatus:
    return JobStatus(
        state=JobState.LOST,
        raw_state="RESOURCE_DOES_NOT_EXIST",
        message=(
            f"the Databricks workspace does not know run {run_id} (runs/get: RESOURCE_DOES_NOT_EXIST, and {source} "
            "does not show it): it was deleted, or is older than the workspace keeps runs"
        ),
    )


__all__ = [
    "CODES",
    "FAILURE_TYPES",
    "PENDING_STATES",
    "RESULTS",
    "RUNNING_STATES",
    "SKIPPED_RESULTS",
    "Reading",
    "combine",
    "from_state",
    "from_status",
    "lost",
    "status_from_run",
]
