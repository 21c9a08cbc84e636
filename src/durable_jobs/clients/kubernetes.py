"""Kubernetes batch Jobs, Pods and SparkApplications, adopted by name and watched, not polled.

Why it exists: KubernetesPodOperator gives pods random names and builds a new API client (a TLS handshake)
for every call; KubernetesJobOperator and SparkKubernetesOperator create a new object on every retry. Here:

* **the name is the token.** Every object is named ``<prefix>-<token>`` (DNS-1123, at most 63 characters;
  tokens are ``dj`` + 20 lower-case hex characters) and labelled with it, so create is idempotent: a create
  answered 409 AlreadyExists reads the object and adopts it when its token label matches (anything else is
  a name collision, reported as such), and ``find`` after a crash is one GET by name. No window is left
  open between submit and persist;
* **one ApiClient per connection and event loop** (one aiohttp session and TLS context), shared by every
  task and trigger, with a timeout on every request (kubernetes_asyncio's default is infinite) and
  credentials reloaded on expiry or on a 401 (exec plugins, token files, in-cluster tokens);
* **watched, not polled**: ``statuses()`` answers from one shared list+watch cache per (namespace, kind)
  (:mod:`durable_jobs.clients.kubernetes_watch`), selected by the fixed label ``durable-jobs.io/managed``.
  A poll tick costs no request; a job missing from the cache is confirmed with a GET (404: lost).

Requests go through kubernetes_asyncio's ``ApiClient.call_api`` with ``_preload_content=False`` and plain
JSON: the typed APIs would deserialize every object into models, which is most of the CPU a status poll
costs (apache/airflow#40360), and the client needs a handful of fields.

Statuses, normalized:

* Job: condition ``Complete`` is success; ``Failed`` (``BackoffLimitExceeded``, ``DeadlineExceeded``,
  ``PodFailurePolicy``...) is failure; ``SuccessCriteriaMet``/``FailureTarget`` (pods still terminating)
  and ``Suspended`` are not final;
* Pod: phases, with the container's reason (``OOMKilled``, exit code) and the pod's (``Evicted``).
  ``ErrImagePull``/``ImagePullBackOff`` stay *pending*, never failed: the pull may still succeed (a registry
  outage, a secret added later), and calling a pod that may still start "failed" would let the next
  generation run beside it. The job's absolute deadline bounds the wait;
* SparkApplication: ``status.applicationState.state``. ``FAILING`` and ``SUBMISSION_FAILED`` (with a
  restart policy that retries) are not final, because the spark-operator may still rerun the application.

A failure's message carries the failed pod's reason and the last log lines (a bounded ``tailLines``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import dataclasses
import datetime
import functools
import hashlib
import json
import logging
import os
import re
import time
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import quote

import aiohttp
from aiohttp.http_exceptions import LineTooLong
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.config.config_exception import ConfigException

from durable_jobs import __version__
from durable_jobs.clients.base import JobClient, Locator, locator_key
from durable_jobs.clients.kubernetes_watch import (
    CachedObject,
    Informer,
    RelistRequired,
    ResourceExpired,
    deleted_status,
    hand_over,
)
from durable_jobs.errors import AuthError, DurableJobError, PermanentError, RecordError, TransientError
from durable_jobs.status import JobState, JobStatus
from durable_jobs.transport.backoff import retrying
from durable_jobs.transport.http import TRANSIENT_STATUSES, on_close_sessions, parse_retry_after

log = logging.getLogger(__name__)

SYSTEM = "kubernetes"
LABEL_PREFIX = "durable-jobs.io/"
MANAGED_LABEL = LABEL_PREFIX + "managed"  # the shared watch's selector: every object this library creates
TOKEN_LABEL = LABEL_PREFIX + "token"
DAG_LABEL = LABEL_PREFIX + "dag-id"
TASK_LABEL = LABEL_PREFIX + "task-id"
RUN_LABEL = LABEL_PREFIX + "run-id"
MAP_INDEX_LABEL = LABEL_PREFIX + "map-index"
GENERATION_LABEL = LABEL_PREFIX + "generation"
WATCH_SELECTOR = f"{MANAGED_LABEL}=true"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
PROPAGATION_POLICIES = ("Background", "Foreground", "Orphan")
MAX_MESSAGE = 8000  # characters of a failure message (reason + log tail)
LOG_LIMIT_BYTES = 64 * 1024

_TOKEN_RE = re.compile(r"^dj[0-9a-f]{20}$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_UID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


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
KINDS: dict[str, Kind] = {k.name: k for k in (JOB, POD, SPARK_APPLICATION)}
SPARK_DRIVER_CONTAINER = "spark-kubernetes-driver"


# --- names and labels --------------------------------------------------------------------------------------


def check_token(token: Any) -> str:
    if not isinstance(token, str) or not _TOKEN_RE.match(token):
        raise RecordError(f"invalid durable_jobs token {token!r}")
    return token


def object_name(prefix: str, token: str, max_length: int = 63) -> str:
    """``<sanitized prefix>-<token>``: deterministic, a DNS-1123 label that starts with a letter."""
    check_token(token)
    base = re.sub(r"[^a-z0-9-]+", "-", prefix.lower())
    base = re.sub(r"-{2,}", "-", base).lstrip("-0123456789")  # DNS-1035 (Service names): a letter first
    base = base[: max(0, max_length - len(token) - 1)].rstrip("-")
    return f"{base}-{token}" if base else token


def label_value(value: str) -> str:
    """``value`` as a valid label value; a changed or shortened value gets a hash suffix, so it stays distinct."""
    if len(value) <= 63 and (value == "" or _LABEL_NAME_RE.match(value)):
        return value
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "_", value)[:52].strip("_.-")
    digest = hashlib.sha256(value.encode()).hexdigest()[:10]
    return f"{clean}-{digest}" if clean else digest


def check_labels(labels: Mapping[str, Any], what: str = "label") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in labels.items():
        prefix, _, name = str(key).rpartition("/")
        if (prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN_RE.match(prefix))) or not (
            len(name) <= 63 and _LABEL_NAME_RE.match(name)
        ):
            raise ValueError(f"invalid {what} key {key!r}")
        if what == "label" and not (
            isinstance(value, str) and len(value) <= 63 and (value == "" or _LABEL_NAME_RE.match(value))
        ):
            raise ValueError(f"invalid label value {value!r} for {key!r} (at most 63 of [A-Za-z0-9_.-])")
        out[str(key)] = str(value)
    return out


def identity_metadata(
    *, dag_id: str, task_id: str, run_id: str, map_index: int = -1, generation: int | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """Labels (sanitized, for selectors) and annotations (exact) naming the task that owns an object."""
    labels = {DAG_LABEL: label_value(dag_id), TASK_LABEL: label_value(task_id), RUN_LABEL: label_value(run_id)}
    annotations = {DAG_LABEL: dag_id, TASK_LABEL: task_id, RUN_LABEL: run_id}
    if map_index >= 0:
        labels[MAP_INDEX_LABEL] = annotations[MAP_INDEX_LABEL] = str(map_index)
    if generation is not None:
        labels[GENERATION_LABEL] = annotations[GENERATION_LABEL] = str(generation)
    return labels, annotations


def to_wire(obj: Any) -> Any:
    """Plain data or a kubernetes model (``V1Job``...) as the JSON the apiserver expects (camelCase keys)."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, Mapping):
        return {str(k): to_wire(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_wire(v) for v in obj]
    if isinstance(obj, (datetime.datetime, datetime.date)):
        return obj.isoformat()
    types, attribute_map = getattr(obj, "openapi_types", None), getattr(obj, "attribute_map", None)
    if isinstance(types, dict) and isinstance(attribute_map, dict):
        return {attribute_map[a]: to_wire(getattr(obj, a)) for a in types if getattr(obj, a) is not None}
    raise TypeError(f"cannot send a {type(obj).__name__} to the apiserver")


# --- the spec ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KubeObject:
    """One object to create: a full manifest whose name the client derives from the protocol's token.

    ``manifest`` is a dict or a kubernetes model, with or without ``apiVersion``/``kind``; it must not name
    itself (``metadata.name``/``generateName``): ``name`` is the prefix of the derived name.
    """

    kind: str
    manifest: Mapping[str, Any]
    namespace: str | None = None
    name: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        kind = KINDS.get(self.kind)
        if kind is None:
            raise ValueError(f"unknown kind {self.kind!r}; one of {', '.join(KINDS)}")
        body = to_wire(self.manifest)
        if not isinstance(body, dict):
            raise ValueError(f"a {kind.name} manifest must be a mapping, got {type(body).__name__}")
        if body.get("kind", kind.name) != kind.name or body.get("apiVersion", kind.api_version) != kind.api_version:
            raise ValueError(
                f"the manifest is a {body.get('apiVersion')}/{body.get('kind')}, not a {kind.api_version}/{kind.name}"
            )
        meta = body.get("metadata") or {}
        if meta.get("name") or meta.get("generateName"):
            raise ValueError(
                "the object's name is derived from the durable_jobs token (one name per task and generation, so a "
                "retry finds what a crashed try created); remove metadata.name/generateName and pass name= as "
                "its prefix"
            )
        namespace = self.namespace or meta.get("namespace") or None
        if self.namespace and meta.get("namespace") and meta["namespace"] != self.namespace:
            raise ValueError(f"namespace {self.namespace!r} contradicts the manifest's {meta['namespace']!r}")
        if namespace is not None and not (len(namespace) <= 63 and _DNS_LABEL_RE.match(namespace)):
            raise ValueError(f"invalid namespace {namespace!r}")
        check_labels({**(meta.get("labels") or {}), **self.labels})
        check_labels({**(meta.get("annotations") or {}), **self.annotations}, "annotation")
        spec = body.get("spec")
        if not isinstance(spec, dict):
            raise ValueError(f"a {kind.name} manifest needs a spec")
        if kind is POD:
            _check_pod_spec(spec, "spec")
            if spec.get("restartPolicy", "Never") != "Never":
                raise ValueError(
                    f"a pod run as a job needs restartPolicy Never: with {spec['restartPolicy']} a failing container "
                    "restarts forever and the pod never ends (use a Job for retries inside the cluster)"
                )
        elif kind is JOB:
            template = spec.get("template")
            if not isinstance(template, dict) or not isinstance(template.get("spec"), dict):
                raise ValueError("a Job manifest needs spec.template.spec")
            _check_pod_spec(template["spec"], "spec.template.spec")
            if template["spec"].get("restartPolicy", "Never") not in ("Never", "OnFailure"):
                raise ValueError("a Job's pods need restartPolicy Never or OnFailure")
            if spec.get("manualSelector"):
                raise ValueError("manualSelector is not supported: the Job controller's own selector finds its pods")
        object.__setattr__(self, "manifest", body)
        object.__setattr__(self, "namespace", namespace)
        object.__setattr__(self, "labels", dict(self.labels))
        object.__setattr__(self, "annotations", dict(self.annotations))

    @property
    def kind_info(self) -> Kind:
        return KINDS[self.kind]

    def object_name(self, token: str) -> str:
        return object_name(self.name, token, self.kind_info.max_name)

    def render(self, token: str, namespace: str) -> dict[str, Any]:
        """The body to create: named and labelled for ``token``."""
        kind = self.kind_info
        body: dict[str, Any] = copy.deepcopy(dict(self.manifest))
        body["apiVersion"], body["kind"] = kind.api_version, kind.name
        meta = body.setdefault("metadata", {})
        meta["name"] = self.object_name(token)
        meta["namespace"] = namespace
        meta["labels"] = {**(meta.get("labels") or {}), **self.labels, MANAGED_LABEL: "true", TOKEN_LABEL: token}
        if self.annotations or meta.get("annotations"):
            meta["annotations"] = {**(meta.get("annotations") or {}), **self.annotations}
        # the token (not the "managed" label: pods of a Job are not watched) on what the object creates
        spec = body["spec"]
        if kind is POD:
            spec.setdefault("restartPolicy", "Never")
        elif kind is JOB:
            template = spec["template"]
            template["spec"].setdefault("restartPolicy", "Never")
            tmeta = template.setdefault("metadata", {})
            tmeta["labels"] = {**(tmeta.get("labels") or {}), **self.labels, TOKEN_LABEL: token}
        elif kind is SPARK_APPLICATION:
            for role in ("driver", "executor"):
                part = spec.setdefault(role, {})
                part["labels"] = {**(part.get("labels") or {}), TOKEN_LABEL: token}
        return body


def _check_pod_spec(spec: Mapping[str, Any], where: str) -> None:
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise ValueError(f"{where}.containers must list at least one container")
    for c in containers:
        if not isinstance(c, dict) or not c.get("name") or not c.get("image"):
            raise ValueError(f"every container in {where}.containers needs a name and an image")


# --- normalized status -------------------------------------------------------------------------------------


def job_status(obj: Mapping[str, Any]) -> JobStatus:
    status = obj.get("status") or {}
    true = {c.get("type"): c for c in status.get("conditions") or () if str(c.get("status")) == "True"}
    counts = (
        f"active {status.get('active') or 0}, succeeded {status.get('succeeded') or 0}, "
        f"failed {status.get('failed') or 0}"
    )
    if "Complete" in true:
        return JobStatus(JobState.SUCCEEDED, "Complete", counts)
    if "Failed" in true:
        cond = true["Failed"]
        reason = str(cond.get("reason") or "Failed")
        return JobStatus(
            JobState.FAILED,
            "Failed",
            f"{reason}: {cond.get('message') or 'the Job failed'} ({counts})",
            extra={"reason": reason},
        )
    if "FailureTarget" in true:
        reason = str(true["FailureTarget"].get("reason") or "")
        return JobStatus(JobState.RUNNING, "FailureTarget", f"failing ({reason}): its pods are terminating")
    if "SuccessCriteriaMet" in true:
        return JobStatus(JobState.RUNNING, "SuccessCriteriaMet", "succeeding: its pods are terminating")
    if "Suspended" in true:
        return JobStatus(JobState.PENDING, "Suspended", "the Job is suspended (spec.suspend)")
    if status.get("active") or status.get("ready"):
        return JobStatus(JobState.RUNNING, "Running", counts)
    return JobStatus(JobState.PENDING, "Pending", counts)


def _container_statuses(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())]


def describe_terminations(status: Mapping[str, Any]) -> str:
    """``container main: OOMKilled (exit code 137)`` for each container that ended badly."""
    parts = []
    for cs in _container_statuses(status):
        term = ((cs.get("state") or {}).get("terminated")) or ((cs.get("lastState") or {}).get("terminated"))
        if term and (term.get("exitCode") not in (0, None) or term.get("reason") not in (None, "Completed")):
            detail = f"container {cs.get('name')}: {term.get('reason') or 'Error'} (exit code {term.get('exitCode')})"
            if term.get("message"):
                detail += f": {str(term['message']).strip()[:300]}"
            parts.append(detail)
    return "; ".join(parts)


def pod_status(obj: Mapping[str, Any]) -> JobStatus:
    status = obj.get("status") or {}
    phase = str(status.get("phase") or "Pending")
    deleting = " (being deleted)" if (obj.get("metadata") or {}).get("deletionTimestamp") else ""
    if phase == "Succeeded":
        return JobStatus(JobState.SUCCEEDED, "Succeeded")
    if phase == "Failed":
        reason = str(status.get("reason") or "")
        parts = [f"{reason}: {status.get('message') or ''}".strip(": ")] if reason or status.get("message") else []
        if terms := describe_terminations(status):
            parts.append(terms)
        return JobStatus(
            JobState.FAILED, reason or "Failed", "; ".join(parts) or "the pod failed", extra={"reason": reason}
        )
    if phase == "Unknown":
        return JobStatus(JobState.UNKNOWN, "Unknown", str(status.get("message") or "the pod's node stopped reporting"))
    waiting = [
        (cs.get("name"), (cs.get("state") or {}).get("waiting") or {})
        for cs in _container_statuses(status)
        if (cs.get("state") or {}).get("waiting")
    ]
    if phase == "Running":
        message = "; ".join(f"container {n}: {w.get('reason')}" for n, w in waiting if w.get("reason"))
        return JobStatus(JobState.RUNNING, "Running", message + deleting)
    for name, w in waiting:
        reason = str(w.get("reason") or "")
        if reason and reason not in ("ContainerCreating", "PodInitializing"):
            # ErrImagePull, ImagePullBackOff, CreateContainerConfigError...: may still recover, never failed
            return JobStatus(
                JobState.PENDING, reason, f"container {name}: {reason}: {w.get('message') or ''}".rstrip(": ")
            )
    for cond in status.get("conditions") or ():
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            reason = str(cond.get("reason") or "Unschedulable")
            return JobStatus(JobState.PENDING, reason, str(cond.get("message") or "") + deleting)
    return JobStatus(
        JobState.PENDING, "Pending", "; ".join(f"container {n}: {w.get('reason')}" for n, w in waiting) + deleting
    )


_SPARK_STATES = {
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


def spark_application_status(obj: Mapping[str, Any]) -> JobStatus:
    status = obj.get("status") or {}
    app = status.get("applicationState") or {}
    raw = str(app.get("state") or "")
    state = _SPARK_STATES.get(raw, JobState.UNKNOWN)
    restart = str((((obj.get("spec") or {}).get("restartPolicy")) or {}).get("type") or "Never")
    if raw == "SUBMISSION_FAILED" and restart != "Never":
        state = JobState.PENDING  # the operator retries the submission (onSubmissionFailureRetries)
    driver = status.get("driverInfo") or {}
    extra = {
        k: v
        for k, v in {
            "spark_application_id": status.get("sparkApplicationId"),
            "driver_pod": driver.get("podName"),
            "submission_attempts": status.get("submissionAttempts"),
        }.items()
        if v
    }
    ui = driver.get("webUIIngressAddress")
    url = None if not ui else (ui if "://" in str(ui) else f"http://{ui}")
    return JobStatus(state, raw or "NEW", str(app.get("errorMessage") or ""), tracking_url=url, extra=extra)


_NORMALIZERS: dict[str, Callable[[Mapping[str, Any]], JobStatus]] = {
    JOB.name: job_status,
    POD.name: pod_status,
    SPARK_APPLICATION.name: spark_application_status,
}


def normalize(kind: str, obj: Mapping[str, Any]) -> JobStatus:
    return _NORMALIZERS[kind](obj)


# --- apiserver errors --------------------------------------------------------------------------------------


class KubeApiError(PermanentError):
    """The apiserver refused a request with a ``Status``; ``reason`` is its reason (``AlreadyExists``...)."""

    def __init__(self, message: str, *, status: int, reason: str = "", details: Mapping[str, Any] | None = None):
        super().__init__(message, status=status)
        self.reason = reason
        self.details = dict(details or {})


def parse_status(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) and data.get("kind") == "Status" else {}


def api_error(status: int, body: bytes, headers: Mapping[str, str], what: str) -> DurableJobError:
    """The error for a non-2xx answer, from its ``Status`` body (or the start of whatever a proxy sent)."""
    st = parse_status(body)
    reason = str(st.get("reason") or "")
    detail = st.get("message") if st else " ".join(body[:300].decode("utf-8", "replace").split())
    text = f"{what}: HTTP {status}{' ' + reason if reason else ''}: {detail}"
    if status == 410:
        return ResourceExpired(text, status=status)
    if status in TRANSIENT_STATUSES:
        return TransientError(text, retry_after=parse_retry_after(headers.get("Retry-After")), status=status)
    if status == 401:
        return AuthError(text + " (the apiserver refused the credentials)", status=status)
    if status == 403:
        return AuthError(text + " (RBAC: the connection's identity may not do this)", status=status)
    return KubeApiError(text, status=status, reason=reason, details=st.get("details"))


# --- configuration -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KubernetesConfig:
    """How to reach one cluster. Credentials (``token``, ``kubeconfig`` content) never appear in a repr or log.

    One source: ``in_cluster``, a ``kubeconfig`` (content), a ``kubeconfig_path``, or ``host`` (+ ``token``,
    ``ca_file``/``ca_data``). With none, ``$KUBECONFIG`` or ``~/.kube/config`` is read.
    """

    kubeconfig_path: str | None = None
    kubeconfig: Mapping[str, Any] | None = field(default=None, repr=False)
    context: str | None = None
    in_cluster: bool = False
    host: str | None = None
    token: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    ca_data: str | None = field(default=None, repr=False)
    verify_ssl: bool = True
    namespace: str | None = None  # default: the kubeconfig context's, the service account's, else "default"
    timeout: float = 30.0  # seconds per request
    connect_timeout: float = 10.0
    watch: bool = True  # False: one GET per job per poll (when list/watch is not allowed)
    watch_timeout: int = 300  # timeoutSeconds of each watch request
    resync_interval: float = 600.0
    idle_timeout: float = 300.0
    delete_propagation_policy: str = "Background"
    delete_grace_period_seconds: int | None = None
    log_tail_lines: int = 50
    console_url: str | None = None  # e.g. "https://console/ns/{namespace}/{plural}/{name}"
    credential_ttl: float = 300.0  # exec plugins that state no expiry are re-run this often
    service_account_dir: str = SERVICE_ACCOUNT_DIR

    def __post_init__(self) -> None:
        sources = [bool(self.in_cluster), self.kubeconfig is not None, bool(self.kubeconfig_path), bool(self.host)]
        if sum(sources) > 1:
            raise ValueError("give one of in_cluster, kubeconfig (content), kubeconfig_path or host, not several")
        if self.host and not self.host.startswith(("https://", "http://")):
            raise ValueError(f"host must be the apiserver URL (https://...), got {self.host!r}")
        if min(self.timeout, self.connect_timeout, self.watch_timeout, self.resync_interval, self.idle_timeout) <= 0:
            raise ValueError("timeouts and intervals must be positive")
        if self.delete_propagation_policy not in PROPAGATION_POLICIES:
            raise ValueError(f"delete_propagation_policy must be one of {', '.join(PROPAGATION_POLICIES)}")
        if not 0 <= self.log_tail_lines <= 10_000:
            raise ValueError("log_tail_lines must be between 0 and 10000")
        if self.namespace is not None and not _DNS_LABEL_RE.match(self.namespace):
            raise ValueError(f"invalid namespace {self.namespace!r}")

    @property
    def key(self) -> Hashable:
        """Equal for equal configurations; a digest, so that no credential is kept in the key itself."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:32]
        return (SYSTEM, digest)

    def describe_source(self) -> str:
        if self.in_cluster:
            return "the in-cluster service account"
        if self.kubeconfig is not None:
            return "the connection's kubeconfig" + (f" (context {self.context})" if self.context else "")
        if self.host:
            return self.host
        path = self.kubeconfig_path or os.environ.get("KUBECONFIG") or "~/.kube/config"
        return f"kubeconfig {path}" + (f" (context {self.context})" if self.context else "")

    def direct_kubeconfig(self) -> dict[str, Any]:
        """``host``/``token``/``ca_*`` as a kubeconfig, so that one loader (and its TLS handling) serves all."""
        cluster: dict[str, Any] = {"server": self.host}
        if self.ca_data:
            pem = self.ca_data.strip()
            cluster["certificate-authority-data"] = base64.b64encode(pem.encode()).decode() if "BEGIN" in pem else pem
        elif self.ca_file:
            cluster["certificate-authority"] = self.ca_file
        if not self.verify_ssl:
            cluster["insecure-skip-tls-verify"] = True
        user = {"token": self.token} if self.token else {}
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "cluster", "cluster": cluster}],
            "users": [{"name": "user", "user": user}],
            "contexts": [{"name": "durable-jobs", "context": {"cluster": "cluster", "user": "user"}}],
            "current-context": "durable-jobs",
        }


# --- one connection per configuration and event loop ------------------------------------------------------


@dataclass(slots=True)
class _Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self, what: str) -> dict[str, Any]:
        try:
            data = json.loads(self.body)
        except ValueError as exc:
            raise TransientError(f"{what}: the answer is not JSON: {self.body[:200]!r}") from exc
        if not isinstance(data, dict):
            raise TransientError(f"{what}: the answer is a {type(data).__name__}, not an object")
        return data


class _Connection:
    """One ``ApiClient`` (one aiohttp session and TLS context) per configuration per event loop.

    Credentials: an exec plugin's token is renewed before its ``expirationTimestamp`` (or every
    ``credential_ttl`` when it states none); any 401 reloads the credentials once (exec plugin, token file,
    in-cluster token) and repeats the request.
    """

    def __init__(self, config: KubernetesConfig) -> None:
        self.config = config
        self.api: Any = None  # kubernetes_asyncio.client.ApiClient
        self.default_namespace = "default"
        self.requests: Counter[str] = Counter()  # by "VERB kind" (tests and benchmark)
        self.informers: dict[tuple[str, str], Informer] = {}
        self.diagnoses: dict[str, asyncio.Task[str]] = {}
        self._cfg: Any = None  # kubernetes_asyncio.client.Configuration
        self._loader: Any = None
        self._exec = False
        self._credentials_at = 0.0
        self._lock = asyncio.Lock()
        self._refresh_lock = asyncio.Lock()

    async def ready(self) -> Any:
        if self.api is None:
            async with self._lock:
                if self.api is None:
                    cfg = k8s_client.Configuration()  # type: ignore[no-untyped-call]
                    await self._load(cfg)
                    if not self.config.verify_ssl:
                        cfg.verify_ssl = False
                    self._cfg = cfg
                    api = k8s_client.ApiClient(configuration=cfg)  # type: ignore[no-untyped-call]
                    api.user_agent = f"airflow-durable-jobs/{__version__}"
                    self.api = api
        return self.api

    async def _load(self, cfg: Any) -> None:
        c = self.config
        try:
            if c.in_cluster:
                self._load_in_cluster(cfg)
                self.default_namespace = _read_namespace_file(c.service_account_dir) or self.default_namespace
            else:
                source = c.kubeconfig if c.kubeconfig is not None else c.direct_kubeconfig() if c.host else None
                if source is not None:
                    self._loader = await k8s_config.load_kube_config_from_dict(
                        config_dict=copy.deepcopy(dict(source)), context=c.context, client_configuration=cfg
                    )
                else:
                    self._loader = await k8s_config.load_kube_config(
                        config_file=c.kubeconfig_path, context=c.context, client_configuration=cfg, persist_config=False
                    )
                context = (self._loader.current_context or {}).get("context") or {}
                self.default_namespace = str(context.get("namespace") or self.default_namespace)
                self._exec = bool(self._loader._user is not None and "exec" in self._loader._user)
        except (ConfigException, OSError, KeyError, ValueError, TypeError, AssertionError) as exc:
            raise PermanentError(
                f"cannot load the Kubernetes configuration from {c.describe_source()}: {exc!r}"
            ) from exc
        self._credentials_at = time.monotonic()
        if self._exec:
            cfg.refresh_api_key_hook = self._refresh_hook
        if c.namespace:
            self.default_namespace = c.namespace

    def _load_in_cluster(self, cfg: Any) -> None:
        directory = self.config.service_account_dir
        k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=cfg,
            token_filename=os.path.join(directory, "token"),
            cert_filename=os.path.join(directory, "ca.crt"),
        )

    # credentials

    def _exec_expired(self) -> bool:
        expiry = getattr(self._loader, "exec_plugin_expiry", None)
        if isinstance(expiry, datetime.datetime):
            return expiry.timestamp() - 300 <= time.time()  # the loader's own 5-minute skew
        return time.monotonic() - self._credentials_at >= self.config.credential_ttl

    async def _refresh_hook(self, cfg: Any) -> None:
        """Called by kubernetes_asyncio before every request when the credentials come from an exec plugin."""
        if self._exec_expired():
            async with self._refresh_lock:
                if self._exec_expired():
                    await self._reload_exec(cfg)

    async def _reload_exec(self, cfg: Any) -> None:
        if hasattr(self._loader, "exec_plugin_expiry"):
            del self._loader.exec_plugin_expiry  # make the loader run the plugin again
        await self._loader.load_from_exec_plugin()
        if getattr(self._loader, "token", None):
            cfg.api_key["BearerToken"] = self._loader.token
        self._credentials_at = time.monotonic()
        log.info("Kubernetes credentials renewed by the exec plugin (%s)", self.config.describe_source())

    async def reload_after_401(self, sent_at: float) -> bool:
        """Reload the credentials after a 401 to a request sent at ``sent_at``; True when worth repeating it."""
        async with self._refresh_lock:
            if self._credentials_at > sent_at:
                return True  # reloaded by another request since this one was sent
            try:
                if self.config.in_cluster:
                    self._load_in_cluster(self._cfg)
                elif self._exec:
                    await self._reload_exec(self._cfg)
                elif self._loader is not None and self._loader._user is not None and "tokenFile" in self._loader._user:
                    self._loader._load_user_token()
                    self._cfg.api_key["BearerToken"] = self._loader.token
                else:
                    return False
            except (ConfigException, OSError) as exc:
                raise PermanentError(f"reloading the Kubernetes credentials failed: {exc!r}") from exc
            self._credentials_at = time.monotonic()
            return True

    # requests

    async def open(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        accept: str = "application/json",
        timeout: aiohttp.ClientTimeout | None = None,
        what: str,
    ) -> aiohttp.ClientResponse:
        """Send one request; the caller reads and releases the response. A 401 reloads credentials once."""
        api = await self.ready()
        timeout = timeout or aiohttp.ClientTimeout(total=self.config.timeout, sock_connect=self.config.connect_timeout)
        self.requests[_request_label(method, path, query)] += 1
        for attempt in (1, 2):
            sent_at = time.monotonic()
            try:
                resp: aiohttp.ClientResponse = await api.call_api(
                    path,
                    method,
                    query_params=list(query),
                    header_params={"Accept": accept, "Content-Type": "application/json"},
                    body=body,
                    auth_settings=["BearerToken"],
                    _preload_content=False,
                    _request_timeout=timeout,
                )
            except aiohttp.ClientSSLError as exc:
                raise PermanentError(
                    f"{what}: TLS with {self._cfg.host} failed ({exc}); check the CA (certificate-authority) of "
                    f"{self.config.describe_source()}"
                ) from exc
            except aiohttp.ClientConnectorError as exc:
                raise TransientError(
                    f"{what}: cannot connect to {self._cfg.host}: {exc.os_error or exc}", connect_failed=True
                ) from exc
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                raise TransientError(f"{what}: {type(exc).__name__} talking to {self._cfg.host}: {exc}") from exc
            except ConfigException as exc:  # the exec plugin failed while renewing the token
                raise PermanentError(f"{what}: renewing the Kubernetes credentials failed: {exc}") from exc
            if resp.status == 401 and attempt == 1 and await self.reload_after_401(sent_at):
                resp.release()
                continue
            return resp
        raise AssertionError("unreachable")

    async def call(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        accept: str = "application/json",
        what: str,
    ) -> _Reply:
        """One request, read whole; non-2xx answers raise the error their ``Status`` calls for."""
        resp = await self.open(method, path, query=query, body=body, accept=accept, what=what)
        try:
            data = await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise TransientError(f"{what}: {type(exc).__name__} reading the answer: {exc}") from exc
        finally:
            resp.release()
        if not 200 <= resp.status < 300:
            raise api_error(resp.status, data, resp.headers, what)
        return _Reply(resp.status, resp.headers, data)

    # shared watches and failure diagnoses

    def informer(self, kind: Kind, namespace: str) -> Informer:
        key = (kind.name, namespace)
        inf = self.informers.get(key)
        if inf is not None and (inf.running or (inf.forbidden and time.monotonic() - (inf.stopped_at or 0) < 600)):
            return inf
        c = self.config
        inf = Informer(
            _ListWatch(self, kind, namespace, WATCH_SELECTOR),
            functools.partial(normalize, kind.name),
            watch_timeout=c.watch_timeout,
            resync_interval=c.resync_interval,
            idle_timeout=c.idle_timeout,
            stale_after=max(60.0, 2 * c.timeout),
            on_stop=self._informer_stopped,
        )
        self.informers[key] = inf
        inf.start()
        return inf

    def _informer_stopped(self, inf: Informer) -> None:
        if inf.forbidden:
            return  # remembered for a while, so every poll does not list (and get refused) again
        for key, value in list(self.informers.items()):
            if value is inf:
                del self.informers[key]

    async def diagnosis(self, uid: str, make: Callable[[], Awaitable[str]]) -> str:
        """``make()`` once per failed object (its pod and logs are read once, not on every poll)."""
        task = self.diagnoses.get(uid)
        if task is None:
            while len(self.diagnoses) >= 1024:
                self.diagnoses.pop(next(iter(self.diagnoses)))
            task = self.diagnoses[uid] = asyncio.ensure_future(make())
        try:
            return await asyncio.shield(task)
        except Exception:
            self.diagnoses.pop(uid, None)
            raise

    async def close(self) -> None:
        for inf in list(self.informers.values()):
            await inf.stop()
        self.informers.clear()
        for task in self.diagnoses.values():
            task.cancel()
        self.diagnoses.clear()
        if self.api is not None:
            api, self.api = self.api, None
            await api.close()


class _ListWatch:
    """The :class:`~durable_jobs.clients.kubernetes_watch.WatchSource` of one namespace, kind and selector."""

    def __init__(self, conn: _Connection, kind: Kind, namespace: str, selector: str) -> None:
        self.conn, self.kind, self.namespace, self.selector = conn, kind, namespace, selector

    def describe(self) -> str:
        return f"{self.kind.plural} in {self.namespace} ({self.selector})"

    async def list_page(
        self, *, limit: int, continue_token: str | None, each: Callable[[Any], None]
    ) -> Mapping[str, Any]:
        query = [("labelSelector", self.selector), ("limit", str(limit))]
        if continue_token:
            query.append(("continue", continue_token))
        what = f"list {self.describe()}"
        reply = await self.conn.call("GET", self.kind.collection(self.namespace), query=query, what=what)
        page = reply.json(what)
        del reply  # the body goes before the objects are read
        return hand_over(page, each)

    @contextlib.asynccontextmanager
    async def open_stream(self, *, resource_version: str, timeout_seconds: int) -> AsyncIterator[AsyncIterator[bytes]]:
        what = f"watch {self.describe()}"
        query = [
            ("allowWatchBookmarks", "true"),
            ("labelSelector", self.selector),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", str(timeout_seconds)),
            ("watch", "true"),
        ]
        # no total timeout (it is a long request); a silent half-open connection ends after sock_read
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.conn.config.connect_timeout, sock_read=timeout_seconds + 30
        )
        resp = await self.conn.open(
            "GET", self.kind.collection(self.namespace), query=query, timeout=timeout, what=what
        )
        try:
            if resp.status != 200:
                try:
                    body = await resp.read()
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    raise TransientError(f"{what}: HTTP {resp.status} and an unreadable body: {exc}") from exc
                raise api_error(resp.status, body, resp.headers, what)
            yield _event_lines(resp, what)
        finally:
            resp.release()  # a stream not read to its end closes its connection


async def _event_lines(resp: aiohttp.ClientResponse, what: str) -> AsyncIterator[bytes]:
    while True:
        try:
            line = await resp.content.readline()
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            raise TransientError(f"{what}: the stream was cut ({type(exc).__name__}: {exc})") from exc
        except asyncio.TimeoutError as exc:
            raise TransientError(f"{what}: nothing received for longer than the read timeout") from exc
        except (ValueError, LineTooLong) as exc:
            raise RelistRequired(f"{what}: an event was larger than the client reads ({exc})") from exc
        if not line:
            return
        if line.strip():
            yield line


def _request_label(method: str, path: str, query: Sequence[tuple[str, str]]) -> str:
    """``GET pods``, ``LIST jobs``, ``WATCH jobs``, ``GET pods/log``...: what the requests counter counts."""
    rest = path.split("/namespaces/", 1)[1].split("/")[1:] if "/namespaces/" in path else [path]
    if len(rest) == 1 and "/namespaces/" in path:
        method = "WATCH" if ("watch", "true") in query else "LIST" if method == "GET" else method
    return f"{method} {rest[0]}" + (f"/{rest[2]}" if len(rest) > 2 else "")


def _read_namespace_file(directory: str) -> str:
    """The service account's namespace (in-cluster), or ""."""
    path = os.path.join(directory, "namespace")
    if not os.path.isfile(path):
        return ""
    with open(path) as fh:
        return fh.read().strip()


_CONNECTIONS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, _Connection]]
_CONNECTIONS = weakref.WeakKeyDictionary()


def connection_for(config: KubernetesConfig) -> _Connection:
    """The running loop's connection for ``config`` (created on first use, loaded lazily)."""
    conns = _CONNECTIONS.setdefault(asyncio.get_running_loop(), {})
    conn = conns.get(config.key)
    if conn is None:
        conn = conns[config.key] = _Connection(config)
    return conn


async def close_kube_connections() -> None:
    """Close the running loop's connections and watches (worker teardown, tests; run by ``close_sessions``)."""
    conns = _CONNECTIONS.pop(asyncio.get_running_loop(), {})
    for conn in conns.values():
        await conn.close()


on_close_sessions(close_kube_connections)


# --- the client --------------------------------------------------------------------------------------------


class KubernetesClient(JobClient[KubeObject]):
    system: ClassVar[str] = SYSTEM

    def __init__(self, config: KubernetesConfig | None = None) -> None:
        self.config = config or KubernetesConfig()

    @property
    def key(self) -> Hashable:
        return self.config.key

    async def connection(self) -> _Connection:
        conn = connection_for(self.config)
        try:
            await conn.ready()
        except PermanentError:
            # do not keep a connection that cannot load: the next call tries again
            conns = _CONNECTIONS.get(asyncio.get_running_loop(), {})
            if conns.get(self.config.key) is conn:
                del conns[self.config.key]
            raise
        return conn

    def validate_locator(self, locator: Mapping[str, Any]) -> Locator:
        if not isinstance(locator, Mapping) or set(locator) != {"kind", "namespace", "name", "uid"}:
            raise RecordError(
                f"a Kubernetes locator has exactly the fields kind, namespace, name and uid; got {locator!r}"
            )
        kind, namespace, name, uid = (locator[k] for k in ("kind", "namespace", "name", "uid"))
        if kind not in KINDS:
            raise RecordError(f"unknown Kubernetes kind {kind!r} in the locator")
        if not isinstance(namespace, str) or len(namespace) > 63 or not _DNS_LABEL_RE.match(namespace):
            raise RecordError(f"invalid Kubernetes namespace {namespace!r}")
        if not isinstance(name, str) or len(name) > 253 or not _DNS_SUBDOMAIN_RE.match(name):
            raise RecordError(f"invalid Kubernetes object name {name!r}")
        if not isinstance(uid, str) or not _UID_RE.match(uid):
            raise RecordError(f"invalid Kubernetes uid {uid!r}")
        return {"kind": kind, "namespace": namespace, "name": name, "uid": uid}

    def describe(self, locator: Locator) -> str:
        return f"{locator.get('kind')} {locator.get('namespace')}/{locator.get('name')}"

    async def namespace_for(self, spec: KubeObject) -> str:
        return spec.namespace or (await self.connection()).default_namespace

    # --- create, find, adopt -------------------------------------------------------------------------------

    async def submit(self, spec: KubeObject, token: str, *, reserved: Locator | None = None) -> Locator:
        conn = await self.connection()
        kind, namespace, name = spec.kind_info, spec.namespace or conn.default_namespace, spec.object_name(token)
        body = spec.render(token, namespace)
        what = f"create {kind.name} {namespace}/{name}"

        async def create() -> _Reply:
            return await conn.call("POST", kind.collection(namespace), body=body, what=what)

        try:
            # safe to repeat: a create that landed before its answer was lost comes back as 409, adopted below
            obj = (await retrying(create, attempts=3, what=what)).json(what)
        except KubeApiError as exc:
            if exc.status != 409 or exc.reason not in ("AlreadyExists", ""):
                raise
            found = await self._get(conn, kind, namespace, name)
            if found is None:
                raise TransientError(
                    f"{what}: answered AlreadyExists but is gone now; the next try looks again"
                ) from exc
            log.info("%s already exists: adopting it if it carries token %s", what, token)
            obj = found
        return self._adopt(obj, token, kind, namespace, name)

    async def find(
        self, token: str, *, since: float, spec: KubeObject, reserved: Locator | None = None
    ) -> Locator | None:
        conn = await self.connection()
        kind, namespace, name = spec.kind_info, spec.namespace or conn.default_namespace, spec.object_name(token)
        obj = await self._get(conn, kind, namespace, name)
        return None if obj is None else self._adopt(obj, token, kind, namespace, name)

    def _adopt(self, obj: Mapping[str, Any], token: str, kind: Kind, namespace: str, name: str) -> Locator:
        meta = obj.get("metadata") or {}
        carried = (meta.get("labels") or {}).get(TOKEN_LABEL)
        if carried != token:
            raise KubeApiError(
                f"{kind.name} {namespace}/{name} exists but is not this task's job: its {TOKEN_LABEL} label is "
                f"{carried!r}, this task's token is {token}. A name collision: delete that object or give the "
                "operator another name",
                status=409,
                reason="NameCollision",
            )
        return self.validate_locator({"kind": kind.name, "namespace": namespace, "name": name, "uid": meta.get("uid")})

    async def _get(self, conn: _Connection, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when the apiserver says it does not exist."""
        what = f"read {kind.name} {namespace}/{name}"
        try:
            reply = await retrying(
                lambda: conn.call("GET", kind.item(namespace, name), what=what), attempts=2, what=what
            )
        except KubeApiError as exc:
            if exc.status != 404:
                raise
            if not exc.details.get("name"):
                # a 404 that names no object: the apiserver does not serve this resource at all
                raise KubeApiError(
                    f"{exc} (the apiserver does not serve {kind.api_version} {kind.plural}: is its CRD installed?)",
                    status=404,
                    reason="NotFound",
                ) from exc
            return None
        return reply.json(what)

    # --- status ----------------------------------------------------------------------------------------------

    async def status(self, locator: Locator) -> JobStatus:
        loc = self.validate_locator(locator)
        return await self._read_status(await self.connection(), loc, None)

    async def _read_status(self, conn: _Connection, loc: Locator, tombstone: CachedObject | None) -> JobStatus:
        kind = KINDS[loc["kind"]]
        obj = await self._get(conn, kind, loc["namespace"], loc["name"])
        url = self._console(loc)
        if obj is None:
            if tombstone is not None:
                return deleted_status(tombstone.status)
            return JobStatus(
                JobState.LOST,
                "NotFound",
                f"{self.describe(loc)} does not exist: deleted, garbage-collected (ttlSecondsAfterFinished), "
                "or never created",
                tracking_url=url,
            )
        uid = (obj.get("metadata") or {}).get("uid")
        if uid != loc["uid"]:
            return JobStatus(
                JobState.LOST,
                "Replaced",
                f"{self.describe(loc)} is now another object (uid {uid}; the job had uid {loc['uid']})",
                tracking_url=url,
            )
        return await self._finish(conn, loc, normalize(kind.name, obj), obj)

    async def statuses(self, locators: Sequence[Locator]) -> dict[str, JobStatus]:
        """From the shared watch of each (namespace, kind): no request per job, except to confirm a missing one."""
        if not self.config.watch or not locators:
            return await super().statuses(locators)
        conn = await self.connection()
        out: dict[str, JobStatus] = {}
        to_read: list[tuple[Locator, CachedObject | None]] = []
        groups: dict[tuple[str, str], list[Locator]] = {}
        for loc in locators:
            groups.setdefault((loc["kind"], loc["namespace"]), []).append(loc)
        for (kind_name, namespace), locs in groups.items():
            inf = conn.informer(KINDS[kind_name], namespace)
            inf.touch()
            try:
                await inf.wait_synced(self.config.timeout)
            except TransientError as exc:
                out.update({locator_key(loc): JobStatus.unknown(str(exc)) for loc in locs})
                continue
            if inf.failure is not None:
                raise inf.failure
            if inf.forbidden is not None:
                to_read.extend((loc, None) for loc in locs)
                continue
            if not inf.fresh:
                message = f"the watch of {inf.source.describe()} is reconnecting: {inf.last_error}"
                out.update({locator_key(loc): JobStatus.unknown(message) for loc in locs})
                continue
            for loc in locs:
                cached = inf.lookup(loc["name"])
                if (
                    cached is None
                    or cached.uid != loc["uid"]
                    or (cached.deleted and not cached.status.state.is_terminal)
                ):
                    # not seen (yet), replaced, or gone from the selection: one GET settles it
                    to_read.append((loc, cached if cached is not None and cached.deleted else None))
                else:
                    cached.uid = loc["uid"]  # the same text: keep the trigger's string, free the cache's copy
                    status = cached.status
                    if self.config.console_url and not status.tracking_url:
                        status = dataclasses.replace(status, tracking_url=self._console(loc))
                    if status.state is JobState.FAILED:
                        status = await self._finish(conn, loc, status, None)
                    out[locator_key(loc)] = status  # no coroutine per waiting job per tick: it is 10,000 of them
        if to_read:
            sem = asyncio.Semaphore(self.status_concurrency)

            async def read(loc: Locator, tombstone: CachedObject | None) -> None:
                async with sem:
                    try:
                        out[locator_key(loc)] = await self._read_status(conn, loc, tombstone)
                    except TransientError as exc:
                        out[locator_key(loc)] = JobStatus.unknown(str(exc))

            await asyncio.gather(*(read(loc, t) for loc, t in to_read))
        if len(out) > 1 and all(s.state is JobState.UNKNOWN for s in out.values()):
            raise TransientError(next(iter(out.values())).message)
        return out

    # --- failure diagnosis: the failed pod's reason and last log lines ----------------------------------------

    async def _finish(
        self, conn: _Connection, loc: Locator, status: JobStatus, obj: Mapping[str, Any] | None
    ) -> JobStatus:
        if status.state is not JobState.FAILED:
            return status
        try:
            message = await conn.diagnosis(loc["uid"], lambda: self._diagnose(conn, loc, status, obj))
        except DurableJobError as exc:
            message = f"{status.message}\n(the failed pod's logs are unavailable: {exc})"
        return dataclasses.replace(status, message=message)

    async def _diagnose(self, conn: _Connection, loc: Locator, status: JobStatus, obj: Mapping[str, Any] | None) -> str:
        parts = [status.message] if status.message else []
        try:
            pod, container = await self._failed_pod(conn, loc, obj)
            if pod is not None:
                pod_name = str((pod.get("metadata") or {}).get("name"))
                if loc["kind"] != POD.name:
                    pod_status_ = pod.get("status") or {}
                    summary = "; ".join(
                        p
                        for p in (
                            str(pod_status_.get("reason") or ""),
                            str(pod_status_.get("message") or ""),
                            describe_terminations(pod_status_),
                        )
                        if p
                    )
                    parts.append(f"pod {pod_name}: {summary or pod_status_.get('phase')}")
                if container and self.config.log_tail_lines:
                    logs = await self._log_tail(conn, loc["namespace"], pod_name, container)
                    parts.append(
                        f"--- last {self.config.log_tail_lines} log lines of {pod_name}/{container} ---\n{logs}"
                    )
        except DurableJobError as exc:
            parts.append(f"(the failed pod's logs are unavailable: {exc})")
        text = "\n".join(parts)
        return text if len(text) <= MAX_MESSAGE else text[:1000] + "\n[...]\n" + text[-(MAX_MESSAGE - 1010) :]

    async def _failed_pod(
        self, conn: _Connection, loc: Locator, obj: Mapping[str, Any] | None
    ) -> tuple[Mapping[str, Any] | None, str | None]:
        kind, namespace, name = KINDS[loc["kind"]], loc["namespace"], loc["name"]
        if obj is None:
            obj = await self._get(conn, kind, namespace, name)
            if obj is None:
                return None, None
        pod: Mapping[str, Any] | None
        if kind is POD:
            pod = obj
        elif kind is JOB:
            match = (((obj.get("spec") or {}).get("selector")) or {}).get("matchLabels") or {}
            if not match:
                return None, None
            what = f"list the pods of {self.describe(loc)}"
            reply = await conn.call(
                "GET",
                POD.collection(namespace),
                query=[("labelSelector", ",".join(f"{k}={v}" for k, v in sorted(match.items())))],
                what=what,
            )
            pods = list(reply.json(what).get("items") or ())
            failed = [p for p in pods if (p.get("status") or {}).get("phase") == "Failed"] or pods
            failed.sort(key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""))
            pod = failed[-1] if failed else None
        else:
            driver = ((obj.get("status") or {}).get("driverInfo") or {}).get("podName") or f"{name}-driver"
            pod = await self._get(conn, POD, namespace, str(driver))
        if pod is None:
            return None, None
        statuses = (pod.get("status") or {}).get("containerStatuses") or ()
        for cs in statuses:
            term = (cs.get("state") or {}).get("terminated") or {}
            if term.get("exitCode") not in (0, None):
                return pod, str(cs.get("name"))
        if kind is SPARK_APPLICATION:
            return pod, SPARK_DRIVER_CONTAINER
        containers = ((pod.get("spec") or {}).get("containers")) or ()
        return pod, (str(containers[0].get("name")) if containers else None)

    async def _log_tail(self, conn: _Connection, namespace: str, pod: str, container: str) -> str:
        what = f"read the logs of {namespace}/{pod}/{container}"
        try:
            reply = await conn.call(
                "GET",
                f"{POD.item(namespace, pod)}/log",
                query=[
                    ("container", container),
                    ("limitBytes", str(LOG_LIMIT_BYTES)),
                    ("tailLines", str(self.config.log_tail_lines)),
                ],
                accept="text/plain",
                what=what,
            )
        except KubeApiError as exc:
            return f"(no logs: {exc})"
        return reply.body.decode("utf-8", "replace").rstrip("\n")

    # --- cancel and links --------------------------------------------------------------------------------------

    async def cancel(self, locator: Locator) -> None:
        """Delete the object (``delete_propagation_policy``), only if it is still the one recorded (its uid)."""
        loc = self.validate_locator(locator)
        conn = await self.connection()
        kind = KINDS[loc["kind"]]
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": self.config.delete_propagation_policy,
            "preconditions": {"uid": loc["uid"]},
        }
        if self.config.delete_grace_period_seconds is not None:
            body["gracePeriodSeconds"] = self.config.delete_grace_period_seconds
        what = f"delete {self.describe(loc)}"
        try:
            await retrying(
                lambda: conn.call("DELETE", kind.item(loc["namespace"], loc["name"]), body=body, what=what),
                attempts=3,
                what=what,
            )
        except KubeApiError as exc:
            if exc.status == 404:
                return  # already gone
            if exc.status == 409:
                log.warning("%s: not deleted, the name now belongs to another object (%s)", what, exc)
                return
            raise
        log.info("Deleted %s (propagation %s)", self.describe(loc), self.config.delete_propagation_policy)

    def _console(self, loc: Locator) -> str | None:
        if not self.config.console_url:
            return None
        kind = KINDS[loc["kind"]]
        return self.config.console_url.format(
            namespace=loc["namespace"], name=loc["name"], uid=loc["uid"], kind=kind.name.lower(), plural=kind.plural
        )

    async def links(self, locator: Locator) -> dict[str, str]:
        url = self._console(self.validate_locator(locator))
        return {"console_url": url} if url else {}

    async def version(self) -> dict[str, Any]:
        """The apiserver's ``/version`` (a cheap health check)."""
        conn = await self.connection()
        return (await conn.call("GET", "/version", what="read /version")).json("read /version")

    async def watch_stats(self) -> dict[str, Any]:
        """What the shared watches of this configuration cost so far (tests, benchmark)."""
        conn = await self.connection()
        return {
            "requests": dict(conn.requests),
            "watches": {
                f"{kind}/{ns}": dataclasses.asdict(inf.stats) | {"objects": len(inf.objects), "running": inf.running}
                for (kind, ns), inf in conn.informers.items()
            },
        }


__all__ = [
    "JOB",
    "KINDS",
    "MANAGED_LABEL",
    "POD",
    "SPARK_APPLICATION",
    "SYSTEM",
    "TOKEN_LABEL",
    "WATCH_SELECTOR",
    "Kind",
    "KubeApiError",
    "KubeObject",
    "KubernetesClient",
    "KubernetesConfig",
    "close_kube_connections",
    "identity_metadata",
    "job_status",
    "label_value",
    "normalize",
    "object_name",
    "pod_status",
    "spark_application_status",
    "to_wire",
]
