"""What the Kubernetes client reads from the apiserver, as declared schemas, and what each object's status means.

Every answer is decoded against one of the :class:`msgspec.Struct` types below (only the fields the client
reads; msgspec skips the rest without building it). A wrong type anywhere in a field that is read, a
truncated or nested body, raises :class:`~durable_jobs.errors.MalformedAnswer`: unknown, never lost, never
failed. Where one answer holds many objects (a list page, a watch event), each object is decoded on its own, so
a malformed object makes *that* object unknown and no other.

The normalizers (:func:`job_status`, :func:`pod_status`, :func:`spark_application_status`) map a decoded object
to the library's :class:`~durable_jobs.status.JobStatus`:

* Job: condition ``Complete`` is success; ``Failed`` (``BackoffLimitExceeded``, ``DeadlineExceeded``,
  ``PodFailurePolicy``...) is failure; ``SuccessCriteriaMet``/``FailureTarget`` (pods still terminating) and
  ``Suspended`` are not final;
* Pod: phases, with the container's reason (``OOMKilled``, exit code) and the pod's (``Evicted``).
  ``ErrImagePull``/``ImagePullBackOff`` stay *pending*, never failed: the pull may still succeed. A phase this
  library does not know is *unknown*;
* SparkApplication: ``status.applicationState.state``. ``FAILING`` and ``SUBMISSION_FAILED`` (with a restart
  policy that retries) are not final, because the spark-operator may still rerun the application.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from msgspec import Raw, Struct, field

from durable_jobs.decoding import convert, decode_json
from durable_jobs.errors import (
    AuthError,
    DurableJobError,
    MalformedAnswer,
    PermanentError,
    TransientError,
)
from durable_jobs.messages import redact, snippet
from durable_jobs.status import JobState, JobStatus
from durable_jobs.transport.http import TRANSIENT_STATUSES, parse_retry_after

T = TypeVar("T")
#: containers looked at in one object: a hostile answer with 100,000 container statuses costs no more
MAX_CONTAINERS = 32


# --- kinds -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """One kind of object this client runs, and where the apiserver serves it."""

    name: str
    api_version: str
    plural: str
    max_name: int  # names longer than this break something downstream (label values, Service names)

    @property
    def api_path(self) -> str:
        return "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"

    def collection(self, namespace: str) -> str:
        return f"{self.api_path}/namespaces/{quote(namespace, safe='')}/{self.plural}"

    def item(self, namespace: str, name: str) -> str:
        return f"{self.collection(namespace)}/{quote(name, safe='')}"


JOB = Kind("Job", "batch/v1", "jobs", 63)  # the Job controller copies the name into a label value
POD = Kind("Pod", "v1", "pods", 63)
# the spark-operator derives Service names (DNS-1035 labels, <= 63) such as "<name>-ui-svc"
SPARK_APPLICATION = Kind("SparkApplication", "sparkoperator.k8s.io/v1beta2", "sparkapplications", 52)
EVENT = Kind("Event", "v1", "events", 253)
KINDS: dict[str, Kind] = {k.name: k for k in (JOB, POD, SPARK_APPLICATION)}
SPARK_DRIVER_CONTAINER = "spark-kubernetes-driver"


# --- schemas: metadata, lists, watch events, Status ---------------------------------------------------------


class Meta(Struct, gc=False):
    """The metadata every cached object needs: who it is and which version of it this is."""

    name: str = ""
    uid: str = ""
    resourceVersion: str = ""
    deletionTimestamp: str | None = None


class Named(Struct, gc=False):
    """An object reduced to its identity: what a malformed object can still be attributed by."""

    metadata: Meta = field(default_factory=Meta)


class NameOnly(Struct, gc=False):
    name: str = ""


class Attributable(Struct, gc=False):
    """Only the name: a malformed object whose name can be read is cached as unknown under that name."""

    metadata: NameOnly = field(default_factory=NameOnly)


class OwnerReference(Struct, gc=False):
    uid: str = ""
    kind: str = ""
    name: str = ""


class FullMeta(Struct, gc=False):
    """Metadata of objects read for adoption, diagnosis and the finished-job evidence."""

    name: str = ""
    uid: str = ""
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    creationTimestamp: str | None = None
    ownerReferences: list[OwnerReference] | None = None


class Adoptable(Struct, gc=False):
    """A created or found object: its uid and token label decide whether it is this task's job."""

    metadata: FullMeta = field(default_factory=FullMeta)


class ListMeta(Struct, gc=False):
    resourceVersion: str = ""
    continue_: str = field(name="continue", default="")


class ListPage(Struct, gc=False):
    """A list answer whose items are kept undecoded: each is decoded on its own (one bad item, one unknown)."""

    items: list[Raw]  # required: an answer without items is not a list page
    metadata: ListMeta = field(default_factory=ListMeta)


class NamedList(Struct, gc=False):
    items: list[Named]  # required: a list without items is not the apiserver's (a proxy's ``{}``)


class WatchEvent(Struct, gc=False):
    """One line of a watch: ``{"type", "object"}``; the object is decoded by its kind."""

    type: str | None = None
    object: Raw = field(default_factory=Raw)


class BookmarkMeta(Struct, gc=False):
    resourceVersion: str = ""


class Bookmark(Struct, gc=False):
    metadata: BookmarkMeta = field(default_factory=BookmarkMeta)


class StatusDetails(Struct, gc=False):
    name: str | None = None
    kind: str | None = None
    group: str | None = None


class KubeStatus(Struct, gc=False):
    """The apiserver's ``Status``: every error answer, and a few successes (a Job's DELETE)."""

    kind: str | None = None
    status: str | None = None
    code: int | None = None
    reason: str | None = None
    message: str | None = None
    details: StatusDetails | None = None


class Version(Struct, gc=False):
    major: str = ""
    minor: str = ""
    gitVersion: str = ""
    platform: str = ""


# --- schemas: the kinds --------------------------------------------------------------------------------------


class Condition(Struct, gc=False):
    type: str = ""
    status: str = ""
    reason: str | None = None
    message: str | None = None


class LabelSelector(Struct, gc=False):
    matchLabels: dict[str, str] | None = None


class JobSpecFields(Struct, gc=False):
    selector: LabelSelector | None = None


class JobStatusFields(Struct, gc=False):
    conditions: list[Condition] | None = None
    active: int | None = None
    ready: int | None = None
    succeeded: int | None = None
    failed: int | None = None


class JobObject(Struct, gc=False):
    metadata: Meta = field(default_factory=Meta)
    spec: JobSpecFields | None = None
    status: JobStatusFields | None = None


class Waiting(Struct, gc=False):
    reason: str | None = None
    message: str | None = None


class Terminated(Struct, gc=False):
    exitCode: int | None = None
    reason: str | None = None
    message: str | None = None


class ContainerState(Struct, gc=False):
    waiting: Waiting | None = None
    running: dict[str, Raw] | None = None
    terminated: Terminated | None = None


class ContainerStatus(Struct, gc=False):
    name: str = ""
    state: ContainerState | None = None
    lastState: ContainerState | None = None


class PodStatusFields(Struct, gc=False):
    phase: str | None = None
    reason: str | None = None
    message: str | None = None
    conditions: list[Condition] | None = None
    containerStatuses: list[ContainerStatus] | None = None
    initContainerStatuses: list[ContainerStatus] | None = None


class Container(Struct, gc=False):
    name: str = ""


class PodSpecFields(Struct, gc=False):
    containers: list[Container] | None = None


class PodObject(Struct, gc=False):
    metadata: Meta = field(default_factory=Meta)
    spec: PodSpecFields | None = None
    status: PodStatusFields | None = None


class EvidencePod(Struct, gc=False):
    """A pod read for a failure's diagnosis or for what the cluster remembers of a finished job."""

    metadata: FullMeta = field(default_factory=FullMeta)
    spec: PodSpecFields | None = None
    status: PodStatusFields | None = None


class PodList(Struct, gc=False):
    items: list[EvidencePod]  # required: a list without items is not the apiserver's (a proxy's ``{}``)


class ApplicationState(Struct, gc=False):
    state: str | None = None
    errorMessage: str | None = None


class DriverInfo(Struct, gc=False):
    podName: str | None = None
    webUIIngressAddress: str | None = None


class SparkStatusFields(Struct, gc=False):
    applicationState: ApplicationState | None = None
    sparkApplicationId: str | None = None
    driverInfo: DriverInfo | None = None
    submissionAttempts: int | None = None


class RestartPolicy(Struct, gc=False):
    type: str | None = None


class SparkSpecFields(Struct, gc=False):
    restartPolicy: RestartPolicy | None = None


class SparkApplicationObject(Struct, gc=False):
    metadata: Meta = field(default_factory=Meta)
    spec: SparkSpecFields | None = None
    status: SparkStatusFields | None = None


class InvolvedObject(Struct, gc=False):
    uid: str = ""
    name: str = ""
    kind: str = ""


class Event(Struct, gc=False):
    """A core/v1 Event: what a controller said about an object (kept about an hour after it happened)."""

    involvedObject: InvolvedObject = field(default_factory=InvolvedObject)
    reason: str | None = None
    message: str | None = None
    type: str | None = None


class EventList(Struct, gc=False):
    items: list[Event]  # required: a list without items is not the apiserver's (a proxy's ``{}``)


SCHEMAS: dict[str, type[Any]] = {
    JOB.name: JobObject,
    POD.name: PodObject,
    SPARK_APPLICATION.name: SparkApplicationObject,
}


def decode(body: bytes | Raw, schema: type[T], *, what: str) -> T:
    """``body`` (bytes or one raw object of a list or event) checked against ``schema``, or MalformedAnswer."""
    return decode_json(bytes(body) if isinstance(body, Raw) else body, schema, what=what)


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


# --- apiserver errors --------------------------------------------------------------------------------------


class KubeApiError(PermanentError):
    """The apiserver refused a request with a ``Status``; ``reason`` is its reason (``AlreadyExists``...)."""

    def __init__(self, message: str, *, status: int, reason: str = "", details: StatusDetails | None = None):
        super().__init__(message, status=status)
        self.reason = reason
        self.details = details or StatusDetails()


class RelistRequired(TransientError):
    """The watch cannot be resumed from the remembered resourceVersion: list again."""


class ResourceExpired(RelistRequired):
    """410 Gone / Expired: the resourceVersion was compacted away (as an HTTP status or an ERROR event)."""


def parse_status(body: bytes) -> KubeStatus | None:
    """The body as a well-formed ``Status``, or None (a proxy's page, garbage, another shape)."""
    if body.lstrip()[:1] != b"{":
        return None
    try:
        st = decode_json(body, KubeStatus, what="a Status")
    except MalformedAnswer:
        return None
    return st if st.kind == "Status" else None


def api_error(
    status: int, body: bytes, headers: Mapping[str, str], what: str, secrets: tuple[str, ...] = ()
) -> DurableJobError:
    """The error for a non-2xx answer, from its ``Status`` body (or a cut, redacted quote of what a proxy sent).

    Only a well-formed ``Status`` is the apiserver speaking: a 4xx without one (an HTML page, garbage) is an
    answer this client cannot read, hence unknown (:class:`MalformedAnswer`), never a permanent refusal, except
    401/403, which refuse the credentials whoever sends them.
    """
    st = parse_status(body)
    reason = (st.reason or "") if st else ""
    if st is not None:
        detail = redact(st.message or "", secrets)
    else:
        detail = snippet(body[:2400].decode("utf-8", "replace"), secrets=secrets)
    text = f"{what}: HTTP {status}{' ' + reason[:100] if reason else ''}: {detail}"
    if status == 410:
        return ResourceExpired(text, status=status)
    if status in TRANSIENT_STATUSES or 300 <= status < 400:
        return TransientError(text, retry_after=parse_retry_after(headers.get("Retry-After")), status=status)
    if status == 401:
        return AuthError(text + " (the apiserver refused the credentials)", status=status)
    if status == 403:
        return AuthError(text + " (RBAC: the connection's identity may not do this)", status=status)
    if st is None:
        return MalformedAnswer(text + " (not a Kubernetes Status: a proxy or another server answered)", status=status)
    return KubeApiError(text, status=status, reason=reason, details=st.details)


def is_not_found(exc: BaseException, name: str) -> bool:
    """The apiserver's documented "no such object": 404, reason NotFound, naming the object asked for."""
    return (
        isinstance(exc, KubeApiError)
        and exc.status == 404
        and exc.reason == "NotFound"
        and exc.details.name is not None
        and exc.details.name == name
    )


__all__ = [
    "EVENT",
    "JOB",
    "KINDS",
    "POD",
    "SPARK_APPLICATION",
    "SPARK_DRIVER_CONTAINER",
    "Adoptable",
    "Attributable",
    "Bookmark",
    "EventList",
    "Kind",
    "KubeApiError",
    "KubeStatus",
    "ListPage",
    "Meta",
    "Named",
    "NamedList",
    "PodList",
    "RelistRequired",
    "ResourceExpired",
    "Version",
    "WatchEvent",
    "api_error",
    "decode",
    "describe_terminations",
    "is_not_found",
    "job_status",
    "normalize",
    "parse_status",
    "pod_status",
    "projector",
    "spark_application_status",
]
