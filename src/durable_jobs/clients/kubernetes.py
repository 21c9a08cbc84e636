"""Kubernetes batch Jobs, Pods and SparkApplications, adopted by name and watched, not polled.

Why it exists: KubernetesPodOperator gives pods random names and builds a new API client (a TLS handshake)
for every call; KubernetesJobOperator and SparkKubernetesOperator create a new object on every retry. Here:

* **the name is the token.** Every object is named ``<prefix>-<token>`` (DNS-1123, at most 63 characters;
  tokens are ``dj`` + 20 lower-case hex characters) and labelled with it, so create is idempotent: a create
  answered 409 AlreadyExists reads the object and adopts it when its token label matches (anything else is
  a name collision, reported as such), and ``find`` after a crash is one GET by name. No window is left
  open between submit and persist, and no time window either: finding a crashed try's object does not depend
  on any clock;
* **one connection per credential set and event loop** (:mod:`~durable_jobs.clients.kubernetes_conn`): every
  request goes through the library's HTTP policy (no redirect followed, bounded bodies, redacted errors), with
  credentials loaded by kubernetes_asyncio's kubeconfig loader and refreshed as kubectl does;
* **every answer is decoded typed** (:mod:`~durable_jobs.clients.kubernetes_model`): a wrong type in a field
  that is read makes that object *unknown*, never lost, never failed;
* **watched, not polled**: ``statuses()`` answers from one shared list+watch cache per (namespace, kind)
  (:mod:`durable_jobs.clients.kubernetes_watch`), selected by the fixed label ``durable-jobs.io/managed``.
  A poll tick costs no request. When the watch cannot be trusted (it cannot list, or sent something
  unreadable), a bounded number of jobs is read one by one per poll (``fallback_statuses``);
* **lost is proven**: a job is LOST only when its GET answers the documented 404 NotFound, the second source
  (the watch's cache, else a list by name) agrees, and what the cluster still remembers of finished objects
  (the Job's Events ``Completed``/``BackoffLimitExceeded``..., its Pods, a SparkApplication's events and driver
  pod) says nothing. A Job removed by ``ttlSecondsAfterFinished`` whose events show it completed is a success.

A failure's message carries the failed pod's reason and the last log lines (a bounded ``tailLines``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import datetime
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from msgspec.structs import asdict

from durable_jobs.clients.base import JobClient, Locator, locator_key
from durable_jobs.clients.kubernetes_conn import (
    MANAGED_LABEL,
    PROPAGATION_POLICIES,
    SYSTEM,
    WATCH_SELECTOR,
    Connection,
    KubernetesConfig,
    close_kube_connections,
    connection_for,
    forget_connection,
)
from durable_jobs.clients.kubernetes_model import (
    EVENT,
    JOB,
    KINDS,
    POD,
    SCHEMAS,
    SPARK_APPLICATION,
    SPARK_DRIVER_CONTAINER,
    Adoptable,
    EventList,
    EvidencePod,
    JobObject,
    Kind,
    KubeApiError,
    NamedList,
    PodList,
    PodObject,
    ResourceExpired,
    SparkApplicationObject,
    Version,
    api_error,
    decode,
    describe_terminations,
    is_not_found,
    job_status,
    normalize,
    pod_status,
    spark_application_status,
)
from durable_jobs.clients.kubernetes_watch import CachedObject, deleted_status
from durable_jobs.errors import (
    AnswerTooLarge,
    AuthError,
    DurableJobError,
    MalformedAnswer,
    PermanentError,
    RecordError,
    RedirectRefused,
    TransientError,
)
from durable_jobs.messages import MESSAGE_LIMIT
from durable_jobs.status import JobState, JobStatus
from durable_jobs.transport.backoff import Backoff

log = logging.getLogger(__name__)
T = TypeVar("T")

LABEL_PREFIX = "durable-jobs.io/"
TOKEN_LABEL = LABEL_PREFIX + "token"
DAG_LABEL = LABEL_PREFIX + "dag-id"
TASK_LABEL = LABEL_PREFIX + "task-id"
RUN_LABEL = LABEL_PREFIX + "run-id"
MAP_INDEX_LABEL = LABEL_PREFIX + "map-index"
GENERATION_LABEL = LABEL_PREFIX + "generation"
COMPLETIONS_ANNOTATION = LABEL_PREFIX + "completions"  # on a Job's pods: how many must succeed
MAX_MESSAGE = MESSAGE_LIMIT  # characters of a failure message (reason + log tail), cut here keeping the tail
LOG_LIMIT_BYTES = 64 * 1024
YIELD_EVERY = 1000  # jobs answered from the cache between two yields to the event loop
_RETRY = Backoff(base=0.5, cap=5.0, max_retry_after=10.0)

# what a finished object's controller says in its Events (kept about an hour), read when the object is gone
SUCCESS_EVENTS = {JOB.name: frozenset({"Completed"}), SPARK_APPLICATION.name: frozenset({"SparkApplicationCompleted"})}
FAILURE_EVENTS = {
    JOB.name: frozenset(
        {"BackoffLimitExceeded", "DeadlineExceeded", "PodFailurePolicy", "MaxFailedIndexesExceeded", "FailedIndexes"}
    ),
    SPARK_APPLICATION.name: frozenset({"SparkApplicationFailed"}),
}

_TOKEN_RE = re.compile(r"^dj[0-9a-f]{20}$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_UID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


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
    if not isinstance(name, str) or not isinstance(token, str) or not _TOKEN_RE.match(token):
        return False
    if name == token:
        return True
    prefix = name[: -len(token) - 1]
    return name.endswith("-" + token) and bool(prefix) and object_name(prefix, token, max_length) == name


async def _retry(call: Callable[[], Awaitable[T]], *, attempts: int, what: str) -> T:
    """``call()``, repeated on a transient error that may pass (not on a redirect or an answer that cannot be read)."""
    for attempt in range(attempts):
        try:
            return await call()
        except (RedirectRefused, MalformedAnswer, AnswerTooLarge):
            raise
        except TransientError as exc:
            if attempt + 1 >= attempts:
                raise
            delay = _RETRY.delay(attempt, exc.retry_after)
            log.info("%s failed transiently (%s); retry %d/%d in %.1fs", what, exc, attempt + 1, attempts, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


# --- the client --------------------------------------------------------------------------------------------


class KubernetesClient(JobClient[KubeObject]):
    system: ClassVar[str] = SYSTEM

    def __init__(self, config: KubernetesConfig | None = None) -> None:
        self.config = config or KubernetesConfig()

    @property
    def key(self) -> Hashable:
        """The endpoint (server, context, namespace, CA, settings), never the credentials: see KubernetesConfig.key."""
        return self.config.key

    @property
    def endpoint_name(self) -> str:
        return f"the Kubernetes apiserver of {self.config.describe_source()}"

    async def connection(self) -> Connection:
        conn = connection_for(self.config)
        try:
            await conn.ready()
        except PermanentError:
            forget_connection(self.config, conn)  # do not keep a connection that cannot load: the next call tries again
            raise
        return conn

    def validate_locator(self, locator: Mapping[str, Any]) -> Locator:
        if not isinstance(locator, Mapping) or set(locator) != {"kind", "namespace", "name", "uid"}:
            raise RecordError(
                f"a Kubernetes locator has exactly the fields kind, namespace, name and uid; got {locator!r}"
            )
        kind, namespace, name, uid = (locator[k] for k in ("kind", "namespace", "name", "uid"))
        if not isinstance(kind, str) or kind not in KINDS:
            raise RecordError(f"unknown Kubernetes kind {kind!r} in the locator")
        if not isinstance(namespace, str) or len(namespace) > 63 or not _DNS_LABEL_RE.match(namespace):
            raise RecordError(f"invalid Kubernetes namespace {namespace!r}")
        if not isinstance(name, str) or len(name) > 253 or not _DNS_SUBDOMAIN_RE.match(name):
            raise RecordError(f"invalid Kubernetes object name {name!r}")
        if not isinstance(uid, str) or not _UID_RE.match(uid):
            raise RecordError(f"invalid Kubernetes uid {uid!r}")
        return {"kind": kind, "namespace": namespace, "name": name, "uid": uid}

    def locator_matches_token(self, locator: Locator, token: str) -> bool:
        """The object's name is derived from the token (``object_name(prefix, token)``): check it."""
        kind = KINDS.get(str(locator.get("kind")))
        return kind is not None and matches_token(str(locator.get("name")), token, kind.max_name)

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
        try:
            # safe to repeat: a create that landed before its answer was lost comes back as 409, adopted below.
            # A redirect is never followed (nor repeated): the answer of another server is never taken for the job
            reply = await _retry(
                lambda: conn.call("POST", kind.collection(namespace), body=body, what=what), attempts=3, what=what
            )
        except KubeApiError as exc:
            if exc.status != 409 or exc.reason not in ("AlreadyExists", ""):
                raise
            found = await self._get(conn, kind, namespace, name, Adoptable)
            if found is None:
                raise TransientError(
                    f"{what}: answered AlreadyExists but is gone now; the next try looks again"
                ) from exc
            log.info("%s already exists: adopting it if it carries token %s", what, token)
            return self._adopt(found, token, kind, namespace, name)
        try:
            return self._adopt(decode(reply.body, Adoptable, what=what), token, kind, namespace, name, created=True)
        except MalformedAnswer as exc:
            # the apiserver accepted the create (2xx) but its answer cannot be read: read the object back, as the
            # next try would
            log.warning("%s: %s; reading the object back", what, exc)
            found = await self._get(conn, kind, namespace, name, Adoptable)
            if found is None:
                raise MalformedAnswer(
                    f"{what}: the answer cannot be read and no such object exists; the next try looks again"
                ) from exc
            return self._adopt(found, token, kind, namespace, name)

    async def find(
        self, token: str, *, since: float, spec: KubeObject, reserved: Locator | None = None
    ) -> Locator | None:
        """One GET by the name the token gives: no time window, so no clock is involved."""
        conn = await self.connection()
        kind, namespace, name = spec.kind_info, spec.namespace or conn.default_namespace, spec.object_name(token)
        obj = await self._get(conn, kind, namespace, name, Adoptable)
        return None if obj is None else self._adopt(obj, token, kind, namespace, name)

    def _adopt(
        self, obj: Adoptable, token: str, kind: Kind, namespace: str, name: str, *, created: bool = False
    ) -> Locator:
        meta = obj.metadata
        what = f"{kind.name} {namespace}/{name}"
        if meta.name and meta.name != name:
            raise MalformedAnswer(f"{what}: the apiserver answered about another object ({meta.name[:100]!r})")
        carried = (meta.labels or {}).get(TOKEN_LABEL)
        if carried != token:
            if created:  # the object we just sent carries the token: this answer is not about it
                raise MalformedAnswer(f"{what}: the create was answered with an object without this task's token")
            raise KubeApiError(
                f"{what} exists but is not this task's job: its {TOKEN_LABEL} label is {str(carried)[:80]!r}, this "
                f"task's token is {token}. A name collision: delete that object or give the operator another name",
                status=409,
                reason="NameCollision",
            )
        if not _UID_RE.match(meta.uid):
            raise MalformedAnswer(f"{what}: the apiserver's answer carries no valid uid ({meta.uid[:60]!r})")
        return self.validate_locator({"kind": kind.name, "namespace": namespace, "name": name, "uid": meta.uid})

    async def _get(
        self, conn: Connection, kind: Kind, namespace: str, name: str, schema: type[T], *, attempts: int = 2
    ) -> T | None:
        """The object decoded against ``schema``, or None on the apiserver's documented "not found"."""
        what = f"read {kind.name} {namespace}/{name}"
        try:
            reply = await _retry(
                lambda: conn.call("GET", kind.item(namespace, name), what=what), attempts=attempts, what=what
            )
        except KubeApiError as exc:
            if is_not_found(exc, name):
                return None
            if exc.status == 404 and exc.reason == "NotFound" and not exc.details.name:
                # a 404 that names no object: the apiserver does not serve this resource at all
                raise KubeApiError(
                    f"{exc} (the apiserver does not serve {kind.api_version} {kind.plural}: is its CRD installed?)",
                    status=404,
                    reason="NotFound",
                ) from exc
            if exc.status == 404:
                raise MalformedAnswer(f"{exc} (a 404 that is not about {name}: not taken for its absence)") from exc
            raise
        return decode(reply.body, schema, what=what)

    # --- status ----------------------------------------------------------------------------------------------

    async def status(self, locator: Locator) -> JobStatus:
        loc = self.validate_locator(locator)
        return await self._read_status(await self.connection(), loc, None)

    async def _read_status(
        self, conn: Connection, loc: Locator, tombstone: CachedObject | None, *, attempts: int = 2
    ) -> JobStatus:
        kind = KINDS[loc["kind"]]
        obj = await self._get(conn, kind, loc["namespace"], loc["name"], SCHEMAS[kind.name], attempts=attempts)
        if obj is None:
            if tombstone is not None and tombstone.status.state is not JobState.UNKNOWN:
                return deleted_status(tombstone.status)  # the watch saw it deleted, and its last state
            return await self._confirm_gone(conn, loc, "NotFound", f"{self.describe(loc)} does not exist")
        uid = obj.metadata.uid
        if not _UID_RE.match(uid):
            raise MalformedAnswer(f"read {self.describe(loc)}: the answer carries no valid uid ({uid[:60]!r})")
        if uid != loc["uid"]:
            return await self._confirm_gone(
                conn,
                loc,
                "Replaced",
                f"{self.describe(loc)} is now another object (uid {uid}; the job had {loc['uid']})",
            )
        return await self._finish(conn, loc, normalize(kind.name, obj), obj)

    async def _confirm_gone(self, conn: Connection, loc: Locator, raw: str, message: str) -> JobStatus:
        """The GET says the object is gone. LOST only if a second source agrees and no trace says how it ended."""
        try:
            present = await self._second_source(conn, loc)
        except DurableJobError as exc:
            if isinstance(exc, AuthError) and exc.status == 401:
                raise
            return JobStatus.unknown(f"{message}, but a second source cannot confirm it: {exc}")
        if present:
            return JobStatus.unknown(f"{message} by a GET, but the watch or a list still shows it: waiting for both")
        notes: list[str] = []
        try:
            remembered = await self._remembered(conn, loc, notes)
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
            tracking_url=self._console(loc),
        )

    async def _second_source(self, conn: Connection, loc: Locator) -> bool:
        """Whether the watch's cache (when it can be trusted), else a list by name, still holds the object."""
        kind, namespace, name, uid = KINDS[loc["kind"]], loc["namespace"], loc["name"], loc["uid"]
        inf = conn.informers.get((kind.name, namespace)) if self.config.watch else None
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
            if not _UID_RE.match(item.metadata.uid):
                raise MalformedAnswer(f"{what}: an item carries no valid uid")
        return False

    async def _remembered(self, conn: Connection, loc: Locator, notes: list[str]) -> JobStatus | None:
        """What the cluster still knows of how a vanished object ended: its Events, then its pods.

        Sources the identity may not read (403) are skipped, with a note in ``notes``.
        """
        kind = loc["kind"]
        if kind == POD.name:
            return None  # a pod's events say nothing of how it ended, and it is its own pod
        events = await self._events(conn, loc)
        if events is None:
            notes.append("its events may not be listed (RBAC)")
        else:
            done = [e for e in events if e.reason in SUCCESS_EVENTS[kind]]
            failed = [e for e in events if e.reason in FAILURE_EVENTS[kind]]
            if done and failed:
                return JobStatus.unknown(
                    f"{self.describe(loc)} is gone, and its events say both that it succeeded and failed"
                )
            if done:
                return self._remembered_status(
                    loc, JobState.SUCCEEDED, f"event {done[0].reason}: {done[0].message or ''}"
                )
            if failed:
                ev = failed[0]
                return self._remembered_status(
                    loc, JobState.FAILED, f"event {ev.reason}: {ev.message or ''}", reason=ev.reason or ""
                )
        pods = await self._owned_pods(conn, loc)
        if pods is None:
            notes.append("its pods may not be listed (RBAC)")
            return None
        if kind == JOB.name:
            return self._remembered_by_job_pods(loc, pods)
        for pod in pods:  # the SparkApplication's driver: its last attempt
            st = pod_status(pod)
            if st.state in (JobState.SUCCEEDED, JobState.FAILED):
                return self._remembered_status(
                    loc, st.state, f"driver pod {pod.metadata.name} {st.raw_state}: {st.message}".rstrip(": ")
                )
        return None

    def _remembered_by_job_pods(self, loc: Locator, pods: list[EvidencePod]) -> JobStatus | None:
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
            return self._remembered_status(
                loc, JobState.SUCCEEDED, f"{len(succeeded)} of its pods succeeded ({needed} needed)"
            )
        return None

    def _remembered_status(self, loc: Locator, state: JobState, evidence: str, reason: str = "") -> JobStatus:
        raw = {JobState.SUCCEEDED: "Complete", JobState.FAILED: "Failed"}[state]
        if loc["kind"] == SPARK_APPLICATION.name:
            raw = {JobState.SUCCEEDED: "COMPLETED", JobState.FAILED: "FAILED"}[state]
        return JobStatus(
            state,
            raw,
            f"{self.describe(loc)} no longer exists (removed after it finished, e.g. by ttlSecondsAfterFinished); "
            f"the cluster remembers how it ended: {evidence}",
            tracking_url=self._console(loc),
            extra={"remembered": True, **({"reason": reason[:100]} if reason else {})},
        )

    async def _events(self, conn: Connection, loc: Locator) -> list[Any] | None:
        """The Events about the object (by its uid); None when the identity may not list events."""
        what = f"list the events of {self.describe(loc)}"
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

    async def _owned_pods(self, conn: Connection, loc: Locator) -> list[EvidencePod] | None:
        """The pods the object ran (a Job's by its controller-uid, a SparkApplication's driver); None: forbidden."""
        uid = loc["uid"]
        if loc["kind"] == JOB.name:
            selector = f"controller-uid={uid}"
        else:
            selector = f"sparkoperator.k8s.io/app-name={loc['name']},spark-role=driver"
        what = f"list the pods of {self.describe(loc)}"
        try:
            reply = await conn.call(
                "GET", POD.collection(loc["namespace"]), query=[("labelSelector", selector)], what=what
            )
        except AuthError as exc:
            if exc.status == 403:
                return None
            raise
        pods = decode(reply.body, PodList, what=what).items or []
        return [p for p in pods if _owned_by(p, uid)]

    async def statuses(self, locators: Sequence[Locator]) -> dict[str, JobStatus]:
        """From the shared watch of each (namespace, kind): no request per job, except to confirm a missing one.

        A group whose watch cannot be trusted (not listed, stale, or sent something unreadable) is read one job
        at a time, at most ``status_concurrency`` of them per poll (:meth:`fallback_statuses`); the others are
        left out (unknown this round).
        """
        if not locators:
            return {}
        conn = await self.connection()
        if not self.config.watch:
            return await self._read_each(conn, [(loc, None) for loc in locators], endpoint_wide=True)
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
            except TransientError:
                out.update(await self.fallback_statuses(locs))
                continue
            if isinstance(inf.failure, AuthError) and inf.failure.status == 401:
                raise inf.failure  # the credentials, for everyone: the poller fetches fresh ones
            if inf.forbidden is not None:
                to_read.extend((loc, None) for loc in locs)  # RBAC: one GET per job, on purpose
                continue
            if not inf.fresh:
                out.update(await self.fallback_statuses(locs))
                continue
            console = bool(self.config.console_url)
            for i, loc in enumerate(locs):
                if i and not i % YIELD_EVERY:
                    await asyncio.sleep(0)  # 10,000 jobs in one poll must not hold the event loop
                cached = inf.lookup(loc["name"])
                if cached is not None and not cached.uid and not cached.deleted:
                    out[locator_key(loc)] = cached.status  # its answer could not be read: unknown, no request
                    continue
                if (
                    cached is None
                    or cached.uid != loc["uid"]
                    or (cached.deleted and not cached.status.state.is_terminal)
                ):
                    # not seen (yet), replaced, or gone from the selection: one GET settles it
                    to_read.append((loc, cached if cached is not None and cached.deleted else None))
                    continue
                cached.uid = loc["uid"]  # the same text: keep the trigger's string, free the cache's copy
                status = cached.status
                if console and not status.tracking_url:
                    status = dataclasses.replace(status, tracking_url=self._console(loc))
                if status.state is JobState.FAILED:
                    status = await self._finish(conn, loc, status, None)
                out[locator_key(loc)] = status  # no coroutine per waiting job per tick: it is 10,000 of them
        if to_read:
            out.update(await self._read_each(conn, to_read, endpoint_wide=False))
        if len(out) > 1 and all(s.state is JobState.UNKNOWN for s in out.values()):
            raise TransientError(next(iter(out.values())).message)
        return out

    async def _read_each(
        self, conn: Connection, pairs: list[tuple[Locator, CachedObject | None]], *, endpoint_wide: bool
    ) -> dict[str, JobStatus]:
        """Each job's own GET (bounded concurrency, one attempt): an error about one job makes that job unknown.

        Only credentials refused (401) concern everyone and raise; with ``endpoint_wide``, so does every request
        failing to reach the endpoint (the poller then logs one problem, not N).
        """
        out: dict[str, JobStatus] = {}
        todo = iter(pairs)
        unreachable = 0
        refused: list[AuthError] = []

        async def worker() -> None:
            nonlocal unreachable
            for loc, tombstone in todo:
                try:
                    status = await self._read_status(conn, loc, tombstone, attempts=1)
                except AuthError as exc:
                    if exc.status == 401 or endpoint_wide:
                        refused.append(exc)
                        return
                    status = JobStatus.unknown(str(exc))
                except (TransientError, PermanentError, RecordError) as exc:
                    if isinstance(exc, TransientError) and not isinstance(exc, MalformedAnswer):
                        unreachable += 1
                    status = JobStatus.unknown(str(exc))
                except Exception as exc:  # a bug or an unforeseen answer: unknown for this job only
                    log.warning("status of %s failed unexpectedly", self.describe(loc), exc_info=True)
                    status = JobStatus.unknown(f"{type(exc).__name__}: {exc}")
                out[locator_key(loc)] = status

        await asyncio.gather(*(worker() for _ in range(min(self.status_concurrency, len(pairs)))))
        if refused:
            raise refused[0]
        if endpoint_wide and len(out) > 1 and unreachable == len(out):
            raise TransientError(next(iter(out.values())).message)
        return out

    # --- failure diagnosis: the failed pod's reason and last log lines ----------------------------------------

    async def _finish(self, conn: Connection, loc: Locator, status: JobStatus, obj: Any) -> JobStatus:
        if status.state is not JobState.FAILED:
            return status
        try:
            message = await conn.diagnosis(loc["uid"], lambda: self._diagnose(conn, loc, status, obj))
        except DurableJobError as exc:
            message = f"{status.message}\n(the failed pod's logs are unavailable: {exc})"
        return dataclasses.replace(status, message=message)

    async def _diagnose(self, conn: Connection, loc: Locator, status: JobStatus, obj: Any) -> str:
        parts = [status.message] if status.message else []
        try:
            pod, container = await self._failed_pod(conn, loc, obj)
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
                if container and self.config.log_tail_lines:
                    logs = await self._log_tail(conn, loc["namespace"], pod_name, container)
                    parts.append(
                        f"--- last {self.config.log_tail_lines} log lines of {pod_name}/{container} ---\n{logs}"
                    )
        except DurableJobError as exc:
            parts.append(f"(the failed pod's logs are unavailable: {exc})")
        text = "\n".join(parts)
        # keep the head (the reason) and the tail (the last log lines): the middle goes first
        return text if len(text) <= MAX_MESSAGE else text[:600] + "\n[...]\n" + text[-(MAX_MESSAGE - 610) :]

    async def _failed_pod(self, conn: Connection, loc: Locator, obj: Any) -> tuple[EvidencePod | None, str | None]:
        kind, namespace, name = KINDS[loc["kind"]], loc["namespace"], loc["name"]
        pod: EvidencePod | None
        if kind is POD:
            pod = await self._get(conn, POD, namespace, name, EvidencePod)
        elif kind is JOB:
            job = obj if isinstance(obj, JobObject) else await self._get(conn, JOB, namespace, name, JobObject)
            if job is None:
                return None, None
            match = (job.spec.selector.matchLabels if job.spec and job.spec.selector else None) or {}
            if not match:
                return None, None
            what = f"list the pods of {self.describe(loc)}"
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
            pod = (
                await self._get(conn, POD, namespace, driver, EvidencePod) if _DNS_SUBDOMAIN_RE.match(driver) else None
            )
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

    async def _log_tail(self, conn: Connection, namespace: str, pod: str, container: str) -> str:
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
        return reply.body[-LOG_LIMIT_BYTES:].decode("utf-8", "replace").rstrip("\n")

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
            await _retry(
                lambda: conn.call("DELETE", kind.item(loc["namespace"], loc["name"]), body=body, what=what),
                attempts=3,
                what=what,
            )
        except KubeApiError as exc:
            if is_not_found(exc, loc["name"]):
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
        reply = await conn.call("GET", "/version", what="read /version")
        return asdict(decode(reply.body, Version, what="read /version"))

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


def _owned_by(pod: EvidencePod, uid: str) -> bool:
    labels = pod.metadata.labels or {}
    if uid in (labels.get("controller-uid"), labels.get("batch.kubernetes.io/controller-uid")):
        return True
    return any(ref.uid == uid for ref in pod.metadata.ownerReferences or ())


__all__ = [
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
