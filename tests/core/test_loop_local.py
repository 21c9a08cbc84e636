"""Resources kept per event loop: one registry, and close_all() closes the running loop's resources."""

from __future__ import annotations

import asyncio
import contextlib
import gc

from durable_jobs import loop_local
from durable_jobs.loop_local import LoopLocal, cancel_and_wait, close_all


def test_each_loop_gets_its_own_value_and_a_gone_loop_takes_it_with_it():
    ll: LoopLocal[list[int]] = LoopLocal(list)

    async def value() -> list[int]:
        return ll.get()

    loop = asyncio.new_event_loop()
    try:
        first = loop.run_until_complete(value())
        assert loop.run_until_complete(value()) is first  # the same loop: the same value
    finally:
        loop.close()
    assert asyncio.run(value()) is not first  # another loop: another value
    del loop
    gc.collect()
    assert len(ll._by_loop) == 0


async def test_close_all_closes_every_registered_resource_of_the_running_loop_in_order():
    closed: list[str] = []

    async def closer(value: str) -> None:
        closed.append(value)

    sessions = LoopLocal(lambda: "sessions", close=closer)
    connections = LoopLocal(lambda: "connections", close=closer)
    untouched = LoopLocal(lambda: "never made", close=closer)
    assert sessions.get() and connections.get() and untouched.peek() is None
    await close_all()
    assert closed == ["sessions", "connections"]  # in the order they were registered; nothing made: nothing closed
    assert sessions.peek() is None and connections.peek() is None
    await close_all()
    assert closed == ["sessions", "connections"]  # closed once
    assert sessions.get() == "sessions"  # the next use makes a new one


async def test_one_failing_closer_does_not_stop_the_others(caplog):
    closed: list[str] = []

    async def broken(value: str) -> None:
        raise RuntimeError("boom")

    async def closer(value: str) -> None:
        closed.append(value)

    held = [LoopLocal(lambda: "a", close=broken, name="broken pool"), LoopLocal(lambda: "b", close=closer)]
    for ll in held:
        ll.get()
    await close_all()
    assert closed == ["b"] and "broken pool" in caplog.text


def test_a_loop_local_of_an_object_leaves_the_registry_with_it():
    class Client:
        def __init__(self) -> None:
            self.limit = LoopLocal(lambda: asyncio.Semaphore(self.n))
            self.n = 2

    gc.collect()  # what earlier tests left is gone first
    before = len(loop_local._REGISTERED)
    clients = [Client() for _ in range(5)]
    assert len(loop_local._REGISTERED) == before + 5
    del clients
    gc.collect()
    assert len(loop_local._REGISTERED) == before


async def test_close_sessions_closes_the_http_sessions_and_the_other_pools():
    """The transport no longer knows the other pools: close_sessions() is close_all()."""
    from durable_jobs.clients.emr import aws_pool
    from durable_jobs.clients.kubernetes import api
    from durable_jobs.transport.http import close_sessions

    kube = api._CONNECTIONS.get()
    aws = aws_pool._POOLS.get()
    assert kube == {} and aws is not None
    await close_sessions()
    assert api._CONNECTIONS.peek() is None and aws_pool._POOLS.peek() is None


async def test_a_closer_that_hangs_does_not_stop_close_all(monkeypatch, caplog):
    """A resource whose close never ends (a sick endpoint) is given up after CLOSE_TIMEOUT; the rest close."""
    monkeypatch.setattr(loop_local, "CLOSE_TIMEOUT", 0.2)
    closed: list[str] = []

    async def hang(_value: object) -> None:
        await asyncio.Event().wait()

    async def close(value: list[str]) -> None:
        closed.append("after")

    stuck: LoopLocal[object] = LoopLocal(object, close=hang, name="stuck")
    after: LoopLocal[list[str]] = LoopLocal(list, close=close, name="after")
    stuck.get(), after.get()
    await asyncio.wait_for(close_all(), 5)
    assert closed == ["after"]
    assert any("stuck" in r.getMessage() and "took over" in r.getMessage() for r in caplog.records)


async def test_cancel_and_wait_cancels_again_a_task_that_swallowed_its_cancellation():
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # as a library's timeout may turn a cancellation into its own error, once

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task, what="stubborn", patience=5), 4)
    assert task.cancelled() and swallowed == 1


async def test_cancel_and_wait_gives_up_after_its_patience(caplog):
    alive = True

    async def immortal() -> None:
        while alive:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.05)

    task = asyncio.create_task(immortal())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task, what="immortal", patience=0.3), 4)
    assert not task.done()
    assert any("immortal did not end" in r.getMessage() for r in caplog.records)
    alive = False  # let it end, so the test's loop closes cleanly
    await asyncio.wait_for(task, 2)


# --- closed when the loop ends ------------------------------------------------------------------------------------


def _closing(closed: list[str], value: str = "pool") -> LoopLocal[str]:
    async def closer(v: str) -> None:
        closed.append(v)

    return LoopLocal(lambda: value, close=closer)


def test_a_loop_run_by_asyncio_run_closes_its_resources_at_its_end():
    closed: list[str] = []
    pool = _closing(closed)

    async def use() -> None:
        pool.get()
        await asyncio.sleep(0)
        assert closed == []  # nothing is closed while the loop runs

    asyncio.run(use())
    assert closed == ["pool"]


def test_the_other_tasks_leave_before_the_resources_close():
    """asyncio.run cancels every task at once: a task on its way out still finds the pool open."""
    closed: list[str] = []
    pool = _closing(closed)
    seen_on_exit: list[list[str]] = []
    running: list[asyncio.Task[None]] = []

    async def worker() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.05)  # a cleanup that takes a few turns of the loop
            pool.get()
            seen_on_exit.append(list(closed))

    async def main() -> None:
        pool.get()
        running.append(asyncio.create_task(worker()))
        await asyncio.sleep(0)

    asyncio.run(main())
    assert seen_on_exit == [[]] and closed == ["pool"]


def test_cancelling_a_task_closes_nothing():
    """The triggerer cancels its triggers one by one: the loop's pool stays for the others."""
    closed: list[str] = []
    pool = _closing(closed)

    async def main() -> None:
        async def trigger() -> None:
            pool.get()
            await asyncio.Event().wait()

        task = asyncio.create_task(trigger())
        await asyncio.sleep(0)
        await cancel_and_wait(task, what="trigger")
        await asyncio.sleep(0.01)
        assert closed == [] and pool.peek() == "pool"

    asyncio.run(main())
    assert closed == ["pool"]


def test_a_loop_closed_by_hand_reports_nothing_and_is_collected(caplog):
    """The worker's loop: close_all() by hand, then loop.close(); and a loop closed with no cleanup at all."""
    closed: list[str] = []
    pool = _closing(closed)

    async def use() -> str:
        return pool.get()

    for by_hand in (True, False):
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(use())
            if by_hand:
                loop.run_until_complete(close_all())
                assert not [t for t in asyncio.all_tasks(loop) if not t.done()]  # the watch ended with it
        finally:
            loop.close()
        del loop
        gc.collect()
    assert closed == ["pool"]  # closed by hand, once
    assert len(pool._by_loop) == 0 and len(loop_local._WATCHERS) == 0  # the loops, and their watches, are gone
    assert "Task was destroyed" not in caplog.text


async def test_a_value_made_after_close_all_is_watched_again():
    closed: list[str] = []
    pool = _closing(closed)
    pool.get()
    await close_all()
    assert closed == ["pool"]
    loop = asyncio.get_running_loop()
    assert loop not in loop_local._WATCHERS
    pool.get()
    assert loop in loop_local._WATCHERS  # pytest-asyncio's end of this test's loop closes it
