"""Whether a triggerer is alive, asked once each time a task defers: without one a deferred task waits silently.

A deferred task is run by a triggerer. When none runs, Airflow says nothing: the task sits in ``deferred``
until its timeout, and only the health endpoint shows that something is wrong. So before the operator
defers it asks that endpoint, the way a person would, and logs a WARNING in the task's log when no
triggerer is alive.

The task runner of Airflow 3 has no database access; what it can reach is the api-server, whose public
health endpoint (``GET /api/v2/monitor/health``, no authentication) reports the most recent triggerer's
status and latest heartbeat. The check is one GET, run in a daemon thread and given up after
:data:`TIMEOUT` seconds, so it never fails the task nor delays it longer. An answer that cannot be had or
read is logged at DEBUG and changes nothing.

Where it asks: ``[durable_jobs] triggerer_health_url`` when set (``off`` turns the check off), else the
api-server of ``[core] execution_api_server_url`` (the same server, without its ``/execution/`` path), else
``[api] base_url``, else ``http://localhost:8080``: how Airflow finds its execution API.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import Any

import msgspec

from durable_jobs.decoding import decode_json
from durable_jobs.errors import MalformedAnswer

HEALTH_PATH = "/api/v2/monitor/health"
TIMEOUT = 2.0  # seconds the check may add to a deferral, at most
MAX_BYTES = 64 * 1024  # the health answer is a few hundred bytes
DOCS = "docs/triggerer.md of airflow-durable-jobs"
OFF = ("off", "false", "no", "none", "0")


class _Component(msgspec.Struct):
    status: str | msgspec.UnsetType | None = msgspec.UNSET
    latest_triggerer_heartbeat: str | None = None


class _Health(msgspec.Struct):
    """The part of Airflow's health answer read here (other fields are skipped unread)."""

    metadatabase: _Component | None = None
    triggerer: _Component | None = None


@dataclass(frozen=True)
class TriggererHealth:
    """What the health endpoint said of the triggerer: ``alive`` is None when it could not be told."""

    alive: bool | None
    latest_heartbeat: dt.datetime | None = None
    detail: str = ""  # why it could not be told, or what the endpoint said

    def warning(self, now: dt.datetime | None = None) -> str | None:
        """The warning to log when no triggerer is alive; None otherwise."""
        if self.alive is not False:
            return None
        fix = f"this task stays deferred until one runs. Start one with `airflow triggerer` (see {DOCS})"
        if self.latest_heartbeat is None:
            return f"No triggerer has ever sent a heartbeat to this Airflow ({self.detail}): {fix}"
        age = ((now or dt.datetime.now(dt.timezone.utc)) - self.latest_heartbeat).total_seconds()
        return (
            f"No triggerer has sent a heartbeat for {_duration(age)} (latest {self.latest_heartbeat.isoformat()}): "
            f"{fix}"
        )


def health_url() -> str | None:
    """The api-server's health endpoint, from Airflow's configuration; None when the check is turned off."""
    from airflow.sdk import conf

    own = (conf.get("durable_jobs", "triggerer_health_url", fallback="") or "").strip()
    if own:
        return None if own.lower() in OFF else own
    execution = (conf.get("core", "execution_api_server_url", fallback="") or "").strip().rstrip("/")
    if execution.endswith("/execution"):
        return execution[: -len("/execution")] + HEALTH_PATH
    base = (conf.get("api", "base_url", fallback="") or "/").strip()
    if base.startswith("/"):
        base = f"http://localhost:8080{base}"
    return base.rstrip("/") + HEALTH_PATH


def check_triggerer(url: str, timeout: float = TIMEOUT) -> TriggererHealth:
    """Ask ``url`` (Airflow's health endpoint) about the triggerer; never raises, never takes much over ``timeout``."""
    if not url.startswith(("http://", "https://")):
        return TriggererHealth(None, detail=f"{url!r} is not an http(s) URL")
    answer: list[bytes | BaseException] = []

    def fetch() -> None:
        try:
            import urllib.request  # here: importing it costs DAG parsing ~10 ms for a check made at defer time

            class NoRedirect(urllib.request.HTTPRedirectHandler):
                def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                    return None  # a redirect is an answer we cannot read, never a new host to ask

            # the configured api-server's URL (http or https), not a user's
            request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
            with urllib.request.build_opener(NoRedirect).open(request, timeout=timeout) as resp:
                answer.append(resp.read(MAX_BYTES))
        except BaseException as exc:  # anything: the check only informs
            answer.append(exc)

    worker = threading.Thread(target=fetch, name="durable-jobs-triggerer-health", daemon=True)
    worker.start()
    worker.join(timeout)
    if not answer:
        return TriggererHealth(None, detail=f"{url} did not answer within {timeout:g}s")
    body = answer[0]
    if isinstance(body, TimeoutError) or isinstance(getattr(body, "reason", None), TimeoutError):
        # the socket's own timeout fired before the join's (a loaded host): the same story
        return TriggererHealth(None, detail=f"{url} did not answer within {timeout:g}s")
    if isinstance(body, BaseException):
        return TriggererHealth(None, detail=f"{url}: {type(body).__name__}: {body}")
    return _read(body, url)


def _read(body: bytes, url: str) -> TriggererHealth:
    try:
        health = decode_json(body, _Health, what=url)
    except MalformedAnswer:
        return TriggererHealth(None, detail=f"{url} did not answer Airflow's health JSON")
    triggerer = health.triggerer
    if triggerer is None or triggerer.status is msgspec.UNSET:
        return TriggererHealth(None, detail=f"{url} reports no triggerer section")
    database = health.metadatabase
    if database is not None and database.status not in (None, "healthy"):
        return TriggererHealth(None, detail=f"{url} cannot read its database")
    status = triggerer.status
    latest = _timestamp(triggerer.latest_triggerer_heartbeat)
    if status == "healthy":
        return TriggererHealth(True, latest, detail="healthy")
    if status is None:
        return TriggererHealth(False, None, detail=f"{url} lists no triggerer")
    return TriggererHealth(False, latest, detail=f"{url} says the triggerer is {status}")


def _timestamp(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for limit, unit, size in ((90, "s", 1), (90 * 60, "min", 60), (48 * 3600, "h", 3600)):
        if seconds < limit:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds / 86400:.0f} days"


def warn_if_no_triggerer(log: Any, url: str | None = None, timeout: float = TIMEOUT) -> TriggererHealth:
    """Check the triggerer (at ``url``, else :func:`health_url`) and log a WARNING when none is alive."""
    try:
        url = url or health_url()
    except Exception as exc:  # no usable configuration: nothing to ask
        log.debug("Triggerer check skipped: no health URL (%s)", exc)
        return TriggererHealth(None, detail="no health URL")
    if url is None:
        return TriggererHealth(None, detail="turned off")
    health = check_triggerer(url, timeout)
    message = health.warning()
    if message:
        log.warning("%s", message)
    elif health.alive is None:
        log.debug("Could not tell whether a triggerer is alive: %s", health.detail)
    return health


__all__ = ["HEALTH_PATH", "TIMEOUT", "TriggererHealth", "check_triggerer", "health_url", "warn_if_no_triggerer"]
