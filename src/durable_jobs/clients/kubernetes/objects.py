"""The objects this client creates: their kinds, their names and labels, and the spec an operator hands over.

Why it exists: the name is the token. Every object is named ``<prefix>-<token>`` (DNS-1123, at most 63
characters; tokens are ``dj`` + 20 lower-case hex characters) and labelled with it, so a create is idempotent and
``find`` after a crash is one GET by name. :class:`KubeObject` checks a manifest once, when the operator is
built, and renders the body to create for a token.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from durable_jobs.errors import RecordError

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

LABEL_PREFIX = "durable-jobs.io/"
TOKEN_LABEL = LABEL_PREFIX + "token"
DAG_LABEL = LABEL_PREFIX + "dag-id"
TASK_LABEL = LABEL_PREFIX + "task-id"
RUN_LABEL = LABEL_PREFIX + "run-id"
MAP_INDEX_LABEL = LABEL_PREFIX + "map-index"
GENERATION_LABEL = LABEL_PREFIX + "generation"
COMPLETIONS_ANNOTATION = LABEL_PREFIX + "completions"  # on a Job's pods: how many must succeed
MANAGED_LABEL = LABEL_PREFIX + "managed"  # the shared watch's selector: every object this library creates
WATCH_SELECTOR = f"{MANAGED_LABEL}=true"

TOKEN_RE = re.compile(r"^dj[0-9a-f]{20}\Z")
DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
LABEL_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")
UID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


# --- names and labels --------------------------------------------------------------------------------------


def check_token(token: Any) -> str:
    if not isinstance(token, str) or not TOKEN_RE.match(token):
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
    if len(value) <= 63 and (value == "" or LABEL_NAME_RE.match(value)):
        return value
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "_", value)[:52].strip("_.-")
    digest = hashlib.sha256(value.encode()).hexdigest()[:10]
    return f"{clean}-{digest}" if clean else digest


def check_labels(labels: Mapping[str, Any], what: str = "label") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in labels.items():
        prefix, _, name = str(key).rpartition("/")
        if (prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN_RE.match(prefix))) or not (
            len(name) <= 63 and LABEL_NAME_RE.match(name)
        ):
            raise ValueError(f"invalid {what} key {key!r}")
        if what == "label" and not (
            isinstance(value, str) and len(value) <= 63 and (value == "" or LABEL_NAME_RE.match(value))
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
    """Plain data or a kubernetes model (``V1Job``...) as the JSON the apiserver expects (camelCase keys).

    For models, the output of kubernetes_asyncio's ``ApiClient.sanitize_for_serialization`` (tested), without
    importing kubernetes_asyncio or building an ApiClient (an aiohttp session) when a DAG is parsed. Not replaced
    by it: it also takes any Mapping, sends tuples as lists (as the manifest checks expect), and refuses bytes or
    an unknown object with a TypeError where sanitize passes bytes on or fails with an AttributeError.
    """
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
        if namespace is not None and not (len(namespace) <= 63 and DNS_LABEL_RE.match(namespace)):
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
            # what its pods must show for the Job to have succeeded, read if the Job is removed before we saw it end
            tmeta["annotations"] = {
                **(tmeta.get("annotations") or {}),
                COMPLETIONS_ANNOTATION: str(spec.get("completions") or 1),
            }
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


def matches_token(name: str, token: str, max_length: int = 63) -> bool:
    """Whether ``name`` is what :func:`object_name` derives from ``token`` (for some prefix)."""
    if not isinstance(name, str) or not isinstance(token, str) or not TOKEN_RE.match(token):
        return False
    if name == token:
        return True
    prefix = name[: -len(token) - 1]
    return name.endswith("-" + token) and bool(prefix) and object_name(prefix, token, max_length) == name
