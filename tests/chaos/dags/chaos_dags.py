"""The chaos campaign's DAGs: one mapped Spark standalone task and one mapped Kubernetes Job task.

``chaos_spark`` runs the e2e test driver (``<sleep s> <exit code> ok``) on the real Spark cluster, ``chaos_kubernetes``
a batch/v1 Job (``sh -c "sleep N; exit 0"``) on the fake apiserver. Every run of a DAG maps its task over
``DURABLE_JOBS_CHAOS_SPARK_TASKS`` / ``DURABLE_JOBS_CHAOS_KUBE_TASKS`` map indexes (set by the campaign for every
Airflow component), with job lengths spread by map index. Tasks get retries: the nemesis kills their workers.
``rerun_on_clear`` stays off, so a clear after success must return the recorded result, never run the job again.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import DAG
from e2e_spark_ops import DRIVER_CONF  # tests/e2e/dags, on the components' PYTHONPATH

from durable_jobs.operators.kubernetes import KubernetesJobOperator
from durable_jobs.operators.spark_standalone import SparkStandaloneOperator

SPARK_TASKS = int(os.environ.get("DURABLE_JOBS_CHAOS_SPARK_TASKS", "5"))
KUBE_TASKS = int(os.environ.get("DURABLE_JOBS_CHAOS_KUBE_TASKS", "15"))
# enough tries to outlast the longest endpoint fault (45 s): a try that cannot reach the endpoint to submit, or to look
# for its job, fails and leaves the decision to the next one, as documented
RETRIES = 6
POLL_INTERVAL = 2.0
# far beyond any run: a clock jump on the worker shifts the absolute deadline it computes, never past it
JOB_TIMEOUT = timedelta(hours=3)
DEFAULTS = {"retries": RETRIES, "retry_delay": timedelta(seconds=10)}


def seconds(i: int, low: int, spread: int) -> int:
    """A job's length by map index: ``low`` to ``low + spread - 1`` seconds, spread evenly."""
    return low + (i * 7) % spread


with DAG("chaos_spark", schedule=None, catchup=False, default_args=DEFAULTS, max_active_tasks=6, tags=["chaos"]):
    # at most 6 drivers at once: each is a JVM, on a 2-core machine
    SparkStandaloneOperator.partial(
        task_id="job",
        conn_id="spark_standalone_default",
        application=os.environ.get("DURABLE_JOBS_E2E_JAR", "/opt/spark-apps/sleep-exit.jar"),
        main_class=os.environ.get("DURABLE_JOBS_E2E_MAIN_CLASS", "demo.SleepExit"),
        conf=DRIVER_CONF,
        poll_interval=POLL_INTERVAL,
        job_timeout=JOB_TIMEOUT,
    ).expand(application_args=[[str(seconds(i, 15, 20)), "0", "ok"] for i in range(SPARK_TASKS)])

with DAG("chaos_kubernetes", schedule=None, catchup=False, default_args=DEFAULTS, max_active_tasks=40, tags=["chaos"]):
    KubernetesJobOperator.partial(
        task_id="job",
        conn_id="kubernetes_e2e",
        image="busybox:1.36",
        cmds=["sh", "-c"],
        backoff_limit=0,
        poll_interval=POLL_INTERVAL,
        job_timeout=JOB_TIMEOUT,
    ).expand(arguments=[[f"sleep {seconds(i, 20, 40)}; exit 0"] for i in range(KUBE_TASKS)])
