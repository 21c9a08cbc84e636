"""Airflow DAGs of Spark standalone HA (``e2e_spark_ha_<scenario>``): drivers on the two-master ZooKeeper cluster.

Not part of the standard matrix (``systems/spark_ha.py`` has ``matrix = False``); ``tests/e2e/test_spark_ha.py``
runs them and kills the active master:

* ``ha_master_killed_deferred``: :data:`DEFERRED_TASKS` tasks deferred on drivers of :data:`DEFERRED_SECONDS`
  seconds, long enough to outlive the takeover;
* ``ha_master_killed_after_submit``: one task whose worker pauses at ``after_submit`` (the driver exists, its id
  is not recorded) until the test has killed the active master and the standby has taken over.

``DURABLE_JOBS_E2E_SPARK_HA_JAR`` / ``..._MAIN_CLASS`` name the test driver (``<sleep s> <exit code> ok``).
"""

from __future__ import annotations

import os
from datetime import timedelta

from e2e_common import POLL_INTERVAL, enabled, scenario_dag
from e2e_spark_ha_plan import AFTER_SUBMIT, CONN_ID, DEFERRED, DEFERRED_SECONDS, DEFERRED_TASKS, PAUSE_POINT, SYSTEM
from e2e_spark_ops import CrashingSparkOperator

JAR = os.environ.get("DURABLE_JOBS_E2E_SPARK_HA_JAR", "/opt/spark-apps/sleep-exit.jar")
MAIN_CLASS = os.environ.get("DURABLE_JOBS_E2E_SPARK_HA_MAIN_CLASS", "demo.SleepExit")


def ha_task(task_id: str, *, seconds: float, failpoints: str = "") -> CrashingSparkOperator:
    return CrashingSparkOperator(
        task_id=task_id,
        conn_id=CONN_ID,
        application=JAR,
        main_class=MAIN_CLASS,
        seconds=seconds,
        exit_code=0,
        failpoints=failpoints,
        poll_interval=POLL_INTERVAL,
        job_timeout=timedelta(minutes=10),
    )


if enabled(SYSTEM):
    with scenario_dag(SYSTEM, DEFERRED, retries=2) as deferred_dag:
        for i in range(DEFERRED_TASKS):
            ha_task(f"job_{i}", seconds=DEFERRED_SECONDS)

    with scenario_dag(SYSTEM, AFTER_SUBMIT, retries=2) as after_submit_dag:
        ha_task("job", seconds=30, failpoints=f"{PAUSE_POINT}=pause")
