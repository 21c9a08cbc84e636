"""Endpoint health reported by the shared pollers (durable_jobs.health): when a value is written, what it
holds, and that nothing the writing does reaches the polls or the jobs.

The pollers run for real on this test's loop; their clock (``time`` in durable_jobs.polling and
durable_jobs.health) is a fake one that the client moves on by ``STEP`` seconds at every poll, so ten minutes
of polling take a fraction of a second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import types
from collections.abc import Iterator, Sequence
from typing import Any
from unittest import mock

import pytest

from durable_jobs import airflow_compat, health, polling
from durable_jobs.clients.base import Locator, locator_key
from durable_jobs.errors import AuthError, TransientError
from durable_jobs.polling import IN_TRIGGERER, PollSettings, active_pollers, wait_for_outcome
from durable_jobs.status import JobState, JobStatus
from tests.core.test_poller_faults import FnClient

RUN = JobStatus(JobState.RUNNING, "RUNNING")
DONE = JobStatus(JobState.SUCCEEDED, "FINISHED")
STEP = 10.0  # fake seconds per poll
SETTINGS = PollSettings(interval=0.005)
SECRET = "s3cr3t-Pa55word"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


class FakeClock:
    def __init__(self) -> None:
        self.offset = 0.0
        self.epoch0 = time.time()
        self.mono0 = time.monotonic()

    def module(self) -> types.SimpleNamespace:
        return types.SimpleNamespace(monotonic=lambda: self.mono0 + self.offset, time=lambda: self.epoch0 + self.offset)


class Writer:
    """Records every write; ``fail`` makes each raise, ``hang`` makes each wait forever."""

    def __init__(self, fail: BaseException | None = None, hang: bool = False) -> None:
        self.puts: list[tuple[str, dict[str, Any], str]] = []
        self.deletes: list[str] = []
        self.fail, self.hang = fail, hang

    async def put(self, key: str, value: str) -> None:
        if self.hang:
            await asyncio.Event().wait()
        if self.fail is not None:
            raise self.fail
        self.puts.append((key, json.loads(value), value))

    async def delete(self, key: str) -> None:
        self.deletes.append(key)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    c = FakeClock()
    monkeypatch.setattr(polling, "time", c.module())
    monkeypatch.setattr(health, "time", c.module())
    yield c


class Endpoint:
    """A scripted endpoint: answers ``status`` for every job, or raises ``error``; the clock moves per poll."""

    def __init__(self, clock: FakeClock, conn_id: str = "spark_up") -> None:
        self.clock = clock
        self.status: JobStatus = RUN
        self.error: BaseException | None = None
        self.client = FnClient(self.statuses)
        self.client.conn_id = conn_id
        self.polls = 0

    async def statuses(self, locators: Sequence[Locator]) -> dict[str, JobStatus]:
        self.polls += 1
        self.clock.offset += STEP
        if self.error is not None:
            raise self.error
        return {locator_key(loc): self.status for loc in locators}

    async def until_polls(self, n: int) -> None:
        give_up = time.monotonic() + 20
        target = self.polls + n
        while self.polls < target:
            assert time.monotonic() < give_up, f"only {self.polls} polls"
            await asyncio.sleep(0.001)


def watch(endpoint: Endpoint, n: int, settings: PollSettings = SETTINGS) -> list[asyncio.Task[Any]]:
    """``n`` waits, each as a trigger's run() does it (IN_TRIGGERER set in its context)."""

    async def one(i: int) -> str:
        IN_TRIGGERER.set(True)
        return (await wait_for_outcome(endpoint.client, {"id": f"j{i}"}, settings)).status

    return [asyncio.create_task(one(i)) for i in range(n)]


async def finish(endpoint: Endpoint, tasks: list[asyncio.Task[Any]]) -> list[str]:
    endpoint.error, endpoint.status = None, DONE
    results = await asyncio.wait_for(asyncio.gather(*tasks), 20)
    give_up = time.monotonic() + 10
    while active_pollers():
        assert time.monotonic() < give_up
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.01)  # the reporter's last write or delete
    return list(results)


def states(writer: Writer) -> list[str]:
    return [v["state"] for _, v, _ in writer.puts]


async def test_each_transition_is_one_write_and_a_steady_state_none(clock: FakeClock) -> None:
    writer = Writer()
    health.install(writer, refresh=3600.0)
    ep = Endpoint(clock)
    tasks = watch(ep, 5)
    await ep.until_polls(5)  # ok, steady
    ep.error = TransientError("connection refused")
    await ep.until_polls(5)  # unknown, steady
    ep.error = AuthError("HTTP 401")
    await ep.until_polls(1)
    assert await finish(ep, tasks) == ["error"] * 5  # an auth refusal ends the waits with error
    assert states(writer) == ["ok", "unknown", "auth refused"]
    key = "durable_jobs.endpoint.fn.spark_up." + health.triggerer_part(writer_host(), writer_pid())
    assert {k for k, _, _ in writer.puts} == {key}
    ok, unknown, refused = (v for _, v, _ in writer.puts)
    assert (ok["watched"], ok["problem"], ok["system"], ok["conn_id"]) == (5, "", "fn", "spark_up")
    assert unknown["problem"] == "connection refused" and unknown["since"] > ok["since"]
    assert refused["problem"] == "HTTP 401"
    assert writer.deletes == [key]  # the poller stopped: its value goes


def writer_host() -> str:
    rep = health.reporter()
    assert rep is not None
    return rep.host


def writer_pid() -> int:
    rep = health.reporter()
    assert rep is not None
    return rep.pid


async def test_1000_jobs_over_ten_minutes_of_steady_polling_cost_one_write_a_minute(clock: FakeClock) -> None:
    writer = Writer()
    reporter = health.install(writer)
    ep = Endpoint(clock)
    tasks = watch(ep, 1000)
    await ep.until_polls(1)
    started_polls, started_at = ep.polls, clock.offset
    while clock.offset - started_at < 600:  # ten minutes, a poll every 10 s
        await ep.until_polls(1)
    polls = ep.polls - started_polls
    await asyncio.sleep(0.01)
    assert polls >= 60
    assert reporter is not None and reporter.writes == len(writer.puts)
    # the first poll's "ok", then one refresh a minute: 11 writes for 60,000 job-polls
    assert 10 <= len(writer.puts) <= 12, len(writer.puts)
    assert set(states(writer)) == {"ok"} and {v["watched"] for _, v, _ in writer.puts} == {1000}
    polls_seen = [v["last_poll"] for _, v, _ in writer.puts]
    assert polls_seen == sorted(polls_seen) and len(set(polls_seen)) == len(polls_seen)  # "last poll" refreshed
    print(f"\n1,000 watched jobs, {polls} polls over 10 min: {len(writer.puts)} writes")
    assert await finish(ep, tasks) == ["succeeded"] * 1000


async def test_a_failing_write_is_logged_once_and_polling_goes_on(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    writer = Writer(fail=RuntimeError("API server error 500"))
    reporter = health.install(writer, refresh=0.0)
    ep = Endpoint(clock)
    tasks = watch(ep, 3)
    with caplog.at_level(logging.DEBUG, logger="durable_jobs.health"):
        for _ in range(3):
            await ep.until_polls(3)
            ep.error = None if ep.error else TransientError("down")
        assert await finish(ep, tasks) == ["succeeded"] * 3
    assert reporter is not None and reporter.failures == 3 and reporter.writes == 0  # ok, unknown, ok: all lost
    said = [r for r in caplog.records if r.levelno >= logging.WARNING and "could not record" in r.getMessage()]
    assert len(said) == 1 and "API server error 500" in said[0].getMessage()


async def test_a_hanging_write_never_delays_a_poll(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "WRITE_TIMEOUT", 0.05)
    writer = Writer(hang=True)
    reporter = health.install(writer, refresh=0.0)
    ep = Endpoint(clock)
    tasks = watch(ep, 2)
    started = time.monotonic()
    await ep.until_polls(20)
    assert time.monotonic() - started < 5
    assert await finish(ep, tasks) == ["succeeded"] * 2
    await asyncio.sleep(0.1)
    assert reporter is not None and reporter.failures >= 1 and not reporter._tasks  # timed out, none left behind


async def test_the_value_holds_no_credential(clock: FakeClock) -> None:
    writer = Writer()
    health.install(writer)
    ep = Endpoint(clock)
    ep.error = TransientError(
        f"GET http://admin:{SECRET}@master:6066/v1 failed; Authorization: Bearer {JWT}; token={SECRET} " + "x" * 5000
    )
    tasks = watch(ep, 1)
    await ep.until_polls(2)
    await asyncio.sleep(0.01)
    ((_, value, raw),) = writer.puts
    assert value["state"] == "unknown"
    assert SECRET not in raw and JWT not in raw and "eyJ" not in raw
    assert "http://admin:***@master:6066" in value["problem"] and len(value["problem"]) <= health.PROBLEM_LIMIT + 3
    await finish(ep, tasks)


async def test_an_endpoints_pollers_are_merged_into_one_value(clock: FakeClock) -> None:
    writer = Writer()
    health.install(writer, refresh=0.0)  # each poller's report is written: the second one's shows the sum
    ep = Endpoint(clock)
    fast = watch(ep, 2)
    slow = watch(ep, 3, PollSettings(interval=0.01))  # another interval: another poller, the same endpoint
    await ep.until_polls(6)
    await asyncio.sleep(0.01)
    assert len(active_pollers()) == 2
    assert {k for k, _, _ in writer.puts} == {writer.puts[0][0]}  # one key
    assert writer.puts[-1][1]["watched"] == 5 and writer.puts[-1][1]["interval"] == 0.01
    await finish(ep, fast + slow)
    assert len(writer.deletes) == 1


async def test_outside_a_triggerer_nothing_is_written(clock: FakeClock) -> None:
    assert health.reporter() is None  # no triggerer channel: no reporter
    ep = Endpoint(clock)
    tasks = watch(ep, 2)
    await ep.until_polls(3)
    assert await finish(ep, tasks) == ["succeeded"] * 2


class TriggerCommsDecoder:
    """Named as the triggerer's channel; ``asend`` records what it is sent."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def asend(self, msg: Any) -> None:
        self.sent.append(msg)


async def test_in_a_triggerer_the_values_go_to_airflow_variables_through_the_supervisor() -> None:
    comms = TriggerCommsDecoder()
    with mock.patch(airflow_compat.SUPERVISOR_COMMS_TARGET, comms, create=True):
        rep = health.reporter()
        assert isinstance(rep, health.Reporter) and isinstance(rep.writer, health.SupervisorWriter)
        await rep.writer.put("durable_jobs.endpoint.fn.c.h-1", "{}")
        await rep.writer.delete("durable_jobs.endpoint.fn.c.h-1")
    put, delete = comms.sent
    assert (type(put).__name__, put.key, put.value) == ("PutVariable", "durable_jobs.endpoint.fn.c.h-1", "{}")
    assert put.description == health.DESCRIPTION
    assert (type(delete).__name__, delete.key) == ("DeleteVariable", "durable_jobs.endpoint.fn.c.h-1")
    with mock.patch(airflow_compat.SUPERVISOR_COMMS_TARGET, mock.Mock(), create=True):
        assert not airflow_compat.in_triggerer()  # a worker's (or a test's) channel


def test_keys_are_bounded_and_split_on_their_dots() -> None:
    long = "conn." * 100
    key = health.variable_key("spark-standalone", long, "host.example.com", 4242)
    assert len(key) <= health.KEY_LIMIT and key.startswith(health.PREFIX + "spark-standalone.conn_")
    assert key.endswith(".host_example_com-4242") and key.count(".") == 4
    assert health.endpoint_part("yarn", "yarn_default") == "yarn.yarn_default"
    assert health.endpoint_part("yarn", "a.b") != health.endpoint_part("yarn", "a_b")  # no two connections alike


def test_a_value_round_trips() -> None:
    h = health.EndpointHealth("yarn", "y", "unknown", 1.7e9, 3, 1.7e9 + 5, 30.0, "down", "h", 7)
    assert health.EndpointHealth.from_json(h.to_json()) == h
