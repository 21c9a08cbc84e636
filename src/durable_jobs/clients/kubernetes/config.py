"""Which cluster to reach and how: :class:`KubernetesConfig`, checked when built, with its two identities.

Why it exists: the poller shares one waiter set per endpoint, while connections are kept per credential set. So
:attr:`KubernetesConfig.key` (the poller's identity) holds no credential and survives a rotation, while
:attr:`KubernetesConfig.connection_key` (the registry of connections) is keyed by everything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from durable_jobs.clients.kubernetes.objects import DNS_LABEL_RE
from durable_jobs.transport.http import DEFAULT_MAX_BODY

SYSTEM = "kubernetes"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
PROPAGATION_POLICIES = ("Background", "Foreground", "Orphan")


# --- configuration -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KubernetesConfig:
    """How to reach one cluster. Credentials (``token``, ``kubeconfig`` content) never appear in a repr, log or key.

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
    max_response_bytes: int = DEFAULT_MAX_BODY  # the largest answer read whole (a list page, a watch event)
    page_size: int = 250  # objects per list page: see benchmarks/listing_kubernetes.py (20 KB pods: ~7 ms each)

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
        if self.namespace is not None and not DNS_LABEL_RE.match(self.namespace):
            raise ValueError(f"invalid namespace {self.namespace!r}")
        if self.max_response_bytes <= 0:
            raise ValueError("max_response_bytes must be positive")
        if not 1 <= self.page_size <= 10_000:
            raise ValueError("page_size must be between 1 and 10000")

    @property
    def key(self) -> Hashable:
        """The endpoint's identity, without any credential: the poller's key.

        The server (with its CA and context) and the settings, never the token or the kubeconfig's users, so a
        client built after the credentials rotated shares the poller (and its waiters) of the one built before.
        """
        ident: dict[str, Any] = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("token", "kubeconfig", "ca_data")
        }
        ident["ca_data"] = _digest(self.ca_data) if self.ca_data else None
        if self.kubeconfig is not None:
            ident["kubeconfig"] = _cluster_identity(self.kubeconfig, self.context)
        return (SYSTEM, _digest(json.dumps(ident, sort_keys=True, default=str))[:32])

    @property
    def connection_key(self) -> Hashable:
        """Everything, credentials included (as a digest): one connection per credential set."""
        return (SYSTEM, self._full_digest())

    def _full_digest(self) -> str:
        fields_ = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return _digest(json.dumps(fields_, sort_keys=True, default=str))

    def describe_source(self) -> str:
        if self.in_cluster:
            return "the in-cluster service account"
        if self.kubeconfig is not None:
            server = _cluster_identity(self.kubeconfig, self.context).get("server")
            return (
                "the connection's kubeconfig"
                + (f" (server {server})" if isinstance(server, str) else "")
                + (f" (context {self.context})" if self.context else "")
            )
        if self.host:
            return self.host
        path = self.kubeconfig_path or os.environ.get("KUBECONFIG") or "~/.kube/config"
        return f"kubeconfig {path}" + (f" (context {self.context})" if self.context else "")

    def direct_kubeconfig(self) -> dict[str, Any]:
        """``host``/``token``/``ca_*`` as a kubeconfig, so that one loader (and its TLS handling) serves all."""
        import base64

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


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _named(entries: Any, name: Any) -> dict[str, Any]:
    """The ``{"name": name, ...}`` entry of a kubeconfig section, or {}."""
    if isinstance(entries, list):
        for entry in entries:
            if isinstance(entry, dict) and entry.get("name") == name:
                return entry
    return {}


def _cluster_identity(kubeconfig: Mapping[str, Any], context: str | None) -> dict[str, Any]:
    """What names the endpoint in a kubeconfig: the context, its namespace and cluster (server, CA); no user."""
    name = context or kubeconfig.get("current-context")
    ctx = _named(kubeconfig.get("contexts"), name).get("context")
    ctx = ctx if isinstance(ctx, dict) else {}
    cluster = _named(kubeconfig.get("clusters"), ctx.get("cluster")).get("cluster")
    cluster = cluster if isinstance(cluster, dict) else {}
    ca = cluster.get("certificate-authority-data")
    return {
        "context": str(name),
        "namespace": str(ctx.get("namespace")),
        "server": cluster.get("server") if isinstance(cluster.get("server"), str) else None,
        "ca_file": str(cluster.get("certificate-authority")),
        "ca_data": _digest(str(ca)) if ca else None,
        "insecure": str(cluster.get("insecure-skip-tls-verify")),
    }
