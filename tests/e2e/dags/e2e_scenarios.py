"""The crash-matrix DAGs: one DAG per scenario, each one Spark standalone task (two for the HA scenario).

Settings come from the environment the harness gives every Airflow process:

* ``DURABLE_JOBS_E2E_JAR`` / ``DURABLE_JOBS_E2E_MAIN_CLASS``: the test driver (``<sleep s> <exit code> ok``);
* ``DURABLE_JOBS_E2E_ONCE_ROOT``: where fail-points remember that they fired, one directory per task
  instance, so that the retry after the crash survives.

:class:`CrashingSparkOperator` arms its DAG's fail-points in the worker process before the protocol runs
(``DURABLE_JOBS_FAILPOINTS`` is process-wide, and scenarios run side by side in one Airflow).
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG

from durable_jobs import failpoints
from durable_jobs.clients.spark_standalone import SparkApplication
from durable_jobs.operators.spark_standalone import SparkStandaloneOperator

JAR = os.environ.get("DURABLE_JOBS_E2E_JAR", "/opt/spark-apps/sleep-exit.jar")
MAIN_CLASS = os.environ.get("DURABLE_JOBS_E2E_MAIN_CLASS", "demo.SleepExit")
DRIVER_CONF = {
    "spark.driver.memory": "256m",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xss512k",
}


class CrashingSparkOperator(SparkStandaloneOperator):
    """The Spark operator with per-task fail-points and, optionally, other arguments for the first try."""

    def __init__(self, *, failpoints: str = "", first_try_args: list[str] | None = None, **kwargs: Any) -> None:
        self.failpoints = failpoints
        self.first_try_args = first_try_args
        super().__init__(**kwargs)  # validates the spec, which reads first_try_args

    def _arm(self, context: Any) -> None:
        if not self.failpoints:
            return
        ti = context["ti"]
        root = Path(os.environ.get("DURABLE_JOBS_E2E_ONCE_ROOT", "/tmp/durable-jobs-e2e-once"))
        once = root / ti.dag_id / ti.run_id.replace("/", "_") / f"{ti.task_id}.{ti.map_index}"
        os.environ["DURABLE_JOBS_FAILPOINTS_ONCE"] = str(once)
        failpoints.configure(self.failpoints)

    def execute(self, context: Any) -> Any:
        self._arm(context)
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        self._arm(context)
        return super().execute_complete(context, event, **kwargs)

    def build_spec(self, context: Any) -> SparkApplication:
        spec = super().build_spec(context)
        if self.first_try_args is not None and context is not None and int(context["ti"].try_number) == 1:
            spec = replace(spec, app_args=list(self.first_try_args))
        return spec


def scenario(
    name: str,
    *,
    seconds: float,
    tasks: int = 1,
    retries: int = 2,
    job_timeout: timedelta = timedelta(minutes=10),
    **op_kwargs: Any,
) -> DAG:
    with DAG(
        dag_id=f"e2e_{name}",
        schedule=None,
        catchup=False,
        max_active_runs=1,
        tags=["durable_jobs", "e2e"],
        default_args={"retries": retries, "retry_delay": timedelta(seconds=2)},
    ) as dag:
        for i in range(tasks):
            CrashingSparkOperator(
                task_id="job" if tasks == 1 else f"job_{i}",
                conn_id="spark_standalone_default",
                application=JAR,
                main_class=MAIN_CLASS,
                application_args=[str(seconds), "0", "ok"],
                conf=DRIVER_CONF,
                poll_interval=2,
                job_timeout=job_timeout,
                **op_kwargs,
            )
    return dag


# the worker dies (os._exit) at each protocol step, once; the retry adopts or reattaches
for _point in failpoints.ALL:
    scenario(f"crash_{_point}", seconds=4, retries=3, failpoints=f"{_point}=exit")

# losing the triggerer while deferred: the job keeps running, another triggerer resumes the wait
scenario("triggerer_sigkill", seconds=30)
scenario("triggerer_sigterm", seconds=45)  # still running after the graceful shutdown
scenario("two_triggerers", seconds=30, tasks=2)

# user actions while deferred
scenario("clear_deferred", seconds=30)
scenario("mark_failed", seconds=300, retries=0)

# the deadline passes: the job is cancelled, the task fails with the reason
scenario("deadline", seconds=300, retries=0, job_timeout=timedelta(seconds=20))

# generation 0 fails (exit code 3); the retry submits generation 1, which succeeds
scenario("job_fails", seconds=4, retries=1, first_try_args=["2", "3", "ok"])

# the master is unreachable (SIGSTOP) for a while during the wait
scenario("master_unreachable", seconds=30)
