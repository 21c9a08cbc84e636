"""Run an existing Databricks job (``run-now``) by its name, once per try of the task whatever crashes.

``DatabricksRunNowOperator`` takes the databricks provider's arguments: ``job_id`` or ``job_name`` (looked
up by exact name when the task runs) and the job's parameters. The client sends the task's token as
``idempotency_token``, a new one only after a run *failed*, so a retry after a crash gets the crashed try's
run back and a retry after a failed run starts a new one (a fixed token would return the failed run). The
mapped task starts one run per region, each with its own token.

The connection is ``databricks_default`` (see ``databricks_submit_run.py`` and docs/databricks.md); the job
name comes from ``DURABLE_JOBS_EXAMPLE_DATABRICKS_JOB``. Against the harness's fake workspace, create the job
there and set ``DURABLE_JOBS_EXAMPLE_DATABRICKS_SCRIPT=durable-fake:5s:SUCCESS``: the demo passes it as a
job parameter, and the fake plays each run out as it says. It is empty by default.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import DAG

from durable_jobs.operators.databricks import DatabricksRunNowOperator

JOB_NAME = os.environ.get("DURABLE_JOBS_EXAMPLE_DATABRICKS_JOB", "nightly etl")
DEMO_SCRIPT = os.environ.get("DURABLE_JOBS_EXAMPLE_DATABRICKS_SCRIPT", "")
DEMO = {"demo": DEMO_SCRIPT} if DEMO_SCRIPT else {}

with DAG(
    dag_id="durable_databricks_run_now",
    schedule=None,
    catchup=False,
    tags=["durable_jobs", "example", "databricks"],
):
    nightly = DatabricksRunNowOperator(
        task_id="nightly_etl",
        job_name=JOB_NAME,
        job_parameters={"day": "{{ ds }}", "full_refresh": "false", **DEMO},
        retries=2,
        poll_interval=30,
        job_timeout=timedelta(hours=4),
    )
    per_region = DatabricksRunNowOperator.partial(
        task_id="per_region",
        job_name=JOB_NAME,
        retries=2,
    ).expand(job_parameters=[{"day": "{{ ds }}", "region": region, **DEMO} for region in ("eu", "us", "apac")])
    nightly >> per_region
