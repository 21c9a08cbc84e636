"""A bare Pod, a mapped Pod per input, and a SparkApplication (spark-operator), each created once.

``KubernetesPodOperator`` runs a pod with ``restartPolicy: Never`` (the task's retries, not the kubelet, run it
again, and only after a confirmed failure). ``.expand()`` makes one pod per map index, each with its own name and
token. ``SparkApplicationOperator`` creates a ``sparkoperator.k8s.io/v1beta2`` SparkApplication and watches its
``applicationState``: a crash between creating the application and its driver starting cannot duplicate it, and
cancelling deletes the application (the operator removes its pods), not just the driver pod.

Connection: ``kubernetes_default`` (see ``kubernetes_job.py``). The SparkApplication needs the spark-operator and
a service account it may use (``DURABLE_JOBS_EXAMPLE_SPARK_SA``, default ``spark``).
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import DAG

from durable_jobs.operators.kubernetes import KubernetesPodOperator, SparkApplicationOperator

NAMESPACE = os.environ.get("DURABLE_JOBS_EXAMPLE_K8S_NAMESPACE")
IMAGE = os.environ.get("DURABLE_JOBS_EXAMPLE_K8S_IMAGE", "busybox:1.36")
SPARK_NAMESPACE = os.environ.get("DURABLE_JOBS_EXAMPLE_SPARK_NAMESPACE", "spark-jobs")

with DAG(
    dag_id="durable_kubernetes_pod",
    schedule=None,
    catchup=False,
    tags=["durable_jobs", "example", "kubernetes"],
):
    hello = KubernetesPodOperator(
        task_id="hello",
        namespace=NAMESPACE,
        image=IMAGE,
        cmds=["sh", "-c", "echo hello from a durable pod"],
        retries=2,
        poll_interval=5,  # seconds between status polls (default 30 s)
        job_timeout=timedelta(minutes=10),
    )
    per_shard = KubernetesPodOperator.partial(
        task_id="per_shard",
        namespace=NAMESPACE,
        image=IMAGE,
        cmds=["sh", "-c"],
        retries=2,
        poll_interval=5,  # seconds between status polls (default 30 s)
    ).expand(arguments=[["echo shard 0; sleep 2"], ["echo shard 1; sleep 2"], ["echo shard 2; sleep 2"]])
    hello >> per_shard

with DAG(
    dag_id="durable_spark_on_kubernetes",
    schedule=None,
    catchup=False,
    tags=["durable_jobs", "example", "kubernetes", "spark"],
):
    SparkApplicationOperator(
        task_id="spark_pi",
        namespace=SPARK_NAMESPACE,
        application={
            "type": "Scala",
            "mode": "cluster",
            "image": "spark:4.0.0",
            "mainClass": "org.apache.spark.examples.SparkPi",
            "mainApplicationFile": "local:///opt/spark/examples/jars/spark-examples.jar",
            "arguments": ["1000"],
            "sparkVersion": "4.0.0",
            "restartPolicy": {"type": "Never"},
            "driver": {
                "cores": 1,
                "memory": "512m",
                "serviceAccount": os.environ.get("DURABLE_JOBS_EXAMPLE_SPARK_SA", "spark"),
            },
            "executor": {"cores": 1, "instances": 2, "memory": "512m"},
        },
        retries=1,
        poll_interval=15,  # seconds between status polls (default 30 s)
        job_timeout=timedelta(hours=1),
    )
