"""Run Spark on YARN in cluster mode through spark-submit, submitted exactly once, tracked over REST.

``SparkOnYarnOperator`` runs ``spark-submit --master yarn --deploy-mode cluster`` on the worker with
``spark.yarn.submit.waitAppCompletion=false`` (spark-submit returns as soon as the RM accepted the
application) and the task's token in ``spark.yarn.tags``. It then defers, and the triggerer watches the
application through the RM REST API (with SPNEGO if the connection says Kerberos). A retry after a
crash finds the application by its tag instead of submitting another one.

The worker needs a Spark distribution and the cluster's Hadoop configuration: set ``spark_home`` and
``hadoop_conf_dir`` in the ``yarn_default`` connection's extra (see docs/yarn.md).
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import DAG

from durable_jobs.operators.yarn import SparkOnYarnOperator

with DAG(
    dag_id="durable_yarn_spark",
    schedule=None,
    catchup=False,
    default_args={"retries": 2},
    tags=["durable_jobs", "example", "yarn"],
):
    SparkOnYarnOperator(
        task_id="spark_pi",
        conn_id="yarn_default",
        application=os.environ.get(
            "DURABLE_JOBS_EXAMPLE_SPARK_JAR", "local:///opt/spark/examples/jars/spark-examples.jar"
        ),
        main_class="org.apache.spark.examples.SparkPi",
        application_args=["100"],
        yarn_queue=os.environ.get("DURABLE_JOBS_EXAMPLE_QUEUE", "default"),
        driver_memory="1g",
        executor_memory="1g",
        num_executors=2,
        conf={"spark.dynamicAllocation.enabled": "false"},
        tags=["example"],
        poll_interval=15,  # seconds between status polls (default 30 s)
        job_timeout=timedelta(hours=1),
    )

    SparkOnYarnOperator(
        task_id="pyspark_job",
        conn_id="yarn_default",
        application=os.environ.get("DURABLE_JOBS_EXAMPLE_SPARK_PY", "hdfs:///apps/etl.py"),
        application_args=["--day", "{{ ds }}"],
        py_files=[os.environ.get("DURABLE_JOBS_EXAMPLE_SPARK_PY_DEPS", "hdfs:///apps/deps.zip")],
        poll_interval=15,  # seconds between status polls (default 30 s)
        job_timeout=timedelta(hours=2),
    )
