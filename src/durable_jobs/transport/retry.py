"""The one retry policy every client uses: what is repeated, how long it waits, when it gives up.

A client request that failed may be repeated only on a :class:`~durable_jobs.errors.TransientError` (the
endpoint may answer later), never on a :class:`~durable_jobs.errors.PermanentError`, and never on the
transient errors a policy names in ``never`` (a redirect refused, an answer that cannot be read: repeating
them gets the same answer). Waits are full-jitter exponential (:class:`~durable_jobs.transport.backoff.Backoff`)
with a server's ``Retry-After`` as a floor. A policy stops after ``attempts`` calls, or before a wait that
would pass ``budget`` seconds, whichever comes first; the last error is raised as it was.

Built on tenacity, so that the rules live in one place. The status poller does not retry through it: a
failing batched poll is itself the cheapest probe, polled again after one interval (:mod:`durable_jobs.polling`).

Every wait goes through :func:`sleep`, the one seam tests replace to make waits instant (:func:`instant_waits`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    stop_never,
)
from tenacity.stop import stop_base

from durable_jobs.errors import TransientError
from durable_jobs.transport.backoff import Backoff

T = TypeVar("T")
log = logging.getLogger(__name__)


#: every wait of every retry; tests replace it (:func:`instant_waits`, or ``monkeypatch.setattr(retry, "sleep", ...)``)
sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


async def _pause(seconds: float) -> None:
    await sleep(seconds)  # looked up at each wait: a test's replacement applies to policies made earlier


async def _no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


@contextlib.contextmanager
def instant_waits() -> Iterator[None]:
    """Within this block every retry's wait is a bare turn of the loop (tests, fuzzers)."""
    global sleep
    saved, sleep = sleep, _no_wait
    try:
        yield
    finally:
        sleep = saved


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Which failures of a call are repeated, the waits between attempts, and when to stop."""

    attempts: int | None = 3  # calls in all; None: until the budget is spent
    budget: float | None = None  # seconds from the first call; a wait that would pass it is not taken
    backoff: Backoff = field(default_factory=Backoff)
    never: tuple[type[TransientError], ...] = ()  # transient errors that repeating cannot fix
    only: tuple[type[TransientError], ...] = (TransientError,)  # the errors repeated (narrower for a wait)

    def __post_init__(self) -> None:
        if self.attempts is not None and self.attempts < 1:
            raise ValueError("a retry policy makes at least one attempt")
        if self.budget is not None and self.budget < 0:
            raise ValueError("a retry budget cannot be negative")

    def replace(self, *, attempts: int | None = None, budget: float | None = None) -> RetryPolicy:
        """The same policy with other limits."""
        return dataclasses.replace(
            self,
            attempts=self.attempts if attempts is None else attempts,
            budget=self.budget if budget is None else budget,
        )

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait after failed attempt ``attempt`` (0 for the first), ``Retry-After`` a floor."""
        return self.backoff.delay(attempt, retry_after)

    def retries(self, exc: BaseException) -> bool:
        """Whether ``exc`` is worth another attempt."""
        return isinstance(exc, self.only) and not isinstance(exc, self.never)

    async def call(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        what: str,
        before_retry: Callable[[], Awaitable[T | None]] | None = None,
        level: int = logging.INFO,
    ) -> T:
        """``await fn()``, repeated as the policy says; the last error is raised as it was.

        ``before_retry`` runs before each new attempt; a non-None answer is returned instead of calling
        ``fn`` again (a create checks whether the failed attempt was applied after all).
        """
        if self.attempts == 1:
            return await fn()  # nothing to repeat: no retry machinery (a poll's one-shot GETs)
        tried = False

        async def attempt() -> T:
            nonlocal tried
            if tried and before_retry is not None:
                done = await before_retry()
                if done is not None:
                    return done
            tried = True
            return await fn()

        def logged(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            wait = state.next_action.sleep if state.next_action is not None else 0.0
            log.log(level, "%s failed transiently (%s); retry %d in %.1fs", what, exc, state.attempt_number, wait)

        retrying = AsyncRetrying(
            sleep=_pause,
            stop=self._stop(),
            wait=self._wait,
            retry=retry_if_exception(self.retries),
            before_sleep=logged,
            reraise=True,
        )
        return await retrying(attempt)

    def _stop(self) -> stop_base:
        stop: stop_base = stop_never
        if self.attempts is not None:
            stop = stop_after_attempt(self.attempts)
        if self.budget is not None:
            stop = stop | stop_before_delay(self.budget)
        return stop

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        retry_after = exc.retry_after if isinstance(exc, TransientError) else None
        return self.delay(state.attempt_number - 1, retry_after)


#: the default: three calls, half a second to thirty seconds apart
DEFAULT = RetryPolicy()

__all__ = ["DEFAULT", "RetryPolicy", "instant_waits", "sleep"]
