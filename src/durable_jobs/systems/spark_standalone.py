"""Spark standalone, declared: the ``spark_standalone_rest`` connection and the public classes."""

from __future__ import annotations

from durable_jobs.hooks.fields import CA_FILE, MAX_RESPONSE_BYTES, TIMEOUT, VERIFY_SSL, Connection, Field
from durable_jobs.system import Link, System

REST_PORT = 6066
UI_PORT = 8080  # a master's web UI, where /json/ is read

CONNECTION = Connection(
    conn_type="spark_standalone_rest",
    hook_class="SparkStandaloneHook",
    hook_name="Spark Standalone (REST)",
    default_conn_name="spark_standalone_default",
    default_port=REST_PORT,
    fields=(
        Field(
            "master_ui_urls",
            "Master UI URLs",
            "list",
            description=f"the masters' web UIs, comma-separated (default: each master on port {UI_PORT})",
        ),
        VERIFY_SSL,
        CA_FILE,
        TIMEOUT,
        Field(
            "batch_status",
            "One /json/ per poll",
            "boolean",
            True,
            description="one /json/ call per poll for every driver",
        ),
        MAX_RESPONSE_BYTES,
    ),
    hidden=("login",),
    relabel={
        "host": "Master host(s), comma-separated for HA",
        "port": "REST port",
        "schema": "Scheme (http or https)",
        "password": "JWT bearer token",
    },
    placeholders={
        "host": "spark-master-1,spark-master-2",
        "schema": "http",
        "extra": '{"master_ui_urls": "http://spark-master-1:8080", "verify_ssl": true}',
    },
)

SYSTEM = System(
    module="spark_standalone",
    integration="Spark Standalone (durable)",
    doc_url="https://spark.apache.org/docs/latest/spark-standalone.html",
    connections=(CONNECTION,),
    triggers=("SparkStandaloneTrigger",),
    operators=("SparkStandaloneOperator",),
    links=(Link("Spark master UI", "master_ui_url"), Link("Spark driver UI", "driver_ui_url")),
)
