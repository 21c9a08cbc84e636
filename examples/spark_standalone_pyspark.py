"""Run a Python script on a Spark standalone cluster (through ``PythonRunner``), once and mapped.

A ``.py`` application needs no ``main_class``: the operator submits it with Spark's ``PythonRunner``,
exactly as ``spark-submit --deploy-mode cluster script.py`` would. The script must be readable by the
Spark workers (``DURABLE_JOBS_EXAMPLE_PY``), and the workers need a Python with ``pyspark`` if the
script imports it.

``sleep_many`` is a mapped task: one driver per ``application_args`` entry. Each map index keeps its
own record in the task state store, so a retry of one index reattaches to that index's driver only.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import DAG

from durable_jobs.operators.spark_standalone import SparkStandaloneOperator

SCRIPT = os.environ.get("DURABLE_JOBS_EXAMPLE_PY", "/opt/spark-apps/sleep_exit.py")
DRIVER_CONF = {
    "spark.driver.memory": "512m",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
}

with DAG(
    dag_id="durable_spark_python",
    schedule=None,
    catchup=False,
    default_args={"retries": 2},
    tags=["durable_jobs", "example"],
):
    sleep_once = SparkStandaloneOperator(
        task_id="sleep_once",
        conn_id="spark_standalone_default",
        application=SCRIPT,
        application_args=["1", "0", "ok"],
        conf=DRIVER_CONF,
        poll_interval=2,  # seconds between status polls (default 30 s)
        job_timeout=timedelta(minutes=10),
    )

    sleep_many = SparkStandaloneOperator.partial(
        task_id="sleep_many",
        conn_id="spark_standalone_default",
        application=SCRIPT,
        conf=DRIVER_CONF,
        poll_interval=2,  # seconds between status polls (default 30 s)
        job_timeout=timedelta(minutes=10),
    ).expand(application_args=[["1", "0", "ok"], ["2", "0", "ok"]])

    sleep_once >> sleep_many
