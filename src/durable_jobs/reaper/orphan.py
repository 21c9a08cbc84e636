"""What a user's mark of a durable task asks the reaper to do: a pure decision, no Airflow, no client.

Given the stored record (JSON text, or None) and, when there is one, the durable trigger the task instance
still points at, :func:`plan` answers with a :class:`Reap` (the tombstone to write, the kwargs of the
triggerer callback that cancels the job) or a :class:`Skip` saying why nothing is done. Kept apart from the
listener so every case is tested without a database.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from durable_jobs.errors import RecordError
from durable_jobs.record import JobRecord, Phase, TaskIdentity

#: the coroutine the triggerer runs, as stored in Airflow's callback table: permanent (a queued callback
#: outlives an upgrade), so it must keep importing from this path
CALLBACK_PATH = "durable_jobs.reaper.callback.cancel_orphan"
#: the mark, from the task instance's new state
CAUSE_OF_STATE = {"failed": "mark_failed", "success": "mark_success", "skipped": "mark_skipped"}
#: what an object-storage state backend leaves in the DB instead of the value (``[workers] state_store_backend``)
_STATE_REF = "__airflow_state_ref__"


@dataclass(frozen=True, slots=True)
class MarkedTask:
    """The task instance a user marked, and how."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    ti_id: str
    by: str  # one of record.CANCEL_CAUSES

    @property
    def identity(self) -> TaskIdentity:
        return TaskIdentity(self.dag_id, self.run_id, self.task_id, self.map_index)

    @classmethod
    def of(cls, ti: Any, by: str) -> MarkedTask:
        """The ORM task instance ``ti`` (any object with its columns), asked to end its job ``by``."""
        return cls(
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=ti.task_id,
            map_index=-1 if ti.map_index is None else int(ti.map_index),
            ti_id=str(ti.id),
            by=by,
        )


@dataclass(frozen=True, slots=True)
class DurableTrigger:
    """What the task instance's durable trigger row says (its kwargs, its class's hook)."""

    hook: str
    conn_id: str
    job: dict[str, Any]
    token: str
    generation: int

    @classmethod
    def from_kwargs(cls, hook: str, kwargs: Mapping[str, Any]) -> DurableTrigger | None:
        """From a durable trigger's stored kwargs; None when they are not a durable trigger's."""
        job, conn_id, token, generation = (kwargs.get(k) for k in ("job", "conn_id", "token", "generation"))
        if type(job) is not dict or type(conn_id) is not str or type(token) is not str or type(generation) is not int:
            return None
        return cls(hook=hook, conn_id=conn_id, job=dict(job), token=token, generation=generation)


@dataclass(frozen=True, slots=True)
class Reap:
    """Write ``tombstone`` (JSON text; None: no record to write) and queue the callback with ``kwargs``."""

    tombstone: str | None
    kwargs: dict[str, Any]
    source: str  # where the locator came from: "record" or "trigger"


@dataclass(frozen=True, slots=True)
class Skip:
    """Nothing to do, and why (``quiet``: the common case of a task that is not ours, not worth a log line)."""

    why: str
    quiet: bool = False


def plan(
    task: MarkedTask, stored: str | None, trigger: DurableTrigger | None, *, now: float | None = None
) -> Reap | Skip:
    """What to do about ``task``'s job, from its stored record and its trigger row."""
    data = _loads(stored)
    if data is None or (isinstance(data, dict) and _STATE_REF in data):
        if trigger is None:
            why = "its record is in an object-storage state backend" if data is not None else "no record"
            return Skip(why, quiet=data is None)
        # the record is gone (``[state_store] clear_on_success`` deleted it in this request) or not readable
        # here: the trigger row still names the job; no tombstone (a later try starts from nothing)
        t = trigger
        return Reap(None, _kwargs(task, None, t.hook, t.conn_id, t.job, t.token, t.generation, now), "trigger")
    system = data.get("system") if isinstance(data, dict) else None
    try:
        rec = JobRecord.from_json(data, system=str(system), identity=task.identity)
    except RecordError as exc:
        return Skip(f"its record cannot be read, so its job is not touched: {exc}")
    if rec.phase is Phase.FINISHED:
        return Skip(f"its job (generation {rec.generation}) already ended {rec.outcome}", quiet=True)
    if rec.job is None:
        return Skip(
            f"generation {rec.generation} (token {rec.token}) is recorded as an intent with no job id: a try may "
            "have submitted it, and only a try (which can look it up by token) can find it"
        )
    conn_id = rec.conn_id or (trigger.conn_id if trigger else None)
    hook = rec.hook or (trigger.hook if trigger else None)
    if conn_id is None or hook is None:
        return Skip(
            f"its record (written before the reaper existed) names no connection or hook, and no trigger row "
            f"does: cancel {rec.job} by hand"
        )
    tombstone = rec.tombstone(task.by, ti_id=task.ti_id, now=now)
    return Reap(
        json.dumps(tombstone.to_json()),
        _kwargs(task, rec.system, hook, conn_id, rec.job, rec.token, rec.generation, now),
        "record",
    )


def _loads(stored: str | None) -> Any:
    if stored is None:
        return None
    try:
        return json.loads(stored)
    except ValueError:
        return {"unreadable": stored[:80]}  # refused by JobRecord.from_json, with the field named


def _kwargs(
    task: MarkedTask,
    system: str | None,
    hook: str,
    conn_id: str,
    job: dict[str, Any],
    token: str,
    generation: int,
    now: float | None,
) -> dict[str, Any]:
    """The callback's kwargs: stored in plain text in Airflow's callback and trigger tables, so no secret."""
    return {
        "system": system,
        "dag_id": task.dag_id,
        "run_id": task.run_id,
        "task_id": task.task_id,
        "map_index": task.map_index,
        "ti_id": task.ti_id,
        "by": task.by,
        "hook": hook,
        "conn_id": conn_id,
        "job": dict(job),
        "token": token,
        "generation": generation,
        "marked_at": time.time() if now is None else now,
    }
