"""A try that reads a tombstone: never two generations at once (the clear race after a mark)."""

from __future__ import annotations

from typing import Any

import pytest

from durable_jobs.protocol import Defer, RetryLater
from durable_jobs.record import STATE_KEY, JobRecord, Outcome, Phase
from durable_jobs.status import JobState
from durable_jobs.testing.scripted import ScriptedClient
from tests.core.test_protocol import DictStore, ident, proto

R = JobState.RUNNING


def tombstoned(client: ScriptedClient, store: DictStore, *, cancel: bool = True) -> str:
    """Generation 0 submitted by try 1, then its task marked failed: the listener's tombstone."""
    p = proto(client, store)
    first = p.start()
    assert isinstance(first, Defer) and first.record.job is not None
    rec = JobRecord.from_json(store.data[STATE_KEY], system="scripted", identity=ident())
    tomb = rec.tombstone("mark_failed", ti_id="ti-1") if cancel else rec.finished(Outcome.CANCELLED, "old style")
    store.set(STATE_KEY, tomb.to_json())
    return str(first.record.job["id"])


def cleared_try(client: ScriptedClient, store: DictStore, **settings: Any) -> Any:
    p = proto(client, store, try_number=2, clear_number=1, **settings)
    return p, p.start()


def test_old_job_still_active_is_cancelled_then_generation_1_submitted_once() -> None:
    client, store = ScriptedClient(scripts=[[R]]), DictStore()
    old = tombstoned(client, store)
    client.calls.clear()
    _, decision = cleared_try(client, store)
    assert isinstance(decision, Defer) and decision.record.generation == 1
    assert client.jobs[old].cancelled
    # status, cancel, status (ended), then the new generation: the old one ended before the submit
    assert client.calls == ["status", "cancel", "status", "submit"]
    assert client.submissions() == 2 and client.submissions(decision.record.token) == 1


def test_old_job_already_ended_submits_generation_1_at_once() -> None:
    client, store = ScriptedClient(scripts=[[R]]), DictStore()
    old = tombstoned(client, store)
    client.jobs[old].cancelled = True  # the reaper's callback came first
    client.calls.clear()
    _, decision = cleared_try(client, store)
    assert isinstance(decision, Defer) and decision.record.generation == 1
    assert client.calls == ["status", "submit"]


def test_old_job_that_will_not_stop_is_waited_for_then_retry_later_nothing_submitted() -> None:
    client, store = ScriptedClient(scripts=[[R]]), DictStore()
    old = tombstoned(client, store)

    async def ignore(locator: Any) -> None:
        client.calls.append("cancel")  # the system accepts the request but the job keeps running

    client.cancel = ignore  # type: ignore[method-assign]
    client.calls.clear()
    with pytest.raises(RetryLater, match="still RUNNING after 4s; not submitting generation 1 while it runs"):
        cleared_try(client, store, cancel_wait=4.0, confirm_delay=1.0)
    assert client.submissions() == 1 and not client.jobs[old].cancelled
    assert client.calls.count("status") == 6  # one before the cancel, one after, then one a second for 4s
    assert store.data[STATE_KEY]["phase"] == Phase.FINISHED.value  # the tombstone is untouched


def test_cancel_failing_transiently_is_retry_later() -> None:
    client, store = ScriptedClient(scripts=[[R]]), DictStore()
    tombstoned(client, store)
    client.down = {"cancel"}
    with pytest.raises(RetryLater, match="cancelling id=job-1 of the marked try failed"):
        cleared_try(client, store)
    assert client.submissions() == 1


def test_old_style_tombstone_without_cancel_goes_straight_to_the_next_generation() -> None:
    client, store = ScriptedClient(scripts=[[R]]), DictStore()
    tombstoned(client, store, cancel=False)
    client.calls.clear()
    _, decision = cleared_try(client, store)
    assert isinstance(decision, Defer) and decision.record.generation == 1
    assert client.calls == ["submit"]  # the existing rule: a CANCELLED outcome is a confirmed end


def test_the_intent_names_the_connection_and_hook() -> None:
    client, store = ScriptedClient(scripts=[[R]]), DictStore()
    p = proto(client, store)
    p.conn_id, p.hook = "conn_a", "pkg.mod.Hook"
    p.start()
    assert (store.log[0]["conn_id"], store.log[0]["hook"]) == ("conn_a", "pkg.mod.Hook")
    assert store.data[STATE_KEY]["conn_id"] == "conn_a"
