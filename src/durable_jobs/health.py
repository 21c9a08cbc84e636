"""Endpoint health as each triggerer sees it, kept where the "Durable jobs" view reads it: an Airflow Variable.

A triggerer has one shared poller per endpoint (:class:`durable_jobs.polling.StatusPoller`), which knows
whether the endpoint answers (``ok``), has not answered since some time (``unknown``) or refused the
credentials (``auth refused``). Nothing Airflow stores says so (the trigger rows carry no status, the
triggerer's heartbeat nothing per endpoint, the metrics go to StatsD), so each triggerer writes one small JSON
value per endpoint (system and connection): the state and since when, the jobs it watches there, its last
poll, the last problem (redacted and cut: never a credential) and its host and pid.

**How often**: a poller asks its loop's :class:`Reporter` at the end of a poll round only when its state
changed or :data:`REFRESH` seconds passed (two comparisons per round, whatever the number of jobs), and the
reporter writes a key only when that endpoint's state changed or :data:`REFRESH` passed since its last write.
So a steady endpoint costs one write a minute per triggerer, never a write per job or per poll.

**Where**: the Variable ``durable_jobs.endpoint.<system>.<conn_id>.<host>-<pid>``, set through the triggerer's
supervisor (``PutVariable`` over its async channel: :func:`durable_jobs.airflow_compat.put_variable`), so the
event loop never blocks on the write. The writes run in tasks of their own: a write that fails or hangs is
logged once (until one succeeds again) and never delays a poll or touches a job. When the last poller of an
endpoint on a triggerer stops (no job of it is watched there any more), the value is deleted.

**Only in a triggerer**: elsewhere (a worker's own wait, unit tests, the benchmarks) no reporter exists and
nothing is written, unless a test installs one with :func:`install`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import logging
import math
import os
import re
import socket
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from durable_jobs import airflow_compat
from durable_jobs.messages import snippet

if TYPE_CHECKING:
    from durable_jobs.polling import StatusPoller

log = logging.getLogger(__name__)

#: every key this module writes starts with it (the view reads them in one ``LIKE`` query)
PREFIX = "durable_jobs.endpoint."
VERSION = 1
#: seconds between two writes of an endpoint whose state did not change
REFRESH = 60.0
#: a write that takes longer than this counts as failed (the supervisor did not answer)
WRITE_TIMEOUT = 30.0
#: longest problem text kept in a value
PROBLEM_LIMIT = 300
#: Airflow's ``variable.key`` is a ``String(250)``
KEY_LIMIT = 250
DESCRIPTION = "Endpoint health written by a durable_jobs triggerer for the Durable jobs view (safe to delete)"

OK, UNKNOWN, AUTH_REFUSED = "ok", "unknown", "auth refused"
STATES = (OK, UNKNOWN, AUTH_REFUSED)
_RANK = {OK: 0, UNKNOWN: 1, AUTH_REFUSED: 2}  # the worst state of an endpoint's pollers is its state
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


# --- the value ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    """What one triggerer says of one endpoint."""

    system: str
    conn_id: str
    state: str
    since: float  # epoch s: when the state began
    watched: int  # the jobs this triggerer watches there
    last_poll: float | None  # epoch s of its last poll round
    interval: float  # the longest poll interval of its pollers there (for staleness)
    problem: str  # the last problem, redacted and cut ("" when ok)
    host: str
    pid: int

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": VERSION,
                "system": self.system,
                "conn_id": self.conn_id,
                "state": self.state,
                "since": _iso(self.since),
                "watched": self.watched,
                "last_poll": None if self.last_poll is None else _iso(self.last_poll),
                "interval": self.interval,
                "problem": self.problem,
                "triggerer": {"host": self.host, "pid": self.pid},
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: object) -> EndpointHealth:
        """The value ``text`` holds; :class:`ValueError` says why it cannot be read (nothing else is raised)."""
        if not isinstance(text, str):
            raise ValueError(f"the value is {type(text).__name__}, not text")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"the value is not JSON: {str(exc)[:100]}") from None
        if not isinstance(data, dict):
            raise ValueError("the value is not a JSON object")
        if data.get("v") != VERSION:
            raise ValueError(f"field 'v' is {str(data.get('v'))[:20]}, not {VERSION}")
        who = data.get("triggerer")
        if not isinstance(who, dict):
            raise ValueError("field 'triggerer' is not an object")
        state = data.get("state")
        if state not in STATES:
            raise ValueError(f"field 'state' is not one of {', '.join(STATES)}")
        last_poll = data.get("last_poll")
        return cls(
            system=_text(data, "system"),
            conn_id=_text(data, "conn_id"),
            state=str(state),
            since=_when(data.get("since"), "since"),
            watched=_count(data.get("watched"), "watched"),
            last_poll=None if last_poll is None else _when(last_poll, "last_poll"),
            interval=_seconds(data.get("interval")),
            problem=_text(data, "problem", PROBLEM_LIMIT, empty=True),
            host=_text(who, "host"),
            pid=_count(who.get("pid"), "triggerer.pid"),
        )


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat()


def _text(data: dict[str, Any], name: str, limit: int = KEY_LIMIT, *, empty: bool = False) -> str:
    value = data.get(name)
    if not isinstance(value, str) or (not value and not empty) or len(value) > limit:
        raise ValueError(f"field {name!r} is not a string of at most {limit} characters")
    return value


def _when(value: object, name: str) -> float:
    if not isinstance(value, str):
        raise ValueError(f"field {name!r} is not a time")
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"field {name!r} is not an ISO time") from None
    if when.tzinfo is None:
        raise ValueError(f"field {name!r} has no time zone")
    epoch = when.timestamp()
    if not 0 <= epoch < 253_402_000_000:  # 1970 to 9999: what can be shown again
        raise ValueError(f"field {name!r} is out of range")
    return epoch


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ValueError(f"field {name!r} is not a count")
    return value


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError("field 'interval' is not a positive number of seconds")
    return float(value)


# --- the key --------------------------------------------------------------------------------------------------


def endpoint_part(system: str, conn_id: str) -> str:
    """``<system>.<conn_id>``, each made of ``[A-Za-z0-9_-]`` (so the key splits on its dots); a connection id
    that would make the key too long is replaced by a hash of it."""
    conn = _UNSAFE.sub("_", conn_id)
    if len(conn) > 100 or conn != conn_id:  # 22 + 40 + 1 + 100 + 1 + 60 + 1 + 20 <= KEY_LIMIT
        conn = conn[:60] + "_" + hashlib.sha256(conn_id.encode()).hexdigest()[:16]
    return f"{_UNSAFE.sub('_', system)[:40]}.{conn}"


def triggerer_part(host: str, pid: int) -> str:
    """``<host>-<pid>`` without dots: the key's last part."""
    return f"{_UNSAFE.sub('_', host)[:60]}-{pid}"


def variable_key(system: str, conn_id: str, host: str, pid: int) -> str:
    """``durable_jobs.endpoint.<system>.<conn_id>.<host>-<pid>``, at most :data:`KEY_LIMIT` characters."""
    return f"{PREFIX}{endpoint_part(system, conn_id)}.{triggerer_part(host, pid)}"


def problem_text(message: str) -> str:
    """A poller's last problem as a value may hold it: one line, redacted (no credential, a URL's password
    included: :func:`durable_jobs.messages.redact`), at most :data:`PROBLEM_LIMIT` characters."""
    return snippet(message, PROBLEM_LIMIT)


# --- the writer and the reporter ------------------------------------------------------------------------------


class Writer(Protocol):
    """Where the values go: the triggerer's supervisor (Airflow Variables), or a test's fake."""

    async def put(self, key: str, value: str) -> None: ...

    async def delete(self, key: str) -> None: ...


class SupervisorWriter:
    """Airflow Variables, set and deleted through the triggerer's supervisor without blocking the loop."""

    async def put(self, key: str, value: str) -> None:
        await airflow_compat.put_variable(key, value, DESCRIPTION)

    async def delete(self, key: str) -> None:
        await airflow_compat.delete_variable(key)


class Reporter:
    """One per event loop (triggerer): merges what its pollers know per endpoint, and writes it when it changed
    or :attr:`refresh` seconds passed since that endpoint's last write."""

    def __init__(self, writer: Writer, *, refresh: float = REFRESH, host: str | None = None, pid: int | None = None):
        self.writer = writer
        self.refresh = refresh
        self.host = host or socket.gethostname() or "unknown"
        self.pid = os.getpid() if pid is None else pid
        self.writes = 0  # values written
        self.deletes = 0
        self.failures = 0  # writes or deletes that failed
        self._written: dict[str, tuple[str, float, float]] = {}  # key -> (state, since, monotonic time of the write)
        self._tasks: dict[str, asyncio.Task[None]] = {}  # the write in flight, per key
        self._next: dict[str, EndpointHealth | None] = {}  # what to write once it ends (None: delete)
        self._failing = False

    def report(self, poller: StatusPoller, pollers: Iterable[StatusPoller]) -> None:
        """``poller``'s state changed, or :attr:`refresh` passed since it last called: write what changed.

        ``pollers``: every live poller of the loop (an endpoint's jobs may be split over several, one per poll
        interval or per credentials). A connection none of them watches any more is deleted.
        """
        every = {id(p): p for p in (*pollers, poller)}.values()
        now = time.monotonic()
        for conn_id in list(poller.health_conns):
            system = poller.client.system
            key = variable_key(system, conn_id, self.host, self.pid)
            value = self._merge(system, conn_id, every)
            if value is None:
                poller.health_conns.discard(conn_id)
                if self._written.pop(key, None) is not None:
                    self._submit(key, None)
                continue
            last = self._written.get(key)
            if last is not None and last[:2] == (value.state, value.since) and now - last[2] < self.refresh:
                continue
            self._written[key] = (value.state, value.since, now)
            self._submit(key, value)

    def _merge(self, system: str, conn_id: str, pollers: Iterable[StatusPoller]) -> EndpointHealth | None:
        parts = [
            p for p in pollers if p.client.system == system and p.conn_watches(conn_id) and p.health_state is not None
        ]
        if not parts:
            return None
        worst = max(parts, key=lambda p: _RANK[p.health_state or OK])
        state = worst.health_state or OK
        polls = [p.last_poll_at for p in parts if p.last_poll_at is not None]
        return EndpointHealth(
            system=system,
            conn_id=conn_id,
            state=state,
            since=min(p.state_since for p in parts if p.health_state == state),
            watched=sum(p.conn_watches(conn_id) for p in parts),
            last_poll=max(polls) if polls else None,
            interval=max(p.interval for p in parts),
            problem="" if state == OK else problem_text(worst.last_problem),
            host=self.host,
            pid=self.pid,
        )

    def _submit(self, key: str, value: EndpointHealth | None) -> None:
        if key in self._tasks:
            self._next[key] = value  # after the write in flight: the newest value wins
            return
        task = asyncio.get_running_loop().create_task(self._write(key, value), name="durable-jobs-health")
        self._tasks[key] = task
        task.add_done_callback(lambda t, k=key: self._done(k))  # type: ignore[misc]

    def _done(self, key: str) -> None:
        self._tasks.pop(key, None)
        if key in self._next:
            value = self._next.pop(key)
            with contextlib.suppress(RuntimeError):  # the loop is closing: nothing more is written
                self._submit(key, value)

    async def _write(self, key: str, value: EndpointHealth | None) -> None:
        try:
            if value is None:
                await asyncio.wait_for(self.writer.delete(key), WRITE_TIMEOUT)
                self.deletes += 1
            else:
                await asyncio.wait_for(self.writer.put(key, value.to_json()), WRITE_TIMEOUT)
                self.writes += 1
        except Exception as exc:  # any class: the write is lost, polling goes on
            self.failures += 1
            why = f"it took longer than {WRITE_TIMEOUT:g}s" if isinstance(exc, TimeoutError) else repr(exc)[:300]
            if not self._failing:
                self._failing = True
                log.warning(
                    "durable_jobs: could not record endpoint health in the Airflow Variable %s: %s (polling and jobs "
                    "are not affected; said once until a write succeeds)",
                    key,
                    why,
                )
            else:
                log.debug("durable_jobs: recording endpoint health in %s failed again: %s", key, why)
            return
        if self._failing:
            self._failing = False
            log.warning("durable_jobs: recording endpoint health works again (%s)", key)


_REPORTERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Reporter | None] = weakref.WeakKeyDictionary()


def reporter() -> Reporter | None:
    """The running loop's reporter: one writing Airflow Variables in a triggerer, None elsewhere (nothing is
    written) unless :func:`install` put one there."""
    loop = asyncio.get_running_loop()
    try:
        return _REPORTERS[loop]
    except KeyError:
        pass
    made = Reporter(SupervisorWriter()) if _in_triggerer() else None
    _REPORTERS[loop] = made
    return made


def install(writer: Writer | None, **kwargs: Any) -> Reporter | None:
    """Make ``writer`` the running loop's (None: write nothing); ``kwargs`` go to :class:`Reporter`."""
    made = None if writer is None else Reporter(writer, **kwargs)
    _REPORTERS[asyncio.get_running_loop()] = made
    return made


def _in_triggerer() -> bool:
    try:
        return airflow_compat.in_triggerer()
    except ImportError:  # no Airflow task SDK here: not a triggerer
        return False
