"""The ``kubernetes_durable`` connection type: which cluster, and how to authenticate.

The extras use the names of the cncf-kubernetes provider's ``kubernetes`` connection (also with its old
``extra__kubernetes__`` prefix), so an existing ``kubernetes_default`` connection works as it is. One source:

* ``in_cluster`` (true): the pod's service account (its token is re-read as it rotates);
* ``kube_config``: a kubeconfig's content (YAML or JSON), kept in the connection, so a remote triggerer needs
  no file (apache/airflow#61736);
* ``kube_config_path`` (+ ``cluster_context``): a kubeconfig file on the worker *and* the triggerer;
* host (the apiserver URL) with password (a bearer token) and extra ``ca_data``/``ca_file``;
* none of them: ``$KUBECONFIG`` or ``~/.kube/config``.

Also: ``namespace`` (default namespace), ``disable_verify_ssl``, ``timeout`` (seconds per request, 30),
``watch`` (false: one GET per job per poll instead of the shared watch), ``watch_timeout``,
``resync_interval``, ``delete_propagation_policy`` (``Background``, ``Foreground`` or ``Orphan``; what
cancelling deletes), ``delete_grace_period_seconds``, ``log_tail_lines`` (log lines in a failure message,
50), ``console_url`` (a link template with ``{namespace}``, ``{name}``, ``{kind}``, ``{plural}``, ``{uid}``),
``max_response_bytes`` (the largest answer read whole: a list page, a watch event; default 16 MiB, an int or
``"64MiB"``).

Exec-plugin kubeconfigs (EKS, GKE) work: the token is renewed before it expires and after any 401. A rotated
static token (the password) reaches running triggers through the poller's refetch of the connection after a
401; the client's key (the poller's identity) is the endpoint, never a credential. Nothing of this reaches
trigger kwargs: the trigger gets the ``conn_id`` and resolves it on the triggerer.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

import yaml  # type: ignore[import-untyped]

from durable_jobs.hooks.base import DurableJobHook, as_bool, byte_size, extra_of
from durable_jobs.transport.limits import DEFAULT_MAX_BODY

if TYPE_CHECKING:
    from durable_jobs.clients.kubernetes import KubernetesClient, KubernetesConfig

CONN_TYPE = "kubernetes_durable"
_OLD_PREFIX = "extra__kubernetes__"


def _extras(conn: Any) -> dict[str, Any]:
    raw = extra_of(conn)
    out = {k[len(_OLD_PREFIX) :]: v for k, v in raw.items() if k.startswith(_OLD_PREFIX)}
    out.update({k: v for k, v in raw.items() if not k.startswith(_OLD_PREFIX)})
    return {k: v for k, v in out.items() if v not in (None, "")}


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


def _number(extra: dict[str, Any], key: str, default: float) -> float:
    value = extra.get(key)
    return default if value is None else float(value)


class KubernetesHook(DurableJobHook):
    conn_type: ClassVar[str] = CONN_TYPE
    default_conn_name: ClassVar[str] = "kubernetes_default"
    hook_name: ClassVar[str] = "Kubernetes (durable jobs)"
    client_module: ClassVar[str] = "durable_jobs.clients.kubernetes"

    @classmethod
    def client_from_connection(cls, conn: Any) -> KubernetesClient:
        from durable_jobs.clients.kubernetes import KubernetesClient

        return KubernetesClient(cls.config_from_connection(conn))

    @classmethod
    def config_from_connection(cls, conn: Any) -> KubernetesConfig:
        from durable_jobs.clients.kubernetes import KubernetesConfig

        extra = _extras(conn)
        conn_id = getattr(conn, "conn_id", "?")
        host = (conn.host or "").strip() or None
        if host and "://" not in host:
            host = f"https://{host}" + (f":{conn.port}" if conn.port else "")
        kube_config = extra.get("kube_config")
        grace = extra.get("delete_grace_period_seconds")
        try:
            return KubernetesConfig(
                in_cluster=as_bool(extra.get("in_cluster"), False),
                kubeconfig=_kubeconfig_content(kube_config, conn_id) if kube_config is not None else None,
                kubeconfig_path=extra.get("kube_config_path"),
                context=extra.get("cluster_context"),
                host=host,
                token=conn.password or None,
                ca_file=extra.get("ca_file"),
                ca_data=extra.get("ca_data"),
                verify_ssl=not as_bool(extra.get("disable_verify_ssl"), False),
                namespace=extra.get("namespace"),
                timeout=_number(extra, "timeout", 30.0),
                watch=as_bool(extra.get("watch"), True),
                watch_timeout=int(_number(extra, "watch_timeout", 300)),
                resync_interval=_number(extra, "resync_interval", 600.0),
                delete_propagation_policy=str(extra.get("delete_propagation_policy") or "Background"),
                delete_grace_period_seconds=None if grace is None else int(grace),
                log_tail_lines=int(_number(extra, "log_tail_lines", 50)),
                console_url=extra.get("console_url"),
                max_response_bytes=byte_size(extra.get("max_response_bytes"), DEFAULT_MAX_BODY),
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
