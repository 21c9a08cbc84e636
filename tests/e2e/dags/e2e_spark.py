"""The crash matrix's Airflow DAGs for Spark standalone (``e2e_spark_<scenario>``): a test driver on the real cluster.

``DURABLE_JOBS_E2E_JAR`` / ``DURABLE_JOBS_E2E_MAIN_CLASS`` name the test driver (``<sleep s> <exit code> ok``).
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta
from typing import Any

from e2e_common import Crashing, scenarios

from durable_jobs.clients.spark_standalone import SparkApplication
from durable_jobs.operators.spark_standalone import SparkStandaloneOperator
from durable_jobs.record import JobRecord

JAR = os.environ.get("DURABLE_JOBS_E2E_JAR", "/opt/spark-apps/sleep-exit.jar")
MAIN_CLASS = os.environ.get("DURABLE_JOBS_E2E_MAIN_CLASS", "demo.SleepExit")
DRIVER_CONF = {
    "spark.driver.memory": "256m",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xss512k",
}


class CrashingSparkOperator(Crashing, SparkStandaloneOperator):
    """The Spark operator with per-task fail-points; the driver's exit code may differ on try 1."""

    def __init__(self, *, seconds: float, exit_code: int, **kwargs: Any) -> None:
        self.seconds = seconds
        self.job_exit_code = exit_code
        super().__init__(application_args=[str(seconds), str(exit_code), "ok"], **kwargs)

    def build_spec(self, context: Any, record: JobRecord | None = None) -> SparkApplication:
        spec = super().build_spec(context, record)
        code = self.exit_code(context, self.job_exit_code)
        return replace(spec, app_args=[str(self.seconds), str(code), "ok"])


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
        conf=DRIVER_CONF,
        poll_interval=poll_interval,
        job_timeout=job_timeout,
    )


scenarios("spark", make_task)
