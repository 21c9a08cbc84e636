"""Spark standalone tasks deferred on two endpoints (connections ``spark_up`` and ``spark_down``), for the
endpoint health the triggerer reports to the "Durable jobs" view (tests/ui/test_endpoint_health.py); and a
DAG with no job, the only one the ``outsider`` user may read."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, task

from durable_jobs.operators import SparkStandaloneOperator

START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
JOBS = {"up_1": "spark_up", "up_2": "spark_up", "down_1": "spark_down"}

with DAG("endpoint_health", schedule=None, start_date=START, catchup=False):
    for task_id, conn_id in JOBS.items():
        SparkStandaloneOperator(
            task_id=task_id, conn_id=conn_id, application="file:/apps/a.jar", main_class="demo.Main", poll_interval=1
        )

with DAG("endpoint_health_other", schedule=None, start_date=START, catchup=False):

    @task
    def nothing() -> None:
        return None

    nothing()
