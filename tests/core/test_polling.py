"""The shared poller under load: thousands of waiters woken in one poll, deadlines without a task per waiter."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from durable_jobs.polling import MIN_GAP, WAKE_BATCH, PollSettings, active_pollers, poller_for, wait_for_outcome
from durable_jobs.status import JobState
from durable_jobs.testing.scripted import ScriptedClient

TOKEN = "dj0123456789abcdef0123"


async def many(client: ScriptedClient, n: int) -> list[dict[str, Any]]:
    return [await client.submit({}, TOKEN) for _ in range(n)]


async def no_pollers_left() -> None:
    """A poller with no watch left stops after its current sleep; wait for that, with a deadline."""
    give_up = time.monotonic() + 10
    while active_pollers():
        assert time.monotonic() < give_up, "a poller kept running with no watch"
        await asyncio.sleep(0.01)


async def wake_all_at_once(n: int, deadline: float | None) -> tuple[list[str], int]:
    """n jobs ending in the same poll; (their outcomes, the most waiters finished within one loop turn)."""
    client = ScriptedClient(scripts=[[JobState.RUNNING, JobState.SUCCEEDED]] * n)
    locs = await many(client, n)
    finished: list[str] = []

    async def waiter(loc: dict[str, Any]) -> None:
        result = await wait_for_outcome(client, loc, PollSettings(interval=0.05), deadline=deadline)
        finished.append(result.status)

    tasks = [asyncio.create_task(waiter(loc)) for loc in locs]
    samples: list[int] = []
    while len(finished) < n:
        samples.append(len(finished))
        await asyncio.sleep(0)  # one sample per loop turn
    samples.append(len(finished))
    await asyncio.gather(*tasks)
    return finished, max(b - a for a, b in itertools.pairwise(samples))


async def test_a_poll_that_ends_thousands_of_jobs_wakes_them_in_slices():
    n = 3 * WAKE_BATCH + 17
    outcomes, most_per_turn = await wake_all_at_once(n, deadline=None)
    assert outcomes == ["succeeded"] * n
    assert 0 < most_per_turn <= WAKE_BATCH  # the loop ran other work between slices


async def test_slices_also_hold_for_waiters_with_a_deadline():
    n = 2 * WAKE_BATCH + 1
    outcomes, most_per_turn = await wake_all_at_once(n, deadline=time.time() + 60)
    assert outcomes == ["succeeded"] * n
    assert 0 < most_per_turn <= WAKE_BATCH
    await no_pollers_left()  # every waiter left its poller, which stopped


async def test_deadlines_fire_for_every_waiter_and_leave_nothing_behind():
    n = WAKE_BATCH + 44
    client = ScriptedClient(scripts=[[JobState.RUNNING]] * n)  # never ends
    locs = await many(client, n)
    started = time.monotonic()
    results = await asyncio.wait_for(
        asyncio.gather(
            *(wait_for_outcome(client, loc, PollSettings(interval=0.05), deadline=time.time() + 0.4) for loc in locs)
        ),
        30,
    )
    assert {r.status for r in results} == {"timeout"}
    assert all(r.last is not None and r.last.state is JobState.RUNNING for r in results)
    assert all("deadline passed while" in r.message for r in results)
    assert time.monotonic() - started < 10
    await no_pollers_left()


async def test_deadlines_cost_no_timer_per_waiter():
    n = 500
    client = ScriptedClient(scripts=[[JobState.RUNNING]] * n)
    locs = await many(client, n)
    loop = asyncio.get_running_loop()
    before = sum(1 for h in loop._scheduled if not h.cancelled())  # type: ignore[attr-defined]
    settings = PollSettings(interval=0.05)
    tasks = [
        asyncio.create_task(wait_for_outcome(client, loc, settings, deadline=time.time() + 3600 + i))
        for i, loc in enumerate(locs)
    ]
    await asyncio.sleep(0.2)  # every waiter armed, a few polls done
    timers = sum(1 for h in loop._scheduled if not h.cancelled()) - before  # type: ignore[attr-defined]
    assert timers <= 2, timers  # the poller's own sleep and its alarm, not one per waiter
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await no_pollers_left()


async def test_an_earlier_deadline_added_while_the_poller_naps_fires_on_time():
    client = ScriptedClient(scripts=[[JobState.RUNNING]] * 2)
    first, second = await many(client, 2)
    settings = PollSettings(interval=30)  # the poller sleeps 30 s between polls
    far = asyncio.create_task(wait_for_outcome(client, first, settings, deadline=time.time() + 3600))
    await asyncio.sleep(0.1)  # the poller polled once and naps
    started = time.monotonic()
    result = await asyncio.wait_for(wait_for_outcome(client, second, settings, deadline=time.time() + 0.3), 20)
    assert result.status == "timeout" and result.last is None  # never polled: the next poll is 30 s away
    assert time.monotonic() - started < 5  # not at the next poll, 30 s away
    assert not far.done()  # the other waiter's deadline is an hour away
    far.cancel()
    await asyncio.gather(far, return_exceptions=True)


async def test_a_woken_waiter_sees_the_latest_status_once():
    client = ScriptedClient(scripts=[[JobState.PENDING, JobState.RUNNING, JobState.RUNNING, JobState.SUCCEEDED]])
    (loc,) = await many(client, 1)
    settings = PollSettings(interval=0.02)
    with poller_for(client, settings.interval).watching(loc, settings) as watch:
        seen = []
        while True:
            status = await watch.next()
            assert status is not None
            seen.append(status.state)
            if status.state.is_terminal:
                break
    assert seen == [JobState.PENDING, JobState.RUNNING, JobState.SUCCEEDED]  # no repeat for the same state


class SlowClient(ScriptedClient):
    """A scripted client whose batch status takes ``delay`` seconds, like a paginated listing of thousands."""

    delay: float = 0.0

    async def statuses(self, locators):  # type: ignore[no-untyped-def]
        self.calls.append(f"statuses@{asyncio.get_running_loop().time():.3f}")
        await asyncio.sleep(self.delay)
        return await super().statuses(locators)


async def poll_starts(delay: float, interval: float, polls: int) -> list[float]:
    client = SlowClient(scripts=[[JobState.RUNNING]])
    client.delay = delay
    (loc,) = await many(client, 1)
    settings = PollSettings(interval=interval)
    with poller_for(client, interval).watching(loc, settings):
        give_up = time.monotonic() + 30
        while sum(c.startswith("statuses@") for c in client.calls) < polls:
            assert time.monotonic() < give_up
            await asyncio.sleep(0.02)
    return [float(c.split("@")[1]) for c in client.calls if c.startswith("statuses@")]


async def test_polls_start_one_interval_apart_however_long_a_poll_takes():
    starts = await poll_starts(delay=0.4, interval=0.5, polls=4)
    gaps = sorted(b - a for a, b in itertools.pairwise(starts))
    assert gaps[len(gaps) // 2] < 0.75, gaps  # 0.5 apart, not 0.4 + 0.5


async def test_a_poll_longer_than_the_interval_is_not_followed_at_once():
    starts = await poll_starts(delay=0.3, interval=0.2, polls=3)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.3 + 0.2 * MIN_GAP - 0.01, gaps
