"""What the Kubernetes client reads from the apiserver, as declared schemas.

Why it exists: every answer is decoded against one of the :class:`msgspec.Struct` types below (only the fields
the client reads; msgspec skips the rest without building it). A wrong type anywhere in a field that is read, a
truncated or nested body, raises :class:`~durable_jobs.errors.MalformedAnswer`: unknown, never lost, never
failed. Where one answer holds many objects (a list page, a watch event), each object is decoded on its own, so
a malformed object makes *that* object unknown and no other.
"""

from __future__ import annotations

from typing import Any, TypeVar

from msgspec import Raw, Struct, field

from durable_jobs.clients.kubernetes.objects import JOB, POD, SPARK_APPLICATION
from durable_jobs.decoding import decode_json

T = TypeVar("T")


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
