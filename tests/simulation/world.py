"""The simulated world the real protocol runs in: a virtual clock, a system, a task state store and processes
that can die or stall at any point.

Why: the crash matrix kills one process at one named point per scenario; real outages combine. Here
hypothesis interleaves tries, crashes, zombies, lost answers, triggerer restarts, clears and marks freely
(``test_simulation.py``), with the real :class:`~durable_jobs.protocol.JobProtocol`, the real
:class:`~durable_jobs.watch.Watch` of the poller and the real reaper plan. Nothing sleeps or opens a socket.

A try runs in its own thread (:class:`Fiber`) but only one thread ever runs at a time: the fiber stops at
every *point* (each state-store call, each call to the system before and after it acts, each failpoint, each
sleep) and waits for the schedule to let it go on, crash it there, or leave it stalled as a zombie.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time as _real_time
from collections.abc import Callable, Coroutine, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from durable_jobs.clients.base import JobClient, Locator
from durable_jobs.errors import MalformedAnswer, RecordError, TransientError
from durable_jobs.status import JobState, JobStatus

T = TypeVar("T")
START = 1_800_000_000.0  # the virtual epoch (2027)
_JOB_ID = re.compile(r"job-[0-9]{1,6}")


class Crash(BaseException):
    """The process running a try died here (BaseException: no ``except Exception`` of ours swallows it)."""


class StoreError(Exception):
    """The task state store refused or failed a call (the execution API answered an error)."""


class Clock:
    """Virtual time, standing in for ``time`` in the protocol and the record."""

    def __init__(self) -> None:
        self.now = START

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    strftime = staticmethod(_real_time.strftime)
    gmtime = staticmethod(_real_time.gmtime)


_current = threading.local()


def point(name: str) -> None:
    """Where a running try may be stopped, crashed or left behind; nothing outside a fiber stops."""
    fiber: Fiber | None = getattr(_current, "fiber", None)
    if fiber is not None:
        fiber.pause(name)


class Fiber:
    """One process of a try, run step by step from the schedule (see the module's docstring)."""

    def __init__(self, name: str, body: Callable[[], Any]) -> None:
        self.name = name
        self.at = "start"  # the point it waits at
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.points: list[str] = []
        self._body = body
        self._crash = False
        self._go = threading.Semaphore(0)
        self._back = threading.Semaphore(0)
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        _current.fiber = self
        self._go.acquire()
        try:
            if self._crash:
                raise Crash("start")
            self.result = self._body()
        except BaseException as exc:  # the try's end, whatever it was: the schedule reads it
            self.error = exc
        finally:
            self.done = True
            self.at = "end"
            self._back.release()

    def pause(self, name: str) -> None:
        self.at = name
        self.points.append(name)
        self._back.release()
        self._go.acquire()
        if self._crash:
            raise Crash(name)

    def step(self) -> None:
        """Let the try run to its next point (or its end)."""
        if not self.done:
            self._go.release()
            self._back.acquire()

    def crash(self) -> None:
        """The process dies where it stands."""
        if not self.done:
            self._crash = True
            self.step()
        self._thread.join(5)

    def finish(self, limit: int = 1000) -> None:
        for _ in range(limit):
            if self.done:
                return
            self.step()
        self.crash()


def run_sync(aw: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine of the simulated system: it never waits, so one send ends it."""
    try:
        aw.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    aw.close()
    raise RuntimeError("the simulated system never waits")


@dataclass
class Job:
    """A job as the system itself knows it."""

    id: str
    token: str
    spec: Mapping[str, Any]
    submitted_at: float
    ends_at: float
    planned: JobState  # how it ends when nobody cancels it: SUCCEEDED or FAILED
    state: JobState = JobState.RUNNING
    forgotten: bool = False  # the system lost it (a restart without recovery): it no longer runs

    @property
    def live(self) -> bool:
        return self.state is JobState.RUNNING and not self.forgotten


@dataclass
class SimSystem(JobClient[dict[str, Any]]):
    """The job system: its own clock, jobs that end when their time comes, and faults the schedule sets.

    ``find_unrecorded``: a token can be looked up without a record (Kubernetes, YARN, EMR job runs).
    ``idempotent``: a second submit of a token returns the first job (a name or client token taken from
    the token: Kubernetes, EMR, Databricks); otherwise it starts a second job (Spark standalone).
    """

    system: ClassVar[str] = "sim"
    clock: Clock = field(default_factory=Clock)
    idempotent: bool = True
    lookup: bool = True
    jobs: dict[str, Job] = field(default_factory=dict)
    down: bool = False  # every call fails before it reaches the system
    lose_answer: bool = False  # the next submit or cancel acts, then its answer is lost
    answers: list[str] = field(default_factory=list)  # the next status answers: "unknown" or "malformed"
    on_submit: Callable[[Job], None] | None = None  # the invariants' hook, called as a job is created
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    @property
    def find_unrecorded(self) -> bool:  # type: ignore[override]
        return self.lookup

    @property
    def key(self) -> Hashable:
        return ("sim", id(self))

    def validate_locator(self, locator: Mapping[str, Any]) -> Locator:
        jid = locator.get("id") if isinstance(locator, Mapping) else None
        if not isinstance(jid, str) or not _JOB_ID.fullmatch(jid):
            raise RecordError(f"invalid simulated job id {jid!r}")
        return {"id": jid}

    def describe(self, locator: Locator) -> str:
        return f"job {locator.get('id')}"

    def advance(self, seconds: float) -> None:
        """The system's time goes on: jobs whose time came end as planned."""
        self.clock.now += seconds
        for job in self.jobs.values():
            if job.live and job.ends_at <= self.clock.now:
                job.state = job.planned

    def _enter(self, method: str) -> None:
        point(f"{method}:call")
        if self.down:
            raise TransientError(f"{method}: connection refused")

    def _answer(self, method: str) -> None:
        """After the system acted: the process may die before it hears the answer, or the answer is lost."""
        point(f"{method}:acted")
        if self.lose_answer and method in ("submit", "cancel"):
            self.lose_answer = False
            raise TransientError(f"{method}: connection reset after the request was sent")

    async def submit(self, spec: dict[str, Any], token: str, *, reserved: Locator | None = None) -> Locator:
        self._enter("submit")
        same = [j for j in self.jobs.values() if j.token == token and not j.forgotten]
        if self.idempotent and same:
            job = same[0]
        else:
            jid = f"job-{next(self._ids)}"
            job = Job(
                jid,
                token,
                dict(spec),
                self.clock.now,
                self.clock.now + float(spec["seconds"]),
                JobState(spec["ends"]),
            )
            if self.on_submit is not None:
                self.on_submit(job)
            self.jobs[jid] = job
        self._answer("submit")
        return {"id": job.id}

    async def status(self, locator: Locator) -> JobStatus:
        self._enter("status")
        answer = self.answers.pop(0) if self.answers else ""
        if answer == "malformed":
            raise MalformedAnswer("status: the answer does not match the schema: expected object, got array")
        if answer == "unknown":
            return JobStatus.unknown("the endpoint answered 503")
        job = self.jobs.get(locator["id"])
        if job is None or job.forgotten:
            return JobStatus(JobState.LOST, "NOT_FOUND", f"{locator['id']} is not known")
        return JobStatus(job.state, job.state.value.upper(), "exit 1" if job.state is JobState.FAILED else "")

    async def cancel(self, locator: Locator) -> None:
        self._enter("cancel")
        job = self.jobs.get(locator["id"])
        if job is not None and job.live:
            job.state = JobState.CANCELLED
        self._answer("cancel")

    async def find(
        self, token: str, *, since: float, spec: dict[str, Any], reserved: Locator | None = None
    ) -> Locator | None:
        self._enter("find")
        found = [j for j in self.jobs.values() if j.token == token and not j.forgotten and j.submitted_at >= since]
        return {"id": found[-1].id} if found else None

    def locator_matches_token(self, locator: Locator, token: str) -> bool:
        job = self.jobs.get(locator["id"])
        return job is None or job.token == token

    def of_token(self, token: str) -> list[Job]:
        return [j for j in self.jobs.values() if j.token == token]


@dataclass
class Store:
    """The task state store of one task instance: rows survive tries; a try's calls may fail or be fenced.

    ``fail_next``: the next call fails before it acts; ``slow_next``: the next write lands but its caller
    hears an error (a timeout). Airflow fences a try out of the store once a newer try of the task exists
    (the execution API looks the try's ``ti_id`` up, and a new try has a new one): :meth:`accessor` gives
    each try its own view, refused once it is stale.
    """

    row: dict[str, Any] = field(default_factory=dict)
    fail_next: bool = False
    slow_next: bool = False
    current_try: int = 0

    def accessor(self, try_number: int) -> TryStore:
        return TryStore(self, try_number)


@dataclass
class TryStore:
    store: Store
    try_number: int

    def _enter(self, what: str) -> None:
        point(f"store.{what}:call")
        if self.try_number != self.store.current_try:
            raise StoreError(f"404: task instance of try {self.try_number} not found (a newer try exists)")
        if self.store.fail_next:
            self.store.fail_next = False
            raise StoreError(f"store.{what}: 500 from the execution API")

    def get(self, key: str, default: Any = None) -> Any:
        self._enter("get")
        return self.store.row.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self._enter("set")
        self.store.row[key] = json.loads(json.dumps(value))  # the real store keeps JSON
        point("store.set:acted")
        if self.store.slow_next:
            self.store.slow_next = False
            raise StoreError("store.set: timed out waiting for the execution API")
