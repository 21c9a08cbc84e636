"""Our Spark client against Spark's real HA: two masters recovering through a real ZooKeeper, the active one SIGKILLed.

The cluster (:class:`~durable_jobs_harness.spark_cluster.SparkHACluster`) is started once for the module; each
test kills whichever master is active, waits for the standby to take over (the takeover times are printed),
and starts the killed one again as the new standby, so the next test finds a pair again. The client is given
both masters in the order a, b, so after the first kill it talks to the second one it knows of.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from durable_jobs import failpoints
from durable_jobs.clients.base import Locator, locator_key
from durable_jobs.clients.spark_standalone import SparkStandaloneClient
from durable_jobs.polling import wait_for_outcome
from durable_jobs.protocol import Defer, RetryLater
from durable_jobs.record import STATE_KEY
from durable_jobs.status import JobState
from durable_jobs.transport.http import close_sessions
from durable_jobs_harness.spark_cluster import SparkHACluster, TestApps
from durable_jobs_harness.spark_fixtures import make_ha_client

from .test_spark_standalone import FAST, DictStore, LoopRunner, jar_app, new_token, protocol, record_submissions

pytestmark = pytest.mark.spark

RUN_LIMIT = 120.0


@pytest.fixture
async def ha_client(spark_ha: SparkHACluster) -> AsyncIterator[SparkStandaloneClient]:
    yield make_ha_client(spark_ha)
    await close_sessions()
    await asyncio.sleep(0)


@pytest.fixture
def failover(spark_ha: SparkHACluster) -> Iterator[list[str]]:
    """The names of the masters the test killed; they are started again (as standbys) after it."""
    killed: list[str] = []
    yield killed
    for name in killed:
        if spark_ha.pid_of(name) is None:
            spark_ha.start_master(name)


def kill_active(cluster: SparkHACluster, killed: list[str]) -> str:
    """SIGKILL the active master, wait for the standby to take over; the new active master's name."""
    old = cluster.active_master()
    assert old is not None, cluster.logs_tail()
    cluster.kill_master(old)
    killed.append(old)
    new, seconds = cluster.wait_for_takeover()
    assert new != old
    print(f"\nmaster {old} killed; master {new} ALIVE with the worker back after {seconds:.1f}s")
    return new


async def wait_state(client: SparkStandaloneClient, loc: Locator, *states: JobState) -> JobState:
    deadline = time.monotonic() + RUN_LIMIT
    while True:
        try:
            state = (await client.status(loc)).state
        except Exception:  # a takeover in progress: no master answers as ALIVE yet
            state = JobState.UNKNOWN
        if state in states:
            return state
        assert time.monotonic() < deadline, f"{loc} never reached {states}; last {state}"
        await asyncio.sleep(0.3)


def active_driver_ids(cluster: SparkHACluster) -> set[str]:
    return {str(d["id"]) for d in cluster.json_state().get("activedrivers", ())}


async def test_the_standby_recovers_running_drivers_and_statuses_follow_it(
    spark_ha: SparkHACluster, spark_apps: TestApps, ha_client: SparkStandaloneClient, failover: list[str]
) -> None:
    apps = [jar_app(spark_apps, ["25", "0", "ok"], f"ha-run-{i}") for i in range(2)]
    locs = [await ha_client.submit(app, new_token()) for app in apps]
    for loc in locs:
        await wait_state(ha_client, loc, JobState.RUNNING)

    kill_active(spark_ha, failover)

    # the new active master recovered both drivers from ZooKeeper, under the same ids, still running
    assert {loc["driver_id"] for loc in locs} <= active_driver_ids(spark_ha)
    batch = await ha_client.statuses(locs)  # one /json/ of the new active master
    assert {st.state for st in batch.values()} == {JobState.RUNNING}, batch
    assert set(batch) == {locator_key(loc) for loc in locs}
    # and each one ends as it should, read from the master that took over
    for loc in locs:
        result = await wait_for_outcome(ha_client, loc, FAST, deadline=time.time() + RUN_LIMIT)
        assert result.status == "succeeded", result


async def test_after_a_takeover_submit_find_and_cancel_go_to_the_new_master(
    spark_ha: SparkHACluster, spark_apps: TestApps, ha_client: SparkStandaloneClient, failover: list[str]
) -> None:
    app = jar_app(spark_apps, ["60", "0", "ok"], "ha-find")
    token = new_token()
    since = time.time()
    before = await ha_client.submit(app, token)
    await wait_state(ha_client, before, JobState.RUNNING)

    new = kill_active(spark_ha, failover)

    # find reads the new master's /json/ and the worker's launch command: the driver submitted before the kill
    found = None
    deadline = time.monotonic() + RUN_LIMIT
    while found is None:
        try:
            found = await ha_client.find(token, since=since, spec=app)
        except Exception:  # undecidable while a launch command is being written
            assert time.monotonic() < deadline
            await asyncio.sleep(0.5)
            continue
        assert found == before, found
    # a new submission lands on the master that took over (the other one is dead, or a standby)
    after = await ha_client.submit(jar_app(spark_apps, ["60", "0", "ok"], "ha-after"), new_token())
    assert after["driver_id"] in active_driver_ids(spark_ha) and spark_ha.active_master() == new
    for loc in (before, after):
        await ha_client.cancel(loc)
        assert await wait_state(ha_client, loc, JobState.CANCELLED) is JobState.CANCELLED


def test_master_killed_between_submit_and_persist_the_retry_adopts_from_the_new_master(
    spark_ha: SparkHACluster, spark_apps: TestApps, failover: list[str]
) -> None:
    """The protocol's after_submit crash with the active master dying before the next try: the driver survives
    the takeover and the next try adopts it by token from the new master; one driver."""
    run = LoopRunner()
    client = make_ha_client(spark_ha)
    submitted = record_submissions(client)
    try:
        store = DictStore()
        app = jar_app(spark_apps, ["40", "0", "ok"], "ha-adopt")
        run_id = f"ha-adopt-{uuid.uuid4().hex[:8]}"
        failpoints.configure(f"{failpoints.AFTER_SUBMIT}=raise")
        with pytest.raises(failpoints.SimulatedCrash):
            protocol(client, store, run, app, run_id=run_id, try_number=1).start()
        failpoints.configure("")
        assert len(submitted) == 1 and store.data[STATE_KEY]["job"] is None

        kill_active(spark_ha, failover)

        deadline = time.monotonic() + RUN_LIMIT
        try_number = 2
        while True:
            try:
                decision = protocol(client, store, run, app, run_id=run_id, try_number=try_number).start()
                break
            except RetryLater:
                assert time.monotonic() < deadline, spark_ha.logs_tail()
                time.sleep(0.5)
                try_number += 1
        assert isinstance(decision, Defer), decision
        rec = decision.record
        if rec.generation == 0:  # the usual case: the new master recovered the driver, the retry adopted it
            assert decision.adopted is True and rec.job == submitted[0], decision
            assert len(submitted) == 1, submitted
        else:
            # Spark's recovery race (docs/spark-standalone.md): the worker re-registered on its own while the new
            # master was RECOVERING, before it had re-attached the driver, and the master killed the driver as
            # unknown. The retry still adopted generation 0 by its token, saw it KILLED, and started generation 1.
            print(f"\nthe new master killed {submitted[0]} during its recovery; generation 1 is {rec.job}")
            assert [h["job"] for h in rec.history] == [submitted[0]], rec
            assert rec.history[0]["outcome"] == "cancelled" and rec.generation == 1, rec
            assert submitted[1:] == [rec.job], submitted
        assert rec.job is not None
        result = run(wait_for_outcome(client, rec.job, FAST, deadline=time.time() + RUN_LIMIT))
        assert result.status == "succeeded", result
    finally:
        failpoints.configure("")
        for loc in submitted:
            run(client.cancel(loc))
        run.close()


async def test_a_driver_that_ended_before_the_takeover_is_forgotten_by_the_new_master(
    spark_ha: SparkHACluster, spark_apps: TestApps, ha_client: SparkStandaloneClient, failover: list[str]
) -> None:
    """Spark removes a driver from ZooKeeper when it ends: the master that takes over never knew it. Both sources
    agree that it is unknown, so our client says LOST (and ``on_lost`` decides; docs/spark-standalone.md), never
    FAILED and never the success it was."""
    loc = await ha_client.submit(jar_app(spark_apps, ["1", "0", "ok"], "ha-ended"), new_token())
    assert await wait_state(ha_client, loc, JobState.SUCCEEDED) is JobState.SUCCEEDED

    kill_active(spark_ha, failover)

    status = await ha_client.status(loc)
    assert status.state is JobState.LOST, status
    assert "does not know" in status.message
