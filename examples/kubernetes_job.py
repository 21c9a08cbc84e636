"""Kubernetes Jobs, created exactly once per task and generation, watched instead of polled.

``KubernetesJobOperator`` names the Job ``<task_id>-<token>`` (the token is derived from the DAG, run, task, map
index and generation), labels it with the task's identity, records it in the task state store and defers. If a
worker dies anywhere (even between creating the Job and recording it) the retry finds the Job by its name and
adopts it; a create that races a crashed try's answers 409 and is adopted too. Only a Job that *failed* leads to
a new one, under a new name. The triggerer watches every Job of a namespace through one shared watch.

A failure's message carries the failed pod's reason (``OOMKilled``, ``Error (exit code 3)``...) and its last log
lines. Marking the task failed deletes the Job (and its pods).

Connection: ``kubernetes_default`` (type ``kubernetes_durable``, or an existing cncf-kubernetes ``kubernetes``
connection: the extras are the same), e.g. ``{"extra": {"in_cluster": true}}`` or
``{"extra": {"kube_config_path": "/opt/airflow/kubeconfig", "namespace": "batch"}}``.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import DAG

from durable_jobs.operators.kubernetes import KubernetesJobOperator

NAMESPACE = os.environ.get("DURABLE_JOBS_EXAMPLE_K8S_NAMESPACE")  # default: the connection's namespace
IMAGE = os.environ.get("DURABLE_JOBS_EXAMPLE_K8S_IMAGE", "busybox:1.36")

with DAG(
    dag_id="durable_kubernetes_job",
    schedule=None,
    catchup=False,
    tags=["durable_jobs", "example", "kubernetes"],
):
    # the short form: one container, run as a Job
    count = KubernetesJobOperator(
        task_id="count_rows",
        namespace=NAMESPACE,
        image=IMAGE,
        cmds=["sh", "-c"],
        arguments=["echo counting; sleep 5; echo 42 rows"],
        env_vars={"TABLE": "events"},
        backoff_limit=1,  # one pod retry inside the Job; the task's retries come after that
        retries=2,
        poll_interval=10,  # seconds between status polls (default 30 s)
        job_timeout=timedelta(minutes=30),  # absolute: the Job is deleted if it is still running then
    )

    # the full form: any Job manifest (dict or kubernetes V1Job), without a name
    report = KubernetesJobOperator(
        task_id="build_report",
        namespace=NAMESPACE,
        labels={"team": "analytics"},
        job={
            "apiVersion": "batch/v1",
            "kind": "Job",
            "spec": {
                "backoffLimit": 0,
                "activeDeadlineSeconds": 1800,  # the Job's own deadline: reported as DeadlineExceeded
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "report",
                                "image": IMAGE,
                                "command": ["sh", "-c", "echo building the report; sleep 3; echo done"],
                                "resources": {
                                    "requests": {"cpu": "100m", "memory": "64Mi"},
                                    "limits": {"memory": "128Mi"},
                                },
                            }
                        ],
                    }
                },
            },
        },
        retries=1,
        poll_interval=10,  # seconds between status polls (default 30 s)
    )

    count >> report
