"""The crash matrix's Airflow DAGs for Spark standalone (``e2e_spark_<scenario>``): a test driver on the real cluster.

``DURABLE_JOBS_E2E_JAR`` / ``DURABLE_JOBS_E2E_MAIN_CLASS`` name the test driver (``<sleep s> <exit code> ok``).
"""

from __future__ import annotations

import os
from typing import Any

from e2e_common import scenarios
from e2e_spark_ops import CrashingSparkOperator

JAR = os.environ.get("DURABLE_JOBS_E2E_JAR", "/opt/spark-apps/sleep-exit.jar")
MAIN_CLASS = os.environ.get("DURABLE_JOBS_E2E_MAIN_CLASS", "demo.SleepExit")


def make_task(task_id: str, **job: Any) -> CrashingSparkOperator:
    """``e2e_common.MakeTask``: the job's arguments (seconds, exit codes, fail-points, poll interval, timeout)."""
    return CrashingSparkOperator(
        task_id=task_id,
        conn_id="spark_standalone_default",
        application=JAR,
        main_class=MAIN_CLASS,
        **job,
    )


scenarios("spark", make_task)
