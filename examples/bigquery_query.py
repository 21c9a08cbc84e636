"""A daily BigQuery query, then an extract of its table to Cloud Storage, each job inserted once whatever crashes.

``BigQueryJobOperator`` takes the google provider's ``BigQueryInsertJobOperator`` arguments (``configuration``,
``location``, ``gcp_conn_id``...): migrating is an import rename, minus ``job_id`` and ``force_rerun``. The job
id is ``<job_id_prefix><token>``, a new token only after a job *failed*, so a retry after a crash finds the
crashed try's job by its id and a retry after a failed job inserts a new one. The result (XCom
``return_value``) holds the job's destination table, bytes processed and slot milliseconds.

The connection is ``google_cloud_default`` (type ``bigquery_durable``, or the google provider's
``google_cloud_platform`` as it is; see docs/bigquery.md); the dataset and bucket come from
``DURABLE_JOBS_EXAMPLE_BIGQUERY_DATASET`` and ``DURABLE_JOBS_EXAMPLE_BIGQUERY_BUCKET``. Against the harness's
fake BigQuery, set ``DURABLE_JOBS_EXAMPLE_BIGQUERY_SCRIPT=durable-fake:5s:DONE``: the demo puts it in the
query as a comment, and the fake plays each job out as it says. It is empty by default.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import DAG

from durable_jobs.operators.bigquery import BigQueryJobOperator

DATASET = os.environ.get("DURABLE_JOBS_EXAMPLE_BIGQUERY_DATASET", "analytics")
BUCKET = os.environ.get("DURABLE_JOBS_EXAMPLE_BIGQUERY_BUCKET", "example-exports")
DEMO_SCRIPT = os.environ.get("DURABLE_JOBS_EXAMPLE_BIGQUERY_SCRIPT", "")
DEMO = f"\n-- {DEMO_SCRIPT}" if DEMO_SCRIPT else ""

with DAG(
    dag_id="durable_bigquery_query",
    schedule=None,
    catchup=False,
    tags=["durable_jobs", "example", "bigquery"],
):
    daily_report = BigQueryJobOperator(
        task_id="daily_report",
        configuration={
            "query": {
                "query": (
                    f"SELECT country, COUNT(*) AS orders FROM `{DATASET}.orders` "
                    "WHERE DATE(created_at) = '{{ ds }}' GROUP BY country" + DEMO
                ),
                "useLegacySql": False,
                "destinationTable": {"datasetId": DATASET, "tableId": "daily_orders_{{ ds_nodash }}"},
                "writeDisposition": "WRITE_TRUNCATE",
            },
            "labels": {"team": "analytics"},
        },
        location="EU",
        retries=2,
        poll_interval=15,
        job_timeout=timedelta(hours=2),
    )
    export = BigQueryJobOperator(
        task_id="export",
        configuration={
            "extract": {
                "sourceTable": {"datasetId": DATASET, "tableId": "daily_orders_{{ ds_nodash }}"},
                "destinationUris": [f"gs://{BUCKET}/orders/{{{{ ds }}}}/part-*.csv"],
                "destinationFormat": "CSV",
            },
        },
        location="EU",
        job_id_prefix="airflow_export_",
        retries=2,
    )
    daily_report >> export
