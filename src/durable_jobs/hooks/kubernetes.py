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

Exec-plugin kubeconfigs (EKS, GKE) work: the token is renewed before it expires and after any 401. A rotated
static token (the password) reaches running triggers through the poller's refetch of the connection after a
401; the client's key (the poller's identity) is the endpoint, never a credential. Nothing of this reaches
trigger kwargs: the trigger gets the ``conn_id`` and resolves it on the triggerer.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

import yaml  # type: ignore[import-untyped]

from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.fields import Connection
from durable_jobs.systems.kubernetes import CONNECTION

if TYPE_CHECKING:
    from durable_jobs.clients.kubernetes import KubernetesClient, KubernetesConfig

CONN_TYPE = CONNECTION.conn_type


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


class KubernetesHook(DurableJobHook):
    connection: ClassVar[Connection] = CONNECTION
    conn_type: ClassVar[str] = CONNECTION.conn_type
    default_conn_name: ClassVar[str] = CONNECTION.default_conn_name
    hook_name: ClassVar[str] = CONNECTION.hook_name
    client_module: ClassVar[str] = "durable_jobs.clients.kubernetes"

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
        client = self.client_from_connection(self.get_connection(self.conn_id))

        try:
            version = self.probe(client.version)
        except Exception as exc:
            return False, str(exc)
        return True, f"Kubernetes apiserver {version.get('gitVersion', '?')} answered"
