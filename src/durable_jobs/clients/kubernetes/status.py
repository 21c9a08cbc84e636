"""What a Kubernetes object's status means: each decoded object mapped to a :class:`~durable_jobs.status.JobStatus`.

Why it exists: one place decides success, failure and "not final yet" for every kind, whether the object came
from a GET, a list page or a watch event:

* Job: condition ``Complete`` is success; ``Failed`` (``BackoffLimitExceeded``, ``DeadlineExceeded``,
  ``PodFailurePolicy``...) is failure; ``SuccessCriteriaMet``/``FailureTarget`` (pods still terminating) and
  ``Suspended`` are not final;
* Pod: phases, with the container's reason (``OOMKilled``, exit code) and the pod's (``Evicted``).
  ``ErrImagePull``/``ImagePullBackOff`` stay *pending*, never failed: the pull may still succeed. A phase this
  library does not know is *unknown*;
* SparkApplication: ``status.applicationState.state``. ``FAILING`` and ``SUBMISSION_FAILED`` (with a restart
  policy that retries) are not final, because the spark-operator may still rerun the application;
* an object confirmed deleted keeps its last final status, else it was cancelled (:func:`deleted_status`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from msgspec import Raw

from durable_jobs.clients.kubernetes.objects import JOB, POD, SPARK_APPLICATION
from durable_jobs.clients.kubernetes.schemas import (
    SCHEMAS,
    ContainerStatus,
    DriverInfo,
    EvidencePod,
    JobObject,
    JobStatusFields,
    Meta,
    PodObject,
    PodStatusFields,
    SparkApplicationObject,
    SparkStatusFields,
)
from durable_jobs.decoding import convert, decode_json
from durable_jobs.status import JobState, JobStatus

T = TypeVar("T")
#: containers looked at in one object: a hostile answer with 100,000 container statuses costs no more
MAX_CONTAINERS = 32


def _typed(obj: Any, schema: type[T], what: str) -> T:
    """A decoded object as it is, or a plain dict (tests, recorded shapes) checked against ``schema``."""
    if isinstance(obj, schema):
        return obj
    return convert(obj, schema, what=what)


# --- normalized status -------------------------------------------------------------------------------------


def _s(value: str | None) -> str:
    return value or ""


def job_status(obj: JobObject | Mapping[str, Any]) -> JobStatus:
    job = _typed(obj, JobObject, "a Job")
    status = job.status or JobStatusFields()
    true = {c.type: c for c in (status.conditions or ())[:MAX_CONTAINERS] if c.status == "True"}
    counts = f"active {status.active or 0}, succeeded {status.succeeded or 0}, failed {status.failed or 0}"
    if "Complete" in true:
        return JobStatus(JobState.SUCCEEDED, "Complete", counts)
    if "Failed" in true:
        cond = true["Failed"]
        reason = cond.reason or "Failed"
        return JobStatus(
            JobState.FAILED,
            "Failed",
            f"{reason}: {cond.message or 'the Job failed'} ({counts})",
            extra={"reason": reason[:100]},
        )
    if "FailureTarget" in true:
        reason = _s(true["FailureTarget"].reason)
        return JobStatus(JobState.RUNNING, "FailureTarget", f"failing ({reason}): its pods are terminating")
    if "SuccessCriteriaMet" in true:
        return JobStatus(JobState.RUNNING, "SuccessCriteriaMet", "succeeding: its pods are terminating")
    if "Suspended" in true:
        return JobStatus(JobState.PENDING, "Suspended", "the Job is suspended (spec.suspend)")
    if status.active or status.ready:
        return JobStatus(JobState.RUNNING, "Running", counts)
    return JobStatus(JobState.PENDING, "Pending", counts)


def _container_statuses(status: PodStatusFields) -> list[ContainerStatus]:
    return [*(status.initContainerStatuses or ())[:MAX_CONTAINERS], *(status.containerStatuses or ())[:MAX_CONTAINERS]]


def describe_terminations(status: PodStatusFields | Mapping[str, Any] | None) -> str:
    """``container main: OOMKilled (exit code 137)`` for each container that ended badly."""
    if status is None:
        return ""
    st = _typed(status, PodStatusFields, "a pod's status")
    parts = []
    for cs in _container_statuses(st):
        term = (cs.state.terminated if cs.state else None) or (cs.lastState.terminated if cs.lastState else None)
        if term and (term.exitCode not in (0, None) or term.reason not in (None, "Completed")):
            detail = f"container {cs.name}: {term.reason or 'Error'} (exit code {term.exitCode})"
            if term.message:
                detail += f": {term.message.strip()[:300]}"
            parts.append(detail)
    return "; ".join(parts)


_POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")


def pod_status(obj: PodObject | EvidencePod | Mapping[str, Any]) -> JobStatus:
    pod = obj if isinstance(obj, (PodObject, EvidencePod)) else _typed(obj, PodObject, "a Pod")
    status = pod.status or PodStatusFields()
    phase = status.phase or "Pending"
    deleting = " (being deleted)" if isinstance(pod, PodObject) and pod.metadata.deletionTimestamp else ""
    if phase not in _POD_PHASES:
        return JobStatus(JobState.UNKNOWN, phase, f"unknown pod phase {phase!r}")
    if phase == "Succeeded":
        return JobStatus(JobState.SUCCEEDED, "Succeeded")
    if phase == "Failed":
        reason = _s(status.reason)
        parts = [f"{reason}: {_s(status.message)}".strip(": ")] if reason or status.message else []
        if terms := describe_terminations(status):
            parts.append(terms)
        return JobStatus(
            JobState.FAILED, reason or "Failed", "; ".join(parts) or "the pod failed", extra={"reason": reason[:100]}
        )
    if phase == "Unknown":
        return JobStatus(JobState.UNKNOWN, "Unknown", status.message or "the pod's node stopped reporting")
    waiting = [
        (cs.name, cs.state.waiting)
        for cs in _container_statuses(status)
        if cs.state is not None and cs.state.waiting is not None
    ]
    if phase == "Running":
        message = "; ".join(f"container {n}: {w.reason}" for n, w in waiting if w.reason)
        return JobStatus(JobState.RUNNING, "Running", message + deleting)
    for name, w in waiting:
        reason = _s(w.reason)
        if reason and reason not in ("ContainerCreating", "PodInitializing"):
            # ErrImagePull, ImagePullBackOff, CreateContainerConfigError...: may still recover, never failed
            return JobStatus(JobState.PENDING, reason, f"container {name}: {reason}: {_s(w.message)}".rstrip(": "))
    for cond in (status.conditions or ())[:MAX_CONTAINERS]:
        if cond.type == "PodScheduled" and cond.status == "False":
            return JobStatus(JobState.PENDING, cond.reason or "Unschedulable", _s(cond.message) + deleting)
    return JobStatus(
        JobState.PENDING, "Pending", "; ".join(f"container {n}: {w.reason}" for n, w in waiting) + deleting
    )


SPARK_STATES = {
    "": JobState.PENDING,  # created, the operator has not looked at it yet
    "NEW": JobState.PENDING,
    "SUBMITTED": JobState.PENDING,
    "PENDING_RERUN": JobState.PENDING,
    "INVALIDATING": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "SUCCEEDING": JobState.RUNNING,
    "FAILING": JobState.RUNNING,  # the operator decides between FAILED and a rerun
    "COMPLETED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
    "SUBMISSION_FAILED": JobState.FAILED,
    "UNKNOWN": JobState.UNKNOWN,
}


def spark_application_status(obj: SparkApplicationObject | Mapping[str, Any]) -> JobStatus:
    app = _typed(obj, SparkApplicationObject, "a SparkApplication")
    status = app.status or SparkStatusFields()
    raw = _s(status.applicationState.state if status.applicationState else None)
    state = SPARK_STATES.get(raw, JobState.UNKNOWN)
    restart = _s(app.spec.restartPolicy.type if app.spec and app.spec.restartPolicy else None) or "Never"
    if raw == "SUBMISSION_FAILED" and restart != "Never":
        state = JobState.PENDING  # the operator retries the submission (onSubmissionFailureRetries)
    driver = status.driverInfo or DriverInfo()
    extra = {
        k: v
        for k, v in {
            "spark_application_id": status.sparkApplicationId,
            "driver_pod": driver.podName,
            "submission_attempts": status.submissionAttempts,
        }.items()
        if v
    }
    ui = driver.webUIIngressAddress
    url = None if not ui else (ui if "://" in ui else f"http://{ui}")
    message = _s(status.applicationState.errorMessage if status.applicationState else None)
    return JobStatus(state, raw or "NEW", message, tracking_url=url, extra=extra)


_NORMALIZERS: dict[str, Callable[[Any], JobStatus]] = {
    JOB.name: job_status,
    POD.name: pod_status,
    SPARK_APPLICATION.name: spark_application_status,
}


def normalize(kind: str, obj: Any) -> JobStatus:
    """The status of a decoded object (or a plain dict, checked against the kind's schema)."""
    return _NORMALIZERS[kind](obj)


def projector(kind: str) -> Callable[[bytes | Raw], tuple[Meta, JobStatus]]:
    """A function from one raw object of ``kind`` to its metadata and status; raises MalformedAnswer."""
    schema, normalizer, what = SCHEMAS[kind], _NORMALIZERS[kind], f"a {kind}"

    def read(raw: bytes | Raw) -> tuple[Meta, JobStatus]:
        obj = decode_json(bytes(raw) if isinstance(raw, Raw) else raw, schema, what=what)
        return obj.metadata, normalizer(obj)

    return read


@dataclass(slots=True)
class CachedObject:
    """What the watch's cache keeps of one object."""

    uid: str
    status: JobStatus
    deleted: bool = False
    seen_at: float = 0.0  # monotonic time of the last event about it


def deleted_status(last: JobStatus) -> JobStatus:
    """The status of an object confirmed gone: its last status if that was final, else cancelled."""
    if last.state.is_terminal:
        return last
    if last.state is JobState.UNKNOWN:
        return last  # its last state could not be read: it may have finished
    return JobStatus(
        state=JobState.CANCELLED,
        raw_state="Deleted",
        message=(
            f"deleted before it finished (last seen {last.raw_state or last.state.value}): "
            "by a user, a controller, or a cancel"
        ),
        tracking_url=last.tracking_url,
    )
