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


def in_triggerer() -> bool:
    """True in a triggerer's trigger-runner process (its supervisor channel is the triggerer's), else False.

    Relies on ``SUPERVISOR_COMMS`` being a ``airflow.jobs.triggerer_job_runner.TriggerCommsDecoder`` there
    (set by ``TriggerRunner``, Airflow 3.0+); by class name, so nothing of the triggerer is imported. A worker's
    channel, a test's fake one or none at all answer False.
    """
    from airflow.sdk.execution_time import task_runner

    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    return type(comms).__name__ == "TriggerCommsDecoder"


async def put_variable(key: str, value: str, description: str) -> None:
    """Set the Airflow Variable ``key`` through the supervisor, without blocking the event loop.

    Relies on the ``PutVariable(key=, value=, description=)`` message of ``airflow.sdk.execution_time.comms``
    (Airflow 3.0+), which the triggerer's supervisor handles (``handle_put_variable``: the execution API's
    ``PUT /variables/{key}``, an upsert), and on the triggerer's async ``asend`` (a frame written on the loop and
    a future its reader resolves, Airflow 3.1+). A refusal raises ``AirflowRuntimeError``.
    """
    from airflow.sdk.execution_time.comms import PutVariable

    await supervisor_comms().asend(PutVariable(key=key, value=value, description=description))


async def delete_variable(key: str) -> None:
    """Delete the Airflow Variable ``key`` through the supervisor, without blocking the event loop.

    Relies on ``DeleteVariable(key=)`` (Airflow 3.0+), handled like :func:`put_variable`.
    """
    from airflow.sdk.execution_time.comms import DeleteVariable

    await supervisor_comms().asend(DeleteVariable(key=key))


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


# --- the reaper (api-server side: the ORM and the metadata DB) ------------------------------------------------


def is_orm_task_instance(obj: Any) -> bool:
    """True for the metadata DB's ``TaskInstance`` (the api-server's and the scheduler's), False for a worker's
    ``RuntimeTaskInstance``. By class name, so a worker never imports the ORM model to answer.

    Relies on the model living in ``airflow.models.taskinstance`` (Airflow 2.0+).
    """
    cls = type(obj)
    return cls.__module__ == "airflow.models.taskinstance" and cls.__name__ == "TaskInstance"


def session_of(obj: Any) -> Any:
    """The SQLAlchemy session an ORM object is attached to (None: none). Public SQLAlchemy."""
    from sqlalchemy.orm import object_session

    return object_session(obj)


def _task_scope(dag_id: str, run_id: str, task_id: str, map_index: int) -> Any:
    """The server side's ``TaskScope``: ``airflow._shared.state`` (Airflow 3.3+), which the backends match on;
    the SDK's ``airflow.sdk.state.TaskScope`` is another class (the SDK vendors its own copy)."""
    from airflow._shared.state import TaskScope

    return TaskScope(dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index)


def read_task_state(dag_id: str, run_id: str, task_id: str, map_index: int, key: str, *, session: Any) -> str | None:
    """A task state store value as stored (JSON text), read in ``session``; None when there is none.

    Relies on ``airflow.state.get_state_backend()`` and its ``get(scope, key, session=)`` (Airflow 3.3+: the
    configured ``[state_store] backend``; what the execution API's store route calls).
    """
    from airflow.state import get_state_backend

    value = get_state_backend().get(_task_scope(dag_id, run_id, task_id, map_index), key, session=session)
    return None if value is None else str(value)


def write_task_state(
    dag_id: str, run_id: str, task_id: str, map_index: int, key: str, value: str, *, session: Any
) -> None:
    """Write a task state store value (JSON text) in ``session``, never expiring (as the worker writes it).

    Relies on ``get_state_backend().set(scope, key, value, expires_at=None, session=)`` (Airflow 3.3+).
    """
    from airflow.state import get_state_backend

    get_state_backend().set(_task_scope(dag_id, run_id, task_id, map_index), key, value, session=session)


def trigger_row(trigger_id: int | None, *, session: Any) -> tuple[str, dict[str, Any]] | None:
    """The classpath and the (decrypted) kwargs of a trigger row; None when there is none.

    Relies on ``airflow.models.trigger.Trigger`` with ``classpath`` and the decrypting ``kwargs`` property
    (Airflow 2.2+; encrypted since 2.9).
    """
    if trigger_id is None:
        return None
    from airflow.models.trigger import Trigger

    row = session.get(Trigger, trigger_id)
    if row is None:
        return None
    return str(row.classpath), dict(row.kwargs)


def queue_triggerer_callback(path: str, kwargs: dict[str, Any], *, session: Any) -> None:
    """Queue ``await <path>(**kwargs)`` on a triggerer, in ``session``: it runs once that commits, on the first
    triggerer to loop (or to start), and again from the start if that triggerer dies.

    Relies on what ``Deadline.handle_miss`` does (Airflow 3.1+): ``airflow.models.callback.TriggererCallback``
    built from the SDK's ``AsyncCallback(path, kwargs=)``, ``queue(session=)`` (which creates its
    ``CallbackTrigger`` row), then ``session.add``. A callback trigger has no queue and no team: triggerers
    started with ``--queues``, and team triggerers, never take it.
    """
    from airflow.models.callback import TriggererCallback
    from airflow.sdk import AsyncCallback  # type: ignore[attr-defined]  # public; absent from the SDK stub

    callback = TriggererCallback(AsyncCallback(path, kwargs=kwargs))
    callback.queue(session=session)
    session.add(callback)
    session.flush()


# --- the "Durable jobs" view (api-server: the ORM, the request's session and user, the auth manager) ----------


def view_models() -> Any:
    """The ORM classes the view queries, as ``Store``, ``TI``, ``Trigger`` and ``XCom``.

    Relies on ``airflow.models.task_state_store.TaskStateStoreModel`` (Airflow 3.3+, table ``task_state_store``),
    ``airflow.models.taskinstance.TaskInstance``, ``airflow.models.trigger.Trigger`` (its ``created_date``) and
    ``airflow.models.xcom.XComModel`` with its static ``deserialize_value`` (Airflow 3.0+).
    """
    from types import SimpleNamespace

    from airflow.models.task_state_store import TaskStateStoreModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.models.xcom import XComModel

    return SimpleNamespace(Store=TaskStateStoreModel, TI=TaskInstance, Trigger=Trigger, XCom=XComModel)


def variables_under(prefix: str, *, session: Any) -> list[tuple[str, str | None]]:
    """Every Airflow Variable whose key starts with ``prefix``, as ``(key, value)`` in one query; the value
    decrypted, None when it cannot be (another Fernet key).

    Relies on ``airflow.models.variable.Variable`` (table ``variable``) and its decrypting ``val`` (Airflow 2.0+).
    Read from the metadata DB, not through the secrets backends: the triggerers write there.
    """
    from airflow.models.variable import Variable
    from sqlalchemy import select

    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    stmt = select(Variable).where(Variable.key.like(pattern, escape="\\")).order_by(Variable.key)
    return [(str(v.key), v.val) for v in session.scalars(stmt) if str(v.key).startswith(prefix)]


def api_dependencies() -> tuple[Any, Any]:
    """The api-server's FastAPI dependencies for a route's DB session and user, as ``Depends(...)`` markers.

    Relies on ``airflow.api_fastapi.common.db.common.SessionDep`` and
    ``airflow.api_fastapi.core_api.security.GetUserDep`` (Airflow 3.0+), both ``Annotated[T, Depends(...)]``:
    the user from a ``Bearer`` JWT, else the UI's ``_token`` cookie; 401 without one, 403 for a bad one.
    """
    from typing import get_args

    from airflow.api_fastapi.common.db.common import SessionDep
    from airflow.api_fastapi.core_api.security import GetUserDep

    return get_args(SessionDep)[1], get_args(GetUserDep)[1]


def authorized_dag_ids(user: Any, method: str) -> set[str]:
    """The DAGs ``user`` may act on with ``method`` (``GET``: read, ``PUT``: edit), as the auth manager says.

    Relies on ``airflow.api_fastapi.app.get_auth_manager()`` and ``BaseAuthManager.get_authorized_dag_ids``
    (Airflow 3.0+): what the api-server's own ``ReadableDagsFilterDep`` asks. Not ``request.app.state``: in a
    plugin's mounted app, ``request.app`` is the plugin's app.
    """
    from airflow.api_fastapi.app import get_auth_manager

    return set(get_auth_manager().get_authorized_dag_ids(user=user, method=method))


def is_authorized_dag(user: Any, method: str, dag_id: str) -> bool:
    """Whether ``user`` may act on DAG ``dag_id`` with ``method``, as the auth manager says.

    Relies on ``get_auth_manager().is_authorized_dag(method=, details=DagDetails(id=), user=)`` (Airflow 3.0+).
    """
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    return bool(get_auth_manager().is_authorized_dag(method=method, details=DagDetails(id=dag_id), user=user))
