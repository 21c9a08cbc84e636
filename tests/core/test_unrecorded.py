"""A try that finds no record: it looks before submitting when an earlier try of its run could have submitted.

Scripted client; the per-system lookups are pinned by each system's contract tests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any, ClassVar

import pytest

from durable_jobs import metrics
from durable_jobs.clients.emr.clusters import EmrClusterClient
from durable_jobs.clients.emr.eks import EmrEksClient
from durable_jobs.clients.emr.serverless import EmrServerlessClient
from durable_jobs.clients.emr.steps import EmrStepClient
from durable_jobs.clients.kubernetes.client import KubernetesClient
from durable_jobs.clients.spark_standalone.client import SparkStandaloneClient
from durable_jobs.clients.yarn.client import YarnClient
from durable_jobs.operators.base import _run_after
from durable_jobs.protocol import Defer, Finished, JobLost, JobProtocol, ProtocolSettings, RetryLater, deadline_pad
from durable_jobs.record import STATE_KEY, Outcome, Phase, TaskIdentity
from durable_jobs.status import JobState
from durable_jobs.testing.scripted import FakeJob, ScriptedClient
from tests.core.test_protocol import DictStore as Store

R, S, F, C = JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED
DAY = 86400.0


class Client(ScriptedClient):
    """Remembers the ``since`` of each find, and what was decided (for the order of record and decision)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.since: list[float] = []

    async def find(self, token: str, *, since: float, spec: Any, reserved: Any = None) -> Any:
        self.since.append(since)
        return await super().find(token, since=since, spec=spec, reserved=reserved)


class Blind(Client):
    find_unrecorded: ClassVar[bool] = False


_loops: list[asyncio.AbstractEventLoop] = []


@pytest.fixture(autouse=True)
def _close_loops() -> Iterator[None]:
    yield
    while _loops:
        _loops.pop().close()


def identity(try_number: int, clear_number: int = 0) -> TaskIdentity:
    return TaskIdentity("dag", "run1", "task", -1, try_number, clear_number)


def proto(
    client: ScriptedClient,
    store: Store,
    try_number: int,
    *,
    clear_number: int = 0,
    run_after: float | None = None,
    **settings: Any,
) -> JobProtocol:
    loop = asyncio.new_event_loop()
    _loops.append(loop)
    settings.setdefault("confirm_delay", 0.0)
    return JobProtocol(
        client=client,
        store=store,
        identity=identity(try_number, clear_number),
        spec=lambda _record: {"app": "x"},
        run=loop.run_until_complete,
        settings=ProtocolSettings(**settings),
        sleep=lambda s: None,
        run_after=run_after,
    )


def existing(client: ScriptedClient, generation: int, *states: JobState, job_id: str | None = None) -> str:
    """A job an earlier try submitted for ``generation``, whose record is gone."""
    jid = job_id or f"job-g{generation}"
    client.jobs[jid] = FakeJob(jid, identity(1).token(generation), {"app": "x"}, list(states))
    return jid


def decisions(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "durable_jobs.protocol" and r.levelno == logging.INFO]


# --- 20: a first try pays nothing --------------------------------------------------------------------------------


def test_first_try_of_an_uncleared_run_submits_without_looking(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    client, store = Client(), Store()
    decision = proto(client, store, 1).start()
    assert isinstance(decision, Defer) and decision.record.generation == 0
    assert client.calls == ["submit"]
    assert decisions(caplog)[0] == "No job recorded for dag.task run run1: submitting generation 0"


# --- 21: an earlier try could have submitted ------------------------------------------------------------------


def test_a_running_job_found_by_its_token_is_adopted_and_recorded_before_deferring(
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.INFO)
    client, store = Client(), Store()
    existing(client, 0, R)
    decision = proto(client, store, 2).start()
    assert isinstance(decision, Defer) and decision.adopted
    assert decision.record.job == {"id": "job-g0"} and decision.record.generation == 0
    assert client.submissions() == 1  # nothing submitted
    assert "submit" not in client.calls
    # looked up once (generation 0), then stopped: nothing follows a job that has not ended
    assert client.calls == ["find", "status"]
    saved = store.data[STATE_KEY]
    assert saved["phase"] == Phase.SUBMITTED.value and saved["job"] == {"id": "job-g0"}
    assert saved["submitted_try"] == 0  # which try submitted it is not known
    line = decisions(caplog)[-1]
    assert line.startswith("No job recorded for dag.task run run1, but id=job-g0 (generation 0) carries its token")
    assert "the record was lost" in line and "adopting it" in line and "RUNNING" in line
    # the next try re-attaches from the record, without looking again
    client.calls.clear()
    assert isinstance(proto(client, store, 3).start(), Defer)
    assert client.calls == ["status"]


def test_a_clear_of_a_first_try_looks_too():
    client, store = Client(), Store()
    existing(client, 0, R)
    decision = proto(client, store, 1, clear_number=1).start()
    assert isinstance(decision, Defer) and decision.record.job == {"id": "job-g0"}
    assert client.submissions() == 1


def test_a_failed_generation_is_followed_by_the_next_one_submitted_once():
    client, store = Client(scripts=[[R]]), Store()
    existing(client, 0, F)
    decision = proto(client, store, 2).start()
    assert isinstance(decision, Defer) and not decision.adopted
    assert decision.record.generation == 1 and decision.record.token == identity(1).token(1)
    assert client.submissions(identity(1).token(1)) == 1 and client.submissions() == 2
    assert client.calls == ["find", "status", "find", "submit"]
    saved = store.data[STATE_KEY]
    assert saved["generation"] == 1 and saved["submitted_try"] == 2
    assert [(h["generation"], h["job"], h["outcome"]) for h in saved["history"]] == [(0, {"id": "job-g0"}, "failed")]


def test_a_succeeded_job_is_returned_without_submitting(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    client, store = Client(), Store()
    existing(client, 0, S)
    decision = proto(client, store, 2).start()
    assert isinstance(decision, Finished)
    assert "submit" not in client.calls
    saved = store.data[STATE_KEY]
    assert saved["phase"] == Phase.FINISHED.value and saved["outcome"] == Outcome.SUCCEEDED.value
    assert "already SUCCEEDED: returning its result" in decisions(caplog)[-1]


@pytest.mark.parametrize("fault", ["undecidable", "transient"])
def test_a_lookup_that_cannot_decide_fails_the_try_and_submits_nothing(fault: str):
    client, store = Client(), Store()
    if fault == "undecidable":
        client.undecidable = True
    else:
        client.down.add("find")
    with pytest.raises(RetryLater, match="Not submitting blindly"):
        proto(client, store, 2).start()
    assert client.submissions() == 0 and "submit" not in client.calls
    assert store.data == {}  # nothing recorded either: the next try looks again


def test_a_lookup_failing_at_a_later_generation_submits_nothing():
    client, store = Client(), Store()
    existing(client, 0, F)
    calls = 0
    orig = client.find

    async def find(token: str, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            client.down.add("find")
        return await orig(token, **kw)

    client.find = find  # type: ignore[method-assign]
    with pytest.raises(RetryLater):
        proto(client, store, 2).start()
    assert client.submissions() == 1  # only the earlier try's job


def test_probing_stops_at_try_number_generations_when_nothing_is_found(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    client, store = Client(), Store()
    decision = proto(client, store, 3).start()
    assert isinstance(decision, Defer) and decision.record.generation == 0
    assert client.calls == ["find", "find", "find", "submit"]
    assert "generations 0 to 2" in decisions(caplog)[-2]


def test_an_old_generation_gone_does_not_hide_a_later_one():
    # generation 0 was deleted after it ended (a TTL), generation 1 still runs
    client, store = Client(), Store()
    existing(client, 1, R)
    decision = proto(client, store, 3).start()
    assert isinstance(decision, Defer) and decision.record.job == {"id": "job-g1"}
    assert client.submissions() == 1
    # ... and when it ended FAILED, generation 2 follows
    client, store = Client(), Store()
    existing(client, 1, F)
    decision = proto(client, store, 3).start()
    assert decision.record.generation == 2 and client.submissions(identity(1).token(2)) == 1


def test_probing_goes_past_the_bound_while_ended_jobs_are_found():
    # a try that resumed from the triggerer may have submitted a second generation: try 2 knows of up to three
    client, store = Client(), Store()
    existing(client, 0, F)
    existing(client, 1, C)
    existing(client, 2, R)
    decision = proto(client, store, 2).start()
    assert isinstance(decision, Defer) and decision.record.job == {"id": "job-g2"}
    assert client.submissions() == 3
    assert [h["generation"] for h in store.data[STATE_KEY]["history"]] == [0, 1]


def test_a_job_found_then_forgotten_follows_on_lost():
    client, store = Client(), Store()
    existing(client, 0, R)
    client.forget.add("job-g0")
    with pytest.raises(JobLost):
        proto(client, store, 2).start()
    assert store.data[STATE_KEY]["outcome"] == Outcome.LOST.value and "submit" not in client.calls
    client, store = Client(scripts=[[R]]), Store()
    existing(client, 0, R)
    client.forget.add("job-g0")
    decision = proto(client, store, 2, on_lost="resubmit").start()
    assert decision.record.generation == 1 and client.submissions(identity(1).token(1)) == 1


def test_since_is_the_run_after_or_the_timeout_before_now_whichever_is_later():
    timeout, pad = 3600.0, deadline_pad(30.0)
    recent = time.time() - 60
    client = Client()
    proto(client, Store(), 2, run_after=recent, timeout=timeout, deadline_pad=pad).start()
    assert client.since == [recent, recent]
    # a run from months ago, cleared today: the cap keeps the lookup to the job's timeout
    client = Client()
    before = time.time()
    proto(client, Store(), 2, run_after=before - 90 * DAY, timeout=timeout, deadline_pad=pad).start()
    assert all(before - timeout - pad - 1 <= s <= time.time() - timeout - pad for s in client.since)
    # no run_after (a context without a DAG run): the cap alone
    client = Client()
    proto(client, Store(), 2, timeout=timeout, deadline_pad=pad).start()
    assert all(s >= before - timeout - pad - 1 for s in client.since)
    # no timeout and no run_after: nothing bounds it
    client = Client()
    proto(client, Store(), 2).start()
    assert client.since == [0.0, 0.0]


def test_the_operator_passes_the_runs_run_after():
    class Run:
        run_after = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)

    assert _run_after({"dag_run": Run()}) == Run.run_after.timestamp()
    assert _run_after({}) is None
    assert deadline_pad(10.0) == 60.0 and deadline_pad(45.0) == 90.0


def test_the_adoption_is_its_own_decision():
    assert metrics.UNRECORDED in metrics.DECISIONS


# --- 22: clients that do not look -------------------------------------------------------------------------------


def test_a_client_that_cannot_look_submits_and_warns(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    client, store = Blind(), Store()
    existing(client, 0, R)
    decision = proto(client, store, 2).start()
    assert isinstance(decision, Defer) and decision.record.job != {"id": "job-g0"}
    assert client.calls == ["submit"] and client.submissions() == 2
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("or the record was lost" in w and "may run twice" in w for w in warned)


@pytest.mark.parametrize(
    ("client", "looks"),
    [
        (KubernetesClient, True),  # one GET by the name the token gives
        (YarnClient, True),  # one applications query by the token's tag
        (EmrServerlessClient, True),  # one listing bounded by since (clientToken)
        (EmrEksClient, True),
        (SparkStandaloneClient, False),  # every driver and its worker's log; undecidable ones block
        (EmrStepClient, False),  # no client token; pages grow with the window
        (EmrClusterClient, False),  # clusters are listed region-wide
    ],
)
def test_which_clients_look_up_a_lost_record(client: type[Any], looks: bool):
    assert client.find_unrecorded is looks
