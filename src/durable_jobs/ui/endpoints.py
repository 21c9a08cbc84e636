"""An endpoint's health in the view: the triggerers' reports (:mod:`durable_jobs.health`) merged into its row.

No Airflow, no database: :func:`durable_jobs.ui.query.endpoints` hands over the stored values (Airflow Variables
under :data:`durable_jobs.health.PREFIX`, read in one query). A value is matched to an endpoint by its key
(``<prefix><system>.<conn_id>.<triggerer>``, made by :func:`durable_jobs.health.endpoint_part`) and must name
the same endpoint. One that cannot be read (not JSON, another version, a field of the wrong type, not
decryptable) is listed as unreadable with why, counts as no report, and never fails the answer. A report
whose last poll is older than :func:`stale_after` is shown with its age and marked stale (its triggerer may
have died): it no longer sets the endpoint's state.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from durable_jobs import health

#: a report is stale once its last poll is older than this many poll periods (at least a minute each)
STALE_PERIODS = 3


def stale_after(interval: float) -> float:
    """Seconds after its last poll at which a report is stale: 3 x max(interval, the 60 s refresh)."""
    return STALE_PERIODS * max(interval, health.REFRESH)


def by_endpoint(values: Iterable[tuple[str, str | None]]) -> dict[str, list[tuple[str, str | None]]]:
    """The stored values grouped by their key's ``<system>.<conn_id>``: ``{part: [(triggerer, value)]}``."""
    out: dict[str, list[tuple[str, str | None]]] = {}
    for key, value in values:
        rest = key[len(health.PREFIX) :] if key.startswith(health.PREFIX) else ""
        part, dot, triggerer = rest.rpartition(".")
        if dot and part and triggerer:
            out.setdefault(part, []).append((triggerer, value))
    return out


def merge(
    row: dict[str, Any], reports: dict[str, list[tuple[str, str | None]]], now: float | None = None
) -> dict[str, Any]:
    """``row`` (an endpoint: ``system``, ``endpoint``) with its health: ``state``, ``since``, ``last_poll``,
    ``state_detail``, ``reported_watched`` and each triggerer's report (``triggerers``)."""
    now = dt.datetime.now(dt.timezone.utc).timestamp() if now is None else now
    system, conn_id = row["system"], row["endpoint"]
    found = reports.get(health.endpoint_part(system, conn_id), []) if conn_id else []
    triggerers = [_report(system, conn_id, who, value, now) for who, value in sorted(found, key=lambda f: f[0])]
    readable = [t for t in triggerers if t["readable"]]
    fresh = [t for t in readable if not t["stale"]]
    polls = [t["_last_poll"] for t in readable if t["_last_poll"] is not None]
    row = dict(row)
    row.update(
        {
            "state": health.UNKNOWN,
            "since": None,
            "last_poll": _iso(max(polls)) if polls else None,
            "reported_watched": sum(t["watched"] for t in fresh),
        }
    )
    if fresh:
        worst = max(fresh, key=lambda t: _RANK[t["state"]])
        state = worst["state"]
        since = min(t["_since"] for t in fresh if t["state"] == state)
        row.update(state=state, since=_iso(since), state_detail=_detail(state, since, worst["problem"]))
    elif readable:
        age = now - max(polls) if polls else None
        row["state_detail"] = (
            f"not reported for {_age(age)}: the triggerers that watched it may have stopped"
            if age is not None
            else "the triggerers' reports are stale"
        )
    elif triggerers:
        row["state_detail"] = "its report cannot be read: " + triggerers[0]["error"]
    else:
        row["state_detail"] = "no triggerer reports it (no job of it is watched, or the triggerer just started)"
    for t in triggerers:
        t.pop("_since", None)
        t.pop("_last_poll", None)
    row["triggerers"] = triggerers
    return row


_RANK = {health.OK: 0, health.UNKNOWN: 1, health.AUTH_REFUSED: 2}


def _report(system: str, conn_id: str, who: str, value: str | None, now: float) -> dict[str, Any]:
    """One triggerer's report as the API answers it; unreadable ones with why."""
    try:
        if value is None:
            raise ValueError("the value cannot be decrypted (another Fernet key?)")
        h = health.EndpointHealth.from_json(value)
        if (h.system, h.conn_id) != (system, conn_id):
            raise ValueError("the value names another endpoint than its key")
    except ValueError as exc:
        return {"triggerer": who, "readable": False, "error": str(exc), "state": health.UNKNOWN, "stale": False}
    polled = h.last_poll if h.last_poll is not None else h.since
    age = max(0.0, now - polled)
    return {
        "triggerer": who,
        "readable": True,
        "error": None,
        "host": h.host,
        "pid": h.pid,
        "state": h.state,
        "since": _iso(h.since),
        "last_poll": None if h.last_poll is None else _iso(h.last_poll),
        "age_seconds": round(age, 1),
        "stale": age > stale_after(h.interval),
        "watched": h.watched,
        "problem": h.problem or None,
        "_since": h.since,
        "_last_poll": h.last_poll,
    }


def _detail(state: str, since: float, problem: str) -> str:
    if state == health.OK:
        return "answers"
    what = "refused the credentials" if state == health.AUTH_REFUSED else "no answer"
    return f"{what} since {_iso(since)}" + (f": {problem}" if problem else "")


def _age(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat()
