"""Lost is proven: what decides that a job whose object is gone is LOST, and not finished.

Why it exists: a GET answering 404 is not enough. The job is LOST only when that GET answers the documented 404
NotFound, a second source (the watch's cache, else a list by name) agrees, and what the cluster still remembers
of finished objects (the Job's Events ``Completed``/``BackoffLimitExceeded``..., its Pods, a SparkApplication's
events and driver pod) says nothing. A Job removed by ``ttlSecondsAfterFinished`` whose events show it completed
is a success (``docs/kubernetes.md``, "Lost: proven, and never rerun by default").
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from durable_jobs.clients.base import Locator
from durable_jobs.clients.kubernetes.objects import (
    COMPLETIONS_ANNOTATION,
    EVENT,
    JOB,
    KINDS,
    POD,
    SPARK_APPLICATION,
    UID_RE,
)
from durable_jobs.clients.kubernetes.schemas import EventList, EvidencePod, NamedList, PodList, decode
from durable_jobs.clients.kubernetes.status import pod_status
from durable_jobs.errors import AuthError, DurableJobError, MalformedAnswer
from durable_jobs.status import JobState, JobStatus

if TYPE_CHECKING:
    from durable_jobs.clients.kubernetes.api import Connection
    from durable_jobs.clients.kubernetes.client import KubernetesClient

# what a finished object's controller says in its Events (kept about an hour), read when the object is gone
# what a finished object's controller says in its Events (kept about an hour), read when the object is gone
SUCCESS_EVENTS = {JOB.name: frozenset({"Completed"}), SPARK_APPLICATION.name: frozenset({"SparkApplicationCompleted"})}
FAILURE_EVENTS = {
    JOB.name: frozenset(
        {"BackoffLimitExceeded", "DeadlineExceeded", "PodFailurePolicy", "MaxFailedIndexesExceeded", "FailedIndexes"}
    ),
    SPARK_APPLICATION.name: frozenset({"SparkApplicationFailed"}),
}


async def confirm_gone(client: KubernetesClient, conn: Connection, loc: Locator, raw: str, message: str) -> JobStatus:
    """The GET says the object is gone. LOST only if a second source agrees and no trace says how it ended."""
    try:
        present = await _second_source(client, conn, loc)
    except DurableJobError as exc:
        if isinstance(exc, AuthError) and exc.status == 401:
            raise
        return JobStatus.unknown(f"{message}, but a second source cannot confirm it: {exc}")
    if present:
        return JobStatus.unknown(f"{message} by a GET, but the watch or a list still shows it: waiting for both")
    notes: list[str] = []
    try:
        remembered = await _remembered(client, conn, loc, notes)
    except DurableJobError as exc:
        if isinstance(exc, AuthError) and exc.status == 401:
            raise
        return JobStatus.unknown(f"{message}; what the cluster remembers of it cannot be read: {exc}")
    if remembered is not None:
        return remembered
    return JobStatus(
        JobState.LOST,
        raw,
        f"{message}: deleted, removed by ttlSecondsAfterFinished, or never created. The watch agrees, and the "
        "cluster keeps no event or pod that says how it ended" + "".join(f" ({note})" for note in notes),
        tracking_url=client.console_link(loc),
    )


async def _second_source(client: KubernetesClient, conn: Connection, loc: Locator) -> bool:
    """Whether the watch's cache (when it can be trusted), else a list by name, still holds the object."""
    kind, namespace, name, uid = KINDS[loc["kind"]], loc["namespace"], loc["name"], loc["uid"]
    inf = conn.informers.get((kind.name, namespace)) if client.config.watch else None
    if inf is not None and inf.fresh:
        cached = inf.lookup(name)
        # an entry that could not be read (no uid) may be this object: it does not confirm the absence
        return cached is not None and not cached.deleted and cached.uid in (uid, "")
    what = f"list {kind.plural} named {name} in {namespace}"
    reply = await conn.call(
        "GET", kind.collection(namespace), query=[("fieldSelector", f"metadata.name={name}")], what=what
    )
    for item in decode(reply.body, NamedList, what=what).items or ():
        if item.metadata.uid == uid:
            return True
        if not UID_RE.match(item.metadata.uid):
            raise MalformedAnswer(f"{what}: an item carries no valid uid")
    return False


async def _remembered(client: KubernetesClient, conn: Connection, loc: Locator, notes: list[str]) -> JobStatus | None:
    """What the cluster still knows of how a vanished object ended: its Events, then its pods.

    Sources the identity may not read (403) are skipped, with a note in ``notes``.
    """
    kind = loc["kind"]
    if kind == POD.name:
        return None  # a pod's events say nothing of how it ended, and it is its own pod
    events = await _events(client, conn, loc)
    if events is None:
        notes.append("its events may not be listed (RBAC)")
    else:
        done = [e for e in events if e.reason in SUCCESS_EVENTS[kind]]
        failed = [e for e in events if e.reason in FAILURE_EVENTS[kind]]
        if done and failed:
            return JobStatus.unknown(
                f"{client.describe(loc)} is gone, and its events say both that it succeeded and failed"
            )
        if done:
            return _remembered_status(
                client, loc, JobState.SUCCEEDED, f"event {done[0].reason}: {done[0].message or ''}"
            )
        if failed:
            ev = failed[0]
            return _remembered_status(
                client, loc, JobState.FAILED, f"event {ev.reason}: {ev.message or ''}", reason=ev.reason or ""
            )
    pods = await _owned_pods(client, conn, loc)
    if pods is None:
        notes.append("its pods may not be listed (RBAC)")
        return None
    if kind == JOB.name:
        return _remembered_by_job_pods(client, loc, pods)
    for pod in pods:  # the SparkApplication's driver: its last attempt
        st = pod_status(pod)
        if st.state in (JobState.SUCCEEDED, JobState.FAILED):
            return _remembered_status(
                client, loc, st.state, f"driver pod {pod.metadata.name} {st.raw_state}: {st.message}".rstrip(": ")
            )
    return None


def _remembered_by_job_pods(client: KubernetesClient, loc: Locator, pods: list[EvidencePod]) -> JobStatus | None:
    succeeded: set[str] = set()
    needed = 1
    for pod in pods:
        annotations = pod.metadata.annotations or {}
        with contextlib.suppress(ValueError):
            needed = max(needed, int(annotations.get(COMPLETIONS_ANNOTATION, "1")))
        if pod.status is not None and pod.status.phase == "Succeeded":
            index = annotations.get("batch.kubernetes.io/job-completion-index") or pod.metadata.name
            succeeded.add(index)
    if succeeded and len(succeeded) >= needed:
        return _remembered_status(
            client, loc, JobState.SUCCEEDED, f"{len(succeeded)} of its pods succeeded ({needed} needed)"
        )
    return None


def _remembered_status(
    client: KubernetesClient, loc: Locator, state: JobState, evidence: str, reason: str = ""
) -> JobStatus:
    raw = {JobState.SUCCEEDED: "Complete", JobState.FAILED: "Failed"}[state]
    if loc["kind"] == SPARK_APPLICATION.name:
        raw = {JobState.SUCCEEDED: "COMPLETED", JobState.FAILED: "FAILED"}[state]
    return JobStatus(
        state,
        raw,
        f"{client.describe(loc)} no longer exists (removed after it finished, e.g. by ttlSecondsAfterFinished); "
        f"the cluster remembers how it ended: {evidence}",
        tracking_url=client.console_link(loc),
        extra={"remembered": True, **({"reason": reason[:100]} if reason else {})},
    )


async def _events(client: KubernetesClient, conn: Connection, loc: Locator) -> list[Any] | None:
    """The Events about the object (by its uid); None when the identity may not list events."""
    what = f"list the events of {client.describe(loc)}"
    try:
        reply = await conn.call(
            "GET",
            EVENT.collection(loc["namespace"]),
            query=[("fieldSelector", f"involvedObject.uid={loc['uid']}")],
            what=what,
        )
    except AuthError as exc:
        if exc.status == 403:
            return None
        raise
    items = decode(reply.body, EventList, what=what).items or []
    return [e for e in items if e.involvedObject.uid == loc["uid"]]


async def _owned_pods(client: KubernetesClient, conn: Connection, loc: Locator) -> list[EvidencePod] | None:
    """The pods the object ran (a Job's by its controller-uid, a SparkApplication's driver); None: forbidden."""
    uid = loc["uid"]
    if loc["kind"] == JOB.name:
        selector = f"controller-uid={uid}"
    else:
        selector = f"sparkoperator.k8s.io/app-name={loc['name']},spark-role=driver"
    what = f"list the pods of {client.describe(loc)}"
    try:
        reply = await conn.call("GET", POD.collection(loc["namespace"]), query=[("labelSelector", selector)], what=what)
    except AuthError as exc:
        if exc.status == 403:
            return None
        raise
    pods = decode(reply.body, PodList, what=what).items or []
    return [p for p in pods if _owned_by(p, uid)]


def _owned_by(pod: EvidencePod, uid: str) -> bool:
    labels = pod.metadata.labels or {}
    if uid in (labels.get("controller-uid"), labels.get("batch.kubernetes.io/controller-uid")):
        return True
    return any(ref.uid == uid for ref in pod.metadata.ownerReferences or ())
