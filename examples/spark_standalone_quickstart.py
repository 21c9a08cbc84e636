"""Quickstart: run a Spark jar on a standalone cluster, submitted exactly once.

``SparkStandaloneOperator`` submits the driver through the master's REST server (cluster mode, no
``spark-submit`` and no JVM on the Airflow worker), records the driver id in the task state store, and
defers while the triggerer watches the driver.

It is crash-safe: if the worker dies at any point (even between submitting and recording the driver
id), the retry does not submit a second driver. It finds the one submitted by the crashed try by its
token, adopts it, and waits for it. A retry after the driver *failed* submits a new one.

Set up a connection ``spark_standalone_default`` of type ``spark_standalone_rest`` (host: the
master, port: its REST port, 6066 by default), and point ``DURABLE_JOBS_EXAMPLE_JAR`` at a jar that
the Spark workers can read. ``make demo`` runs this DAG against a throwaway local cluster;
``python -m durable_jobs_harness.spark_cluster serve`` keeps one running (REST 6066, master UI 8090) and
builds the jar into ``/tmp/spark-apps/``.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import DAG

from durable_jobs.operators.spark_standalone import SparkStandaloneOperator

with DAG(
    dag_id="durable_spark_quickstart",
    schedule=None,
    catchup=False,
    tags=["durable_jobs", "example"],
):
    SparkStandaloneOperator(
        task_id="sleep_exit",
        conn_id="spark_standalone_default",
        application=os.environ.get("DURABLE_JOBS_EXAMPLE_JAR", "/opt/spark-apps/sleep-exit.jar"),
        main_class=os.environ.get("DURABLE_JOBS_EXAMPLE_MAIN_CLASS", "demo.SleepExit"),
        application_args=["15", "0", "ok"],  # sleep 15 s, then exit 0
        conf={
            # a small, fast-starting driver JVM
            "spark.driver.memory": "512m",
            "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        },
        retries=2,
        poll_interval=2,  # seconds between status polls (default 30 s)
        job_timeout=timedelta(minutes=10),
    )
