"""The shared poller under faults: nothing a client does may kill it, hang its waiters or stop deadlines."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any, ClassVar

import pytest

from durable_jobs.clients.base import JobClient, Locator, locator_key
from durable_jobs.errors import AuthError, MalformedAnswer, PermanentError, RecordError, TransientError
from durable_jobs.polling import PollSettings, active_pollers, poller_for, wait_for_outcome
from durable_jobs.status import JobState, JobStatus

OK = JobStatus(JobState.SUCCEEDED, "FINISHED")
RUN = JobStatus(JobState.RUNNING, "RUNNING")
Statuses = Callable[[Sequence[Locator]], Awaitable[dict[str, JobStatus]]]


class FnClient(JobClient[Any]):
    """A client whose batch poll is a function the test swaps at will."""

    system: ClassVar[str] = "fn"

    def __init__(self, statuses: Statuses | None = None, name: str = "a") -> None:
        self.fn = statuses
        self.name = name
        self.polls = 0

    @property
    def key(self) -> Hashable:
        return ("fn", "endpoint")  # equal for every client: as if built from one connection

    def validate_locator(self, locator: Mapping[str, Any]) -> Locator:
        if not isinstance(locator.get("id"), str):
            raise RecordError("bad id")
        return {"id": locator["id"]}

    async def submit(self, spec: Any, token: str, *, reserved: Locator | None = None) -> Locator:
        raise NotImplementedError

    async def status(self, locator: Locator) -> JobStatus:
        return (await self.statuses([locator]))[locator_key(locator)]

    async def statuses(self, locators: Sequence[Locator]) -> dict[str, JobStatus]:
        self.polls += 1
        assert self.fn is not None
        return await self.fn(locators)

    async def cancel(self, locator: Locator) -> None:
        return None

    async def find(self, token: str, *, since: float, spec: Any, reserved: Locator | None = None) -> Locator | None:
        return None


def every(status: JobStatus) -> Statuses:
    async def fn(locators: Sequence[Locator]) -> dict[str, JobStatus]:
        return {locator_key(loc): status for loc in locators}

    return fn


def raising(*errors: BaseException, then: Statuses) -> Statuses:
    """Raise each error in turn, one per poll, then answer with ``then``."""
    pending = list(errors)

    async def fn(locators: Sequence[Locator]) -> dict[str, JobStatus]:
        if pending:
            raise pending.pop(0)
        return await then(locators)

    return fn


def settings(interval: float = 0.05, **kw: Any) -> PollSettings:
    return PollSettings(interval=interval, **kw)


async def wait_all(client: JobClient[Any], n: int, timeout: float = 20, **kw: Any) -> list[str]:
    s = kw.pop("poll_settings", settings())
    results = await asyncio.wait_for(
        asyncio.gather(*(wait_for_outcome(client, {"id": f"j{i}"}, s, **kw) for i in range(n))), timeout
    )
    return [r.status for r in results]


async def no_pollers_left() -> None:
    give_up = time.monotonic() + 10
    while active_pollers():
        assert time.monotonic() < give_up, "a poller kept running with no watch"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    "error",
    [
        TypeError("'NoneType' object is not iterable"),
        AttributeError("'int' object has no attribute 'get'"),
        RecursionError("maximum recursion depth exceeded"),
        KeyError("activedrivers"),
        ValueError("bad"),
        MalformedAnswer("the answer does not match its schema"),
        PermanentError("HTTP 468"),
        RecordError("invalid id"),
    ],
)
async def test_any_error_from_a_client_counts_as_unknown_and_the_poller_goes_on(error, caplog):
    loop = asyncio.get_running_loop()
    unretrieved: list[Any] = []
    loop.set_exception_handler(lambda _loop, ctx: unretrieved.append(ctx))
    client = FnClient(raising(error, error, then=every(OK)))
    assert await wait_all(client, 3) == ["succeeded"] * 3
    assert client.polls >= 3
    assert unretrieved == []  # no "Task exception was never retrieved"
    await no_pollers_left()


async def test_a_client_returning_garbage_instead_of_a_dict_is_unknown_not_a_crash():
    calls = {"n": 0}

    async def fn(locators: Sequence[Locator]) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            return ["not", "a", "dict"]
        if calls["n"] == 2:
            return {locator_key(loc): "RUNNING" for loc in locators}  # not statuses: unknown per job
        return await every(OK)(locators)

    assert await wait_all(FnClient(fn), 2) == ["succeeded", "succeeded"]


async def test_deadlines_fire_while_a_poll_hangs():
    never = asyncio.Event()

    async def hang(locators: Sequence[Locator]) -> dict[str, JobStatus]:
        await never.wait()
        raise AssertionError("unreachable")

    started = time.monotonic()
    statuses = await wait_all(FnClient(hang), 5, deadline=time.time() + 0.5)
    assert statuses == ["timeout"] * 5
    assert time.monotonic() - started < 3


async def test_deadlines_fire_while_every_poll_raises():
    async def boom(locators: Sequence[Locator]) -> dict[str, JobStatus]:
        raise TypeError("boom")

    assert await wait_all(FnClient(boom), 4, deadline=time.time() + 0.4) == ["timeout"] * 4


async def test_a_poll_hanging_past_poll_timeout_is_unknown_and_the_next_poll_runs():
    calls = {"n": 0}

    async def fn(locators: Sequence[Locator]) -> dict[str, JobStatus]:
        calls["n"] += 1
        if calls["n"] == 1:
            await asyncio.sleep(3600)
        return await every(OK)(locators)

    client = FnClient(fn)
    poller = poller_for(client, 0.05)
    poller.poll_timeout = 0.2
    assert await wait_all(client, 2, timeout=10) == ["succeeded", "succeeded"]
    assert calls["n"] >= 2


async def test_the_watchdog_starts_a_poller_again_when_its_task_ends(caplog):
    gate = asyncio.Event()

    async def fn(locators: Sequence[Locator]) -> dict[str, JobStatus]:
        return await every(OK if gate.is_set() else RUN)(locators)

    client = FnClient(fn)
    waiters = asyncio.gather(*(wait_for_outcome(client, {"id": f"j{i}"}, settings()) for i in range(3)))
    await asyncio.sleep(0.2)
    poller = poller_for(client, 0.05)
    assert poller._task is not None
    poller._task.cancel()  # the poller's task ends while jobs wait
    await asyncio.sleep(0.1)
    gate.set()
    results = await asyncio.wait_for(waiters, 10)
    assert [r.status for r in results] == ["succeeded"] * 3
    assert poller.restarts == 1
    assert "status poller ended" in caplog.text


async def test_unknown_rounds_wake_nobody_and_are_logged_once_per_endpoint(caplog):
    caplog.set_level(logging.DEBUG, logger="durable_jobs.polling")
    woke: list[JobStatus | None] = []
    fails = [TransientError("connection refused")] * 8

    client = FnClient(raising(*fails, then=every(OK)))
    poller = poller_for(client, 0.02)
    watch = poller.add({"id": "j0"}, settings(0.02))
    try:
        while True:
            fut = watch.arm()
            if fut is not None:
                await asyncio.wait_for(fut, 10)
            woke.append(watch.take())
            if woke[-1] is not None and woke[-1].state.is_terminal:
                break
    finally:
        poller.remove(watch)
    assert woke == [OK]  # eight unknown rounds, one wake: the success
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([r for r in warnings if "is unknown" in r.getMessage()]) == 1
    assert len([r for r in warnings if "answers again" in r.getMessage()]) == 1


async def test_a_sick_endpoint_gets_one_poll_per_interval_and_its_return_is_seen_within_one():
    down = {"until": time.monotonic() + 1.0}
    polled: list[float] = []

    async def fn(locators: Sequence[Locator]) -> dict[str, JobStatus]:
        polled.append(time.monotonic())
        if time.monotonic() < down["until"]:
            raise TransientError("connection refused", connect_failed=True)
        return await every(OK)(locators)

    interval = 0.2
    started = time.monotonic()
    assert await wait_all(FnClient(fn), 10, poll_settings=settings(interval)) == ["succeeded"] * 10
    ended = time.monotonic()
    assert ended - down["until"] <= interval + 0.3  # no exponential backoff past the interval
    gaps = [b - a for a, b in itertools.pairwise(polled)]
    assert all(g >= interval * 0.9 for g in gaps)  # never faster than the interval while sick
    assert len(polled) <= (ended - started) / interval + 2  # one poll per interval for ten jobs


def answering(*answers: Statuses, then: Statuses) -> Statuses:
    """Answer each poll with the next of ``answers``, then with ``then``."""
    pending = list(answers)

    async def fn(locators: Sequence[Locator]) -> dict[str, JobStatus]:
        return await (pending.pop(0) if pending else then)(locators)

    return fn


async def nothing(locators: Sequence[Locator]) -> dict[str, JobStatus]:
    return {}


@pytest.mark.parametrize(
    "answer",
    [nothing, every(JobStatus.unknown("HTTP 503 from the endpoint"))],
    ids=["empty", "every-job-unknown"],
)
async def test_an_answer_with_nothing_known_is_a_failed_poll(answer, caplog):
    """The poller owns the rule, for every client: nothing known about any job is the endpoint's failure."""
    caplog.set_level(logging.DEBUG, logger="durable_jobs.polling")
    polled: list[float] = []

    async def fn(locators: Sequence[Locator]) -> dict[str, JobStatus]:
        polled.append(time.monotonic())
        return await answer(locators)

    client = FnClient(answering(fn, fn, fn, fn, then=every(OK)))
    poller = poller_for(client, 0.05)
    watches = [poller.add({"id": f"j{i}"}, settings()) for i in range(3)]
    try:
        while len(polled) < 3:
            await asyncio.sleep(0.01)
        # sick, counted and said once; no waiter woken (nor failed, nor given up on)
        assert poller.sick_since is not None and poller.last_problem
        assert all(w.arm() is not None and w.error is None and not w.budget_spent for w in watches)
        assert all(w.unknown is not None and w.latest is None for w in watches)
        gaps = [b - a for a, b in itertools.pairwise(polled)]
        assert all(g >= 0.05 * 0.9 for g in gaps)  # one poll per interval, as after a poll that raised
        for w in watches:
            fut = w.arm()
            if fut is not None:
                await asyncio.wait_for(fut, 10)
            assert w.take() == OK
    finally:
        for w in watches:
            poller.remove(w)
    assert poller.sick_since is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([m for m in warnings if "is unknown" in m]) == 1
    assert len([m for m in warnings if "answers again" in m]) == 1


async def test_one_known_status_keeps_the_endpoint_healthy():
    async def fn(locators: Sequence[Locator]) -> dict[str, JobStatus]:
        return {locator_key(locators[0]): RUN}  # the others left out: unknown, but the endpoint answers

    client = FnClient(fn)
    poller = poller_for(client, 0.02)
    watches = [poller.add({"id": f"j{i}"}, settings(0.02)) for i in range(3)]
    try:
        while poller.polls < 3:
            await asyncio.sleep(0.01)
        assert poller.sick_since is None
    finally:
        for w in watches:
            poller.remove(w)


async def test_the_default_statuses_returns_what_it_knows_and_never_raises_for_a_down_endpoint():
    class Down(FnClient):
        async def statuses(self, locators: Sequence[Locator]) -> dict[str, JobStatus]:
            return await JobClient.statuses(self, locators)

        async def status(self, locator: Locator) -> JobStatus:
            raise TransientError("connection refused", connect_failed=True)

    client = Down()
    out = await client.statuses([{"id": f"j{i}"} for i in range(3)])
    assert len(out) == 3 and {s.state for s in out.values()} == {JobState.UNKNOWN}
    # the fallback asks its window's first job alone: one request, and only that job's answer
    assert len(await client.fallback_statuses([{"id": f"j{i}"} for i in range(3)])) == 1
    results = await wait_all(client, 3, poll_settings=settings(unknown_budget=0.3))
    assert results == ["unknown"] * 3


async def test_retry_after_from_the_server_is_honoured():
    polled: list[float] = []

    async def fn(locators: Sequence[Locator]) -> dict[str, JobStatus]:
        polled.append(time.monotonic())
        if len(polled) == 1:
            raise TransientError("HTTP 429", status=429, retry_after=0.6)
        return await every(OK)(locators)

    assert await wait_all(FnClient(fn), 2, poll_settings=settings(0.05)) == ["succeeded"] * 2
    assert polled[1] - polled[0] >= 0.55


async def test_retry_after_survives_an_answer_with_nothing_known():
    """A client that turned a throttled answer into unknown statuses (JobStatus.unknown_from) keeps its
    Retry-After: the poller waits for it as it would after a poll that raised."""
    polled: list[float] = []
    throttled = TransientError("HTTP 429 Too Many Requests", status=429, retry_after=0.6)

    async def fn(locators: Sequence[Locator]) -> dict[str, JobStatus]:
        polled.append(time.monotonic())
        if len(polled) == 1:
            return await every(JobStatus.unknown_from(throttled))(locators)
        return await every(OK)(locators)

    assert await wait_all(FnClient(fn), 2, poll_settings=settings(0.05)) == ["succeeded"] * 2
    assert polled[1] - polled[0] >= 0.55


def test_unknown_from_keeps_the_message_and_only_a_usable_retry_after():
    assert JobStatus.unknown_from(TransientError("HTTP 503", retry_after=2)).extra == {"retry_after": 2.0}
    assert JobStatus.unknown_from(TransientError("HTTP 503")).extra == {}
    assert JobStatus.unknown_from(TransientError("x", retry_after=-1)).extra == {}
    assert JobStatus.unknown_from(ValueError("bad")).message == "ValueError: bad"
    assert JobStatus.unknown_from(TransientError("HTTP 503")).message == "HTTP 503"


async def test_one_jobs_error_reaches_that_job_only():
    class PerJob(FnClient):
        async def statuses(self, locators: Sequence[Locator]) -> dict[str, JobStatus]:
            return await JobClient.statuses(self, locators)  # the default: one status() per job

        async def status(self, locator: Locator) -> JobStatus:
            if locator["id"] == "j0":
                raise PermanentError("HTTP 468 Unknown protocol version for this driver")
            if locator["id"] == "j1":
                raise MalformedAnswer("truncated body")
            return OK

    client = PerJob()
    results = await asyncio.gather(
        *(
            wait_for_outcome(client, {"id": f"j{i}"}, settings(unknown_budget=0.5), deadline=time.time() + 5)
            for i in range(4)
        )
    )
    assert [r.status for r in results] == ["unknown", "unknown", "succeeded", "succeeded"]
    assert "468" in results[0].message and "truncated" in results[1].message


async def test_fallback_statuses_poll_a_bounded_rotating_window():
    asked: list[str] = []

    class Fallback(FnClient):
        status_concurrency = 4

        async def status(self, locator: Locator) -> JobStatus:
            asked.append(locator["id"])
            return RUN

    client = Fallback()
    locs = [{"id": f"j{i}"} for i in range(10)]
    first = await client.fallback_statuses(locs)
    second = await client.fallback_statuses(locs)
    third = await client.fallback_statuses(locs)
    assert len(first) == len(second) == len(third) == 4
    assert asked == [f"j{i}" for i in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1)]


async def test_an_auth_error_fetches_fresh_credentials_once_and_polls_again():
    fresh = FnClient(every(OK), name="fresh")
    refetches = {"n": 0}

    async def refetch() -> JobClient[Any]:
        refetches["n"] += 1
        await asyncio.sleep(0.05)
        return fresh

    async def refused(locators: Sequence[Locator]) -> dict[str, JobStatus]:
        raise AuthError("HTTP 403 JWT Validate Fail", status=403)

    stale = FnClient(refused, name="stale")
    stale.refetch = refetch
    assert await wait_all(stale, 20) == ["succeeded"] * 20
    assert refetches["n"] == 1
    assert poller_for(fresh, 0.05).client is fresh or not active_pollers()


async def test_an_auth_error_that_survives_the_refetch_ends_every_wait_with_error():
    async def refused(locators: Sequence[Locator]) -> dict[str, JobStatus]:
        raise AuthError("HTTP 401 Unauthorized", status=401)

    async def refetch() -> JobClient[Any]:
        return FnClient(refused, name="also refused")

    client = FnClient(refused)
    client.refetch = refetch
    assert await wait_all(client, 3) == ["error"] * 3


async def test_the_newest_client_of_a_connection_replaces_the_pollers():
    old = FnClient(every(RUN), name="old")
    new = FnClient(every(OK), name="new")
    first = asyncio.create_task(wait_for_outcome(old, {"id": "j0"}, settings()))
    await asyncio.sleep(0.2)
    assert old.polls >= 2 and not first.done()
    second = asyncio.create_task(wait_for_outcome(new, {"id": "j1"}, settings()))
    done = await asyncio.wait_for(asyncio.gather(first, second), 10)
    assert [r.status for r in done] == ["succeeded", "succeeded"]  # the old trigger is polled with the new client


async def test_lost_needs_consecutive_denials_and_an_unknown_round_does_not_reset_them():
    script = [
        JobStatus(JobState.LOST, "404"),
        JobStatus(JobState.UNKNOWN, "", "timeout"),
        JobStatus(JobState.LOST, "404"),
        JobStatus(JobState.LOST, "404"),
    ]

    async def fn(locators: Sequence[Locator]) -> dict[str, JobStatus]:
        st = script.pop(0) if len(script) > 1 else script[0]
        return {locator_key(loc): st for loc in locators}

    result = await wait_for_outcome(FnClient(fn), {"id": "j0"}, settings(lost_confirmations=3))
    assert result.status == "lost"


async def test_an_endpoints_error_is_logged_and_kept_redacted(caplog):
    """A client's message may quote a URL with credentials or a token: the poller's lines never show it."""
    caplog.set_level(logging.DEBUG, logger="durable_jobs.polling")
    secret = "s3cr3t-pa55w0rd"
    fails = [
        TransientError(f"GET http://user:{secret}@127.0.0.1:1/x failed"),
        TransientError(f"Authorization: Bearer {secret}"),
    ]
    client = FnClient(raising(*fails, then=every(OK)))
    poller = poller_for(client, 0.02)
    watch = poller.add({"id": "j0"}, settings(0.02))
    problems: list[str] = []
    try:
        while True:
            fut = watch.arm()
            if fut is not None:
                await asyncio.wait_for(fut, 10)
            if poller.last_problem:
                problems.append(poller.last_problem)
            got = watch.take()
            if got is not None and got.state.is_terminal:
                break
    finally:
        poller.remove(watch)
    assert "is unknown" in caplog.text and secret not in caplog.text
    assert all(secret not in p for p in problems)
