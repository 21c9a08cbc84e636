"""Run Spark jobs on an EMR Serverless application, each started exactly once.

``clientToken`` is the task's token (stable across crashes and retries, new only after a run
*failed*), and the run's name and a ``durable-jobs:token`` tag carry it too, so a retry adopts the run
a crashed try started even after AWS's idempotency window has closed. Several runs on one application
are watched with one ``ListJobRuns`` per interval. The mapped task starts one run per input, each with
its own token.

Set ``DURABLE_JOBS_EXAMPLE_EMR_SERVERLESS_APP``, ``DURABLE_JOBS_EXAMPLE_EMR_ROLE_ARN`` and
``DURABLE_JOBS_EXAMPLE_EMR_S3`` (a bucket for the script and the logs); credentials come from the
``aws_default`` connection.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import DAG

from durable_jobs.operators.emr import EmrServerlessJobOperator

APPLICATION_ID = os.environ.get("DURABLE_JOBS_EXAMPLE_EMR_SERVERLESS_APP", "00fexampleapp0000")
ROLE_ARN = os.environ.get("DURABLE_JOBS_EXAMPLE_EMR_ROLE_ARN", "arn:aws:iam::123456789012:role/emr-serverless-job")
BUCKET = os.environ.get("DURABLE_JOBS_EXAMPLE_EMR_S3", "s3://my-emr-bucket")
MONITORING = {"monitoringConfiguration": {"s3MonitoringConfiguration": {"logUri": f"{BUCKET}/logs/"}}}

with DAG(
    dag_id="durable_emr_serverless",
    schedule=None,
    catchup=False,
    tags=["durable_jobs", "example", "emr"],
):
    EmrServerlessJobOperator(
        task_id="word_count",
        application_id=APPLICATION_ID,
        execution_role_arn=ROLE_ARN,
        job_driver={
            "sparkSubmit": {
                "entryPoint": f"{BUCKET}/code/wordcount.py",
                "entryPointArguments": [f"{BUCKET}/output/{{{{ run_id }}}}/"],
                "sparkSubmitParameters": "--conf spark.executor.cores=2 --conf spark.executor.memory=4g",
            }
        },
        configuration_overrides=MONITORING,  # the S3 log links are pushed to XCom before deferring
        retries=2,
        poll_interval=30,  # seconds between status polls (default 30 s)
        job_timeout=timedelta(hours=1),
    )
    EmrServerlessJobOperator.partial(
        task_id="per_region",
        application_id=APPLICATION_ID,
        execution_role_arn=ROLE_ARN,
        configuration_overrides=MONITORING,
        retries=2,
    ).expand(
        job_driver=[
            {"sparkSubmit": {"entryPoint": f"{BUCKET}/code/report.py", "entryPointArguments": [region]}}
            for region in ("eu", "us", "apac")
        ]
    )
