"""Run a notebook and a Python script as one-time Databricks runs (``runs/submit``), each started exactly once.

``DatabricksSubmitRunOperator`` takes the databricks provider's arguments. The client sends the task's token
as ``idempotency_token`` (a new one only after a run *failed*) and at the end of the run name, so a retry
after a crash gets the crashed try's run back from Databricks instead of starting another. The run id is
recorded in the task state store before the task defers; the triggerer watches every run of the workspace
with one ``runs/list`` per poll.

Set up a connection ``databricks_default`` (type ``databricks_durable``, or the provider's ``databricks``)
with the workspace URL and a personal access token, or a service principal (see docs/databricks.md)::

    export AIRFLOW_CONN_DATABRICKS_DEFAULT='{"conn_type": "databricks_durable",
        "host": "https://adb-1234567890123456.7.azuredatabricks.net", "password": "dapi..."}'

The notebook, the script and the cluster come from ``DURABLE_JOBS_EXAMPLE_DATABRICKS_*`` variables. Against
the harness's fake workspace (``python -m durable_jobs_harness.fake_databricks serve``), set
``DURABLE_JOBS_EXAMPLE_DATABRICKS_SCRIPT=durable-fake:5s:SUCCESS``: the demo passes it as a parameter, and
the fake plays the run out as it says (5 seconds, then SUCCESS). It is empty by default.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import DAG

from durable_jobs.operators.databricks import DatabricksSubmitRunOperator

NOTEBOOK = os.environ.get("DURABLE_JOBS_EXAMPLE_DATABRICKS_NOTEBOOK", "/Repos/etl/daily_report")
SCRIPT = os.environ.get("DURABLE_JOBS_EXAMPLE_DATABRICKS_PY", "dbfs:/jobs/etl/aggregate.py")
CLUSTER = {
    "spark_version": os.environ.get("DURABLE_JOBS_EXAMPLE_DATABRICKS_SPARK", "15.4.x-scala2.12"),
    "node_type_id": os.environ.get("DURABLE_JOBS_EXAMPLE_DATABRICKS_NODE", "i3.xlarge"),
    "num_workers": 2,
}
DEMO_SCRIPT = os.environ.get("DURABLE_JOBS_EXAMPLE_DATABRICKS_SCRIPT", "")
DEMO = [DEMO_SCRIPT] if DEMO_SCRIPT else []

with DAG(
    dag_id="durable_databricks_submit_run",
    schedule=None,
    catchup=False,
    tags=["durable_jobs", "example", "databricks"],
):
    report = DatabricksSubmitRunOperator(
        task_id="daily_report",
        new_cluster=CLUSTER,
        notebook_task={
            "notebook_path": NOTEBOOK,
            "base_parameters": {"day": "{{ ds }}", **({"demo": DEMO_SCRIPT} if DEMO_SCRIPT else {})},
        },
        timeout_seconds=3 * 3600,
        retries=2,
        poll_interval=15,
        job_timeout=timedelta(hours=3),
    )
    aggregate = DatabricksSubmitRunOperator(
        task_id="aggregate",
        run_name="daily aggregates {{ ds }}",
        tasks=[
            {
                "task_key": "aggregate",
                "spark_python_task": {"python_file": SCRIPT, "parameters": ["--day", "{{ ds }}", *DEMO]},
                "new_cluster": CLUSTER,
                "libraries": [{"pypi": {"package": "pyarrow"}}],
            }
        ],
        retries=2,
        job_timeout=timedelta(hours=1),
    )
    report >> aggregate
