"""A strict contract fake of the kube-apiserver, over TLS, with a simulated kubelet, Job controller and spark-operator.

No real apiserver can be installed in CI, so this fake follows the documented wire contract that the real client
stack (kubeconfig loader, TLS, bearer token, typed models, ``Watch``) speaks (``test_kube_fake_contract.py``):

* every error is a ``Status`` with the matching code and reason (404 NotFound, 409 AlreadyExists/Conflict,
  401 Unauthorized, 403 Forbidden, 400/422, 410 Expired, 413, 415, 429 with Retry-After);
* string ``resourceVersion``s from one increasing counter; ``generateName``; label and field selectors;
  paginated lists (``limit``/``continue``, from a consistent snapshot);
* the chunked NDJSON watch: synthetic ADDED events for ``resourceVersion`` "" or "0", replay from a given one,
  BOOKMARKs when ``allowWatchBookmarks`` is any of Go's ``ParseBool`` spellings (the client sends ``True``),
  objects leaving or entering a label selection as DELETED/ADDED, ``timeoutSeconds`` (a clean end), 410 for
  a compacted resourceVersion either in the stream (an ERROR event, the etcd path) or as the HTTP status (the
  watch-cache path), and streams dropped on demand (the connection cut mid-chunk);
* PATCH content types: merge-patch for everything, strategic-merge-patch for built-in kinds only (415 for
  custom resources), json-patch only with a list body (a dict is 400, as on a real apiserver: the
  kubernetes_asyncio CustomObjectsApi pitfall);
* the 3 MiB request body limit (413 RequestEntityTooLarge); DELETE with propagation policies (a Job deleted
  without one orphans its pods, as the batch API does), preconditions and graceful pod deletion; pod logs
  with ``tailLines``/``limitBytes``;
* core/v1 Events, as the controllers write them (``SuccessfulCreate``, ``Completed``, ``BackoffLimitExceeded``,
  ``DeadlineExceeded``, ``SparkApplicationCompleted``/``Failed``), listed with field selectors on
  ``involvedObject.*``, ``reason`` and ``type``; and the TTL controller: a finished Job with
  ``ttlSecondsAfterFinished`` is deleted with its pods (its events stay, as on a cluster, until
  ``forget_events``).

**Hostile answers** for the hostile suite (tests/kubernetes/test_kube_hostile.py): ``hostile(...)`` makes the
requests that match answer with a chosen status and body (an HTML page, garbage, an empty body), a body cut
short of its ``Content-Length``, a huge chunked body, a redirect, a 401 page that echoes the request's headers,
a reset connection or a hang; ``corrupt(plural, namespace, name, fn)`` changes one object in every answer that
carries it (GET, list items, watch events), with :class:`RawJSON` for values plain JSON cannot build (nesting
100,000 deep); ``inject_watch_line`` sends any line into the open watches.

The simulated cluster runs what the manifests say, so that the same tests can run against a real cluster:
the kubelet interprets ``sh -c`` scripts (``echo``, ``sleep``, ``exit N``, ``true``, ``false``, and
``tail /dev/zero`` under a memory limit is OOMKilled), an image whose name contains ``does-not-exist`` never
pulls, the Job controller honours ``backoffLimit``, ``activeDeadlineSeconds`` and ``suspend``, and the
spark-operator runs a driver pod and reports ``applicationState``. ``time_scale`` shrinks every ``sleep`` and
deadline. Objects annotated ``fake.durable-jobs.io/controller: manual`` are left alone for tests that script
states through the hooks (``set_phase``, ``set_custom_status``, ``update``, ``evict``, ``compact``,
``drop_watches``, ``rotate_token``, ``fail_next``, ``forbid``).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime
import ipaddress
import json
import re
import secrets
import shlex
import ssl
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from durable_jobs_harness.ports import free_port as free_port

MANUAL = "fake.durable-jobs.io/controller"  # annotation value "manual": no simulated controller or kubelet
DRIVER_SCRIPT = "fake.durable-jobs.io/driver-script"  # a SparkApplication's driver, as an sh -c script
BODY_LIMIT = 3 * 1024 * 1024
NODE = "fake-node-1"
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class RawJSON(str):
    """A value sent as these exact bytes of JSON (e.g. nesting deeper than ``json.dumps`` can build)."""


def dumps(obj: Any) -> bytes:
    """``json.dumps`` that splices :class:`RawJSON` values in as they are."""
    raws: list[str] = []

    def walk(value: Any) -> Any:
        if isinstance(value, RawJSON):
            raws.append(str(value))
            return f"@@raw-json-{len(raws) - 1}@@"
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    text = json.dumps(walk(obj))
    for i, raw in enumerate(raws):
        text = text.replace(f'"@@raw-json-{i}@@"', raw, 1)
    return text.encode()


def realistic_pod(name: str, namespace: str, size: int, *, managed: bool = True, seed: int = 0) -> dict[str, Any]:
    """A Running pod of about ``size`` bytes of JSON, shaped like a real one (managedFields, env, conditions)."""
    labels = {"app": "etl", "team": "data", "pod-template-hash": f"{seed:010x}"[-10:]}
    if managed:
        labels |= {"durable-jobs.io/managed": "true", "durable-jobs.io/token": "dj" + f"{seed:020x}"[-20:]}
    env = [{"name": f"SETTING_{i}", "value": f"value-{seed}-{i}-" + "x" * 40} for i in range(8)]
    pod: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "", MANUAL: "manual"},
            "managedFields": [
                {
                    "manager": "kubelet",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2026-01-01T00:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:status": {"f:conditions": {f'k:{{"type":"C{i}"}}': {} for i in range(4)}}},
                }
            ],
        },
        "spec": {
            "restartPolicy": "Never",
            "nodeName": NODE,
            "containers": [
                {
                    "name": "main",
                    "image": "registry.example.com/etl/loader:1.2.3",
                    "command": ["sh", "-c", "sleep 3600"],
                    "env": env,
                    "resources": {"limits": {"memory": "1Gi", "cpu": "1"}, "requests": {"memory": "1Gi", "cpu": "1"}},
                    "volumeMounts": [{"name": "kube-api-access", "mountPath": "/var/run/secrets", "readOnly": True}],
                }
            ],
            "volumes": [{"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": []}}],
        },
        "status": {
            "phase": "Running",
            "qosClass": "Guaranteed",
            "hostIP": "10.0.0.1",
            "podIP": "10.1.0.1",
            "startTime": "2026-01-01T00:00:00Z",
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
                for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "containerStatuses": [
                {
                    "name": "main",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "image": "registry.example.com/etl/loader:1.2.3",
                    "imageID": "sha256:" + "0" * 64,
                    "containerID": "containerd://" + "1" * 64,
                    "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                }
            ],
        },
    }
    pad = size - len(json.dumps(pod))
    if pad > 0:  # what real pods carry in bulk: the last-applied configuration, long env values
        pod["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = "y" * pad
    return pod


# --- TLS and kubeconfig ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsMaterial:
    """A CA and a server certificate for 127.0.0.1/localhost (strict-verification clean), written to ``directory``."""

    ca_pem: bytes
    cert_file: Path
    key_file: Path

    @classmethod
    def generate(cls, directory: Path) -> TlsMaterial:
        directory.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.timezone.utc)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "durable-jobs fake kube CA")])
        usage = dict(
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            encipher_only=False,
            decipher_only=False,
        )
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, **usage), True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **usage), True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        cert_file, key_file = directory / "apiserver.crt", directory / "apiserver.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
        (directory / "ca.crt").write_bytes(ca_pem)
        return cls(ca_pem=ca_pem, cert_file=cert_file, key_file=key_file)

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        return ctx


def kubeconfig_dict(
    server: str,
    ca_pem: bytes,
    *,
    token: str | None = None,
    exec_plugin: dict[str, Any] | None = None,
    token_file: str | None = None,
    namespace: str = "default",
    context: str = "fake",
) -> dict[str, Any]:
    """A minimal kubeconfig: one cluster (CA as data), one user (token, token file or exec plugin), one context."""
    user: dict[str, Any] = {}
    if token:
        user["token"] = token
    if token_file:
        user["tokenFile"] = token_file
    if exec_plugin:
        user["exec"] = exec_plugin
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "fake-cluster",
                "cluster": {"server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()},
            }
        ],
        "users": [{"name": "fake-user", "user": user}],
        "contexts": [
            {"name": context, "context": {"cluster": "fake-cluster", "user": "fake-user", "namespace": namespace}}
        ],
        "current-context": context,
    }


def write_kubeconfig(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


# --- resources, selectors, patches ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    builtin: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


PODS = Resource("", "v1", "pods", "Pod", True)
JOBS = Resource("batch", "v1", "jobs", "Job", True)
SPARK_APPS = Resource("sparkoperator.k8s.io", "v1beta2", "sparkapplications", "SparkApplication", False)
EVENTS = Resource("", "v1", "events", "Event", True)
RESOURCES = {(r.group, r.version, r.plural): r for r in (PODS, JOBS, SPARK_APPS, EVENTS)}
_EVENT_FIELDS = {
    "involvedObject.uid",
    "involvedObject.name",
    "involvedObject.kind",
    "involvedObject.namespace",
    "reason",
    "type",
}


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None, **headers: str):
        super().__init__(message)
        self.code, self.reason, self.message, self.details, self.headers = code, reason, message, details, headers


def status_body(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return body


def go_bool(value: str | None, name: str) -> bool:
    if value is None or value == "":
        return False
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ApiError(400, "BadRequest", f'strconv.ParseBool: parsing "{value}": invalid syntax ({name})')


def parse_label_selector(text: str) -> Callable[[dict[str, str]], bool]:
    """Equality- and set-based requirements: ``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``, ``a in (x,y)``, ``notin``."""
    reqs: list[Callable[[dict[str, str]], bool]] = []
    for part in re.findall(r"(?:[^,(]|\([^)]*\))+", text or ""):
        part = part.strip()
        if not part:
            continue
        if m := re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", part):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            reqs.append(_label_in(key, values, op == "in"))
        elif m := re.fullmatch(r"([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)", part):
            key, op, value = m.groups()
            reqs.append(_label_in(key, {value}, op != "!="))
        elif m := re.fullmatch(r"!([\w./-]+)", part):
            reqs.append(_label_present(m.group(1), False))
        elif re.fullmatch(r"[\w./-]+", part):
            reqs.append(_label_present(part, True))
        else:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {part!r}")
    return lambda labels: all(r(labels) for r in reqs)


def parse_field_selector(text: str, res: Resource) -> Callable[[dict[str, Any]], bool]:
    fields = {"metadata.name", "metadata.namespace"} | ({"status.phase", "spec.nodeName"} if res is PODS else set())
    if res is EVENTS:
        fields |= _EVENT_FIELDS
    reqs: list[Callable[[dict[str, Any]], bool]] = []
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        m = re.fullmatch(r"([\w.]+)\s*(==|=|!=)\s*(.*)", part)
        if not m:
            raise ApiError(400, "BadRequest", f"invalid field selector: {part!r}")
        name, op, value = m.groups()
        if name not in fields:
            raise ApiError(
                400, "BadRequest", f'"{name}" is not a known field selector: only "{", ".join(sorted(fields))}"'
            )
        reqs.append(_field_is(name, value, op != "!="))
    return lambda obj: all(r(obj) for r in reqs)


def _label_in(key: str, values: set[str], inside: bool) -> Callable[[dict[str, str]], bool]:
    """``key in (values)`` (``inside``) or ``key notin (values)``; ``=``/``!=`` are the one-value cases."""
    return lambda labels: (labels.get(key) in values) is inside


def _label_present(key: str, present: bool) -> Callable[[dict[str, str]], bool]:
    """``key`` (``present``) or ``!key``."""
    return lambda labels: (key in labels) is present


def _field_is(path: str, value: str, equal: bool) -> Callable[[dict[str, Any]], bool]:
    """``path=value`` (``equal``) or ``path!=value``, ``path`` dotted (``status.phase``)."""

    def matches(obj: dict[str, Any]) -> bool:
        cur: Any = obj
        for part in path.split("."):
            cur = (cur or {}).get(part)
        return (cur == value) is equal

    return matches


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


_MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name", "volumes": "name", "volumeMounts": "name"}


def strategic_merge_patch(target: Any, patch: Any, key: str = "") -> Any:
    """The part of strategic merge that matters here: lists with a merge key merge by it; other lists replace."""
    if isinstance(patch, list) and key in _MERGE_KEYS and isinstance(target, list):
        mk = _MERGE_KEYS[key]
        out = [copy.deepcopy(t) for t in target]
        for item in patch:
            idx = next((i for i, t in enumerate(out) if isinstance(t, dict) and t.get(mk) == item.get(mk)), None)
            if idx is None:
                out.append(copy.deepcopy(item))
            else:
                out[idx] = strategic_merge_patch(out[idx], item)
        return out
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out_d = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        out_d.pop(k, None) if v is None else out_d.__setitem__(k, strategic_merge_patch(out_d.get(k), v, k))
    return out_d


def json_patch(target: dict[str, Any], ops: list[Any]) -> dict[str, Any]:
    """RFC 6902: add, replace, remove, test."""
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "path" not in op or "op" not in op:
            raise ApiError(422, "Invalid", f"invalid JSON patch operation {op!r}")
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent: Any = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent.setdefault(p, {})
        last = parts[-1] if parts else ""
        kind = op["op"]
        if kind == "test":
            cur = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if cur != op.get("value"):
                raise ApiError(422, "Invalid", f"the test operation failed at {op['path']}")
        elif kind in ("add", "replace"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op.get("value"))
                elif kind == "add":
                    parent.insert(int(last), op.get("value"))
                else:
                    parent[int(last)] = op.get("value")
            else:
                if kind == "replace" and last not in parent:
                    raise ApiError(
                        422, "Invalid", f"replace operation does not apply: doc is missing path: {op['path']}"
                    )
                parent[last] = op.get("value")
        elif kind == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            elif last in parent:
                del parent[last]
            else:
                raise ApiError(422, "Invalid", f"remove operation does not apply: doc is missing path: {op['path']}")
        else:
            raise ApiError(422, "Invalid", f"unsupported JSON patch operation {kind!r}")
    return doc


# --- the simulated kubelet's shell ------------------------------------------------------------------------------


def container_script(container: dict[str, Any]) -> list[list[str]]:
    """The statements the container runs: ``sh -c`` scripts are split on ``;``, ``&&`` and newlines."""
    cmd = [*(container.get("command") or []), *(container.get("args") or [])]
    if len(cmd) >= 3 and cmd[0] in ("sh", "/bin/sh", "bash", "/bin/bash") and cmd[1] == "-c":
        script = cmd[2]
    elif cmd:
        script = shlex.join(cmd)
    else:
        script = "true"
    return [shlex.split(s) for s in re.split(r"\s*(?:;|&&|\n)\s*", script) if s.strip()]


def _memory_limited(container: dict[str, Any]) -> bool:
    return bool(((container.get("resources") or {}).get("limits") or {}).get("memory"))


# --- the fake -------------------------------------------------------------------------------------------------


@dataclass
class _Event:
    rv: int
    etype: str
    res: Resource
    namespace: str
    obj: dict[str, Any]
    old: dict[str, Any] | None


_DROP = object()
_END = object()


@dataclass(eq=False)
class _Watcher:
    res: Resource
    namespace: str
    labels: Callable[[dict[str, str]], bool]
    fields: Callable[[dict[str, Any]], bool]
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)

    def matches(self, obj: dict[str, Any] | None) -> bool:
        return obj is not None and self.labels((obj.get("metadata") or {}).get("labels") or {}) and self.fields(obj)

    def translate(self, ev: _Event) -> dict[str, Any] | None:
        """The event this watcher sees: objects entering or leaving its selection arrive as ADDED/DELETED."""
        if ev.res is not self.res or ev.namespace != self.namespace:
            return None
        new, old = self.matches(ev.obj), self.matches(ev.old)
        etype = ev.etype
        if etype == "MODIFIED":
            etype = "MODIFIED" if new and old else "ADDED" if new else "DELETED" if old else ""
        elif not new:
            etype = ""
        return {"type": etype, "object": ev.obj} if etype else None


@dataclass
class _Fault:
    status: int
    reason: str
    message: str
    count: int
    method: str | None
    path_contains: str | None
    retry_after: str | None


@dataclass
class _Hostile:
    """A hostile answer for the requests that match (``count`` None: every one)."""

    action: str  # respond, truncate, huge, hang, reset, redirect, echo
    method: str | None
    path_contains: str | None
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    count: int | None = None
    hits: int = 0

    def matches(self, request: web.Request) -> bool:
        return (self.method in (None, request.method)) and (
            self.path_contains is None or self.path_contains in request.path_qs
        )


HOSTILE_ACTIONS = ("respond", "truncate", "huge", "hang", "reset", "redirect", "echo")


class FakeKubeApiServer:
    """The fake on the running event loop. Hooks are plain methods: call them on that loop (or via the thread)."""

    def __init__(
        self,
        tls: TlsMaterial,
        *,
        token: str | None = None,
        time_scale: float = 0.02,
        step: float = 0.02,
        bookmark_interval: float = 0.5,
        gone_mode: str = "stream",
        port: int | None = None,
        custom_resources: bool = True,
    ) -> None:
        self.tls = tls
        self.tokens = {token or secrets.token_urlsafe(24)}
        self.token = next(iter(self.tokens))
        self.time_scale = time_scale
        self.step = step
        self.bookmark_interval = bookmark_interval
        self.gone_mode = gone_mode  # "stream": ERROR event in a 200 stream; "http": HTTP 410
        self.port = port or free_port()
        self.custom_resources = custom_resources  # False: the SparkApplication CRD is not installed
        self.rv = 1
        self.compacted_rv = 0
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.log: list[_Event] = []
        self.watchers: set[_Watcher] = set()
        self.requests: list[tuple[str, str]] = []
        self.counts: Counter[str] = Counter()  # "POST jobs", "LIST pods", "WATCH jobs", "GET pods", ...
        self.created: Counter[str] = Counter()  # plural -> objects ever created
        self.watches_opened: Counter[str] = Counter()  # "<plural>/<namespace>" -> watch requests
        self.logs: dict[tuple[str, str, str], list[str]] = {}
        self.faults: list[_Fault] = []
        self.forbidden: set[tuple[str, str]] = set()  # (verb, plural) refused with 403
        self.hostiles: list[_Hostile] = []
        self.corruptors: dict[tuple[str, str, str], Callable[[dict[str, Any]], None]] = {}
        self._tasks: dict[tuple[str, str, str], asyncio.Task[None]] = {}
        self._pod_done: dict[tuple[str, str], asyncio.Future[str]] = {}
        self._pod_running: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._continues: dict[str, tuple[int, list[dict[str, Any]]]] = {}
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    # --- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> FakeKubeApiServer:
        app = web.Application(client_max_size=BODY_LIMIT, middlewares=[self._middleware])
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self.tls.server_context()).start()
        return self

    async def stop(self) -> None:
        for w in list(self.watchers):
            w.queue.put_nowait(_END)
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- hooks for tests ---------------------------------------------------------------------------------------

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self.objects.get((plural, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def objects_of(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Copies of the stored objects of ``plural`` (in ``namespace``, or in all), by name."""
        return [
            copy.deepcopy(o)
            for (p, ns, _), o in sorted(self.objects.items())
            if p == plural and (namespace is None or ns == namespace)
        ]

    def update(
        self, plural: str, namespace: str, name: str, mutate: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        """Change an object in place (any field) and emit MODIFIED."""
        key = (plural, namespace, name)
        old = self.objects[key]
        new = copy.deepcopy(old)
        mutate(new)
        return self._store("MODIFIED", _res(plural), namespace, new, old)

    def set_phase(self, namespace: str, name: str, phase: str, **status: Any) -> dict[str, Any]:
        task = self._tasks.pop(("pods", namespace, name), None)
        if task is not None:
            task.cancel()

        def mutate(pod: dict[str, Any]) -> None:
            pod.setdefault("status", {}).update(phase=phase, **status)

        pod = self.update("pods", namespace, name, mutate)
        if phase in ("Succeeded", "Failed"):
            self._resolve_pod(namespace, name, phase)
        return pod

    def set_custom_status(
        self, group: str, version: str, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        assert RESOURCES[(group, version, plural)]
        return self.update(plural, namespace, name, lambda o: o.__setitem__("status", copy.deepcopy(status)))

    def evict(self, namespace: str, name: str) -> dict[str, Any]:
        """What the kubelet does to a pod under node memory pressure."""
        return self.set_phase(
            namespace,
            name,
            "Failed",
            reason="Evicted",
            message="The node was low on resource: memory. Threshold quantity: 100Mi, available: 90Mi.",
            containerStatuses=[
                {
                    "name": c["name"],
                    "ready": False,
                    "restartCount": 0,
                    "imageID": "",
                    "image": c.get("image"),
                    "state": {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown"}},
                }
                for c in self.objects[("pods", namespace, name)]["spec"]["containers"]
            ],
        )

    def compact(self) -> int:
        """Forget every event so far, as etcd compaction does: watches from older resourceVersions get 410."""
        self.compacted_rv = self.rv
        self.log.clear()
        return self.compacted_rv

    def drop_watches(self, clean: bool = False) -> int:
        """Cut every open watch stream mid-chunk (a crash, a proxy), or end it cleanly (EOF) when ``clean``."""
        for w in list(self.watchers):
            w.queue.put_nowait(_END if clean else _DROP)
        return len(self.watchers)

    def rotate_token(self) -> str:
        """Replace the accepted bearer token: requests with the old one get 401."""
        self.token = secrets.token_urlsafe(24)
        self.tokens = {self.token}
        return self.token

    def fail_next(
        self,
        status: int,
        reason: str,
        message: str = "injected",
        *,
        count: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        self.faults.append(_Fault(status, reason, message, count, method, path_contains, retry_after))

    def hostile(
        self,
        action: str,
        *,
        method: str | None = None,
        path_contains: str | None = None,
        status: int = 200,
        body: bytes | str = b"",
        headers: dict[str, str] | None = None,
        count: int | None = None,
    ) -> None:
        """Answer the matching requests with ``action`` (see :data:`HOSTILE_ACTIONS`) instead of the apiserver's.

        ``respond``: ``status``, ``body`` and ``headers`` as given; ``truncate``: ``body`` cut in half under a
        ``Content-Length`` of all of it, then the connection closes; ``huge``: a chunked body of ``len(body)``
        bytes repeated until ``status`` MiB; ``hang``: no answer at all; ``reset``: the connection is reset;
        ``redirect``: ``status`` (3xx) to ``headers["Location"]``; ``echo``: a 401 page quoting every request
        header (``Authorization`` included), as some proxies do.
        """
        assert action in HOSTILE_ACTIONS, action
        data = body.encode() if isinstance(body, str) else body
        self.hostiles.append(_Hostile(action, method, path_contains, status, data, dict(headers or {}), count))

    def calm(self) -> None:
        """Forget every hostile answer and corruption."""
        self.hostiles.clear()
        self.corruptors.clear()

    def hostile_hits(self) -> int:
        return sum(h.hits for h in self.hostiles)

    def corrupt(self, plural: str, namespace: str, name: str, fn: Callable[[dict[str, Any]], None]) -> None:
        """Change object ``name`` in every answer that carries it (GET, list items, watch events from now on)."""
        self.corruptors[(plural, namespace, name)] = fn

    def inject_watch_line(self, plural: str, namespace: str, line: bytes) -> int:
        """Send ``line`` (any bytes; a newline is added) into every open watch of ``plural`` in ``namespace``."""
        n = 0
        for w in list(self.watchers):
            if w.res.plural == plural and w.namespace == namespace:
                w.queue.put_nowait(("raw", line))
                n += 1
        return n

    def forget_events(self, namespace: str | None = None) -> int:
        """What the apiserver's event TTL (an hour by default) does: the events are gone."""
        names = [k for k in self.objects if k[0] == "events" and (namespace is None or k[1] == namespace)]
        for key in names:
            self.objects.pop(key, None)
        return len(names)

    def events_of(self, namespace: str, uid: str) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(o)
            for (p, ns, _), o in sorted(self.objects.items())
            if p == "events" and ns == namespace and o["involvedObject"]["uid"] == uid
        ]

    def seed_pods(self, namespace: str, count: int, min_size: int, max_size: int, *, managed: bool = True) -> int:
        """``count`` realistic Running pods (``min_size``..``max_size`` bytes each), without controllers."""
        for i in range(count):
            size = min_size + (max_size - min_size) * ((i * 7919) % 1000) // 999
            prefix = "pod" if managed else "other"
            pod = realistic_pod(f"{prefix}-{i:06d}", namespace, size, managed=managed, seed=i)
            pod["metadata"]["uid"] = str(uuid.uuid4())
            pod["metadata"]["creationTimestamp"] = now_rfc3339()
            pod["apiVersion"], pod["kind"] = "v1", "Pod"
            pod["metadata"]["resourceVersion"] = self._next_rv()
            self.objects[("pods", namespace, pod["metadata"]["name"])] = pod
        return count

    def forbid(self, verb: str, plural: str) -> None:
        """RBAC: refuse ``verb`` (list, watch, get, create, delete) on ``plural`` with 403."""
        self.forbidden.add((verb, plural))

    def create_many(self, plural: str, namespace: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Create objects without HTTP (scale tests): as many POSTs would."""
        return [self._create(_res(plural), namespace, body) for body in bodies]

    def stats(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "created": dict(self.created),
            "watches_opened": dict(self.watches_opened),
            "open_watches": len(self.watchers),
            "objects": len(self.objects),
            "resource_version": self.rv,
        }

    def open_watches(self) -> int:
        return len(self.watchers)

    def pod_log(self, namespace: str, name: str, container: str) -> list[str]:
        return list(self.logs.get((namespace, name, container), ()))

    # --- storage and events --------------------------------------------------------------------------------

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _store(
        self, etype: str, res: Resource, namespace: str, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> dict[str, Any]:
        meta = obj["metadata"]
        meta["resourceVersion"] = self._next_rv()
        key = (res.plural, namespace, meta["name"])
        if etype == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = obj
        wire = self._wire(res, obj)
        old_wire = self._wire(res, old) if old is not None else None
        ev = _Event(self.rv, etype, res, namespace, wire, old_wire)
        self.log.append(ev)
        for w in list(self.watchers):
            out = w.translate(ev)
            if out is not None:
                w.queue.put_nowait(out)
        return copy.deepcopy(wire)

    def _wire(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(obj)
        out["apiVersion"], out["kind"] = res.api_version, res.kind
        if self.corruptors:
            meta = obj.get("metadata") or {}
            fn = self.corruptors.get((res.plural, str(meta.get("namespace")), str(meta.get("name"))))
            if fn is not None:
                fn(out)
        return out

    def _json(self, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(body=dumps(data), status=status, headers=headers, content_type="application/json")

    def _record_event(self, res: Resource, namespace: str, obj: dict[str, Any], reason: str, message: str) -> None:
        """A core/v1 Event about ``obj``, as its controller writes it."""
        meta = obj["metadata"]
        warning = reason in ("BackoffLimitExceeded", "DeadlineExceeded", "SparkApplicationFailed")
        event = {
            "metadata": {
                "name": f"{meta['name']}.{secrets.token_hex(8)}",
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": now_rfc3339(),
            },
            "involvedObject": {
                "kind": res.kind,
                "namespace": namespace,
                "name": meta["name"],
                "uid": meta["uid"],
                "apiVersion": res.api_version,
            },
            "reason": reason,
            "message": message,
            "type": "Warning" if warning else "Normal",
            "source": {"component": "job-controller" if res is JOBS else "spark-operator"},
            "reportingComponent": "job-controller" if res is JOBS else "spark-operator",
            "firstTimestamp": now_rfc3339(),
            "lastTimestamp": now_rfc3339(),
            "count": 1,
        }
        self._store("ADDED", EVENTS, namespace, event, None)

    # --- HTTP ---------------------------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        for rule in list(self.hostiles):
            if rule.matches(request) and request.path != "/fake/stats":
                rule.hits += 1
                if rule.count is not None:
                    rule.count -= 1
                    if rule.count <= 0:
                        self.hostiles.remove(rule)
                return await self._hostile_answer(request, rule)
        try:
            if request.path not in ("/version", "/fake/stats"):
                auth = request.headers.get("Authorization", "")
                if not auth.startswith("Bearer ") or auth[len("Bearer ") :] not in self.tokens:
                    raise ApiError(401, "Unauthorized", "Unauthorized")
            for fault in list(self.faults):
                if (fault.method in (None, request.method)) and (
                    fault.path_contains is None or fault.path_contains in request.path_qs
                ):
                    fault.count -= 1
                    if fault.count <= 0:
                        self.faults.remove(fault)
                    headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                    raise ApiError(fault.status, fault.reason, fault.message, None, **headers)
            response: web.StreamResponse = await handler(request)
            return response
        except ApiError as exc:
            return self._json(status_body(exc.code, exc.reason, exc.message, exc.details), exc.code, exc.headers)

    async def _hostile_answer(self, request: web.Request, rule: _Hostile) -> web.StreamResponse:
        if rule.action == "respond":
            return web.Response(status=rule.status, body=rule.body, headers=rule.headers)
        if rule.action == "redirect":
            return web.Response(status=rule.status, body=rule.body, headers=rule.headers)
        if rule.action == "echo":
            echoed = "".join(f"<li>{k}: {v}</li>" for k, v in request.headers.items())
            page = f"<html><body><h1>401 Authorization Required</h1><p>You sent:</p><ul>{echoed}</ul></body></html>"
            return web.Response(status=401, text=page, content_type="text/html")
        if rule.action == "hang":
            await asyncio.sleep(3600)
            return web.Response(status=504)
        assert request.transport is not None
        if rule.action == "reset":
            request.transport.abort()
            return web.Response(status=500)
        if rule.action == "truncate":
            resp = web.StreamResponse(
                status=rule.status,
                headers={**rule.headers, "Content-Type": "application/json", "Content-Length": str(len(rule.body))},
            )
            await resp.prepare(request)
            await resp.write(rule.body[: len(rule.body) // 2])
            await asyncio.sleep(0.01)
            request.transport.close()
            return resp
        # huge: a chunked body, no Content-Length: the client must stop reading by itself
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        chunk = (rule.body or b"[") * (65536 // max(1, len(rule.body or b"[")))
        sent = 0
        try:
            while sent < rule.status * 1024 * 1024:
                await resp.write(chunk)
                sent += len(chunk)
            await resp.write_eof()
        except (ConnectionResetError, RuntimeError):
            pass
        return resp

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/fake/stats":  # not Kubernetes: the benchmark reads the fake's counters
            return self._json(self.stats())
        if request.path == "/fake/seed" and request.method == "POST":  # not Kubernetes: the benchmark's data
            spec = await request.json()
            n = self.seed_pods(
                spec["namespace"],
                int(spec["count"]),
                int(spec["min_size"]),
                int(spec["max_size"]),
                managed=bool(spec.get("managed", True)),
            )
            return self._json({"seeded": n})
        if request.path == "/version":
            return self._json({"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake", "platform": "linux/amd64"})
        route = self._route(request.path)
        if route is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        res, namespace, name, sub = route
        method = request.method
        if name is None:
            verb = {"GET": "list", "POST": "create"}.get(method)
            if verb == "list" and go_bool(request.query.get("watch"), "watch"):
                verb = "watch"
        else:
            verb = {"GET": "get", "DELETE": "delete", "PATCH": "patch"}.get(method)
        if verb is None or (
            sub is not None and (method, sub) not in (("GET", "status"), ("PATCH", "status"), ("GET", "log"))
        ):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if sub == "log" and res is not PODS:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        self.counts[f"{verb.upper()} {res.plural}{'/' + sub if sub else ''}"] += 1
        if (verb, res.plural) in self.forbidden:
            raise ApiError(
                403,
                "Forbidden",
                f'{res.plural}{"." + res.group if res.group else ""} is forbidden: User "system:serviceaccount:airflow:'
                f'triggerer" cannot {verb} resource "{res.plural}" in API group "{res.group}" in the namespace '
                f'"{namespace}"',
                {"group": res.group, "kind": res.plural},
            )
        if verb == "watch":
            return await self._watch(request, res, namespace)
        if verb == "list":
            return self._list(request, res, namespace)
        if verb == "create":
            if res is EVENTS:
                raise ApiError(405, "MethodNotAllowed", "this fake does not create events over HTTP")
            return self._json(self._create(res, namespace, await self._json_body(request)), 201)
        assert name is not None
        if sub == "log":
            return self._log(request, namespace, name)
        if verb == "get":
            return self._json(self._wire(res, self._must(res, namespace, name)))
        if verb == "delete":
            body = await self._json_body(request, optional=True)
            return self._delete(request, res, namespace, name, body or {})
        return await self._patch(request, res, namespace, name, status_only=sub == "status")

    def _route(self, path: str) -> tuple[Resource, str, str | None, str | None] | None:
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        if len(rest) < 3 or len(rest) > 5 or rest[0] != "namespaces":
            return None
        res = RESOURCES.get((group, version, rest[2]))
        if res is None or (not res.builtin and not self.custom_resources):
            return None
        return res, rest[1], rest[3] if len(rest) > 3 else None, rest[4] if len(rest) > 4 else None

    async def _json_body(self, request: web.Request, optional: bool = False) -> Any:
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {BODY_LIMIT}") from None
        if not raw:
            if optional:
                return None
            raise ApiError(400, "BadRequest", "the body of the request was empty")
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"couldn't get version/kind; json parse error: {exc}") from None

    def _must(self, res: Resource, namespace: str, name: str) -> dict[str, Any]:
        obj = self.objects.get((res.plural, namespace, name))
        if obj is None:
            group = f".{res.group}" if res.group else ""
            raise ApiError(
                404,
                "NotFound",
                f'{res.plural}{group} "{name}" not found',
                {"name": name, "group": res.group, "kind": res.plural},
            )
        return obj

    # create

    def _create(self, res: Resource, namespace: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the object provided is not a JSON object")
        # missing apiVersion/kind default to the URL's (the typed clients send none); different ones are refused
        if body.get("apiVersion", res.api_version) != res.api_version or body.get("kind", res.kind) != res.kind:
            raise ApiError(
                400,
                "BadRequest",
                f"the API version in the data ({body.get('apiVersion')}) does not match the expected API version "
                f"({res.api_version}) or kind ({body.get('kind')} != {res.kind})",
            )
        obj = copy.deepcopy(body)
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        meta = obj.setdefault("metadata", {})
        if meta.get("namespace", namespace) != namespace:
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
            )
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(
                secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5)
            )
        name = meta.get("name")
        causes = []
        if not name:
            causes.append(("metadata.name", "name or generateName is required"))
        elif not _DNS_SUBDOMAIN.match(name) or len(name) > 253:
            causes.append(
                (
                    "metadata.name",
                    f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
                    "alphanumeric characters, '-' or '.'",
                )
            )
        elif res is JOBS and len(name) > 63:
            causes.append(("metadata.name", f'Invalid value: "{name}": must be no more than 63 characters'))
        for k, v in (meta.get("labels") or {}).items():
            if not isinstance(v, str) or len(v) > 63 or not _LABEL_VALUE.match(v):
                causes.append(
                    ("metadata.labels", f'Invalid value: "{v}": a valid label must be 63 characters or less ({k})')
                )
        spec = obj.get("spec") or {}
        if res is PODS:
            causes += _pod_spec_causes(spec, "spec")
        if res is JOBS:
            template_spec = ((spec.get("template") or {}).get("spec")) or {}
            causes += _pod_spec_causes(template_spec, "spec.template.spec")
            if template_spec.get("restartPolicy") not in ("Never", "OnFailure"):
                causes.append(
                    ("spec.template.spec.restartPolicy", 'Required value: valid values: "OnFailure", "Never"')
                )
        if causes:
            raise ApiError(
                422,
                "Invalid",
                f'{res.kind} "{name}" is invalid: ' + ", ".join(f"{f}: {m}" for f, m in causes),
                {
                    "name": name or "",
                    "group": res.group,
                    "kind": res.kind,
                    "causes": [{"field": f, "message": m} for f, m in causes],
                },
            )
        if (res.plural, namespace, name) in self.objects:
            group = f".{res.group}" if res.group else ""
            raise ApiError(
                409,
                "AlreadyExists",
                f'{res.plural}{group} "{name}" already exists',
                {"name": name, "group": res.group, "kind": res.plural},
            )
        meta.update(
            namespace=namespace,
            uid=str(uuid.uuid4()),
            creationTimestamp=now_rfc3339(),
            generation=1,
        )
        if res is PODS:
            spec.setdefault("restartPolicy", "Always")
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        elif res is JOBS:
            uid = meta["uid"]
            controller = {"batch.kubernetes.io/controller-uid": uid, "controller-uid": uid}
            names = {"batch.kubernetes.io/job-name": name, "job-name": name}
            spec.setdefault("backoffLimit", 6)
            spec.setdefault("completions", 1)
            spec.setdefault("parallelism", 1)
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
            tmeta = spec["template"].setdefault("metadata", {})
            tmeta["labels"] = {**(tmeta.get("labels") or {}), **controller, **names}
            if not meta.get("labels"):
                meta["labels"] = {**controller, **names}
            obj["status"] = {}
        else:
            obj.pop("status", None)  # the status subresource cannot be written on create
        obj["spec"] = spec
        self.created[res.plural] += 1
        stored = self._store("ADDED", res, namespace, obj, None)
        if (meta.get("annotations") or {}).get(MANUAL) != "manual":
            runner = {"pods": self._kubelet, "jobs": self._job_controller, "sparkapplications": self._spark_operator}[
                res.plural
            ]
            key = (res.plural, namespace, name)
            if res is PODS:
                self._pod_done[(namespace, name)] = asyncio.get_running_loop().create_future()
                self._pod_running[(namespace, name)] = asyncio.get_running_loop().create_future()
            self._tasks[key] = asyncio.get_running_loop().create_task(runner(namespace, name))
        elif res is PODS:
            self._pod_done[(namespace, name)] = asyncio.get_running_loop().create_future()
            self._pod_running[(namespace, name)] = asyncio.get_running_loop().create_future()
        return stored

    # list and watch

    def _list(self, request: web.Request, res: Resource, namespace: str) -> web.Response:
        labels = parse_label_selector(request.query.get("labelSelector", ""))
        fields = parse_field_selector(request.query.get("fieldSelector", ""), res)
        limit = int(request.query.get("limit") or 0)
        token = request.query.get("continue")
        if token:
            try:
                key = json.loads(base64.b64decode(token))["id"]
                list_rv, remaining = self._continues.pop(key)
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, "BadRequest", "continue key is not valid") from None
            if list_rv < self.compacted_rv:
                raise ApiError(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list result. You can start a "
                    "new list without the continue parameter.",
                )
        else:
            list_rv = self.rv
            # references, not copies: stored objects are replaced on every change, never changed in place
            remaining = [
                o
                for (p, ns, _), o in sorted(self.objects.items())
                if p == res.plural and ns == namespace and labels(o["metadata"].get("labels") or {}) and fields(o)
            ]
        meta: dict[str, Any] = {"resourceVersion": str(list_rv)}
        items = remaining
        if limit and len(remaining) > limit:
            items, rest = remaining[:limit], remaining[limit:]
            key = secrets.token_hex(8)
            self._continues[key] = (list_rv, rest)
            meta["continue"] = base64.b64encode(json.dumps({"id": key, "rv": list_rv}).encode()).decode()
            meta["remainingItemCount"] = len(rest)
        items = [self._wire(res, o) for o in items]
        if res.builtin:  # built-in lists carry kind/apiVersion once, not per item
            items = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items]
        return self._json({"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": meta, "items": items})

    async def _watch(self, request: web.Request, res: Resource, namespace: str) -> web.StreamResponse:
        q = request.query
        labels = parse_label_selector(q.get("labelSelector", ""))
        fields = parse_field_selector(q.get("fieldSelector", ""), res)
        bookmarks = go_bool(q.get("allowWatchBookmarks"), "allowWatchBookmarks")
        timeout = float(q.get("timeoutSeconds") or 0)
        rv_param = q.get("resourceVersion", "")
        self.watches_opened[f"{res.plural}/{namespace}"] += 1
        watcher = _Watcher(res, namespace, labels, fields)
        # snapshot and registration without an await in between: no event can fall in the gap
        if rv_param in ("", "0"):
            initial = [
                {"type": "ADDED", "object": self._wire(res, o)}
                for (p, ns, _), o in sorted(self.objects.items())
                if p == res.plural and ns == namespace and watcher.matches(o)
            ]
        else:
            try:
                since = int(rv_param)
            except ValueError:
                raise ApiError(400, "BadRequest", f"invalid resource version: {rv_param!r}") from None
            if since < self.compacted_rv:
                message = f"too old resource version: {since} ({self.compacted_rv + 1})"
                if self.gone_mode == "http":
                    raise ApiError(410, "Expired", message)
                gone = {"type": "ERROR", "object": status_body(410, "Expired", message)}
                resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
                resp.enable_chunked_encoding()
                await resp.prepare(request)
                await resp.write(dumps(gone) + b"\n")
                await resp.write_eof()
                return resp
            initial = [out for ev in self.log if ev.rv > since and (out := watcher.translate(ev)) is not None]
        self.watchers.add(watcher)
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        try:
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for event in initial:
                await resp.write(dumps(event) + b"\n")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout if timeout else None
            while True:
                wait = self.bookmark_interval if bookmarks else 3600.0
                if deadline is not None:
                    wait = min(wait, deadline - loop.time())
                    if wait <= 0:
                        break
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), wait)
                except asyncio.TimeoutError:
                    if bookmarks and watcher.queue.empty():
                        bookmark = {
                            "kind": res.kind,
                            "apiVersion": res.api_version,
                            "metadata": {"resourceVersion": str(self.rv)},
                        }
                        await resp.write(dumps({"type": "BOOKMARK", "object": bookmark}) + b"\n")
                    continue
                if item is _DROP:
                    assert request.transport is not None
                    request.transport.abort()  # cut mid-stream: no terminating chunk
                    return resp
                if item is _END:
                    break
                if isinstance(item, tuple) and item[0] == "raw":
                    await resp.write(item[1] + b"\n")
                    continue
                await resp.write(dumps(item) + b"\n")
            await resp.write_eof()
            return resp
        except ConnectionResetError:  # the client went away
            return resp
        finally:
            self.watchers.discard(watcher)

    # delete and patch

    def _delete(
        self, request: web.Request, res: Resource, namespace: str, name: str, body: dict[str, Any]
    ) -> web.Response:
        obj = self._must(res, namespace, name)
        pre = body.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != obj["metadata"]["uid"]:
            raise ApiError(
                409,
                "Conflict",
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {obj['metadata']['uid']}",
                {"name": name, "kind": res.plural},
            )
        policy = body.get("propagationPolicy") or request.query.get("propagationPolicy")
        if policy is not None and policy not in ("Orphan", "Background", "Foreground"):
            raise ApiError(422, "Invalid", f'propagationPolicy: Unsupported value: "{policy}"')
        grace = body.get("gracePeriodSeconds", request.query.get("gracePeriodSeconds"))
        done = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {"name": name, "group": res.group, "kind": res.plural, "uid": obj["metadata"]["uid"]},
        }
        self._stop_controller(res.plural, namespace, name)
        if res is PODS:
            phase = (obj.get("status") or {}).get("phase")
            grace_s = float(grace) if grace is not None else float(obj["spec"].get("terminationGracePeriodSeconds", 30))
            if grace_s <= 0 or phase in ("Succeeded", "Failed", "Pending"):
                return self._json(self._remove(res, namespace, name))
            marked = self.update(
                "pods",
                namespace,
                name,
                lambda p: p["metadata"].update(
                    deletionTimestamp=now_rfc3339(), deletionGracePeriodSeconds=int(grace_s)
                ),
            )
            self._spawn(("grace", namespace, name), self._terminate_gracefully(namespace, name, grace_s))
            return self._json(marked)
        if res is JOBS:
            policy = policy or "Orphan"  # the batch/v1 default through the API: pods are orphaned
            owned = self._owned_pods(namespace, obj["metadata"]["uid"])
            if policy == "Foreground":
                marked = self.update(
                    "jobs",
                    namespace,
                    name,
                    lambda j: j["metadata"].update(deletionTimestamp=now_rfc3339(), finalizers=["foregroundDeletion"]),
                )
                self._spawn(("gc", namespace, name), self._collect(namespace, owned, then=(res, name)))
                return self._json(marked, 202)
            self._remove(res, namespace, name)
            if policy == "Background":
                self._spawn(("gc", namespace, name), self._collect(namespace, owned))
            else:
                for pod in owned:
                    self.update("pods", namespace, pod, lambda p: p["metadata"].pop("ownerReferences", None))
            return self._json(done)
        self._remove(res, namespace, name)
        driver = f"{name}-driver"
        if ("pods", namespace, driver) in self.objects and policy != "Orphan":
            self._spawn(("gc", namespace, name), self._collect(namespace, [driver]))
        return self._json(done)

    def _remove(self, res: Resource, namespace: str, name: str) -> dict[str, Any]:
        self._stop_controller(res.plural, namespace, name)
        obj = copy.deepcopy(self.objects[(res.plural, namespace, name)])
        gone = self._store("DELETED", res, namespace, obj, obj)
        if res is PODS:
            self._resolve_pod(namespace, name, "Deleted")
        return gone

    def _stop_controller(self, plural: str, namespace: str, name: str) -> None:
        task = self._tasks.pop((plural, namespace, name), None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _spawn(self, key: tuple[str, str, str], coro: Any) -> None:
        self._tasks[key] = asyncio.get_running_loop().create_task(coro)

    def _owned_pods(self, namespace: str, uid: str) -> list[str]:
        return [
            n
            for (p, ns, n), o in self.objects.items()
            if p == "pods"
            and ns == namespace
            and any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or ())
        ]

    async def _collect(self, namespace: str, pods: list[str], then: tuple[Resource, str] | None = None) -> None:
        await asyncio.sleep(self.step)
        for pod in pods:
            if ("pods", namespace, pod) in self.objects:
                self._remove(PODS, namespace, pod)
        if then is not None and (then[0].plural, namespace, then[1]) in self.objects:
            self._remove(then[0], namespace, then[1])

    async def _terminate_gracefully(self, namespace: str, name: str, grace: float) -> None:
        await asyncio.sleep(min(grace * self.time_scale, 10 * self.step))
        if ("pods", namespace, name) not in self.objects:
            return

        def killed(pod: dict[str, Any]) -> None:
            st = pod.setdefault("status", {})
            st["phase"] = "Failed"
            st["containerStatuses"] = [
                {
                    **cs,
                    "ready": False,
                    "state": {"terminated": {"exitCode": 143, "reason": "Error", "finishedAt": now_rfc3339()}},
                }
                for cs in st.get("containerStatuses") or ()
            ]

        self.update("pods", namespace, name, killed)
        self._remove(PODS, namespace, name)

    async def _patch(
        self, request: web.Request, res: Resource, namespace: str, name: str, status_only: bool
    ) -> web.Response:
        ctype = request.content_type
        accepted = ["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"]
        if res.builtin:
            accepted.insert(2, "application/strategic-merge-patch+json")
        if ctype not in accepted or ctype == "application/apply-patch+yaml":
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: "
                + ", ".join(accepted),
            )
        patch = await self._json_body(request)
        old = self._must(res, namespace, name)
        if ctype == "application/json-patch+json":
            if not isinstance(patch, list):
                raise ApiError(
                    400,
                    "BadRequest",
                    "json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp",
                )
            new = json_patch(old, patch)
        elif ctype == "application/strategic-merge-patch+json":
            new = strategic_merge_patch(old, patch)
        else:
            new = merge_patch(old, patch)
        for immutable in ("name", "namespace", "uid", "creationTimestamp"):
            if (new.get("metadata") or {}).get(immutable) != old["metadata"].get(immutable):
                raise ApiError(422, "Invalid", f"metadata.{immutable}: Invalid value: field is immutable")
        if status_only:  # /status changes only the status
            new = {**copy.deepcopy(old), "status": new.get("status")}
        else:  # the main resource never changes the status
            new["status"] = copy.deepcopy(old.get("status"))
            if new.get("spec") != old.get("spec"):
                new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        return self._json(self._store("MODIFIED", res, namespace, new, old))

    # logs

    def _log(self, request: web.Request, namespace: str, name: str) -> web.Response:
        pod = self._must(PODS, namespace, name)
        containers = [c["name"] for c in pod["spec"]["containers"]]
        container = request.query.get("container")
        if container is None:
            if len(containers) > 1:
                raise ApiError(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]",
                )
            container = containers[0]
        if container not in containers:
            raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
        statuses = {cs["name"]: cs for cs in (pod.get("status") or {}).get("containerStatuses") or ()}
        state = (statuses.get(container) or {}).get("state") or {}
        if not state.get("running") and not state.get("terminated"):
            waiting = (state.get("waiting") or {}).get("reason") or "ContainerCreating"
            raise ApiError(400, "BadRequest", f'container "{container}" in pod "{name}" is waiting to start: {waiting}')
        lines = self.logs.get((namespace, name, container), [])
        tail = request.query.get("tailLines")
        if tail is not None:
            lines = lines[-int(tail) :] if int(tail) > 0 else []
        text = "".join(f"{line}\n" for line in lines).encode()
        limit = request.query.get("limitBytes")
        if limit is not None:
            text = text[: int(limit)]
        return web.Response(body=text, content_type="text/plain")

    # --- the simulated cluster ---------------------------------------------------------------------------------

    def _resolve_pod(self, namespace: str, name: str, outcome: str) -> None:
        for table in (self._pod_running, self._pod_done):
            fut = table.get((namespace, name))
            if fut is not None and not fut.done():
                fut.set_result(outcome if table is self._pod_done else None)  # type: ignore[arg-type]

    async def _kubelet(self, namespace: str, name: str) -> None:
        """Pending -> (image pull) -> Running -> the containers' scripts -> Succeeded/Failed (or restarts)."""
        key = ("pods", namespace, name)

        def set_status(**changes: Any) -> None:
            if key in self.objects:
                self.update("pods", namespace, name, lambda p: p.setdefault("status", {}).update(changes))

        containers = self.objects[key]["spec"]["containers"]
        policy = self.objects[key]["spec"].get("restartPolicy", "Always")
        await asyncio.sleep(self.step)
        self.update("pods", namespace, name, lambda p: p["spec"].__setitem__("nodeName", NODE))
        set_status(
            conditions=[{"type": "PodScheduled", "status": "True", "lastTransitionTime": now_rfc3339()}],
            containerStatuses=[_waiting(c, "ContainerCreating") for c in containers],
        )
        bad = [c for c in containers if "does-not-exist" in str(c.get("image"))]
        if bad:
            reasons = ["ErrImagePull", "ImagePullBackOff"]
            i = 0
            while True:  # never pulls; alternates like the real back-off, until the pod is deleted
                reason = reasons[min(i, 1)]
                message = (
                    f'Back-off pulling image "{bad[0]["image"]}"'
                    if i
                    else f'failed to pull image "{bad[0]["image"]}": not found'
                )
                set_status(
                    containerStatuses=[
                        _waiting(c, reason, message) if c in bad else _waiting(c, "ContainerCreating")
                        for c in containers
                    ]
                )
                i += 1
                await asyncio.sleep(10 * self.step)
        restarts = 0
        while True:
            await asyncio.sleep(self.step)
            started = now_rfc3339()
            set_status(
                phase="Running",
                startTime=self.objects[key].get("status", {}).get("startTime") or started,
                containerStatuses=[_running(c, started, restarts) for c in containers],
            )
            fut = self._pod_running.get((namespace, name))
            if fut is not None and not fut.done():
                fut.set_result(None)
            results = await asyncio.gather(*(self._run_container(namespace, name, c) for c in containers))
            finished = now_rfc3339()
            failed = any(code != 0 for code, _ in results)
            terminated = [
                {
                    "name": c["name"],
                    "ready": False,
                    "restartCount": restarts,
                    "imageID": "",
                    "image": c.get("image"),
                    "state": {
                        "terminated": {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": finished}
                    },
                }
                for c, (code, reason) in zip(containers, results, strict=True)
            ]
            if policy == "Never" or (policy == "OnFailure" and not failed):
                set_status(phase="Failed" if failed else "Succeeded", containerStatuses=terminated)
                self._resolve_pod(namespace, name, "Failed" if failed else "Succeeded")
                return
            restarts += 1
            set_status(
                containerStatuses=[
                    {
                        **t,
                        "restartCount": restarts,
                        "imageID": "",
                        "lastState": t["state"],
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    }
                    for t in terminated
                ]
            )
            await asyncio.sleep(5 * self.step)

    async def _run_container(self, namespace: str, pod: str, container: dict[str, Any]) -> tuple[int, str]:
        out = self.logs.setdefault((namespace, pod, container["name"]), [])
        for words in container_script(container):
            if not words:
                continue
            cmd, args = words[0], words[1:]
            if cmd == "echo":
                out.append(" ".join(args))
            elif cmd == "sleep":
                await asyncio.sleep(float(args[0]) * self.time_scale if args else 0)
            elif cmd == "exit":
                code = int(args[0]) if args else 0
                return code, "Completed" if code == 0 else "Error"
            elif cmd == "true":
                continue
            elif cmd == "false":
                return 1, "Error"
            elif cmd == "tail" and args == ["/dev/zero"]:
                if _memory_limited(container):
                    await asyncio.sleep(self.step)
                    return 137, "OOMKilled"
                await asyncio.Event().wait()  # reads forever
            else:
                out.append(f"sh: {cmd}: not found")
                return 127, "Error"
        return 0, "Completed"

    async def _job_controller(self, namespace: str, name: str) -> None:
        key = ("jobs", namespace, name)

        def set_status(**changes: Any) -> None:
            if key in self.objects:
                self.update("jobs", namespace, name, lambda j: j.setdefault("status", {}).update(changes))

        def conditions(*conds: tuple[str, str, str]) -> list[dict[str, Any]]:
            t = now_rfc3339()
            return [
                {"type": c, "status": "True", "reason": r, "message": m, "lastProbeTime": t, "lastTransitionTime": t}
                for c, r, m in conds
            ]

        job = self.objects[key]
        spec = job["spec"]
        await asyncio.sleep(self.step)
        while self.objects.get(key, {}).get("spec", {}).get("suspend"):
            if not any(
                c.get("type") == "Suspended" for c in self.objects[key].get("status", {}).get("conditions") or ()
            ):
                set_status(conditions=conditions(("Suspended", "JobSuspended", "Job suspended")))
            await asyncio.sleep(self.step)
        set_status(startTime=now_rfc3339(), conditions=[])
        loop = asyncio.get_running_loop()
        deadline_s = spec.get("activeDeadlineSeconds")
        deadline = loop.time() + float(deadline_s) * self.time_scale if deadline_s else None
        backoff_limit = int(spec.get("backoffLimit", 6))
        failed = 0
        while key in self.objects:
            pod_name = f"{name}-{''.join(secrets.choice('bcdfghjklmnpqrstvwxz2456789') for _ in range(5))}"
            template = copy.deepcopy(spec["template"])
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod_name,
                    "labels": template.get("metadata", {}).get("labels") or {},
                    "annotations": template.get("metadata", {}).get("annotations") or {},
                    "ownerReferences": [
                        {
                            "apiVersion": "batch/v1",
                            "kind": "Job",
                            "name": name,
                            "uid": job["metadata"]["uid"],
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": template["spec"],
            }
            self._create(PODS, namespace, pod)
            self._record_event(JOBS, namespace, job, "SuccessfulCreate", f"Created pod: {pod_name}")
            set_status(active=1, ready=0)
            try:
                remaining = None if deadline is None else max(0.0, deadline - loop.time())
                outcome = await asyncio.wait_for(asyncio.shield(self._pod_done[(namespace, pod_name)]), remaining)
            except asyncio.TimeoutError:
                if ("pods", namespace, pod_name) in self.objects:
                    self._remove(PODS, namespace, pod_name)
                failed += 1
                message = "Job was active longer than specified deadline"
                set_status(
                    active=0, failed=failed, conditions=conditions(("FailureTarget", "DeadlineExceeded", message))
                )
                await asyncio.sleep(self.step)
                set_status(
                    conditions=conditions(
                        ("FailureTarget", "DeadlineExceeded", message), ("Failed", "DeadlineExceeded", message)
                    )
                )
                self._record_event(JOBS, namespace, job, "DeadlineExceeded", message)
                await self._ttl_after_finished(namespace, name)
                return
            if outcome == "Succeeded":
                set_status(
                    active=0,
                    ready=0,
                    succeeded=1,
                    conditions=conditions(
                        ("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods")
                    ),
                )
                await asyncio.sleep(self.step)
                set_status(
                    completionTime=now_rfc3339(),
                    conditions=conditions(
                        ("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"),
                        ("Complete", "CompletionsReached", "Reached expected number of succeeded pods"),
                    ),
                )
                self._record_event(JOBS, namespace, job, "Completed", "Job completed")
                await self._ttl_after_finished(namespace, name)
                return
            failed += 1
            set_status(active=0, failed=failed)
            if failed > backoff_limit:
                message = "Job has reached the specified backoff limit"
                set_status(conditions=conditions(("FailureTarget", "BackoffLimitExceeded", message)))
                await asyncio.sleep(self.step)
                set_status(
                    conditions=conditions(
                        ("FailureTarget", "BackoffLimitExceeded", message), ("Failed", "BackoffLimitExceeded", message)
                    )
                )
                self._record_event(JOBS, namespace, job, "BackoffLimitExceeded", message)
                await self._ttl_after_finished(namespace, name)
                return
            await asyncio.sleep(self.step)

    async def _ttl_after_finished(self, namespace: str, name: str) -> None:
        """The TTL controller: a finished Job with ``ttlSecondsAfterFinished`` is deleted, its pods first."""
        job = self.objects.get(("jobs", namespace, name))
        ttl = (job or {}).get("spec", {}).get("ttlSecondsAfterFinished")
        if job is None or ttl is None:
            return
        await asyncio.sleep(float(ttl) * self.time_scale)
        if ("jobs", namespace, name) not in self.objects:
            return
        for pod in self._owned_pods(namespace, job["metadata"]["uid"]):
            if ("pods", namespace, pod) in self.objects:
                self._remove(PODS, namespace, pod)
        self._remove(JOBS, namespace, name)

    async def _spark_operator(self, namespace: str, name: str) -> None:
        key = ("sparkapplications", namespace, name)

        def set_app(**changes: Any) -> None:
            if key in self.objects:
                self.update("sparkapplications", namespace, name, lambda a: a.setdefault("status", {}).update(changes))

        app = self.objects[key]
        spec = app["spec"]
        await asyncio.sleep(self.step)
        driver = f"{name}-driver"
        app_id = f"spark-{uuid.uuid4().hex}"
        set_app(
            applicationState={"state": "SUBMITTED"},
            sparkApplicationId=app_id,
            submissionAttempts=1,
            lastSubmissionAttemptTime=now_rfc3339(),
            driverInfo={"podName": driver},
        )
        script = (app["metadata"].get("annotations") or {}).get(DRIVER_SCRIPT, "echo Pi is roughly 3.14; exit 0")
        labels = {
            **((spec.get("driver") or {}).get("labels") or {}),
            "spark-role": "driver",
            "sparkoperator.k8s.io/app-name": name,
            "spark-app-selector": app_id,
        }
        self._create(
            PODS,
            namespace,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": driver,
                    "labels": labels,
                    "ownerReferences": [
                        {
                            "apiVersion": SPARK_APPS.api_version,
                            "kind": "SparkApplication",
                            "name": name,
                            "uid": app["metadata"]["uid"],
                            "controller": True,
                        }
                    ],
                },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "spark-kubernetes-driver",
                            "image": spec.get("image", "spark:4.0.0"),
                            "command": ["sh", "-c", script],
                        }
                    ],
                },
            },
        )
        await asyncio.shield(self._pod_running[(namespace, driver)])
        if key not in self.objects:
            return
        set_app(
            applicationState={"state": "RUNNING"},
            driverInfo={"podName": driver, "webUIAddress": "10.0.0.10:4040", "webUIPort": 4040},
        )
        outcome = await asyncio.shield(self._pod_done[(namespace, driver)])
        if outcome == "Succeeded":
            set_app(applicationState={"state": "SUCCEEDING"})
            await asyncio.sleep(self.step)
            set_app(applicationState={"state": "COMPLETED"}, terminationTime=now_rfc3339())
            self._record_event(
                SPARK_APPS, namespace, app, "SparkApplicationCompleted", f"SparkApplication {name} completed"
            )
            return
        pod = self.objects.get(("pods", namespace, driver)) or {}
        term: dict[str, Any] = next(
            (
                cs.get("state", {}).get("terminated")
                for cs in pod.get("status", {}).get("containerStatuses") or ()
                if cs.get("state", {}).get("terminated")
            ),
            {},
        )
        message = (
            f"driver container failed with ExitCode: {term.get('exitCode')}, Reason: {term.get('reason')}"
            if outcome == "Failed"
            else "driver pod not found"
        )
        set_app(applicationState={"state": "FAILING", "errorMessage": message})
        await asyncio.sleep(self.step)
        set_app(applicationState={"state": "FAILED", "errorMessage": message}, terminationTime=now_rfc3339())
        self._record_event(
            SPARK_APPS, namespace, app, "SparkApplicationFailed", f"SparkApplication {name} failed: {message}"
        )


def _res(plural: str) -> Resource:
    return next(r for r in RESOURCES.values() if r.plural == plural)


def _pod_spec_causes(spec: dict[str, Any], where: str) -> list[tuple[str, str]]:
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return [(f"{where}.containers", "Required value")]
    causes = []
    for i, c in enumerate(containers):
        if not c.get("name"):
            causes.append((f"{where}.containers[{i}].name", "Required value"))
        if not c.get("image"):
            causes.append((f"{where}.containers[{i}].image", "Required value"))
    return causes


def _waiting(c: dict[str, Any], reason: str, message: str = "") -> dict[str, Any]:
    waiting = {"reason": reason, **({"message": message} if message else {})}
    return {
        "name": c["name"],
        "ready": False,
        "restartCount": 0,
        "imageID": "",
        "image": c.get("image"),
        "state": {"waiting": waiting},
    }


def _running(c: dict[str, Any], started: str, restarts: int) -> dict[str, Any]:
    return {
        "name": c["name"],
        "ready": True,
        "started": True,
        "restartCount": restarts,
        "imageID": "",
        "image": c.get("image"),
        "state": {"running": {"startedAt": started}},
    }


# --- in a thread, for sync (worker-side) tests ------------------------------------------------------------------


class KubeApiServerThread:
    """Runs a :class:`FakeKubeApiServer` on its own event loop in a daemon thread.

    ``fake.<hook>(...)`` runs the hook on the fake's loop and returns its result, so sync and async tests (whose
    own loops run the client) drive the same fake the same way.
    """

    def __init__(self, tls: TlsMaterial, **kwargs: Any) -> None:
        self._tls, self._kwargs = tls, kwargs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.server: FakeKubeApiServer | None = None

    def start(self) -> KubeApiServerThread:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self.server = loop.run_until_complete(FakeKubeApiServer(self._tls, **self._kwargs).start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-kube-apiserver", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("the fake apiserver did not start within 30 s")
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is None or self.server is None:
            return
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(30)
        self._loop = None

    def __enter__(self) -> KubeApiServerThread:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` on the fake's loop and return its result (a copy-safe snapshot)."""
        assert self._loop is not None

        async def run() -> Any:
            result = fn(*args, **kwargs)
            if asyncio.iscoroutine(result):
                result = await result
            return copy.deepcopy(result)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(30)

    def __getattr__(self, name: str) -> Any:
        server = self.__dict__.get("server")
        if server is None:
            raise AttributeError(name)
        attr = getattr(server, name)
        if callable(attr):
            return lambda *a, **k: self.call(attr, *a, **k)
        return self.call(getattr, server, name)

    def objects_named(self, plural: str, namespace: str) -> list[str]:
        server = self.server
        assert server is not None, "not started"
        return sorted(n for (p, ns, n) in self.call(lambda: list(server.objects)) if p == plural and ns == namespace)

    def iter_requests(self) -> Iterator[tuple[str, str]]:
        return iter(self.call(lambda: list(self.server.requests)))  # type: ignore[union-attr]


def serve(directory: Path, time_scale: float) -> None:
    """Run the fake until stdin closes (benchmarks: the fake in its own process, so it is not measured)."""
    import sys

    tls = TlsMaterial.generate(directory / "tls")

    async def run() -> None:
        fake = await FakeKubeApiServer(tls, time_scale=time_scale).start()
        kubeconfig = write_kubeconfig(
            directory / "kubeconfig", kubeconfig_dict(fake.url, tls.ca_pem, token=fake.token, namespace="durable")
        )
        print(json.dumps({"url": fake.url, "kubeconfig": str(kubeconfig)}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await fake.stop()

    asyncio.run(run())


if __name__ == "__main__":
    import argparse
    import sys

    # `python -m durable_jobs_harness.fake_kube [serve] DIR [--time-scale S]`: `serve` as every endpoint process says it
    argv = sys.argv[1:]
    if argv[:1] == ["serve"]:
        argv = argv[1:]
    parser = argparse.ArgumentParser(description="run the fake kube-apiserver until stdin closes")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--time-scale", type=float, default=0.02)
    args = parser.parse_args(argv)
    serve(args.directory, args.time_scale)
