"""The library's metrics, received as StatsD datagrams on a real UDP socket through Airflow's own Stats."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import socket
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from airflow.sdk.observability import stats
from airflow.sdk.observability.metrics import stats_utils

from durable_jobs import failpoints, metrics
from durable_jobs.polling import PollSettings, active_pollers, wait_for_outcome
from durable_jobs.protocol import Defer, Finished, JobFailed, JobLost
from durable_jobs.status import JobState
from durable_jobs.testing.scripted import ScriptedClient
from durable_jobs.triggers.base import DurableJobTrigger
from tests.core.test_protocol import DictStore, proto

R, S, F = JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED
# StatsD line: <prefix>.<name>[,tag=value...]:<value>|<type> (tags appended by statsd_influxdb_enabled)
LINE = re.compile(
    r"^airflow\.(?P<name>durable_jobs\.[a-z_.]+)(?P<tags>(?:,[^,=:]+=[^,=:]+)*):(?P<value>[^|]+)\|(?P<type>\w+)$"
)


class StatsdServer:
    """A UDP socket standing in for a StatsD daemon."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []

    def received(self) -> list[dict[str, Any]]:
        """Every durable_jobs datagram sent so far, parsed (Airflow's own metrics left out)."""
        self.sock.settimeout(0.3)  # the emitters are done: read until the socket stays quiet
        while True:
            try:
                self.lines.append(self.sock.recv(65536).decode())
            except TimeoutError:
                break
        out = []
        for line in self.lines:
            m = LINE.match(line)
            if m is None:
                assert "durable_jobs" not in line, f"a datagram the docs do not describe: {line!r}"
                continue
            tags = dict(t.split("=", 1) for t in m["tags"].split(",")[1:])
            out.append({"name": m["name"], "value": float(m["value"]), "type": m["type"], "tags": tags})
        return out

    def counts(self) -> Counter[str]:
        """The counters' totals."""
        out: Counter[str] = Counter()
        for d in self.received():
            if d["type"] == "c":
                out[d["name"]] += int(d["value"])
        return out


@pytest.fixture
def statsd() -> Iterator[StatsdServer]:
    """Airflow's Stats configured as a deployment would (``[metrics] statsd_on``), sending to our socket."""
    # without the statsd package Airflow quietly sends nothing: say so instead of a puzzling empty socket
    assert importlib.util.find_spec("statsd") is not None, "the statsd package is missing (pyproject's dev extra)"
    server = StatsdServer()
    env = {
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(server.port),
        "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
        "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",  # tags ride in the name, so they can be checked
    }
    try:
        with mock.patch.dict(os.environ, env):
            stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)
            yield server
    finally:
        # back to what the environment configures (no metrics in the tests)
        stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)
        server.sock.close()


def test_every_resume_decision_and_submission_is_counted(statsd: StatsdServer):
    # fresh, then re-attached by a second try, then returned by a third once the job succeeded
    client, store = ScriptedClient(scripts=[[R, S]]), DictStore()
    assert isinstance(proto(client, store).start(), Defer)
    assert isinstance(proto(client, store, 2).start(), Defer)
    assert isinstance(proto(client, store, 3).start(), Finished)
    assert isinstance(proto(client, store, 4).start(), Finished)
    # a failed job: the next generation
    client, store = ScriptedClient(scripts=[[F], [R]]), DictStore()
    d = proto(client, store).start()
    with pytest.raises(JobFailed):
        proto(client, store).complete({"status": "failed", "job": d.record.job, "message": "boom"})
    assert proto(client, store, 2).start().record.generation == 1
    # a crash after submitting: adopted; a crash after the intent: not found, submitted
    for point in (failpoints.AFTER_SUBMIT, failpoints.AFTER_INTENT):
        client, store = ScriptedClient(), DictStore()
        failpoints.configure(f"{point}=raise")
        try:
            with pytest.raises(failpoints.SimulatedCrash):
                proto(client, store).start()
        finally:
            failpoints.configure("")
        assert isinstance(proto(client, store, 2).start(), Defer)
    # the system forgot the job: lost, the task fails
    client, store = ScriptedClient(), DictStore()
    d = proto(client, store).start()
    client.forget.add(d.record.job["id"])
    with pytest.raises(JobLost):
        proto(client, store, 2).start()
    # the record was lost: a second try finds the job by its token and adopts it
    client, store = ScriptedClient(), DictStore()
    assert isinstance(proto(client, store).start(), Defer)
    store.data.clear()
    assert isinstance(proto(client, store, 2).start(), Defer)
    # Airflow runs try 1's execute() again after its job failed (a lost resume): the try fails, nothing submitted
    client, store = ScriptedClient(scripts=[[F]]), DictStore()
    assert isinstance(proto(client, store).start(), Defer)
    with pytest.raises(JobFailed):
        proto(client, store).start()

    got = statsd.received()
    counts = statsd.counts()
    assert {k: v for k, v in counts.items() if k.startswith("durable_jobs.resume.")} == {
        "durable_jobs.resume.fresh": 7,  # the first try of each of the seven tasks
        "durable_jobs.resume.reattached": 1,
        "durable_jobs.resume.returned": 2,  # the third try saw the success; the fourth read it from the record
        "durable_jobs.resume.next_generation": 1,
        "durable_jobs.resume.adopted": 1,
        "durable_jobs.resume.not_found": 1,
        "durable_jobs.resume.lost": 1,
        "durable_jobs.resume.unrecorded": 1,
        "durable_jobs.resume.failed": 1,
    }
    assert {k for k in counts if k.startswith("durable_jobs.resume.")} == {
        f"durable_jobs.resume.{d}" for d in metrics.DECISIONS
    }  # every decision the docs list, and no other
    # one submission per job created: 1 + 2 + 1 (adopted) + 1 (not found, submitted by try 2) + 1 + 1 (unrecorded)
    # + 1 (the failed one, not submitted again by the re-run try)
    assert counts["durable_jobs.submissions"] == 8
    assert {d["type"] for d in got} == {"c"}
    for d in got:
        assert d["tags"]["system"] == "scripted", d
        if d["name"] == "durable_jobs.submissions":
            assert d["tags"]["endpoint"] == "scripted", d  # the scripted client names no URL


async def test_the_poller_sends_polls_unknown_time_jobs_watched_and_event_latency(statsd: StatsdServer):
    client = ScriptedClient(scripts=[[R, S], [R]])
    tokens = ("dj0123456789abcdef0123", "dj0123456789abcdef0124")
    ends, stays = [await client.submit({}, token) for token in tokens]
    client.down.add("status")  # the endpoint is down: the first polls fail

    class ScriptedTrigger(DurableJobTrigger):
        async def get_client(self) -> ScriptedClient:
            return client

    async def run(job: dict[str, Any], token: str) -> str:
        """The trigger as the triggerer runs it: its run(), to its one event."""
        trigger = ScriptedTrigger(job=job, conn_id="scripted", token=token, generation=0, poll_interval=0.02)
        events = [event async for event in trigger.run()]
        return str(events[0].payload["status"])

    done = asyncio.create_task(run(ends, tokens[0]))
    other = asyncio.create_task(run(stays, tokens[1]))
    while not active_pollers():
        await asyncio.sleep(0.01)
    (poller,) = active_pollers()
    while poller.polls < 3:
        await asyncio.sleep(0.01)
    assert len(poller) == 2 and poller.sick_since is not None
    client.down.clear()  # it answers again
    assert await asyncio.wait_for(done, 30) == "succeeded"
    other.cancel()
    give_up = time.monotonic() + 10
    while active_pollers():  # the poller stops once nobody waits, and says so in its gauge
        assert time.monotonic() < give_up
        await asyncio.sleep(0.01)

    got = statsd.received()
    names = Counter(d["name"] for d in got)
    assert set(names) == {
        "durable_jobs.poll.requests",
        "durable_jobs.poll.failed",
        "durable_jobs.endpoint.unknown_seconds",
        "durable_jobs.jobs_watched",
        "durable_jobs.event_latency",
    }
    assert names["durable_jobs.poll.requests"] == poller.polls  # one per poll, not one per job
    assert 3 <= names["durable_jobs.poll.failed"] < poller.polls
    assert names["durable_jobs.endpoint.unknown_seconds"] == 1  # once, when the endpoint answered again
    assert names["durable_jobs.event_latency"] == 1  # one job ended
    by_name = {d["name"]: d for d in got}
    assert by_name["durable_jobs.endpoint.unknown_seconds"]["type"] == "ms"
    assert by_name["durable_jobs.endpoint.unknown_seconds"]["value"] > 0
    assert by_name["durable_jobs.event_latency"]["type"] == "ms"
    assert by_name["durable_jobs.event_latency"]["tags"] == {"system": "scripted"}
    assert by_name["durable_jobs.poll.requests"]["tags"] == {"system": "scripted", "endpoint": "scripted"}
    watched = [d for d in got if d["name"] == "durable_jobs.jobs_watched"]
    assert {d["type"] for d in watched} == {"g"}
    assert {d["tags"]["hostname"] for d in watched} == {metrics.hostname()}
    assert watched[0]["value"] == 2 and watched[-1]["value"] == 0  # both jobs, then none once they left


async def test_a_worker_wait_is_not_counted_as_jobs_watched_by_a_triggerer(statsd: StatsdServer):
    client = ScriptedClient(scripts=[[R, S]])
    loc = await client.submit({}, "dj0123456789abcdef0123")
    assert (await wait_for_outcome(client, loc, PollSettings(interval=0.02))).status == "succeeded"
    names = {d["name"] for d in statsd.received()}
    assert "durable_jobs.poll.requests" in names and "durable_jobs.jobs_watched" not in names


def test_the_endpoint_tag_is_hosts_only():
    class Named(ScriptedClient):
        endpoint_name = "Spark master https://alice:s3cret@m1.example:6066,http://m2.example:6066/api"

    assert metrics.endpoint_tag(Named()) == "m1.example_6066+m2.example_6066"  # no ":": StatsD splits on it
    assert metrics.client_tags(ScriptedClient()) == {"system": "scripted", "endpoint": "scripted"}


def test_a_failing_backend_never_breaks_a_task(monkeypatch: pytest.MonkeyPatch):
    class Broken:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError("the metrics backend is broken")

    monkeypatch.setattr(metrics, "_stats", Broken())
    client, store = ScriptedClient(scripts=[[S]]), DictStore()
    assert isinstance(proto(client, store).start(), Defer)
    assert isinstance(proto(client, store, 2).start(), Finished)
    monkeypatch.setattr(metrics, "_stats", False)  # no Airflow at all: the calls do nothing
    metrics.incr("submissions")
    metrics.timing("event_latency", 1.0)
    metrics.gauge("jobs_watched", 1)
