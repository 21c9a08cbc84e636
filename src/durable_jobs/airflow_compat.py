"""Every use of Airflow's private API, in one place, so an Airflow upgrade is checked in one file.

Elsewhere the library imports only public Airflow names (``airflow.sdk``, ``airflow.sdk.exceptions``,
``airflow.triggers.base.BaseTrigger``/``TriggerEvent``). What has no public equivalent is wrapped here,
each with what it relies on and the Airflow version it appeared in (all checked on Airflow 3.3.2, task
SDK 1.3.2).

Import-cheap: nothing from Airflow is imported at module level; each function imports what it needs when
called. The trigger modules import this one, and a trigger module is imported on the triggerer's event
loop.
"""

from __future__ import annotations

import uuid
from typing import Any

#: the task runner's channel to its supervisor, as a :func:`unittest.mock.patch` target (tests fake the
#: supervisor there). Relies on the module global ``SUPERVISOR_COMMS`` of
#: ``airflow.sdk.execution_time.task_runner`` (Airflow 3.0+), only annotated there until a runner sets it.
SUPERVISOR_COMMS_TARGET = "airflow.sdk.execution_time.task_runner.SUPERVISOR_COMMS"


def supervisor_comms() -> Any:
    """The process's channel to its supervisor: a worker's task runner, or the triggerer's.

    Relies on ``airflow.sdk.execution_time.task_runner.SUPERVISOR_COMMS``, which the triggerer sets too
    (Airflow 3.0+). Read at call time, so a patched channel is used.
    """
    from airflow.sdk.execution_time import task_runner

    return task_runner.SUPERVISOR_COMMS


async def task_instance_state(dag_id: str, run_id: str, task_id: str, map_index: int) -> Any:
    """The current state of one task instance (``map_index`` -1: unmapped); None when it has none.

    Relies on the ``GetTaskStates`` message of ``airflow.sdk.execution_time.comms`` (Airflow 3.0+), the
    async ``asend`` of the supervisor channel (Airflow 3.1+), and the reply's ``task_states``:
    ``{run_id: {task_id, or "<task_id>_<map_index>" for a mapped one: state}}``.
    """
    from airflow.sdk.execution_time.comms import GetTaskStates

    resp = await supervisor_comms().asend(
        GetTaskStates(
            dag_id=dag_id, run_ids=[run_id], task_ids=[task_id], map_index=None if map_index < 0 else map_index
        )
    )
    states = (getattr(resp, "task_states", None) or {}).get(run_id, {})
    return states.get(task_id if map_index < 0 else f"{task_id}_{map_index}")


def uses_default_logger(obj: Any) -> bool:
    """True when ``obj`` (a ``LoggingMixin``, e.g. a trigger) has no logger or logger name of its own.

    Relies on ``LoggingMixin``'s private ``_log``, ``_logger_name`` and ``_log_config_logger_name``
    attributes (Airflow 2.8+; in ``airflow.sdk.definitions._internal.logging_mixin`` since 3.0).
    """
    return obj._log is None and obj._logger_name is None and obj._log_config_logger_name is None


def task_state_store_accessor(ti_id: uuid.UUID, dag_id: str, run_id: str, task_id: str, map_index: int) -> Any:
    """Airflow's real task state store accessor for one try (``ti_id``) of a task instance.

    Relies on ``airflow.sdk.execution_time.context.TaskStateStoreAccessor(ti_id=, scope=)`` (Airflow 3.3+);
    ``TaskScope`` is public (``airflow.sdk.state``).
    """
    from airflow.sdk.execution_time.context import TaskStateStoreAccessor
    from airflow.sdk.state import TaskScope

    return TaskStateStoreAccessor(
        ti_id=ti_id, scope=TaskScope(dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index)
    )


def supervisor_messages() -> Any:
    """The module of the messages a task sends its supervisor and of their replies.

    Relies on ``airflow.sdk.execution_time.comms``: ``GetTaskStateStore``, ``SetTaskStateStore``,
    ``DeleteTaskStateStore``, ``ClearTaskStateStore`` with a ``ti_id`` (Airflow 3.3+), answered with
    ``TaskStateStoreResult(value=)``, ``OKResponse(ok=)`` or ``ErrorResponse(error=, detail=)`` (Airflow 3.0+).
    """
    from airflow.sdk.execution_time import comms

    return comms


def xcom_value(ti_key: Any, key: str) -> Any:
    """A task instance's XCom ``key``, read through the deployment's XCom backend (None when it has none).

    Relies on ``airflow.sdk.execution_time.xcom.XCom``, the configured backend class (Airflow 3.0+; what the
    providers' links read through ``airflow.providers.common.compat.sdk.XCom``), and its public
    ``get_value(ti_key=, key=)``.
    """
    from airflow.sdk.execution_time.xcom import XCom

    return XCom.get_value(ti_key=ti_key, key=key)
