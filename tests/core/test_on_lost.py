"""A job the system forgot is never rerun unless the user asks (``on_lost``), and connections are fetched once."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest

from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.convert import byte_size
from durable_jobs.protocol import Defer, JobLost, ProtocolSettings
from durable_jobs.record import STATE_KEY
from durable_jobs.status import JobState
from durable_jobs.testing.scripted import ScriptedClient
from tests.core.test_protocol import DictStore, proto

R = JobState.RUNNING


def lost_job(on_lost: str | None = None, **kw: Any) -> tuple[ScriptedClient, DictStore]:
    """A job submitted by try 1, then forgotten by the system (evicted while no trigger watched it)."""
    client, store = ScriptedClient(scripts=[[R], [R]]), DictStore()
    proto(client, store).start()
    client.forget.add("job-1")
    return client, store


def test_a_confirmed_loss_fails_the_task_without_resubmitting_by_default():
    client, store = lost_job()
    with pytest.raises(JobLost) as exc:
        proto(client, store, try_number=2).start()
    message = str(exc.value)
    assert "outcome of" in message and "is unknown" in message
    assert "clear this task" in message and "on_lost='resubmit'" in message
    assert client.submissions() == 1
    rec = store.data[STATE_KEY]
    assert rec["phase"] == "finished" and rec["outcome"] == "lost"
    # a later try with the same record refuses again: still one job
    with pytest.raises(JobLost):
        proto(client, store, try_number=3).start()
    assert client.submissions() == 1


def test_a_lost_event_from_the_trigger_fails_without_retry_too():
    client, store = ScriptedClient(scripts=[[R]]), DictStore()
    d = proto(client, store).start()
    assert isinstance(d, Defer)
    with pytest.raises(JobLost):
        proto(client, store).complete({"status": "lost", "job": d.record.job, "message": "gone"})
    assert client.submissions() == 1 and store.data[STATE_KEY]["outcome"] == "lost"


def test_on_lost_resubmit_starts_the_next_generation():
    client, store = lost_job()
    d = proto(client, store, try_number=2, on_lost="resubmit").start()
    assert isinstance(d, Defer) and d.record.generation == 1 and client.submissions() == 2
    assert store.data[STATE_KEY]["history"][-1]["outcome"] == "lost"


def test_a_clear_after_the_loss_counts_as_asking_to_run_it_again():
    client, store = lost_job()
    with pytest.raises(JobLost):
        proto(client, store, try_number=2).start()
    d = proto(client, store, try_number=3, clear_number=1).start()  # the user cleared the task
    assert isinstance(d, Defer) and d.record.generation == 1 and client.submissions() == 2


def test_a_clear_before_the_loss_does_not_count():
    client, store = ScriptedClient(scripts=[[R], [R]]), DictStore()
    proto(client, store).start()
    # cleared while deferred: the new try re-attaches, then the system forgets the job
    assert isinstance(proto(client, store, try_number=2, clear_number=1).start(), Defer)
    client.forget.add("job-1")
    with pytest.raises(JobLost):
        proto(client, store, try_number=3, clear_number=1).start()
    with pytest.raises(JobLost):
        proto(client, store, try_number=4, clear_number=1).start()
    assert client.submissions() == 1


def test_on_lost_is_checked():
    with pytest.raises(ValueError, match="on_lost"):
        ProtocolSettings(on_lost="retry")


def test_the_deployment_default_comes_from_the_config(monkeypatch):
    from durable_jobs.operators.base import default_on_lost

    assert default_on_lost() == "fail"
    monkeypatch.setenv("AIRFLOW__DURABLE_JOBS__ON_LOST", "resubmit")
    assert default_on_lost() == "resubmit"
    monkeypatch.setenv("AIRFLOW__DURABLE_JOBS__ON_LOST", "sometimes")
    with pytest.raises(ValueError, match="on_lost"):
        default_on_lost()


class _Conn:
    def __init__(self, password: str) -> None:
        self.password = password


class CountingHook(DurableJobHook):
    fetches: ClassVar[int] = 0
    password: ClassVar[str] = "v1"

    @classmethod
    def client_from_connection(cls, conn: Any) -> Any:
        client = ScriptedClient()
        client.calls.append(conn.password)  # which credentials it was built with
        return client

    @classmethod
    async def aget_connection(cls, conn_id: str) -> Any:
        cls.fetches += 1
        await asyncio.sleep(0.05)  # a supervisor round trip
        return _Conn(cls.password)


async def test_thousands_of_triggers_starting_together_fetch_the_connection_once():
    DurableJobHook.clear_cache()
    CountingHook.fetches = 0
    clients = await asyncio.gather(*(CountingHook.aget_client("c") for _ in range(2000)))
    assert CountingHook.fetches == 1
    assert len({id(c) for c in clients}) == 1
    assert clients[0].refetch is not None  # the poller's way back to the connection after an AuthError


async def test_a_refresh_fetches_again_once_for_everyone_who_asks_together():
    DurableJobHook.clear_cache()
    CountingHook.fetches = 0
    CountingHook.password = "v1"
    first = await CountingHook.aget_client("c")
    CountingHook.password = "v2"  # rotated
    assert first.refetch is not None
    fresh = await asyncio.gather(*(first.refetch() for _ in range(50)))  # 50 pollers refused at once
    fresh += [await first.refetch()]  # one that asks a little later
    assert CountingHook.fetches == 2
    assert {c.calls[0] for c in fresh} == {"v2"} and first.calls[0] == "v1"
    assert await CountingHook.aget_client("c") is fresh[0]  # the cache now serves the new client


async def test_a_cancelled_trigger_does_not_cancel_the_fetch_others_wait_for():
    DurableJobHook.clear_cache()
    CountingHook.fetches = 0
    first = asyncio.create_task(CountingHook.aget_client("c"))
    second = asyncio.create_task(CountingHook.aget_client("c"))
    await asyncio.sleep(0.01)
    first.cancel()
    assert (await second) is not None and CountingHook.fetches == 1


def test_byte_sizes_from_connection_extras():
    assert byte_size(None, 5) == 5
    assert byte_size("64MiB", 5) == 64 * 1024 * 1024
    assert byte_size(1000, 5) == 1000
    for bad in ("lots", -1, True, "0"):
        with pytest.raises(ValueError, match="max_response_bytes"):
            byte_size(bad, 5)
