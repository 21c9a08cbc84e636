"""The triggerer's side of the reaper: the coroutine that cancels the job of a task a user marked.

Queued by :mod:`durable_jobs.reaper.listener` as an Airflow triggerer callback, it runs in a triggerer's
runner process, where our clients and the connection fetches through the supervisor already work, on the
first triggerer to loop after the mark commits (or to start). Airflow runs it from the start again if that
triggerer dies, and never retries a failed one, so it is idempotent (cancel is) and retries transient errors
itself. Its kwargs come from a DB row anyone with DB access can edit: the token must be the task's own for
the generation, and the locator must carry it, before anything is cancelled. Its kwargs hold no secret: the
client is built from the connection.

The import path :data:`durable_jobs.reaper.orphan.CALLBACK_PATH` and the keyword names are permanent (a queued
callback outlives an upgrade); unknown keywords from a later release are ignored.
"""

from __future__ import annotations

import logging
from typing import Any

from durable_jobs.errors import DurableJobError, RecordError
from durable_jobs.record import TaskIdentity, cancel_words
from durable_jobs.transport.backoff import Backoff
from durable_jobs.transport.retry import RetryPolicy

log = logging.getLogger(__name__)
#: a cancel is repeated on transient errors for up to ten minutes (the endpoint may be restarting)
CANCEL_RETRY = RetryPolicy(attempts=None, budget=600.0, backoff=Backoff(base=1.0, cap=30.0))


class ReapError(DurableJobError):
    """The job could not be cancelled; the message says why and what to do."""


async def cancel_orphan(
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    hook: str,
    conn_id: str,
    job: dict[str, Any],
    token: str,
    generation: int,
    by: str = "mark_failed",
    system: str | None = None,
    ti_id: str = "",
    **later: Any,
) -> str:
    """Cancel ``job`` (generation ``generation`` of the task) and return one line saying so; raise on failure."""
    who = TaskIdentity(dag_id, run_id, task_id, map_index)
    marked = cancel_words(by)
    try:
        client = await _client(hook, conn_id)
        if system is not None and client.system != system:
            raise RecordError(f"the hook {hook} builds a {client.system} client, but the job is a {system} job")
        if who.token(generation) != token:
            raise RecordError(f"token {token} is not the task's token for generation {generation}")
        locator = client.validate_locator(job)
        if not client.locator_matches_token(locator, token):
            raise RecordError(f"{client.describe(locator)} does not carry token {token}")
        what = client.describe(locator)
        await CANCEL_RETRY.call(lambda: client.cancel(locator), what=f"cancelling {what}")
    except (DurableJobError, ImportError, TypeError, ValueError) as exc:
        text = (
            f"durable_jobs reaper: NOT cancelled: the job {job} (generation {generation}) of {who.describe()}, "
            f"{marked}: {exc}. Cancel it by hand."
        )
        log.error("%s", text)
        raise ReapError(text) from exc
    text = (
        f"durable_jobs reaper: cancelled {what} (generation {generation}, token {token}) of {who.describe()}, "
        f"{marked} by a user"
    )
    log.info("%s", text)
    return text


async def _client(hook: str, conn_id: str) -> Any:
    """The client of ``conn_id``, built by the hook class the record names (a durable_jobs hook only)."""
    from airflow.sdk.module_loading import import_string

    from durable_jobs.hooks.base import DurableJobHook

    cls = import_string(hook)
    if not (isinstance(cls, type) and issubclass(cls, DurableJobHook)):
        raise TypeError(f"{hook} is not a durable_jobs hook class")
    try:
        return await cls.aget_client(conn_id)
    except DurableJobError:
        raise
    except Exception as exc:  # Airflow's AirflowNotFoundException for a connection that does not exist
        raise ReapError(f"no client from connection {conn_id!r}: {type(exc).__name__}: {exc}") from exc
