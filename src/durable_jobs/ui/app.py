"""The view's FastAPI app: the page and its API, under Airflow's own authentication and DAG permissions.

Built by :mod:`durable_jobs.ui.plugin` on the api-server's first request to ``/durable-jobs``, and mounted
there by the api-server, behind its own middlewares (the JWT refresh of the UI's ``_token`` cookie
included). Every API route resolves the user with the api-server's own dependency (``get_user``: a
``Bearer`` token, else the ``_token`` cookie; 401 without either, 403 for a bad one) and asks the configured
auth manager which DAGs that user may read (``get_authorized_dag_ids``) or whether they may edit one
(``is_authorized_dag(method="PUT")``). A record of a DAG the user may not read is never counted nor listed.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse

from durable_jobs import airflow_compat
from durable_jobs.reaper.listener import reap
from durable_jobs.reaper.orphan import MarkedTask
from durable_jobs.ui import query
from durable_jobs.ui.filters import DEFAULT_LIMIT, FilterError, Filters
from durable_jobs.ui.page import PAGE
from durable_jobs.ui.rows import ENDED_STATES, item

log = logging.getLogger(__name__)
UI_CANCEL = "ui_cancel"


_SESSION, _USER = airflow_compat.api_dependencies()
#: the request's DB session (committed when the route returns) and its user (the api-server's own dependencies)
SessionDep = Annotated[Any, _SESSION]
GetUserDep = Annotated[Any, _USER]


def readable_dags(user: GetUserDep) -> set[str]:
    """The DAGs the request's user may read, as the auth manager answers."""
    return airflow_compat.authorized_dag_ids(user, "GET")


ReadableDags = Annotated[set[str], Depends(readable_dags)]


def create_app() -> FastAPI:
    app = FastAPI(title="Durable jobs", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        # the page holds no data (its API does, under auth): it shows "sign in" itself on a 401
        return HTMLResponse(PAGE, headers={"Cache-Control": "no-store"})

    @app.get("/api/records")
    def records(
        session: SessionDep,
        dags: ReadableDags,
        dag_id: str | None = None,
        system: str | None = None,
        phase: str | None = None,
        outcome: str | None = None,
        limit: Annotated[int, Query()] = DEFAULT_LIMIT,
        offset: Annotated[int, Query()] = 0,
    ) -> dict[str, Any]:
        try:
            filters = Filters.parse(
                dag_id=dag_id, system=system, phase=phase, outcome=outcome, limit=limit, offset=offset
            )
        except FilterError as exc:
            raise HTTPException(422, str(exc)) from None
        total, rows = query.records(session, filters, dags)
        return {"total": total, "limit": filters.limit, "offset": filters.offset, "records": [item(r) for r in rows]}

    @app.get("/api/endpoints")
    def endpoints(session: SessionDep, dags: ReadableDags) -> dict[str, Any]:
        # the endpoints of the readable DAGs' active records only: a report of another endpoint is never shown
        return {"endpoints": query.endpoints(query.active_records(session, dags), query.endpoint_reports(session))}

    @app.post("/api/records/{ti_id}/cancel")
    def cancel(ti_id: str, session: SessionDep, user: GetUserDep) -> dict[str, Any]:
        return cancel_job(session, user, ti_id)

    return app


def cancel_job(session: Any, user: Any, ti_id: str) -> dict[str, Any]:
    """Queue the reaper's cancel of the job of task instance ``ti_id``, whose task has ended (the orphan case).

    The same path as a user's mark (:func:`durable_jobs.reaper.listener.reap`): the record becomes a tombstone
    (``cancel.by = "ui_cancel"``) and a triggerer callback cancels the job, both in this request's transaction.
    """
    ti = query.task_instance(session, ti_id)
    readable = ti is not None and airflow_compat.is_authorized_dag(user, "GET", ti.dag_id)
    if not readable:
        raise HTTPException(404, f"no task instance {ti_id}")
    name = user.get_name()
    if not airflow_compat.is_authorized_dag(user, "PUT", ti.dag_id):
        log.warning(
            "durable_jobs ui: %s may not edit DAG %s: cancel of task instance %s refused", name, ti.dag_id, ti_id
        )
        raise HTTPException(403, f"you may not edit DAG {ti.dag_id}")
    state = str(getattr(ti.state, "value", ti.state))
    task = MarkedTask.of(ti, UI_CANCEL)
    who = task.identity.describe()
    if state not in ENDED_STATES:
        log.warning("durable_jobs ui: %s asked to cancel the job of %s, refused: the task is %s", name, who, state)
        raise HTTPException(409, f"{who} is {state}: its own try or trigger owns the job; mark the task instead")
    with session.begin_nested():
        done = reap(task, ti.trigger_id, session)
    if done is None:
        log.warning("durable_jobs ui: %s asked to cancel the job of %s: no active job is recorded", name, who)
        raise HTTPException(409, f"{who} has no active job recorded")
    session.commit()
    log.warning(
        "durable_jobs ui: %s cancelled the job %s (generation %d) of %s; a triggerer cancels it",
        name,
        done.kwargs["job"],
        done.kwargs["generation"],
        who,
    )
    return {"queued": True, "job": done.kwargs["job"], "generation": done.kwargs["generation"]}
