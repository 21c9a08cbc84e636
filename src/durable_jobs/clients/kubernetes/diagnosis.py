"""Why a Kubernetes job failed: the failed pod's reason, its containers' terminations, and its last log lines.

Why it exists: a Job's status says ``BackoffLimitExceeded``, a pod's says ``Failed``; what the user needs is the
container that ended badly (``OOMKilled``, an exit code) and the end of its log. The pod and its logs are read
once per failed object (:meth:`~durable_jobs.clients.kubernetes.api.Connection.diagnosis`), never on every poll,
and the message is cut keeping its head (the reason) and its tail (the last log lines).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from durable_jobs.clients.base import Locator
from durable_jobs.clients.kubernetes.calls import get_object
from durable_jobs.clients.kubernetes.errors import KubeApiError
from durable_jobs.clients.kubernetes.objects import (
    DNS_SUBDOMAIN_RE,
    JOB,
    KINDS,
    POD,
    SPARK_APPLICATION,
    SPARK_DRIVER_CONTAINER,
)
from durable_jobs.clients.kubernetes.schemas import EvidencePod, JobObject, PodList, SparkApplicationObject, decode
from durable_jobs.clients.kubernetes.status import describe_terminations
from durable_jobs.errors import DurableJobError
from durable_jobs.messages import MESSAGE_LIMIT
from durable_jobs.status import JobState, JobStatus

if TYPE_CHECKING:
    from durable_jobs.clients.kubernetes.api import Connection
    from durable_jobs.clients.kubernetes.client import KubernetesClient

MAX_MESSAGE = MESSAGE_LIMIT  # characters of a failure message (reason + log tail), cut here keeping the tail
LOG_LIMIT_BYTES = 64 * 1024


async def finish(client: KubernetesClient, conn: Connection, loc: Locator, status: JobStatus, obj: Any) -> JobStatus:
    """``status``, with the diagnosis as its message when it is a failure (read once per object)."""
    if status.state is not JobState.FAILED:
        return status
    try:
        message = await conn.diagnosis(loc["uid"], lambda: _diagnose(client, conn, loc, status, obj))
    except DurableJobError as exc:
        message = f"{status.message}\n(the failed pod's logs are unavailable: {exc})"
    return dataclasses.replace(status, message=message)


async def _diagnose(client: KubernetesClient, conn: Connection, loc: Locator, status: JobStatus, obj: Any) -> str:
    parts = [status.message] if status.message else []
    try:
        pod, container = await _failed_pod(client, conn, loc, obj)
        if pod is not None:
            pod_name = pod.metadata.name
            if loc["kind"] != POD.name:
                st = pod.status
                summary = "; ".join(
                    p
                    for p in (
                        (st.reason or "") if st else "",
                        (st.message or "") if st else "",
                        describe_terminations(st),
                    )
                    if p
                )
                parts.append(f"pod {pod_name}: {summary or (st.phase if st else '')}")
            if container and client.config.log_tail_lines:
                logs = await _log_tail(client, conn, loc["namespace"], pod_name, container)
                parts.append(f"--- last {client.config.log_tail_lines} log lines of {pod_name}/{container} ---\n{logs}")
    except DurableJobError as exc:
        parts.append(f"(the failed pod's logs are unavailable: {exc})")
    text = "\n".join(parts)
    # keep the head (the reason) and the tail (the last log lines): the middle goes first
    return text if len(text) <= MAX_MESSAGE else text[:600] + "\n[...]\n" + text[-(MAX_MESSAGE - 610) :]


async def _failed_pod(
    client: KubernetesClient, conn: Connection, loc: Locator, obj: Any
) -> tuple[EvidencePod | None, str | None]:
    kind, namespace, name = KINDS[loc["kind"]], loc["namespace"], loc["name"]
    pod: EvidencePod | None
    if kind is POD:
        pod = await get_object(conn, POD, namespace, name, EvidencePod)
    elif kind is JOB:
        job = obj if isinstance(obj, JobObject) else await get_object(conn, JOB, namespace, name, JobObject)
        if job is None:
            return None, None
        match = (job.spec.selector.matchLabels if job.spec and job.spec.selector else None) or {}
        if not match:
            return None, None
        what = f"list the pods of {client.describe(loc)}"
        reply = await conn.call(
            "GET",
            POD.collection(namespace),
            query=[("labelSelector", ",".join(f"{k}={v}" for k, v in sorted(match.items())))],
            what=what,
        )
        pods = decode(reply.body, PodList, what=what).items or []
        failed = [p for p in pods if p.status is not None and p.status.phase == "Failed"] or pods
        failed.sort(key=lambda p: p.metadata.creationTimestamp or "")
        pod = failed[-1] if failed else None
    else:
        app = obj if isinstance(obj, SparkApplicationObject) else None
        driver = (app.status.driverInfo.podName if app and app.status and app.status.driverInfo else None) or (
            f"{name}-driver"
        )
        pod = await get_object(conn, POD, namespace, driver, EvidencePod) if DNS_SUBDOMAIN_RE.match(driver) else None
    if pod is None:
        return None, None
    st = pod.status
    for cs in ((st.containerStatuses if st else None) or ())[:32]:
        term = cs.state.terminated if cs.state else None
        if term is not None and term.exitCode not in (0, None) and cs.name:
            return pod, cs.name
    if kind is SPARK_APPLICATION:
        return pod, SPARK_DRIVER_CONTAINER
    containers = (pod.spec.containers if pod.spec else None) or []
    return pod, (containers[0].name if containers and containers[0].name else None)


async def _log_tail(client: KubernetesClient, conn: Connection, namespace: str, pod: str, container: str) -> str:
    what = f"read the logs of {namespace}/{pod}/{container}"
    try:
        reply = await conn.call(
            "GET",
            f"{POD.item(namespace, pod)}/log",
            query=[
                ("container", container),
                ("limitBytes", str(LOG_LIMIT_BYTES)),
                ("tailLines", str(client.config.log_tail_lines)),
            ],
            accept="text/plain",
            what=what,
        )
    except KubeApiError as exc:
        return f"(no logs: {exc})"
    return reply.body[-LOG_LIMIT_BYTES:].decode("utf-8", "replace").rstrip("\n")
