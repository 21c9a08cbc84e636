"""Jittered exponential backoff that honours ``Retry-After``: the waits of :mod:`durable_jobs.transport.retry`."""

from __future__ import annotations

import random
from dataclasses import dataclass


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
