"""The Spark standalone operator of the crash DAGs, shared by ``e2e_spark.py`` and ``e2e_spark_ha.py``.

Not a DAG file (``.airflowignore``): a DAG file that imported another DAG file would register that file's DAGs
as its own.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from e2e_common import Crashing

from durable_jobs.clients.spark_standalone import SparkApplication
from durable_jobs.operators.spark_standalone import SparkStandaloneOperator
from durable_jobs.record import JobRecord

DRIVER_CONF = {
    "spark.driver.memory": "256m",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xss512k",
}


class CrashingSparkOperator(Crashing, SparkStandaloneOperator):
    """The Spark operator with per-task fail-points; the driver's exit code may differ on try 1."""

    def __init__(self, *, seconds: float, exit_code: int, **kwargs: Any) -> None:
        self.seconds = seconds
        self.job_exit_code = exit_code
        super().__init__(application_args=[str(seconds), str(exit_code), "ok"], conf=DRIVER_CONF, **kwargs)

    def build_spec(self, context: Any, record: JobRecord | None = None) -> SparkApplication:
        spec = super().build_spec(context, record)
        code = self.exit_code(context, self.job_exit_code)
        return replace(spec, app_args=[str(self.seconds), str(code), "ok"])
