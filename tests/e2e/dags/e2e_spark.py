"""The crash matrix's Airflow DAGs for Spark standalone (``e2e_spark_<scenario>``): a test driver on the real cluster.

``DURABLE_JOBS_E2E_JAR`` / ``DURABLE_JOBS_E2E_MAIN_CLASS`` name the test driver (``<sleep s> <exit code> ok``).
"""

from __future__ import annotations

import os
from datetime import timedelta

from e2e_common import scenarios
from e2e_spark_ops import CrashingSparkOperator

JAR = os.environ.get("DURABLE_JOBS_E2E_JAR", "/opt/spark-apps/sleep-exit.jar")
MAIN_CLASS = os.environ.get("DURABLE_JOBS_E2E_MAIN_CLASS", "demo.SleepExit")


def make_task(
    task_id: str,
    *,
    seconds: float,
    exit_code: int,
    first_try_exit_code: int | None,
    failpoints: str,
    poll_interval: float,
    job_timeout: timedelta,
) -> CrashingSparkOperator:
    return CrashingSparkOperator(
        task_id=task_id,
        conn_id="spark_standalone_default",
        application=JAR,
        main_class=MAIN_CLASS,
        seconds=seconds,
        exit_code=exit_code,
        first_try_exit_code=first_try_exit_code,
        failpoints=failpoints,
        poll_interval=poll_interval,
        job_timeout=job_timeout,
    )


scenarios("spark", make_task)
