"""Rotated AWS keys reach waiting triggers, and find adopts whatever the workers' clocks say.

Both run against the fake EMR on 127.0.0.1 (``FakeEmr``): it checks the SigV4 access key id of every request
like AWS (``UnrecognizedClientException`` for a key it does not know), and its clock (creation times,
``CreatedAfter`` filters, the ``Date`` header) is the real one while a test skews the workers'.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from durable_jobs import failpoints
from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.emr import EmrClusterHook, EmrEksHook, EmrServerlessHook, EmrStepHook
from durable_jobs.polling import active_pollers
from durable_jobs.protocol import Defer
from durable_jobs.record import STATE_KEY, make_token
from durable_jobs.transport.http import close_sessions
from durable_jobs.triggers.base import DurableJobTrigger
from durable_jobs.triggers.emr import EmrClusterTrigger, EmrEksTrigger, EmrServerlessTrigger, EmrStepTrigger
from durable_jobs_harness.moto_emr import REGION, DictStore, FakeEmr, eventually, protocol
from tests.emr.test_emr_hostile import FLAVOURS, Flavour, fake_loop

OLD_KEY, OLD_SECRET = "AKIAROTATEOLD0000001", "old-secret-0123456789abcdefghijklmnopqrs"
NEW_KEY, NEW_SECRET = "AKIAROTATENEW0000002", "new-secret-0123456789abcdefghijklmnopqrs"
HOOKS: dict[str, tuple[type[DurableJobHook], type[DurableJobTrigger]]] = {
    "step": (EmrStepHook, EmrStepTrigger),
    "cluster": (EmrClusterHook, EmrClusterTrigger),
    "serverless": (EmrServerlessHook, EmrServerlessTrigger),
    "eks": (EmrEksHook, EmrEksTrigger),
}


@pytest.fixture(params=FLAVOURS, ids=lambda f: f.name)
def flavour(request: pytest.FixtureRequest) -> Flavour:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def fake() -> AsyncIterator[FakeEmr]:
    server = await FakeEmr().start()
    try:
        yield server
    finally:
        await close_sessions()
        await server.stop()


def connection(fake: FakeEmr, key: str, secret: str) -> str:
    return json.dumps(
        {
            "conn_type": "aws",
            "login": key,
            "password": secret,
            "extra": {
                "region_name": REGION,
                "endpoint_url": fake.endpoint,
                "config_kwargs": {"read_timeout": 2, "connect_timeout": 2},
                "durable_jobs": {"retry_budget": 0, "backoff_base": 0.01, "backoff_cap": 0.02},
            },
        }
    )


def jobs_of(fake: FakeEmr, flavour: Flavour, n: int) -> list[dict[str, str]]:
    """``n`` running jobs on the fake (in one cluster or container where the flavour has one)."""
    if flavour.name == "step":
        cid = fake.add_cluster()
        return [{"cluster_id": cid, "step_id": fake.add_step(cid)} for _ in range(n)]
    if flavour.name == "cluster":
        return [{"cluster_id": fake.add_cluster(state="STARTING")} for _ in range(n)]
    container = fake.add_application() if flavour.name == "serverless" else fake.add_virtual_cluster()
    field = "application_id" if flavour.name == "serverless" else "virtual_cluster_id"
    return [{field: container, "job_run_id": fake.add_run(container)} for _ in range(n)]


# --- credentials rotate -----------------------------------------------------------------------------------


async def test_rotated_keys_reach_every_waiting_trigger_with_one_refetch(
    fake: FakeEmr, flavour: Flavour, monkeypatch: pytest.MonkeyPatch
):
    hook, trigger_class = HOOKS[flavour.name]
    monkeypatch.setenv("AIRFLOW_CONN_AWS_ROTATING", connection(fake, OLD_KEY, OLD_SECRET))
    DurableJobHook.clear_cache()
    fetches: list[str] = []
    original = hook.aget_connection

    async def counting(conn_id: str) -> Any:
        fetches.append(conn_id)
        return await original(conn_id)

    monkeypatch.setattr(hook, "aget_connection", counting)
    fake.accepted_keys = {OLD_KEY}
    jobs = jobs_of(fake, flavour, 4)

    def trigger(loc: dict[str, str], i: int) -> DurableJobTrigger:
        token = make_token("dag", "run", f"t{i}", -1, 0)
        return trigger_class(job=loc, conn_id="aws_rotating", token=token, generation=0, poll_interval=0.05)

    try:
        waiting = [asyncio.create_task(trigger(loc, i).run().__anext__()) for i, loc in enumerate(jobs)]
        await eventually(lambda: len(fake.calls) >= 3, timeout=20, what="polls with the first keys")
        assert {c.key_id for c in fake.calls} == {OLD_KEY} and fetches == ["aws_rotating"]

        # the keys are rotated: AWS refuses the old ones, the connection holds the new ones
        rotated_at = len(fake.calls)
        fake.accepted_keys = {NEW_KEY}
        monkeypatch.setenv("AIRFLOW_CONN_AWS_ROTATING", connection(fake, NEW_KEY, NEW_SECRET))
        await eventually(lambda: any(c.key_id == NEW_KEY for c in fake.calls), timeout=20, what="the new keys used")
        assert not any(w.done() for w in waiting)  # the refusal did not end any wait

        late_job = jobs_of(fake, flavour, 1)[0]
        waiting.append(asyncio.create_task(trigger(late_job, 99).run().__anext__()))  # after the rotation
        await asyncio.sleep(0.3)
        for loc in [*jobs, late_job]:
            flavour.finish(fake, loc)
        events = await asyncio.wait_for(asyncio.gather(*waiting), 30)
    finally:
        DurableJobHook.clear_cache()
    assert [e.payload["status"] for e in events] == ["succeeded"] * 5
    assert fetches == ["aws_rotating", "aws_rotating"]  # the first fetch, and one refetch for every trigger
    first_new = next(i for i, c in enumerate(fake.calls) if c.key_id == NEW_KEY)
    assert all(c.key_id == NEW_KEY for c in fake.calls[first_new:])  # nothing asked with the old keys since
    refused = [c for c in fake.calls[rotated_at:] if c.key_id == OLD_KEY]
    assert 1 <= len(refused) <= len(jobs)  # only the one poll that met the rotation
    assert sum(p.refreshes for p in active_pollers()) <= 1


async def test_the_poller_key_is_the_same_before_and_after_a_rotation(fake: FakeEmr):
    before = EmrStepHook.client_from_connection(_conn(connection(fake, OLD_KEY, OLD_SECRET)))
    after = EmrStepHook.client_from_connection(_conn(connection(fake, NEW_KEY, NEW_SECRET)))
    assert before.key == after.key
    for text in (json.dumps(before.key), repr(before.key), repr(getattr(before, "config", ""))):
        assert OLD_SECRET not in text and OLD_KEY not in text


def _conn(text: str) -> Any:
    from airflow.sdk import Connection

    data = json.loads(text)
    return Connection(
        conn_id="aws_rotating",
        conn_type="aws",
        login=data["login"],
        password=data["password"],
        extra=json.dumps(data["extra"]),
    )


# --- clocks ---------------------------------------------------------------------------------------------


@pytest.fixture
def skew(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[float], None]]:
    """Set the workers' clock ``seconds`` off the real one (the fake keeps the real one)."""
    real = time.time

    def set_skew(seconds: float) -> None:
        monkeypatch.setattr(time, "time", lambda: real() + seconds)

    yield set_skew
    monkeypatch.setattr(time, "time", real)


@pytest.mark.parametrize(
    ("crashed", "retry"),
    [(600, 600), (-600, -600), (600, -600), (-600, 600)],
    ids=["both-ahead", "both-behind", "ahead-then-behind", "behind-then-ahead"],
)
def test_find_adopts_the_crashed_tries_job_whatever_the_clocks(
    flavour: Flavour, skew: Callable[[float], None], crashed: float, retry: float
):
    """A try whose clock is 10 minutes off AWS's submits and dies before recording the job; the retry
    (on a worker whose clock is off either way) adopts that job and never starts a second one."""
    store = DictStore()
    with fake_loop() as (run, fake, _other):
        client = flavour.client(fake)
        spec, count = flavour.spec_and_count(fake)
        skew(crashed)
        failpoints.configure(f"{failpoints.AFTER_SUBMIT}=raise")
        with pytest.raises(failpoints.SimulatedCrash):
            protocol(client, store, spec, run).start()
        failpoints.configure("")
        assert count() == 1 and store.data[STATE_KEY]["job"] is None
        skew(retry)
        fresh = flavour.client(fake)  # another worker: it has not seen AWS's clock yet
        decision = protocol(fresh, store, spec, run, try_number=2).start()
        assert isinstance(decision, Defer) and decision.adopted
        assert count() == 1 and fake.count(flavour.submit_action) == 1


def test_aws_clock_behind_widens_the_find_window_and_a_wrong_date_cannot_narrow_it(fake: FakeEmr):
    from durable_jobs.clients.emr import EmrStepClient
    from durable_jobs.clients.emr.aws import FIND_WINDOW, MAX_CLOCK_WIDENING

    client = EmrStepClient(fake.config())
    since = time.time()
    assert client.find_cutoff(since) == since - FIND_WINDOW  # no answer read yet
    client.clock_offset = -1800.0  # AWS half an hour behind us
    assert client.find_cutoff(since) == since - FIND_WINDOW - 1800
    client.clock_offset = +1800.0  # ahead: never narrower than the window
    assert client.find_cutoff(since) == since - FIND_WINDOW
    client.clock_offset = -1e12  # a nonsense Date header widens at most this much
    assert client.find_cutoff(since) == since - FIND_WINDOW - MAX_CLOCK_WIDENING


async def test_the_date_header_of_answers_gives_aws_clock(fake: FakeEmr):
    from durable_jobs.clients.emr import EmrStepClient

    fake.clock_skew = -900.0
    client = EmrStepClient(fake.config())
    await client.send("list_clusters", what="list")
    assert client.clock_offset is not None and abs(client.clock_offset + 900) < 5
