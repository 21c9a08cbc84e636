"""The Kubernetes client: batch Jobs, Pods and SparkApplications, adopted by name and watched, not polled.

One module per concern: ``objects`` (kinds, names, labels, the spec), ``schemas`` (what is read, typed),
``status`` (what an object's status means), ``errors`` (the apiserver's refusals), ``config`` and ``api`` (which
cluster, and the connection to it), ``listwatch`` and ``watch`` (the shared list+watch cache), ``calls``,
``diagnosis`` (why a pod failed), ``evidence`` (lost is proven) and ``client`` (the
:class:`~durable_jobs.clients.base.JobClient`). The hook imports this package in a thread, at the first
connection fetch: nothing heavy is imported on the triggerer's event loop, and kubernetes_asyncio only when the
first connection loads (:mod:`~durable_jobs.clients.kubernetes.api`).
"""

from durable_jobs.clients.kubernetes.api import close_kube_connections
from durable_jobs.clients.kubernetes.client import KubernetesClient
from durable_jobs.clients.kubernetes.config import PROPAGATION_POLICIES, SYSTEM, KubernetesConfig
from durable_jobs.clients.kubernetes.errors import KubeApiError, ResourceExpired, api_error
from durable_jobs.clients.kubernetes.objects import (
    COMPLETIONS_ANNOTATION,
    JOB,
    KINDS,
    MANAGED_LABEL,
    POD,
    SPARK_APPLICATION,
    TOKEN_LABEL,
    WATCH_SELECTOR,
    Kind,
    KubeObject,
    identity_metadata,
    label_value,
    matches_token,
    object_name,
    to_wire,
)
from durable_jobs.clients.kubernetes.schemas import PodObject
from durable_jobs.clients.kubernetes.status import job_status, normalize, pod_status, spark_application_status

__all__ = [
    "COMPLETIONS_ANNOTATION",
    "JOB",
    "KINDS",
    "MANAGED_LABEL",
    "POD",
    "PROPAGATION_POLICIES",
    "SPARK_APPLICATION",
    "SYSTEM",
    "TOKEN_LABEL",
    "WATCH_SELECTOR",
    "Kind",
    "KubeApiError",
    "KubeObject",
    "KubernetesClient",
    "KubernetesConfig",
    "PodObject",
    "ResourceExpired",
    "api_error",
    "close_kube_connections",
    "identity_metadata",
    "job_status",
    "label_value",
    "matches_token",
    "normalize",
    "object_name",
    "pod_status",
    "spark_application_status",
    "to_wire",
]
