"""Provider metadata, found by Airflow through the ``apache_airflow_provider`` entry point.

Declarative only (no hook imports), so ``airflow providers list`` and the connection form work without the
optional dependencies of every system installed.
"""

from __future__ import annotations

from typing import Any

from durable_jobs import __version__


def _field(label: str, kind: str = "string", default: Any = None) -> dict[str, Any]:
    return {"label": label, "schema": {"type": [kind, "null"], "default": default}}


# (integration name, documentation URL, module name shared by hooks/, operators/ and triggers/)
_SYSTEMS: list[tuple[str, str, str]] = [
    (
        "Spark Standalone (durable)",
        "https://spark.apache.org/docs/latest/spark-standalone.html",
        "spark_standalone",
    ),
    (
        "YARN (durable)",
        "https://hadoop.apache.org/docs/stable/hadoop-yarn/hadoop-yarn-site/ResourceManagerRest.html",
        "yarn",
    ),
    ("Amazon EMR (durable)", "https://docs.aws.amazon.com/emr/", "emr"),
    ("Kubernetes (durable)", "https://kubernetes.io/docs/concepts/workloads/controllers/job/", "kubernetes"),
]
# No entry for "aws": the amazon provider owns that connection type; the EMR hooks read aws connections as they are.
_CONNECTION_TYPES: list[dict[str, Any]] = [
    {
        "connection-type": "spark_standalone_rest",
        "hook-class-name": "durable_jobs.hooks.spark_standalone.SparkStandaloneHook",
        "hook-name": "Spark Standalone (REST)",
        "ui-field-behaviour": {
            "hidden-fields": ["login"],
            "relabeling": {
                "host": "Master host(s), comma-separated for HA",
                "port": "REST port",
                "schema": "Scheme (http or https)",
                "password": "JWT bearer token",
            },
            "placeholders": {
                "host": "spark-master-1,spark-master-2",
                "port": "6066",
                "schema": "http",
                "extra": '{"master_ui_urls": "http://spark-master-1:8080", "verify_ssl": true}',
            },
        },
        "conn-fields": {
            "master_ui_urls": _field("Master UI URLs"),
            "verify_ssl": _field("Verify TLS", "boolean", True),
            "ca_file": _field("CA bundle path"),
            "timeout": _field("Request timeout (s)", "number", 30),
        },
    },
    {
        "connection-type": "yarn_rm",
        "hook-class-name": "durable_jobs.hooks.yarn.YarnHook",
        "hook-name": "YARN ResourceManager (REST)",
        "ui-field-behaviour": {
            "hidden-fields": ["password"],
            "relabeling": {
                "host": "ResourceManager host(s), comma-separated for HA",
                "port": "RM web port",
                "schema": "Scheme (http or https)",
                "login": "User (simple auth)",
            },
            "placeholders": {
                "host": "rm1.example.com,rm2.example.com",
                "port": "8088",
                "schema": "http",
                "login": "etl",
                "extra": '{"principal": "etl@EXAMPLE.COM", "keytab": "/etc/security/keytabs/etl.keytab"}',
            },
        },
        "conn-fields": {
            "auth": _field("Auth: none, simple or kerberos"),
            "principal": _field("Kerberos principal"),
            "keytab": _field("Keytab path"),
            "ccache": _field("Kerberos ccache (instead of a keytab)"),
            "kerberos_service": _field("SPN service", default="HTTP"),
            "kerberos_hostname": _field("SPN host (if not the URL's)"),
            "mutual_auth": _field("Require mutual auth", "boolean", True),
            "renew_margin": _field("Ticket renew margin (s)", "number", 600),
            "verify_ssl": _field("Verify TLS", "boolean", True),
            "ca_file": _field("CA bundle path"),
            "timeout": _field("Request timeout (s)", "number", 30),
            "list_batch": _field("Tags per status list request", "integer", 100),
            "spark_home": _field("SPARK_HOME on workers"),
            "spark_submit": _field("spark-submit binary"),
            "hadoop_conf_dir": _field("HADOOP_CONF_DIR for spark-submit"),
            "yarn_conf_dir": _field("YARN_CONF_DIR for spark-submit"),
            "spark_submit_timeout": _field("spark-submit timeout (s)", "number", 900),
        },
    },
    {
        "connection-type": "kubernetes_durable",
        "hook-class-name": "durable_jobs.hooks.kubernetes.KubernetesHook",
        "hook-name": "Kubernetes (durable jobs)",
        "ui-field-behaviour": {
            "hidden-fields": ["login", "schema", "port"],
            "relabeling": {"host": "API server URL (optional)", "password": "Bearer token (optional)"},
            "placeholders": {
                "host": "https://kubernetes.default.svc",
                "extra": '{"kube_config_path": "/opt/airflow/kubeconfig", "namespace": "batch"}',
            },
        },
        "conn-fields": {
            "in_cluster": _field("In cluster (service account)", "boolean", False),
            "kube_config_path": _field("Kubeconfig path"),
            "kube_config": {
                "label": "Kubeconfig content (YAML/JSON)",
                "schema": {"type": ["string", "null"], "default": None, "format": "password"},
            },
            "cluster_context": _field("Context"),
            "namespace": _field("Default namespace"),
            "disable_verify_ssl": _field("Disable TLS verification", "boolean", False),
            "ca_data": _field("CA certificate (PEM)"),
            "timeout": _field("Request timeout (s)", "number", 30),
            "watch": _field("Watch (false: one GET per job)", "boolean", True),
            "delete_propagation_policy": _field("Delete propagation policy", default="Background"),
            "log_tail_lines": _field("Log lines in failure messages", "integer", 50),
            "console_url": _field("Console URL template"),
        },
    },
]


def get_provider_info() -> dict[str, Any]:
    def modules(kind: str) -> list[dict[str, Any]]:
        return [
            {
                "integration-name": n,
                "python-modules": [f"durable_jobs.{kind}.{m}"],
            }
            for n, _, m in _SYSTEMS
        ]

    return {
        "package-name": "airflow-durable-jobs",
        "name": "Durable Jobs",
        "description": "Deferrable, crash-safe operators for long-running external jobs (submit once, reattach).",
        "versions": [__version__],
        "integrations": [
            {"integration-name": n, "external-doc-url": url, "tags": ["aws" if m == "emr" else "software"]}
            for n, url, m in _SYSTEMS
        ],
        "operators": modules("operators"),
        "triggers": modules("triggers"),
        "hooks": modules("hooks"),
        "connection-types": _CONNECTION_TYPES,
    }
