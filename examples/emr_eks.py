"""Run a Spark job on an EMR on EKS virtual cluster, started exactly once.

The run's ``clientToken``, its name (``<name>-<token>``) and a ``durable-jobs:token`` tag carry the
task's token, so a retry re-attaches to (or adopts) the run instead of starting another; a run that
failed is followed by a new one with a new token. Killing the task (mark failed/success) cancels the
run; clearing it does not, because the new try takes the run over.

Set ``DURABLE_JOBS_EXAMPLE_EMR_VIRTUAL_CLUSTER``, ``DURABLE_JOBS_EXAMPLE_EMR_ROLE_ARN`` and
``DURABLE_JOBS_EXAMPLE_EMR_S3``; credentials come from the ``aws_default`` connection.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import DAG

from durable_jobs.operators.emr import EmrEksJobOperator

BUCKET = os.environ.get("DURABLE_JOBS_EXAMPLE_EMR_S3", "s3://my-emr-bucket")

with DAG(
    dag_id="durable_emr_eks",
    schedule=None,
    catchup=False,
    tags=["durable_jobs", "example", "emr"],
):
    EmrEksJobOperator(
        task_id="spark_pi",
        virtual_cluster_id=os.environ.get("DURABLE_JOBS_EXAMPLE_EMR_VIRTUAL_CLUSTER", "examplevirtualcluster0000"),
        execution_role_arn=os.environ.get(
            "DURABLE_JOBS_EXAMPLE_EMR_ROLE_ARN", "arn:aws:iam::123456789012:role/emr-on-eks-job"
        ),
        release_label="emr-7.1.0-latest",
        job_driver={
            "sparkSubmitJobDriver": {
                "entryPoint": "local:///usr/lib/spark/examples/src/main/python/pi.py",
                "entryPointArguments": ["100"],
                "sparkSubmitParameters": "--conf spark.executor.instances=2",
            }
        },
        configuration_overrides={
            "monitoringConfiguration": {"s3MonitoringConfiguration": {"logUri": f"{BUCKET}/eks-logs/"}}
        },
        tags={"team": "data"},
        retries=2,
        poll_interval=30,  # seconds between status polls (default 30 s)
        job_timeout=timedelta(hours=1),
    )
