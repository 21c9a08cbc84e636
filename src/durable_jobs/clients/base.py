"""The contract every system client fulfils, so one protocol and one poller serve them all."""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from durable_jobs.errors import TransientError
from durable_jobs.status import JobStatus

Locator = dict[str, Any]
SpecT = TypeVar("SpecT")


# json.dumps with these options builds an encoder per call; the poller keys every watched job every poll
_KEY_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def locator_key(locator: Mapping[str, Any]) -> str:
    """A stable string for a locator, usable as a dict key."""
    return _KEY_ENCODER.encode(locator)


class JobClient(ABC, Generic[SpecT]):
    """Submit, observe, cancel and find jobs of one system.

    Every method may raise :class:`~durable_jobs.errors.TransientError` (try again later) or
    :class:`~durable_jobs.errors.PermanentError`. ``status`` never raises for a job the system does
    not know: it returns a ``LOST`` status, and the caller confirms it before acting on it.
    """

    system: ClassVar[str]
    #: how many requests ``statuses`` may run at once when the system has no batch call
    status_concurrency: ClassVar[int] = 16

    @property
    @abstractmethod
    def key(self) -> Hashable:
        """Identity of the endpoint and credentials: jobs with equal keys share one poller."""

    @abstractmethod
    def validate_locator(self, locator: Mapping[str, Any]) -> Locator:
        """Return a clean copy of ``locator`` or raise :class:`~durable_jobs.errors.RecordError`."""

    async def reserve(self, spec: SpecT, token: str) -> Locator | None:
        """Obtain the job's id before submitting it, where the system allows (YARN ``new-application``).

        The protocol records a reserved locator in the intent *before* calling :meth:`submit`, so a crash
        leaves nothing to guess. Default: no reservation.
        """
        return None

    @abstractmethod
    async def submit(self, spec: SpecT, token: str, *, reserved: Locator | None = None) -> Locator:
        """Create the job, carrying ``token`` so that :meth:`find` can recognise it.

        ``reserved`` is what :meth:`reserve` returned for this token (possibly in a crashed try).
        """

    @abstractmethod
    async def status(self, locator: Locator) -> JobStatus:
        """The job's current status."""

    @abstractmethod
    async def cancel(self, locator: Locator) -> None:
        """Ask the system to stop the job. Idempotent: cancelling a finished job is not an error."""

    @abstractmethod
    async def find(self, token: str, *, since: float, spec: SpecT, reserved: Locator | None = None) -> Locator | None:
        """The job a crashed try submitted with ``token`` after ``since`` (epoch seconds), if any.

        ``reserved`` is the locator recorded in the intent, when the client reserved one.

        Raise :class:`~durable_jobs.errors.UndecidableError` when the answer cannot be known yet;
        never return None unless the job surely does not exist.
        """

    async def statuses(self, locators: Sequence[Locator]) -> dict[str, JobStatus]:
        """Statuses of many jobs, keyed by :func:`locator_key`.

        The default runs :meth:`status` with bounded concurrency; systems with a list call override it
        so that one request serves every job on an endpoint. A per-job transient failure gives that
        job an ``UNKNOWN`` status; a failure that affects all of them raises.
        """
        found: dict[int, JobStatus] = {}
        todo = iter(range(len(locators)))

        async def worker() -> None:
            # a few workers taking jobs in turn, not a task per job behind a semaphore: a burst of thousands
            # of ended jobs costs status_concurrency tasks, not thousands
            for i in todo:
                try:
                    found[i] = await self.status(locators[i])
                except TransientError as exc:
                    found[i] = JobStatus.unknown(str(exc))

        await asyncio.gather(*(worker() for _ in range(min(self.status_concurrency, len(locators)))))
        results = [found[i] for i in range(len(locators))]
        if results and all(r.state.value == "unknown" for r in results) and len(results) > 1:
            # the endpoint is down for everyone: let the poller back off once for all
            raise TransientError(results[0].message)
        return {locator_key(loc): st for loc, st in zip(locators, results, strict=True)}

    async def links(self, locator: Locator) -> dict[str, str]:
        """URLs a person can open for this job (pushed to XCom before deferring)."""
        return {}

    def describe(self, locator: Locator) -> str:
        return ", ".join(f"{k}={v}" for k, v in locator.items())
