"""One stored record and its task instance, as the records API answers it: no Airflow, no database.

A record is decoded by the same validation every try uses (:meth:`JobRecord.from_json`, with the task's own
identity, so a record copied from another task or edited by hand is refused). One that fails is answered as
``unreadable``, with the reason, and never fails the page.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from durable_jobs.errors import RecordError
from durable_jobs.record import JobRecord, Phase, TaskIdentity
from durable_jobs.status import safe_url

#: task instance states after which no try will look at the job again: the cancel button's (the orphan case)
ENDED_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
UNREADABLE = "unreadable"


@dataclass(frozen=True, slots=True)
class StoredRow:
    """A ``task_state_store`` row of our key, with its task instance's columns (None: no task instance)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    value: str
    updated_at: dt.datetime | None
    ti_id: str | None = None
    try_number: int | None = None
    state: str | None = None
    deferred_since: dt.datetime | None = None  # the TI's Trigger row's created_date, while it is deferred
    links: dict[str, str] = field(default_factory=dict)  # link label -> URL, from the task's XComs


def item(row: StoredRow) -> dict[str, Any]:
    """The API's item for ``row``: the task, the record (or why it is unreadable) and what can be done."""
    out: dict[str, Any] = {
        "ti_id": row.ti_id,
        "dag_id": row.dag_id,
        "run_id": row.run_id,
        "task_id": row.task_id,
        "map_index": row.map_index,
        "try_number": row.try_number,
        "state": row.state,
        "deferred_since": _iso(row.deferred_since) if row.state == "deferred" else None,
        "updated_at": _iso(row.updated_at),
        # a link XCom any task may write: only an http(s) URL becomes a link (never ``javascript:``)
        "links": [{"name": name, "url": url} for name, url in sorted(row.links.items()) if safe_url(url)],
    }
    try:
        rec = decode(row)
    except RecordError as exc:
        out.update({"readable": False, "phase": UNREADABLE, "error": str(exc), "cancellable": False})
        return out
    out.update(
        {
            "readable": True,
            "error": None,
            "system": rec.system,
            "endpoint": rec.conn_id,
            "hook": rec.hook,
            "generation": rec.generation,
            "phase": rec.phase.value,
            "outcome": rec.outcome.value if rec.outcome else None,
            "job": rec.job,
            "job_id": job_id(rec.job),
            "token": rec.token,
            "intent_at": _epoch_iso(rec.intent_at),
            "deadline": _epoch_iso(rec.deadline),
            "submitted_try": rec.submitted_try or None,
            # the record's last write is the last status it holds: its message, at the row's updated_at
            "last_status": rec.message or None,
            "last_status_at": _iso(row.updated_at),
            "history": [{**h, "job_id": job_id(h.get("job"))} for h in rec.history],
            "cancel": rec.cancel,
            # each try's resume decision (fresh, adopted, reattached, returned, next_generation, lost...)
            "tries": [dict(t) for t in rec.tries],
            "cancellable": cancellable(rec, row.state),
        }
    )
    return out


def decode(row: StoredRow) -> JobRecord:
    """The record of ``row``, validated as a try would; :class:`RecordError` says why it cannot be read."""
    try:
        data = json.loads(row.value)
    except ValueError as exc:
        raise RecordError(f"the stored value is not JSON: {exc}") from None
    system = data.get("system") if isinstance(data, dict) else None
    identity = TaskIdentity(row.dag_id, row.run_id, row.task_id, row.map_index)
    return JobRecord.from_json(data, system=str(system), identity=identity)


def cancellable(rec: JobRecord, state: str | None) -> bool:
    """Whether the view may cancel the job: a job is recorded as active and its task has ended."""
    active = rec.phase is Phase.SUBMITTED or (rec.phase is Phase.SUBMITTING and rec.job is not None)
    return active and state in ENDED_STATES


def job_id(locator: dict[str, Any] | None) -> str | None:
    """A locator in one line, for a person: ``key=value`` pairs (a locator is a small flat object)."""
    if not locator:
        return None
    return ", ".join(f"{k}={v}" for k, v in locator.items() if v is not None)


def _iso(when: dt.datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _epoch_iso(when: float | None) -> str | None:
    return None if when is None else dt.datetime.fromtimestamp(when, dt.timezone.utc).isoformat()
