"""Jittered exponential backoff that honours ``Retry-After``, and a small retry helper."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from durable_jobs.errors import TransientError

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Full-jitter exponential backoff: ``uniform(base, min(cap, base * 2**attempt))``.

    A server's ``Retry-After`` is a floor, never shortened by jitter (but capped at ``max_retry_after``).
    """

    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 300.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        high = min(self.cap, self.base * (2 ** min(attempt, 30)))
        delay = random.uniform(min(self.base, high), high)
        if retry_after is not None and retry_after > 0:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay


async def retrying(
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int = 3,
    backoff: Backoff = Backoff(),
    what: str = "request",
) -> T:
    """Run ``call`` and retry it on :class:`TransientError`, ``attempts`` times in all."""
    for attempt in range(attempts):
        try:
            return await call()
        except TransientError as exc:
            if attempt + 1 >= attempts:
                raise
            delay = backoff.delay(attempt, exc.retry_after)
            log.info("%s failed transiently (%s); retry %d/%d in %.1fs", what, exc, attempt + 1, attempts, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")
