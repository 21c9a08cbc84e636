"""The ``kubernetes_durable`` connection type: which cluster, and how to authenticate.

The extras use the names of the cncf-kubernetes provider's ``kubernetes`` connection (also with its old
``extra__kubernetes__`` prefix), so an existing ``kubernetes_default`` connection works as it is. One source:

* ``in_cluster`` (true): the pod's service account (its token is re-read as it rotates);
* ``kube_config``: a kubeconfig's content (YAML or JSON), kept in the connection, so a remote triggerer needs
  no file (apache/airflow#61736);
* ``kube_config_path`` (+ ``cluster_context``): a kubeconfig file on the worker *and* the triggerer;
* host (the apiserver URL) with password (a bearer token) and extra ``ca_data``/``ca_file``;
* none of them: ``$KUBECONFIG`` or ``~/.kube/config``.

Also: ``namespace``, ``disable_verify_ssl``, ``timeout``, ``watch`` (false: one GET per job per poll instead
of the shared watch), ``watch_timeout``, ``resync_interval``, ``delete_propagation_policy`` (what cancelling
deletes), ``delete_grace_period_seconds``, ``log_tail_lines``, ``console_url`` (a link template with
``{namespace}``, ``{name}``, ``{kind}``, ``{plural}``, ``{uid}``), ``max_response_bytes``. Every field, its
default and its old prefix are declared once in :mod:`durable_jobs.systems.kubernetes`.

Checked when the hook builds a client (:mod:`durable_jobs.hooks.validate`): the type (``kubernetes_durable``,
or the cncf-kubernetes provider's ``kubernetes``), an apiserver URL over http(s), and the kubeconfig the
connection names: a path that does not exist on this host, a file that cannot be read, or one without the
context to use are reported with the file, the key and the fix, instead of the loader's "Expected key
current-context".

Exec-plugin kubeconfigs (EKS, GKE) work: the token is renewed before it expires and after any 401. A rotated
static token (the password) reaches running triggers through the poller's refetch of the connection after a
401; the client's key (the poller's identity) is the endpoint, never a credential. Nothing of this reaches
trigger kwargs: the trigger gets the ``conn_id`` and resolves it on the triggerer.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, ClassVar

import yaml  # type: ignore[import-untyped]

from durable_jobs.errors import ConnectionConfigError
from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.fields import Connection
from durable_jobs.hooks.validate import Expect, host_name
from durable_jobs.systems.kubernetes import CONNECTION

if TYPE_CHECKING:
    from durable_jobs.clients.kubernetes import KubernetesClient, KubernetesConfig

CONN_TYPE = CONNECTION.conn_type
#: where the pod's service account is mounted (what in_cluster reads)
SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def _kubeconfig_content(value: Any, conn_id: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    try:
        data = json.loads(value) if str(value).lstrip().startswith("{") else yaml.safe_load(str(value))
    except (ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"connection {conn_id!r}: extra kube_config is neither JSON nor YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"connection {conn_id!r}: extra kube_config must be a kubeconfig mapping")
    return data


def _kubeconfig_problem(data: Any, context: str | None) -> str | None:
    """What keeps a kubeconfig from naming a cluster (the loader's checks, as a sentence); None when nothing."""
    if not isinstance(data, dict):
        return "is not a kubeconfig mapping"
    name = context or data.get("current-context")
    if not name:
        return (
            "has no current-context: set one (kubectl config use-context NAME --kubeconfig FILE) or give the "
            "connection extra cluster_context"
        )

    def named(section: str, wanted: Any) -> dict[str, Any] | None:
        entries = data.get(section)
        for entry in entries if isinstance(entries, list) else ():
            if isinstance(entry, dict) and entry.get("name") == wanted:
                body = entry.get(section[:-1])
                return body if isinstance(body, dict) else {}
        return None

    ctx = named("contexts", name)
    if ctx is None:
        known = [e.get("name") for e in data.get("contexts") or () if isinstance(e, dict)]
        return f"has no context {name!r} (its contexts: {', '.join(map(str, known)) or 'none'})"
    cluster = named("clusters", ctx.get("cluster"))
    if cluster is None:
        return f"has no cluster {ctx.get('cluster')!r}, which context {name!r} names"
    if not cluster.get("server"):
        return f"names no server for cluster {ctx.get('cluster')!r} (context {name!r})"
    return None


def _read_kubeconfig(path: str) -> Any:
    """The parsed file; OSError or yaml.YAMLError as they come."""
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


class KubernetesHook(DurableJobHook):
    connection: ClassVar[Connection] = CONNECTION
    conn_type: ClassVar[str] = CONNECTION.conn_type
    default_conn_name: ClassVar[str] = CONNECTION.default_conn_name
    hook_name: ClassVar[str] = CONNECTION.hook_name
    client_module: ClassVar[str] = "durable_jobs.clients.kubernetes"
    expect: ClassVar[Expect] = Expect(
        service="the Kubernetes apiserver",
        fix="give the apiserver's URL as host (e.g. https://{host}:6443), or leave host empty and use a kubeconfig",
        wrong_schemes={"k8s": "Spark's k8s:// master URL (the apiserver URL is what follows k8s://)"},
        reads_schema=False,
    )

    @classmethod
    def connection_problems(cls, conn: Any) -> list[str]:
        """A kubeconfig kept in the connection must name the context to use and its cluster's server."""
        extra = CONNECTION.read(conn)
        if extra["kube_config"] is None:
            return []
        problem = _kubeconfig_problem(
            _kubeconfig_content(extra["kube_config"], str(getattr(conn, "conn_id", "?"))), extra["cluster_context"]
        )
        return [f"extra kube_config {problem}"] if problem else []

    @classmethod
    def check_files(cls, conn: Any) -> None:
        """The kubeconfig file (or the service account) the connection relies on, on this host."""
        extra = CONNECTION.read(conn)
        name = getattr(conn, "conn_id", "?")
        if extra["in_cluster"]:
            if not os.path.exists(SERVICE_ACCOUNT_TOKEN):
                raise ConnectionConfigError(
                    f"connection {name!r} sets extra in_cluster, but {SERVICE_ACCOUNT_TOKEN} does not exist on this "
                    f"host ({host_name()}): in_cluster works in a pod with a service account; elsewhere give "
                    "kube_config_path, kube_config or host"
                )
            return
        if extra["kube_config"] is not None or (conn.host or "").strip():
            return
        given = extra["kube_config_path"]
        if given:
            where = f"extra kube_config_path {given!r}"
        else:
            given = os.environ.get("KUBECONFIG") or "~/.kube/config"
            where = (
                "names no cluster (kube_config_path, kube_config, in_cluster or host), and the default kubeconfig "
                f"{given!r}"
            )
        paths = [os.path.expanduser(p) for p in given.split(os.pathsep) if p]
        existing = [p for p in paths if os.path.exists(p)]
        if not existing:
            raise ConnectionConfigError(
                f"connection {name!r} {where} does not exist on this host ({host_name()}): the file must be on every "
                "worker and triggerer, or put its content in extra kube_config"
            )
        if len(paths) > 1:
            return  # several files are merged by the loader: not checked here
        try:
            data = _read_kubeconfig(existing[0])
        except OSError as exc:
            raise ConnectionConfigError(
                f"connection {name!r} {where} cannot be read on this host ({host_name()}): {exc.strerror or exc}"
            ) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}" if mark is not None else ""
            # the loader's own words only, never the line itself: a kubeconfig holds credentials
            raise ConnectionConfigError(
                f"connection {name!r} {where} is not valid YAML{at}: {getattr(exc, 'problem', None) or 'unreadable'}"
            ) from None
        problem = _kubeconfig_problem(data, extra["cluster_context"])
        if problem:
            raise ConnectionConfigError(f"connection {name!r} {where} {problem}")

    @classmethod
    def client_from_connection(cls, conn: Any) -> KubernetesClient:
        from durable_jobs.clients.kubernetes import KubernetesClient

        return KubernetesClient(cls.config_from_connection(conn))

    @classmethod
    def config_from_connection(cls, conn: Any) -> KubernetesConfig:
        from durable_jobs.clients.kubernetes import KubernetesConfig

        extra = CONNECTION.read(conn)
        conn_id = getattr(conn, "conn_id", "?")
        host = (conn.host or "").strip() or None
        if host and "://" not in host:
            host = f"https://{host}" + (f":{conn.port}" if conn.port else "")
        kube_config = extra["kube_config"]
        try:
            return KubernetesConfig(
                in_cluster=extra["in_cluster"],
                kubeconfig=_kubeconfig_content(kube_config, conn_id) if kube_config is not None else None,
                kubeconfig_path=extra["kube_config_path"],
                context=extra["cluster_context"],
                host=host,
                token=conn.password or None,
                ca_file=extra["ca_file"],
                ca_data=extra["ca_data"],
                verify_ssl=not extra["disable_verify_ssl"],
                namespace=extra["namespace"],
                timeout=extra["timeout"],
                watch=extra["watch"],
                watch_timeout=extra["watch_timeout"],
                resync_interval=extra["resync_interval"],
                delete_propagation_policy=extra["delete_propagation_policy"],
                delete_grace_period_seconds=extra["delete_grace_period_seconds"],
                log_tail_lines=extra["log_tail_lines"],
                console_url=extra["console_url"],
                max_response_bytes=extra["max_response_bytes"],
            )
        except ValueError as exc:
            raise ValueError(f"connection {conn_id!r}: {exc}") from None

    def test_connection(self) -> tuple[bool, str]:
        try:
            conn = self.get_connection(self.conn_id)
            self.check(conn)
            client = self.client_from_connection(conn)
            version = self.probe(client.version)
        except Exception as exc:
            return False, str(exc)
        return True, f"Kubernetes apiserver {version.get('gitVersion', '?')} answered"
