"""What the Spark HA DAGs run, importable by the test process too (no Airflow, no ``e2e_common``; not a DAG file)."""

from __future__ import annotations

SYSTEM = "spark_ha"
CONN_ID = "spark_ha_default"
DEFERRED = "ha_master_killed_deferred"
AFTER_SUBMIT = "ha_master_killed_after_submit"
SCENARIOS = (DEFERRED, AFTER_SUBMIT)
#: tasks deferred at once when the master dies, and how long each driver runs: long enough to outlive the takeover
DEFERRED_TASKS = 3
DEFERRED_SECONDS = 60
#: where the worker of AFTER_SUBMIT waits (``failpoints.AFTER_SUBMIT``) while the test kills the master
PAUSE_POINT = "after_submit"
