"""A throwaway real Airflow 3.3 (api-server, scheduler, dag-processor, triggerer) for end-to-end tests and the demo.

``dag.test()`` runs a task in-process: it drops the defer kwargs, runs no trigger ``cleanup()`` nor ``on_kill()``,
and cannot lose a triggerer. Crash-safety is about processes dying, so the end-to-end tests need the real thing:

* :class:`AirflowEnv` (:mod:`.env`): each component its own process in a temporary ``AIRFLOW_HOME``;
* :class:`AirflowApi` (:mod:`.api`): the api-server's public REST API (``/api/v2``);
* :class:`Component`, :class:`PostgresServer`, :class:`RedisServer`, :func:`wait_until` (:mod:`.processes`):
  process control, the optional PostgreSQL metadata database and Redis broker (CeleryExecutor), the waiting loop.

No pytest here: the demo uses it too.
"""

from __future__ import annotations

from durable_jobs_harness.airflow_env.api import FINISHED_RUN_STATES, FINISHED_TI_STATES, AirflowApi
from durable_jobs_harness.airflow_env.env import FAST_SETTINGS, SQLITE_CONNECT_ARGS, AirflowEnv
from durable_jobs_harness.airflow_env.processes import (
    AirflowEnvError,
    Component,
    PostgresServer,
    RedisServer,
    wait_until,
)

__all__ = [
    "FAST_SETTINGS",
    "FINISHED_RUN_STATES",
    "FINISHED_TI_STATES",
    "SQLITE_CONNECT_ARGS",
    "AirflowApi",
    "AirflowEnv",
    "AirflowEnvError",
    "Component",
    "PostgresServer",
    "RedisServer",
    "wait_until",
]
