"""Provider metadata, found by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from durable_jobs import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-durable-jobs",
        "name": "Durable Jobs",
        "description": "Deferrable, crash-safe operators for long-running external jobs (submit once, reattach).",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Spark Standalone (durable)",
                "external-doc-url": "https://spark.apache.org/docs/latest/spark-standalone.html",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "Spark Standalone (durable)",
                "python-modules": ["durable_jobs.operators.spark_standalone"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Spark Standalone (durable)",
                "python-modules": ["durable_jobs.triggers.spark_standalone"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Spark Standalone (durable)",
                "python-modules": ["durable_jobs.hooks.spark_standalone"],
            }
        ],
        "connection-types": [
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
                    "master_ui_urls": {
                        "label": "Master UI URLs",
                        "schema": {"type": ["string", "null"], "default": None},
                    },
                    "verify_ssl": {"label": "Verify TLS", "schema": {"type": ["boolean", "null"], "default": True}},
                    "ca_file": {"label": "CA bundle path", "schema": {"type": ["string", "null"], "default": None}},
                    "timeout": {
                        "label": "Request timeout (s)",
                        "schema": {"type": ["number", "null"], "default": 30},
                    },
                },
            }
        ],
    }
