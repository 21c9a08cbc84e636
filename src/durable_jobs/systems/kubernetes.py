"""Kubernetes, declared: the ``kubernetes_durable`` connection and the public classes.

The extras have the names of the cncf-kubernetes provider's ``kubernetes`` connection, also with its old
``extra__kubernetes__`` prefix, so an existing ``kubernetes_default`` works as it is.
"""

from __future__ import annotations

from durable_jobs.hooks.fields import CA_FILE, MAX_RESPONSE_BYTES, TIMEOUT, Connection, Field
from durable_jobs.system import Link, System

CONNECTION = Connection(
    conn_type="kubernetes_durable",
    hook_class="KubernetesHook",
    hook_name="Kubernetes (durable jobs)",
    default_conn_name="kubernetes_default",
    fields=(
        Field("in_cluster", "In cluster (service account)", "boolean", False),
        Field("kube_config_path", "Kubeconfig path", description="a file on the workers and the triggerer"),
        Field(
            "kube_config",
            "Kubeconfig content (YAML/JSON)",
            "raw",
            secret=True,
            description="kept in the connection: a remote triggerer needs no file",
        ),
        Field("cluster_context", "Context"),
        Field(
            "namespace", "Default namespace", description="default: the context's, the service account's, else default"
        ),
        CA_FILE,
        Field("ca_data", "CA certificate (PEM)"),
        Field("disable_verify_ssl", "Disable TLS verification", "boolean", False),
        TIMEOUT,
        Field("watch", "Watch (false: one GET per job)", "boolean", True),
        Field("watch_timeout", "Watch request timeout (s)", "integer", 300, positive=True),
        Field("resync_interval", "Seconds between relists", "number", 600.0, positive=True),
        Field(
            "delete_propagation_policy",
            "Delete propagation policy",
            default="Background",
            choices=("Background", "Foreground", "Orphan"),
            description="what cancelling deletes with the object",
        ),
        Field("delete_grace_period_seconds", "Delete grace period (s)", "integer", description="default: the object's"),
        Field("log_tail_lines", "Log lines in failure messages", "integer", 50),
        Field("console_url", "Console URL template", description="with {namespace}, {name}, {kind}, {plural}, {uid}"),
        MAX_RESPONSE_BYTES,
    ),
    hidden=("login", "schema", "port"),
    relabel={"host": "API server URL (optional)", "password": "Bearer token (optional)"},
    placeholders={
        "host": "https://kubernetes.default.svc",
        "extra": '{"kube_config_path": "/opt/airflow/kubeconfig", "namespace": "batch"}',
    },
    legacy_prefixes=("extra__kubernetes__",),
    also_accepts=("kubernetes",),  # the cncf-kubernetes provider's, read as it is
)

SYSTEM = System(
    module="kubernetes",
    integration="Kubernetes (durable)",
    doc_url="https://kubernetes.io/docs/concepts/workloads/controllers/job/",
    connections=(CONNECTION,),
    triggers=("KubernetesTrigger",),
    operators=(
        "KubernetesJobOperator",
        "KubernetesObjectOperator",
        "KubernetesPodOperator",
        "SparkApplicationOperator",
    ),
    links=(Link("Kubernetes object", "console_url"),),  # only with the connection's console_url template
)
