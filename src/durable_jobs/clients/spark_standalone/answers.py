"""The Spark master's answers, typed: the :mod:`msgspec` schemas of REST and ``/json/``, and what they mean.

Every answer is decoded against a declared schema; a wrong type anywhere (``"success": "true"``,
``"activedrivers": null``), a truncated or empty body, or an HTML page where JSON was due is malformed:
unknown, never lost, never permanent (docs/bad-answers.md). Errors come as JSON (400, 413, 468) or as HTML
pages (500, 405, 403 from ``JWSFilter``); :func:`rest_answer` sorts them. ``FAILED`` carries no exit code;
only ``ERROR`` carries a message.

The master's *web UI* answers the REST paths with HTML (a 405 to a POST, its overview page to a GET): an
answer like that says the connection points at the UI port, a permanent
:class:`~durable_jobs.errors.ConnectionConfigError` for a submit or a kill, unknown for a status.
"""

from __future__ import annotations

import contextlib
from typing import TypeVar

import msgspec

from durable_jobs.errors import AuthError, ConnectionConfigError, MalformedAnswer, PermanentError, TransientError
from durable_jobs.status import JobState
from durable_jobs.transport.base import Response

T = TypeVar("T")

# what a driver state in an answer means for the job
ACTIVE_STATES = frozenset({"SUBMITTED", "RUNNING", "RELAUNCHING", "UNKNOWN"})
STATE_MAP = {
    "SUBMITTED": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "RELAUNCHING": JobState.RUNNING,
    "FINISHED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
    "ERROR": JobState.FAILED,
    "KILLED": JobState.CANCELLED,
    "UNKNOWN": JobState.UNKNOWN,  # reported during master recovery: never a failure
}
WEB_UI_HINT = (
    "this looks like the Spark master's web UI, not its REST submission server (port 6066 by default, "
    "spark.master.rest.enabled=true on the master): point the connection's host and port at the REST server"
)
FAILED_MESSAGE = "the driver exited with a non-zero code or an exception (Spark does not report the code)"


# Only the fields read are declared (msgspec skips the others without building them). gc=False: these
# objects hold no references to other containers, so the collector never needs to walk 100,000 of them.


class RestAnswer(msgspec.Struct, gc=False, rename="camel"):
    """What every REST answer of the submission server has in common."""

    success: bool | None = None
    message: str | None = None


class CreateAnswer(RestAnswer, gc=False, rename="camel"):
    submission_id: str | None = None


class StatusAnswer(RestAnswer, gc=False, rename="camel"):
    driver_state: str | None = None
    worker_id: str | None = None
    worker_host_port: str | None = None


class _ErrorAnswer(msgspec.Struct, gc=False):
    """Spark's ``ErrorResponse`` (400, 413, 468)."""

    message: str | None = None


class MasterAnswer(msgspec.Struct, gc=False):
    """What every reading of ``/json/`` checks first: only an ALIVE master's lists are read."""

    status: str


class Listing(MasterAnswer, gc=False):
    """The master's ``/json/``, its driver lists kept as raw JSON to be decoded in slices."""

    activedrivers: list[msgspec.Raw]
    completeddrivers: list[msgspec.Raw]
    workers: list[msgspec.Raw] = []


class DriverState(msgspec.Struct, gc=False):
    """A driver entry as a status poll reads it."""

    id: str
    state: str


class StateListing(MasterAnswer, gc=False):
    """The master's ``/json/`` as a status poll reads it: every driver's id and state.

    ``workers`` is checked, not read: an answer that find would refuse as malformed is not trusted here either.
    """

    activedrivers: list[DriverState]
    completeddrivers: list[DriverState]
    workers: list[msgspec.Raw] = []


class Driver(msgspec.Struct, gc=False):
    """A driver entry as find and links read it. ``starttime`` is a string of epoch ms (the master's clock)."""

    id: str
    state: str
    starttime: str | int | float
    mainclass: str
    worker: str | None = None


class Worker(msgspec.Struct, gc=False):
    id: str
    webuiaddress: str | None = None


class RefusedForThisDriver(TransientError):
    """A 4xx (not 401/403) on one driver's status: unknown for that driver, and it will not go away."""


def rest_answer(resp: Response, schema: type[T], what: str) -> T:
    """A REST answer decoded against ``schema``, or the right error for the Spark error zoo."""
    if resp.status in (401, 403):
        raise AuthError(
            f"{what}: HTTP {resp.status} from {resp.url}: the master's REST filter refused the request "
            f"(missing, invalid or expired JWT): {resp.snippet(120)}",
            status=resp.status,
        )
    resp.raise_for_transient(what)
    if resp.status == 405 and _is_html(resp):
        # the UI's servlet refusing a POST: nothing was submitted or killed, and retrying will not help
        raise ConnectionConfigError(f"{what}: HTTP 405 (an HTML page) from {resp.url}: {WEB_UI_HINT}", status=405)
    if 200 <= resp.status < 300 and _is_html(resp):
        raise MalformedAnswer(f"{what}: an HTML page from {resp.url} where the REST server answers JSON: {WEB_UI_HINT}")
    if resp.status >= 400:
        detail = resp.snippet()
        if resp.looks_like_json():
            with contextlib.suppress(MalformedAnswer):  # an unreadable error page: quote it as it is
                detail = first_line(resp.decode(_ErrorAnswer, what=what).message) or detail
        raise PermanentError(f"{what}: HTTP {resp.status} from {resp.url}: {detail}", status=resp.status)
    if not 200 <= resp.status < 300:
        raise MalformedAnswer(f"{what}: unexpected HTTP {resp.status} from {resp.url}")
    return resp.decode(schema, what=what)


def _is_html(resp: Response) -> bool:
    kind = str(resp.headers.get("Content-Type", "")).lower()
    return "html" in kind or resp.body.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html"))


def first_line(message: str | None) -> str:
    """A Spark message without the server's stack trace."""
    return (message or "").split("\n\t", 1)[0]


__all__ = [
    "ACTIVE_STATES",
    "FAILED_MESSAGE",
    "STATE_MAP",
    "WEB_UI_HINT",
    "CreateAnswer",
    "Driver",
    "DriverState",
    "Listing",
    "MasterAnswer",
    "RefusedForThisDriver",
    "RestAnswer",
    "StateListing",
    "StatusAnswer",
    "Worker",
    "first_line",
    "rest_answer",
]
