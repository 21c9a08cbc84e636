"""The one retry policy: transient errors only, jittered waits with Retry-After a floor, attempts and budget."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import pytest

from durable_jobs.errors import AuthError, MalformedAnswer, PermanentError, TransientError
from durable_jobs.transport import retry
from durable_jobs.transport.backoff import Backoff
from durable_jobs.transport.retry import RetryPolicy

FAST = Backoff(base=0.01, cap=0.02)


def failing(*errors: BaseException, then: str = "ok") -> tuple[list[int], Callable[[], Awaitable[str]]]:
    calls: list[int] = []
    pending = list(errors)

    async def fn() -> str:
        calls.append(1)
        if pending:
            raise pending.pop(0)
        return then

    return calls, fn


async def test_transient_errors_are_retried_then_the_last_is_raised_as_it_was():
    last = TransientError("third", retry_after=0.01)
    calls, fn = failing(TransientError("one"), TransientError("two"), last)
    with pytest.raises(TransientError) as raised:
        await RetryPolicy(attempts=3, backoff=FAST).call(fn, what="x")
    assert raised.value is last and len(calls) == 3


async def test_a_call_that_recovers_returns_its_answer():
    calls, fn = failing(TransientError("one"))
    assert await RetryPolicy(backoff=FAST).call(fn, what="x") == "ok"
    assert len(calls) == 2


@pytest.mark.parametrize("error", [PermanentError("HTTP 400"), AuthError("401"), ValueError("a bug")])
async def test_permanent_errors_and_bugs_are_never_retried(error):
    calls, fn = failing(error)
    with pytest.raises(type(error)):
        await RetryPolicy(backoff=FAST).call(fn, what="x")
    assert len(calls) == 1


async def test_a_policy_names_the_transient_errors_repeating_cannot_fix():
    calls, fn = failing(MalformedAnswer("truncated"))
    with pytest.raises(MalformedAnswer):
        await RetryPolicy(backoff=FAST, never=(MalformedAnswer,)).call(fn, what="x")
    assert len(calls) == 1


async def test_the_budget_stops_before_a_wait_that_would_pass_it():
    calls, fn = failing(*[TransientError("down")] * 100)
    started = time.monotonic()
    with pytest.raises(TransientError):
        await RetryPolicy(attempts=None, budget=0.3, backoff=FAST).call(fn, what="x")
    assert time.monotonic() - started < 1.0 and 5 < len(calls) < 100  # not 100 calls of up to 20 ms each
    calls, fn = failing(TransientError("down"))
    with pytest.raises(TransientError):
        await RetryPolicy(attempts=None, budget=0).call(fn, what="x")
    assert len(calls) == 1  # a zero budget: the first error at once (a poll's pages)


async def test_retry_after_is_a_floor_of_the_wait(monkeypatch):
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(retry, "sleep", record)
    _, fn = failing(TransientError("429", retry_after=7.0))
    assert await RetryPolicy(backoff=FAST).call(fn, what="x") == "ok"
    assert waits == [7.0]


async def test_before_retry_may_answer_instead_of_a_new_attempt():
    calls, fn = failing(TransientError("lost answer"), TransientError("again"))
    checks: list[int] = []

    async def applied_after_all() -> str | None:
        checks.append(1)
        return "found" if len(checks) == 2 else None

    policy = RetryPolicy(attempts=5, backoff=FAST)
    assert await policy.call(fn, what="x", before_retry=applied_after_all) == "found"
    assert len(calls) == 2 and len(checks) == 2


async def test_instant_waits_is_the_one_seam_for_tests():
    calls, fn = failing(*[TransientError("down")] * 4)
    started = time.monotonic()
    with retry.instant_waits():
        assert await RetryPolicy(attempts=5, backoff=Backoff(base=10, cap=10)).call(fn, what="x") == "ok"
    assert time.monotonic() - started < 1 and len(calls) == 5
