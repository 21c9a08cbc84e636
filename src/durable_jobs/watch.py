"""What one waiter holds while it waits: its settings, its view of one job, and how the wait ended.

The poller (:mod:`durable_jobs.polling`) keeps one :class:`Watch` per waiting trigger and offers it every
polled status; the rules of what a status does to a waiter live here: an unknown round wakes nobody, a
LOST wakes only when confirmed ``lost_confirmations`` times in a row, ``unknown_budget`` seconds of
unknown end the wait with ``unknown``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from durable_jobs.clients.base import Locator, locator_key
from durable_jobs.status import JobState, JobStatus


@dataclass(frozen=True, slots=True)
class PollSettings:
    interval: float = 30.0
    unknown_budget: float = 1800.0
    lost_confirmations: int = 3

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError("poll interval must be positive")
        if self.lost_confirmations < 1:
            raise ValueError("lost_confirmations must be at least 1")


@dataclass(slots=True)
class WaitResult:
    """How a wait ended: a terminal state, ``timeout`` (deadline), ``unknown`` (budget) or ``error``."""

    status: str
    last: JobStatus | None
    message: str = ""


class Watch:
    """One waiter's view of one job. Latest-value semantics: intermediate states may be skipped.

    ``latest`` only ever holds what the system said about the job; an unknown round (the endpoint down, a
    malformed answer, a LOST not confirmed yet) wakes nobody and is kept apart in ``unknown``.
    """

    __slots__ = (
        "_changed",
        "_waiter",
        "budget_spent",
        "changed_at",
        "deadline",
        "error",
        "expired",
        "key",
        "latest",
        "locator",
        "lost_seen",
        "settings",
        "unknown",
        "unknown_since",
    )

    def __init__(self, locator: Locator, settings: PollSettings, deadline: float | None = None) -> None:
        self.locator = locator
        self.deadline = deadline  # epoch seconds
        self.expired = False
        self.key = locator_key(locator)  # made once when the locator is a KeyedLocator (triggers pass one)
        self.settings = settings
        self.latest: JobStatus | None = None
        self.unknown: JobStatus | None = None
        self.lost_seen = 0
        self.unknown_since: float | None = None
        self.budget_spent = False
        self.error: str | None = None
        self.changed_at: float | None = None  # monotonic time of the answer that last changed ``latest``
        self._changed = False
        self._waiter: asyncio.Future[None] | None = None

    def _wake(self) -> None:
        self._changed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def offer(self, status: JobStatus, now: float) -> bool:
        """Take a polled status; True when it woke the waiter."""
        state = status.state
        if state is JobState.LOST:
            self.lost_seen += 1
            if self.lost_seen < self.settings.lost_confirmations:
                state = JobState.UNKNOWN
                status = JobStatus.unknown(
                    f"not confirmed yet ({self.lost_seen}/{self.settings.lost_confirmations}): {status.message}"
                )
        elif state is not JobState.UNKNOWN:
            self.lost_seen = 0  # an unknown round between two denials neither confirms nor clears them
        if state is JobState.UNKNOWN:
            self.unknown = status
            if self.unknown_since is None:
                self.unknown_since = now
            elif not self.budget_spent and now - self.unknown_since >= self.settings.unknown_budget:
                self.budget_spent = True
                self._wake()
                return True
            return False
        self.unknown_since = None
        self.unknown = None
        if not status.same_as(self.latest):
            self.latest = status
            self.changed_at = now
            self._wake()
            return True
        return False

    def expire(self) -> None:
        self.expired = True
        self._wake()

    def fail(self, message: str) -> None:
        self.error = message
        self._wake()

    def arm(self) -> asyncio.Future[None] | None:
        """A future done at the next change, or None when a change is already waiting to be taken."""
        if self._changed:
            return None
        self._waiter = asyncio.get_running_loop().create_future()
        return self._waiter

    def take(self) -> JobStatus | None:
        """The latest status; the change that woke us is consumed."""
        self._waiter = None
        self._changed = False
        return self.latest

    async def next(self) -> JobStatus | None:
        waiter = self.arm()
        if waiter is not None:
            try:
                await waiter
            finally:
                self._waiter = None
        return self.take()
