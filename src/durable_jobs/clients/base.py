"""The contract every system client fulfils, so one protocol and one poller serve them all."""

from __future__ import annotations

import asyncio
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from durable_jobs.errors import AuthError, MalformedAnswer, PermanentError, RecordError, TransientError
from durable_jobs.status import JobStatus

log = logging.getLogger(__name__)
Locator = dict[str, Any]
SpecT = TypeVar("SpecT")


# json.dumps with these options builds an encoder per call; the poller keys every watched job every poll
_KEY_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


class KeyedLocator(dict[str, Any]):
    """A locator that carries its :func:`locator_key`, made once.

    The poller and every ``statuses()`` key each watched job on every poll; encoding 100,000 locators
    each time costs more than the rest of a poll. A trigger's locator is made keyed once, when it starts.
    """

    __slots__ = ("key",)

    def __init__(self, locator: Mapping[str, Any]) -> None:
        super().__init__(locator)
        self.key = _KEY_ENCODER.encode(dict(self))


def locator_key(locator: Mapping[str, Any]) -> str:
    """A stable string for a locator, usable as a dict key."""
    if type(locator) is KeyedLocator:
        return locator.key
    return _KEY_ENCODER.encode(locator)


class JobClient(ABC, Generic[SpecT]):
    """Submit, observe, cancel and find jobs of one system.

    Every method may raise :class:`~durable_jobs.errors.TransientError` (try again later) or
    :class:`~durable_jobs.errors.PermanentError`. ``status`` never raises for a job the system does
    not know: it returns a ``LOST`` status, and the caller confirms it before acting on it.

    Rules every client keeps (``docs/bad-answers.md``): every answer is decoded against a declared schema
    (:mod:`durable_jobs.decoding`), and a malformed one raises
    :class:`~durable_jobs.errors.MalformedAnswer` (unknown), never LOST or FAILED; ``LOST`` is returned
    only on the system's documented not-found answer, agreed by a second source where the system has
    one, and after looking for the job among the finished jobs the system still remembers.

    The contract the protocol and the poller rely on (``docs/extending.md``):

    * :attr:`system` is permanent (see its comment).
    * A locator is a flat JSON object: at most 16 string keys of at most 64 characters, each value a
      string of at most 2,048 characters, an integer or None. It is stored in the record, in the
      trigger's kwargs and in XCom; a record holding anything else is refused when it is read back
      (:mod:`durable_jobs.record`).
    * :meth:`validate_locator` is idempotent: ``validate_locator(validate_locator(x)) ==
      validate_locator(x)``. The protocol validates the recorded locator again every time it loads the
      record, the trigger validates the one in its kwargs, and ``complete()`` compares the event's
      validated locator with the recorded one (a difference makes it re-check the job).
    * :meth:`statuses` returns what it knows, keyed by :func:`locator_key` of each locator it was given. A
      job left out counts as unknown for that poll; a value that is not a dict, or any exception, makes
      every job of the poll unknown (an :class:`~durable_jobs.errors.AuthError` ends the waits with
      ``error``, after one more poll with fresh credentials where :attr:`refetch` can fetch them). The
      poller treats an answer with nothing known (empty, or every job unknown) as a failed poll: it logs
      the endpoint's problem once and polls again after one interval, so a client never raises just to
      say that nothing answered.
    """

    #: the system's name, written into every stored record (field ``system``) and checked when the record
    #: is read back. Permanent: changing it orphans every stored job (its task refuses the record instead
    #: of re-attaching). It also keys the shared pollers and names them in the logs.
    system: ClassVar[str]
    #: how many requests ``statuses`` may run at once when the system has no batch call, and how many jobs
    #: a poll may ask one by one when the batch call fails
    status_concurrency: ClassVar[int] = 16
    #: set by the hook that built this client: build it again from the connection as it is now (the poller
    #: calls it once after an AuthError, so rotated credentials reach running waits)
    refetch: Callable[[], Awaitable[JobClient[Any]]] | None = None
    #: set by the hook that built this client: the Airflow connection it came from (the endpoint health a
    #: triggerer reports is per system and connection, :mod:`durable_jobs.health`); None: not from a hook
    conn_id: str | None = None
    #: whether :meth:`find` is cheap and needs no intent time: a lookup by a name or tag the token gives, or a
    #: listing bounded by ``since``. A try that finds no record while an earlier try of its run could have
    #: submitted (the record was cleared or deleted) then looks for each generation's token before submitting
    #: (:meth:`durable_jobs.protocol.JobProtocol.start`). False: such a try submits generation 0 without
    #: looking, because the lookup would be costly or could never decide (``docs/extending.md``)
    find_unrecorded: ClassVar[bool] = False
    #: whether :meth:`cancel` removes the job (a Kubernetes Job is deleted), so that LOST after our own cancel is
    #: that cancel's doing. False: a cancelled job stays known as cancelled, and LOST after a cancel means the
    #: system forgot it (it may have succeeded first)
    cancel_deletes: ClassVar[bool] = False

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
        so that one request serves every job on an endpoint. Return what you know: a job may be left out of
        the answer (it counts as unknown this round), and an error about one job makes that job ``UNKNOWN``
        and touches no other. The poller treats an answer with nothing known as a failed poll (the endpoint
        down for everyone, logged once).
        """
        results, _ = await self._one_by_one(locators)
        return {locator_key(loc): st for loc, st in zip(locators, results, strict=True)}

    async def fallback_statuses(self, locators: Sequence[Locator]) -> dict[str, JobStatus]:
        """Per-job statuses when the batch source failed: at most :attr:`status_concurrency` jobs per call.

        A failing list call must not turn into one request per job (2N+1 requests to a sick endpoint):
        each call polls the next window of jobs in turn, and the others count as unknown this round. The
        window's first job is asked alone first: if the endpoint cannot be reached at all, that is the only
        request, and only that job's unknown status is returned (the endpoint is down for everyone).
        """
        n = len(locators)
        if n <= self.status_concurrency:
            window = list(locators)
        else:
            start = getattr(self, "_fallback_cursor", 0) % n
            window = [locators[(start + i) % n] for i in range(self.status_concurrency)]
            self._fallback_cursor = start + self.status_concurrency
        # the first job alone: when the endpoint itself is down (refused, 5xx, timeout) that one request says
        # so, and the poll costs two requests (the listing and this one), not one per job of the window
        first, unreachable = await self._one_by_one(window[:1])
        if unreachable:
            return {locator_key(window[0]): first[0]}
        rest, _ = await self._one_by_one(window[1:])
        return {locator_key(loc): st for loc, st in zip(window, first + rest, strict=True)}

    async def _one_by_one(self, locators: Sequence[Locator]) -> tuple[list[JobStatus], int]:
        """Each job's status, and how many requests found the endpoint unreachable (not a per-job answer)."""
        found: dict[int, JobStatus] = {}
        todo = iter(range(len(locators)))
        unreachable = 0

        async def worker() -> None:
            # a few workers taking jobs in turn, not a task per job behind a semaphore: a burst of thousands
            # of ended jobs costs status_concurrency tasks, not thousands
            nonlocal unreachable
            for i in todo:
                try:
                    found[i] = await self.status(locators[i])
                except (TransientError, PermanentError, RecordError) as exc:
                    if isinstance(exc, AuthError) and exc.endpoint_wide:
                        raise  # about the endpoint and our credentials, not this job
                    if isinstance(exc, TransientError) and not isinstance(exc, MalformedAnswer):
                        unreachable += 1
                    found[i] = JobStatus.unknown_from(exc)
                except Exception as exc:  # a bug or an unforeseen answer: unknown for this job only
                    log.warning("status of %s failed unexpectedly", self.describe(locators[i]), exc_info=True)
                    found[i] = JobStatus.unknown_from(exc)

        await asyncio.gather(*(worker() for _ in range(min(self.status_concurrency, len(locators)))))
        return [found[i] for i in range(len(locators))], unreachable

    def locator_matches_token(self, locator: Locator, token: str) -> bool:
        """Whether the locator itself shows it belongs to ``token`` (a name or tag derived from it).

        Checked before a recorded job is watched or cancelled. Systems whose ids carry no trace of the
        token (Spark driver ids, EMR step ids) return True.
        """
        return True

    async def links(self, locator: Locator) -> dict[str, str]:
        """URLs a person can open for this job (pushed to XCom before deferring)."""
        return {}

    def describe(self, locator: Locator) -> str:
        return ", ".join(f"{k}={v}" for k, v in locator.items())
