"""Run an existing AWS Glue job, once per try of the task whatever crashes.

``GlueJobRunOperator`` takes the amazon provider's ``GlueJobOperator`` arguments for running a job
(``job_name``, ``script_args``, ``run_job_kwargs``, ``aws_conn_id``), so moving over is an import rename.
Glue's ``StartJobRun`` has no idempotency token: the client passes the task's token as the argument
``--durable_jobs_token`` (the script ignores it) and, after a crash, finds the run by it instead of
starting another. A new token is used only after a run *failed*. The mapped task starts one run per
region, each with its own token: give the job ``MaxConcurrentRuns`` of at least 3 for them to overlap.

The connection is ``aws_default`` (an ``aws`` connection: keys or the default chain, ``region_name``; see
docs/glue.md); the job name comes from ``DURABLE_JOBS_EXAMPLE_GLUE_JOB`` (default ``nightly-etl``).
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import DAG

from durable_jobs.operators.glue import GlueJobRunOperator

JOB_NAME = os.environ.get("DURABLE_JOBS_EXAMPLE_GLUE_JOB", "nightly-etl")

with DAG(
    dag_id="durable_glue_job_run",
    schedule=None,
    catchup=False,
    tags=["durable_jobs", "example", "glue"],
):
    nightly = GlueJobRunOperator(
        task_id="nightly_etl",
        job_name=JOB_NAME,
        script_args={"--day": "{{ ds }}", "--full_refresh": "false"},
        run_job_kwargs={"WorkerType": "G.1X", "NumberOfWorkers": 10, "Timeout": 180},
        retries=2,
        poll_interval=30,
        job_timeout=timedelta(hours=4),
    )
    per_region = GlueJobRunOperator.partial(
        task_id="per_region",
        job_name=JOB_NAME,
        execution_class="FLEX",
        retries=2,
    ).expand(script_args=[{"--day": "{{ ds }}", "--region": region} for region in ("eu", "us", "apac")])
    nightly >> per_region
