"""The DAG folder of the CeleryExecutor Airflow (``tests/e2e/test_celery.py``): the matrix's Spark DAGs, and one more.

The Spark DAGs are the matrix's own (``../dags/e2e_spark.py``, importable because that Airflow's components run
with ``../dags`` on ``PYTHONPATH``): importing the module declares them here, in this folder's only file, so no
DAG id is declared twice. Added: ``e2e_spark_worker_sigkill``, whose try 1 stops itself (SIGSTOP) at
``after_submit`` so that the test can SIGKILL the whole Celery worker running it at exactly that step.
"""

from __future__ import annotations

from datetime import timedelta

from e2e_common import POLL_INTERVAL, scenario_dag
from e2e_spark import make_task

from durable_jobs import failpoints

WORKER_SIGKILL = "worker_sigkill"

with scenario_dag("spark", WORKER_SIGKILL, retries=3):
    make_task(
        "job",
        seconds=4,
        exit_code=0,
        first_try_exit_code=None,
        failpoints=f"{failpoints.AFTER_SUBMIT}=stop",
        poll_interval=POLL_INTERVAL,
        job_timeout=timedelta(minutes=10),
    )
