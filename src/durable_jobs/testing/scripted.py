"""A scripted in-memory system: a :class:`~durable_jobs.clients.base.JobClient` whose jobs follow scripts.

For testing what is built on the protocol (an operator, a trigger subclass, a DAG) without a real system::

    client = ScriptedClient(scripts=[[JobState.RUNNING, JobState.SUCCEEDED]])

Each submission takes the next script (a list of states, one per status call, the last one repeated;
default: running forever). Failure injection: ``down`` (method names that raise
:class:`~durable_jobs.errors.TransientError`), ``undecidable`` (``find`` cannot decide), ``reserving``
(ids are reserved before submit, like YARN), ``forget`` (job ids the system no longer knows: LOST).
Every call is recorded in ``calls``; :meth:`ScriptedClient.submissions` counts the jobs of a token.
It keeps the contract of :class:`~durable_jobs.clients.base.JobClient` (an idempotent
``validate_locator``, flat JSON locators), so it is also a small reference implementation.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from durable_jobs.clients.base import JobClient, Locator
from durable_jobs.errors import RecordError, TransientError, UndecidableError
from durable_jobs.status import JobState, JobStatus

_JOB_ID = re.compile(r"job-[A-Za-z0-9_-]{1,64}")


@dataclass
class FakeJob:
    """One submitted job of a :class:`ScriptedClient`."""

    job_id: str
    token: str
    spec: Any
    script: list[JobState]
    polls: int = 0
    cancelled: bool = False

    def peek(self) -> JobState:
        """The state the next status call returns, without moving along the script."""
        return JobState.CANCELLED if self.cancelled else self.script[min(self.polls, len(self.script) - 1)]

    def state(self) -> JobState:
        st = self.peek()
        self.polls += 1
        return st


@dataclass
class ScriptedClient(JobClient[dict[str, Any]]):
    """Jobs in memory, following scripts; see the module's docstring."""

    system: ClassVar[str] = "scripted"
    find_unrecorded: ClassVar[bool] = True  # find reads the jobs in memory
    scripts: list[list[JobState]] = field(default_factory=list)  # one per submission, in order
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    down: set[str] = field(default_factory=set)  # methods failing transiently
    undecidable: bool = False
    reserving: bool = False  # reserve ids before submit, like YARN's new-application
    forget: set[str] = field(default_factory=set)  # job ids the system no longer knows
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    @property
    def key(self) -> Hashable:
        return ("scripted", id(self))

    def validate_locator(self, locator: Mapping[str, Any]) -> Locator:
        jid = locator.get("id") if isinstance(locator, Mapping) else None
        if not isinstance(jid, str) or not _JOB_ID.fullmatch(jid):
            raise RecordError(f"invalid scripted job id {jid!r}")
        return {"id": jid}

    def _check(self, method: str) -> None:
        self.calls.append(method)
        if method in self.down:
            raise TransientError(f"{method}: endpoint down")

    async def reserve(self, spec: dict[str, Any], token: str) -> Locator | None:
        if not self.reserving:
            return None
        self._check("reserve")
        return {"id": f"job-{next(self._ids)}"}

    async def submit(self, spec: dict[str, Any], token: str, *, reserved: Locator | None = None) -> Locator:
        self._check("submit")
        jid = reserved["id"] if reserved else f"job-{next(self._ids)}"
        script = self.scripts.pop(0) if self.scripts else [JobState.RUNNING]
        self.jobs[jid] = FakeJob(jid, token, spec, script)
        return {"id": jid}

    async def status(self, locator: Locator) -> JobStatus:
        self._check("status")
        jid = locator["id"]
        if jid in self.forget or jid not in self.jobs:
            return JobStatus(JobState.LOST, "gone", f"{jid} unknown")
        st = self.jobs[jid].state()
        return JobStatus(st, st.value.upper(), "boom" if st is JobState.FAILED else "")

    async def cancel(self, locator: Locator) -> None:
        self._check("cancel")
        job = self.jobs.get(locator["id"])
        if job is not None and not job.peek().is_terminal:  # an ended job stays as it ended
            job.cancelled = True

    async def find(
        self, token: str, *, since: float, spec: dict[str, Any], reserved: Locator | None = None
    ) -> Locator | None:
        self._check("find")
        if reserved is not None:  # the id was recorded before submit: a GET settles it
            return reserved if reserved["id"] in self.jobs else None
        if self.undecidable:
            raise UndecidableError("a candidate waits for a worker")
        for job in self.jobs.values():
            if job.token == token:
                return {"id": job.job_id}
        return None

    def submissions(self, token: str | None = None) -> int:
        return sum(1 for j in self.jobs.values() if token is None or j.token == token)


__all__ = ["FakeJob", "ScriptedClient"]
