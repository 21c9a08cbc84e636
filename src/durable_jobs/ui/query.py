"""The metadata DB queries of the view: our records in the task state store, joined to their task instances.

Run in the api-server only (imported by :mod:`durable_jobs.ui.app` on its first request). Filtering and
paging are done by the database: ``dag_id`` (the DAGs the user may read, and the DAG filter) and ``key`` on
the state store's own columns, the record's fields by anchored ``LIKE`` patterns
(:mod:`durable_jobs.ui.filters`), ``ORDER BY updated_at DESC, id DESC LIMIT/OFFSET``. A page is three
queries, whatever the number of records: the page's row ids with the count of every matching row (a window,
``count(*) OVER ()``: one scan of the values for both), then those rows with their task instance and trigger
(the join and the wide ``value`` column only for the page's rows), then their links (XComs). A page past the
end asks the count alone. Sorting and joining every matching row instead took 0.2 s at 10,000 records
(benchmarks/ui_paging.py, docs/ui.md). The endpoints: the active records, and the triggerers' health reports
(Airflow Variables under one key prefix), two queries.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from dataclasses import replace
from typing import Any

from durable_jobs import airflow_compat
from durable_jobs.errors import RecordError
from durable_jobs.health import PREFIX
from durable_jobs.record import STATE_KEY, Phase
from durable_jobs.systems import declared
from durable_jobs.ui.endpoints import by_endpoint, merge
from durable_jobs.ui.filters import Filters
from durable_jobs.ui.rows import StoredRow, decode


def records(session: Any, filters: Filters, dag_ids: Collection[str]) -> tuple[int, list[StoredRow]]:
    """The total count and the page of records ``filters`` asks for, of the DAGs ``dag_ids`` only."""
    Store = airflow_compat.view_models().Store
    from sqlalchemy import func, select

    where = _where(filters, dag_ids)
    order = (Store.updated_at.desc(), Store.id.desc())
    # the page's ids, narrow rows to sort; the window counts every matching row before LIMIT
    ids = select(Store.id, func.count().over().label("total")).where(*where).order_by(*order)
    found = session.execute(ids.limit(filters.limit).offset(filters.offset)).all()
    if not found:  # none match, or the page is past the end: only a count can say which
        total = session.scalar(select(func.count()).select_from(Store).where(*where)) if filters.offset else 0
        return int(total or 0), []
    page = _page_select().where(Store.id.in_([r.id for r in found])).order_by(*order)
    rows = [_stored(r) for r in session.execute(page)]
    if filters.on_value:
        rows = [r for r in rows if _exact(r, filters)]
    return int(found[0].total), _with_links(session, rows)


def active_records(session: Any, dag_ids: Collection[str]) -> list[StoredRow]:
    """Every record of ``dag_ids`` whose job is active (phase submitting or submitted), newest first."""
    Store = airflow_compat.view_models().Store
    from sqlalchemy import or_

    where = _where(Filters(), dag_ids)
    phases = [Filters(phase=p).patterns()[0] for p in (Phase.SUBMITTING, Phase.SUBMITTED)]
    stmt = _page_select().where(*where, or_(*(Store.value.like(p, escape="\\") for p in phases)))
    return [_stored(r) for r in session.execute(stmt.order_by(Store.updated_at.desc()))]


def task_instance(session: Any, ti_id: str) -> Any:
    """The ORM task instance ``ti_id`` (None: none, or not a task instance id)."""
    try:
        key = uuid.UUID(ti_id)
    except ValueError:
        return None
    return session.get(airflow_compat.view_models().TI, key)


def _where(filters: Filters, dag_ids: Collection[str]) -> list[Any]:
    Store = airflow_compat.view_models().Store

    where: list[Any] = [Store.key == STATE_KEY, Store.dag_id.in_(sorted(dag_ids))]
    if filters.dag_id is not None:
        where.append(Store.dag_id == filters.dag_id)
    where += [Store.value.like(p, escape="\\") for p in filters.patterns()]
    return where


def _page_select() -> Any:
    """The state store row, outer-joined to its task instance and that task instance's trigger row."""
    m = airflow_compat.view_models()
    Store, TI, Trigger = m.Store, m.TI, m.Trigger
    from sqlalchemy import and_, select

    on_ti = and_(
        TI.dag_id == Store.dag_id,
        TI.run_id == Store.run_id,
        TI.task_id == Store.task_id,
        TI.map_index == Store.map_index,
    )
    return (
        select(
            Store.dag_id,
            Store.run_id,
            Store.task_id,
            Store.map_index,
            Store.value,
            Store.updated_at,
            TI.id.label("ti_id"),
            TI.try_number,
            TI.state,
            Trigger.created_date.label("deferred_since"),
        )
        .select_from(Store)
        .outerjoin(TI, on_ti)
        .outerjoin(Trigger, Trigger.id == TI.trigger_id)
    )


def _stored(r: Any) -> StoredRow:
    state = getattr(r.state, "value", r.state)
    return StoredRow(
        dag_id=r.dag_id,
        run_id=r.run_id,
        task_id=r.task_id,
        map_index=int(r.map_index),
        value=r.value,
        updated_at=r.updated_at,
        ti_id=None if r.ti_id is None else str(r.ti_id),
        try_number=r.try_number,
        state=None if state is None else str(state),
        deferred_since=r.deferred_since,
    )


def _exact(row: StoredRow, filters: Filters) -> bool:
    try:
        rec = decode(row)
    except RecordError:
        return False
    return filters.matches(rec.system, rec.phase.value, rec.outcome.value if rec.outcome else None)


def link_keys() -> dict[str, str]:
    """Every XCom key a system pushes a link's URL under -> the link's label (:mod:`durable_jobs.links`)."""
    return {link.xcom_key: link.name for system in declared() for link in system.links}


def _with_links(session: Any, rows: list[StoredRow]) -> list[StoredRow]:
    """``rows`` with their links: the declared link XComs of their task instances, in one query."""
    if not rows:
        return rows
    X = airflow_compat.view_models().XCom
    from sqlalchemy import select

    labels = link_keys()
    keys = {(r.dag_id, r.run_id, r.task_id, r.map_index) for r in rows}
    stmt = select(X.dag_id, X.run_id, X.task_id, X.map_index, X.key, X.value).where(
        X.key.in_(sorted(labels)),
        X.dag_id.in_(sorted({k[0] for k in keys})),
        X.run_id.in_(sorted({k[1] for k in keys})),
    )
    found: dict[tuple[str, str, str, int], dict[str, str]] = {}
    for row in session.execute(stmt):
        at = (row.dag_id, row.run_id, row.task_id, int(row.map_index))
        url = _url(X.deserialize_value(row))
        if at in keys and url:
            found.setdefault(at, {})[labels[row.key]] = url
    return [_linked(r, found.get((r.dag_id, r.run_id, r.task_id, r.map_index), {})) for r in rows]


def _url(value: Any) -> str | None:
    return value if isinstance(value, str) and value.startswith(("http://", "https://")) else None


def _linked(row: StoredRow, links: dict[str, str]) -> StoredRow:
    return replace(row, links=links) if links else row


def endpoint_reports(session: Any) -> dict[str, list[tuple[str, str | None]]]:
    """What the triggerers report of each endpoint (:mod:`durable_jobs.health`), read in one query (the
    Variables under ``durable_jobs.endpoint.``), grouped by ``<system>.<conn_id>``."""
    return by_endpoint(airflow_compat.variables_under(PREFIX, session=session))


def endpoints(
    rows: Iterable[StoredRow], reports: dict[str, list[tuple[str, str | None]]] | None = None
) -> list[dict[str, Any]]:
    """What the records say of each endpoint (system and connection): its active jobs, how many are deferred
    (watched by a triggerer now), the newest record write; and what the triggerers report of it (its state
    since when, their last poll, the jobs each watches: :func:`durable_jobs.ui.endpoints.merge`). Only the
    endpoints of ``rows`` are answered: a report of an endpoint no readable record uses is never shown."""
    out: dict[tuple[str, str | None], dict[str, Any]] = {}
    for row in rows:
        try:
            rec = decode(row)
        except RecordError:
            continue
        e = out.setdefault(
            (rec.system, rec.conn_id),
            {"system": rec.system, "endpoint": rec.conn_id, "jobs": 0, "watched": 0, "last_update": None},
        )
        e["jobs"] += 1
        e["watched"] += row.state == "deferred"
        when = row.updated_at.isoformat() if row.updated_at else None
        if when and (e["last_update"] is None or when > e["last_update"]):
            e["last_update"] = when
    merged = [merge(e, reports or {}) for e in out.values()]
    return sorted(merged, key=lambda e: (e["system"], e["endpoint"] or ""))
