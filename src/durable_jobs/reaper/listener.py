"""The api-server's side of the reaper: Airflow's task-instance listener hooks, acting on a user's mark.

Why here: the UI/REST routes that mark a task instance (one task, a task group, a DAG run's active tasks)
call these hooks synchronously inside the request, with the ORM ``TaskInstance`` and **before** the request
commits. So every write is made in the request's own session, inside a savepoint: the tombstone and the
queued callback commit with the mark, or roll back with it, and an error of ours rolls back only the
savepoint (the mark is never failed by the reaper). Nothing outside the DB is done here: the api-server may
have no route to the system, and the cancel waits for the commit anyway (a triggerer runs it).

Every other call of these hooks is ignored at once: a worker's ``RuntimeTaskInstance`` at the end of a
try, and the scheduler's failure handling (``previous_state`` is set there; the routes pass None).
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.listeners import hookimpl

from durable_jobs import airflow_compat
from durable_jobs.reaper.orphan import CALLBACK_PATH, CAUSE_OF_STATE, DurableTrigger, MarkedTask, Reap, plan
from durable_jobs.record import STATE_KEY, cancel_words

log = logging.getLogger(__name__)
#: the kwargs every durable trigger stores (an extension's trigger class lives outside durable_jobs)
_DURABLE_KWARGS = frozenset({"job", "conn_id", "token", "generation"})


@hookimpl  # type: ignore[untyped-decorator]
def on_task_instance_failed(previous_state: Any, task_instance: Any, error: Any) -> None:
    marked(previous_state, task_instance)


@hookimpl  # type: ignore[untyped-decorator]
def on_task_instance_success(previous_state: Any, task_instance: Any) -> None:
    marked(previous_state, task_instance)


@hookimpl  # type: ignore[untyped-decorator]
def on_task_instance_skipped(previous_state: Any, task_instance: Any) -> None:
    marked(previous_state, task_instance)


def marked(previous_state: Any, ti: Any) -> None:
    """A task instance's new state was set by a user (a route passes ``previous_state=None``): reap its job."""
    if previous_state is not None or not airflow_compat.is_orm_task_instance(ti):
        return
    by = CAUSE_OF_STATE.get(str(getattr(ti.state, "value", ti.state)))
    session = airflow_compat.session_of(ti)
    if by is None or session is None:
        return
    task = MarkedTask.of(ti, by)
    try:
        with session.begin_nested():
            reap(task, ti.trigger_id, session)
    except Exception:
        # the savepoint is rolled back; the user's mark goes on
        log.exception("durable_jobs reaper: could not record the cancel of the job of %s", _who(task))


def reap(task: MarkedTask, trigger_id: int | None, session: Any) -> Reap | None:
    """Tombstone ``task``'s record and queue the cancel of its job, in ``session``; what was done (None: nothing)."""
    stored = airflow_compat.read_task_state(
        task.dag_id, task.run_id, task.task_id, task.map_index, STATE_KEY, session=session
    )
    trigger = _durable_trigger(trigger_id, session) if trigger_id is not None else None
    decision = plan(task, stored, trigger)
    if not isinstance(decision, Reap):
        (log.debug if decision.quiet else log.warning)(
            "durable_jobs reaper: %s: nothing cancelled: %s", _who(task), decision.why
        )
        return None
    if decision.tombstone is not None:
        airflow_compat.write_task_state(
            task.dag_id, task.run_id, task.task_id, task.map_index, STATE_KEY, decision.tombstone, session=session
        )
    airflow_compat.queue_triggerer_callback(CALLBACK_PATH, decision.kwargs, session=session)
    log.info(
        "durable_jobs reaper: %s was %s: %s; a triggerer cancels %s (generation %d)",
        _who(task),
        cancel_words(task.by),
        "its record is now a tombstone" if decision.tombstone else "its record was cleared, the trigger names the job",
        decision.kwargs["job"],
        decision.kwargs["generation"],
    )
    return decision


def _durable_trigger(trigger_id: int, session: Any) -> DurableTrigger | None:
    """The task instance's trigger row, when it is one of ours (its class names the hook)."""
    row = airflow_compat.trigger_row(trigger_id, session=session)
    if row is None:
        return None
    classpath, kwargs = row
    if not classpath.startswith("durable_jobs.") and not kwargs.keys() >= _DURABLE_KWARGS:
        return None  # another library's trigger: not even imported
    try:
        from airflow.sdk.module_loading import import_string

        from durable_jobs.triggers.base import DurableJobTrigger

        cls = import_string(classpath)
    except Exception:
        log.debug("durable_jobs reaper: trigger class %s not importable here", classpath, exc_info=True)
        return None
    if not (isinstance(cls, type) and issubclass(cls, DurableJobTrigger)):
        return None
    hook = cls.hook_class
    return DurableTrigger.from_kwargs(f"{hook.__module__}.{hook.__qualname__}", kwargs)


def _who(task: MarkedTask) -> str:
    return task.identity.describe()
