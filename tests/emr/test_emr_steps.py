"""EMR steps and clusters against moto over real HTTP: lifecycles played by editing moto's backend objects."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from durable_jobs.clients.base import locator_key
from durable_jobs.clients.emr import EmrCluster, EmrClusterClient, EmrStep, EmrStepClient
from durable_jobs.clients.emr.aws_pool import clients_created
from durable_jobs.errors import AuthError, PermanentError
from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.polling import PollSettings, poller_for, wait_for_outcome
from durable_jobs.record import make_token
from durable_jobs.status import JobState
from durable_jobs.transport.http import close_sessions
from durable_jobs.triggers.emr import EmrClusterTrigger, EmrStepTrigger
from durable_jobs_harness.moto_emr import MotoEmr, eventually, watch_until

TOKEN = make_token("dag", "run", "step", -1, 0)
FAST = PollSettings(interval=0.02, lost_confirmations=2)


@pytest.fixture
async def steps(moto: MotoEmr) -> AsyncIterator[EmrStepClient]:
    yield EmrStepClient(moto.config())
    await close_sessions()


@pytest.fixture
def aws_conn(moto: MotoEmr, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_MOTO", moto.connection())
    DurableJobHook.clear_cache()
    yield "aws_moto"
    DurableJobHook.clear_cache()


def busy_cluster(moto: MotoEmr) -> str:
    """A cluster already running a step, so that a new step starts PENDING (moto runs only the first)."""
    cid = moto.create_cluster()
    moto.cluster(cid).add_steps([{"name": "earlier", "hadoop_jar_step": {"Jar": "x.jar"}}])
    return cid


def spec(cid: str, name: str = "spark-pi") -> EmrStep:
    return EmrStep(cluster_id=cid, name=name, args=["spark-submit", "--deploy-mode", "cluster", "s3://b/pi.py"])


# --- lifecycles -----------------------------------------------------------------------------------------


async def test_step_lifecycle_pending_running_completed(moto: MotoEmr, steps: EmrStepClient):
    cid = busy_cluster(moto)
    loc = await steps.submit(spec(cid), TOKEN)
    assert moto.step(cid, loc["step_id"]).name == f"spark-pi [{TOKEN}]"
    seen = []
    with poller_for(steps, FAST.interval).watching(loc, FAST) as watch:
        for raw in ("PENDING", "RUNNING", "COMPLETED"):
            if raw != "PENDING":
                moto.set_step(cid, loc["step_id"], raw)
            status = await watch_until(watch, lambda s, raw=raw: s.raw_state == raw)
            seen.append((status.raw_state, status.state))
    assert seen == [
        ("PENDING", JobState.PENDING),
        ("RUNNING", JobState.RUNNING),
        ("COMPLETED", JobState.SUCCEEDED),
    ]
    assert status.tracking_url == f"https://console.aws.amazon.com/emr/home?region=us-east-1#/clusterDetails/{cid}"
    step = moto.step(cid, loc["step_id"])
    assert step.end_date_time >= step.start_date_time
    assert moto.count("emr", "DescribeStep") == 0  # the poller lists; it never describes step by step


async def test_failed_step_reports_failure_details(moto: MotoEmr, steps: EmrStepClient):
    cid = busy_cluster(moto)
    loc = await steps.submit(spec(cid), TOKEN)
    failure = {"Reason": "Unknown Error.", "Message": "Exit code 1", "LogFile": "s3://logs/emr/j/steps/s/stderr.gz"}
    moto.set_step(cid, loc["step_id"], "FAILED", failure=failure)
    result = await wait_for_outcome(steps, loc, FAST)
    assert result.status == "failed"
    assert result.message == "Unknown Error. Exit code 1 (log: s3://logs/emr/j/steps/s/stderr.gz)"
    assert result.last is not None and result.last.extra["log_file"] == failure["LogFile"]
    # DescribeStep (the worker's single check) reads the same details
    single = await steps.status(loc)
    assert single.state is JobState.FAILED and single.message == result.message


async def test_interrupted_and_reason_without_failure_details(moto: MotoEmr, steps: EmrStepClient):
    cid = busy_cluster(moto)
    loc = await steps.submit(spec(cid), TOKEN)
    moto.set_step(cid, loc["step_id"], "INTERRUPTED")
    st = await steps.status(loc)
    assert (st.state, st.message) == (JobState.FAILED, "the step was interrupted (typically its cluster terminated)")
    moto.set_step(cid, loc["step_id"], "FAILED", reason="Exit code 3")
    assert (await steps.status(loc)).message == "Exit code 3"


async def test_cancel_running_step_goes_through_cancel_pending(moto: MotoEmr, steps: EmrStepClient):
    cid = moto.create_cluster()
    loc = await steps.submit(spec(cid), TOKEN)  # the cluster's first step: RUNNING
    with poller_for(steps, FAST.interval).watching(loc, FAST) as watch:
        await watch_until(watch, lambda s: s.raw_state == "RUNNING")
        await steps.cancel(loc)
        pending = await watch_until(watch, lambda s: s.raw_state == "CANCEL_PENDING")
        assert pending.state is JobState.RUNNING  # not terminal until EMR confirms
        moto.set_step(cid, loc["step_id"], "CANCELLED")
        done = await watch_until(watch, lambda s: s.state.is_terminal)
    assert done.state is JobState.CANCELLED


async def test_cancel_pending_step_and_cancel_of_finished_step_is_not_an_error(moto: MotoEmr, steps: EmrStepClient):
    cid = busy_cluster(moto)
    loc = await steps.submit(spec(cid), TOKEN)
    await steps.cancel(loc)
    assert (await steps.status(loc)).state is JobState.CANCELLED
    await steps.cancel(loc)  # again: EMR refuses for this one step, which is nothing to stop
    await steps.cancel({"cluster_id": "j-GONE00000000", "step_id": loc["step_id"]})  # unknown cluster
    assert moto.count("emr", "CancelSteps") == 3


async def test_unknown_step_and_unknown_cluster_are_lost_after_confirmation(moto: MotoEmr, steps: EmrStepClient):
    cid = moto.create_cluster()
    for loc in ({"cluster_id": cid, "step_id": "s-NOSUCHSTEP000"}, {"cluster_id": "j-NOSUCHCLUSTR", "step_id": "s-X"}):
        result = await wait_for_outcome(steps, loc, FAST)
        assert result.status == "lost", loc
        assert (await steps.status(loc)).state is JobState.LOST


# --- batched polling ------------------------------------------------------------------------------------


def add_bulk_steps(moto: MotoEmr, cid: str, n: int) -> list[dict[str, str]]:
    added = moto.cluster(cid).add_steps(
        [{"name": f"bulk-{i}", "hadoop_jar_step": {"Jar": "command-runner.jar"}} for i in range(n)]
    )
    return [{"cluster_id": cid, "step_id": s.id} for s in added]


async def test_statuses_cost_one_list_steps_per_page_of_active_steps(moto: MotoEmr, steps: EmrStepClient):
    big, small = moto.create_cluster("big"), moto.create_cluster("small")
    many = add_bulk_steps(moto, big, 500)
    few = add_bulk_steps(moto, small, 3)
    before = moto.count("emr", "ListSteps")
    result = await steps.statuses(many + few)
    # 500 active steps = 10 pages of 50 on the big cluster; one StepIds request for the 3 on the small one
    assert moto.count("emr", "ListSteps") - before == math.ceil(500 / 50) + 1
    assert moto.count("emr", "DescribeStep") == 0
    assert len(result) == 503 and {s.state for s in result.values()} == {JobState.RUNNING, JobState.PENDING}
    # a few steps that just ended are not active any more: fetched by id, 10 per request, once
    for loc in many[:8]:
        moto.set_step(big, loc["step_id"], "COMPLETED")
    before = moto.count("emr", "ListSteps")
    result = await steps.statuses(many)
    assert moto.count("emr", "ListSteps") - before == math.ceil(492 / 50) + 1
    assert sum(1 for s in result.values() if s.state is JobState.SUCCEEDED) == 8
    # many ended at once: one page of the newest ended steps serves them
    for loc in many[8:60]:
        moto.set_step(big, loc["step_id"], "FAILED")
    before = moto.count("emr", "ListSteps")
    result = await steps.statuses(many[8:])
    assert moto.count("emr", "ListSteps") - before == math.ceil(440 / 50) + math.ceil(52 / 50)
    assert sum(1 for s in result.values() if s.state is JobState.FAILED) == 52


async def test_a_poll_shares_one_status_per_state_and_keeps_no_page(moto: MotoEmr, steps: EmrStepClient):
    cid = moto.create_cluster()
    locs = add_bulk_steps(moto, cid, 120)  # moto runs the first step; the others are PENDING
    failure = {"Reason": "Unknown Error.", "Message": "Exit code 1", "LogFile": "s3://logs/emr/j/steps/s/stderr.gz"}
    moto.set_step(cid, locs[0]["step_id"], "FAILED", failure=failure)
    for loc in locs[1:3]:
        moto.set_step(cid, loc["step_id"], "RUNNING")
    result = await steps.statuses(locs)
    objects: dict[str, set[int]] = {}
    for loc in locs:
        objects.setdefault(result[locator_key(loc)].raw_state, set()).add(id(result[locator_key(loc)]))
    # one immutable status per state on the cluster, not one per step
    assert {raw: len(ids) for raw, ids in objects.items()} == {"FAILED": 1, "RUNNING": 1, "PENDING": 1}
    failed, running = result[locator_key(locs[0])], result[locator_key(locs[1])]
    assert failed.state is JobState.FAILED and failed.extra["log_file"] == failure["LogFile"]
    assert failed.message == "Unknown Error. Exit code 1 (log: s3://logs/emr/j/steps/s/stderr.gz)"
    assert running.state is JobState.RUNNING and running.tracking_url == steps.cluster_url(cid)
    # the poll reads each page as it comes and keeps none of them
    sizes: list[int] = []
    complete = await steps.pages(
        "list_steps",
        {"ClusterId": cid},
        what="list",
        items="Steps",
        marker_in="Marker",
        on_page=lambda page: sizes.append(len(page)) is not None,
    )
    assert complete and sizes == [50, 50, 20]


async def test_500_watchers_share_one_batch_per_interval(moto: MotoEmr, steps: EmrStepClient):
    cid = moto.create_cluster()
    locs = add_bulk_steps(moto, cid, 500)
    batches: list[int] = []
    lists_per_batch: list[int] = []
    original = steps.statuses

    async def counting(locators: Any) -> Any:
        before = moto.count("emr", "ListSteps")
        out = await original(locators)
        batches.append(len(locators))
        lists_per_batch.append(moto.count("emr", "ListSteps") - before)
        return out

    steps.statuses = counting  # type: ignore[method-assign]
    settings = PollSettings(interval=0.05)
    waits = [asyncio.create_task(wait_for_outcome(steps, loc, settings)) for loc in locs]
    await eventually(lambda: len(batches) >= 3, timeout=60, what="three poller ticks")
    for step in moto.steps(cid):
        step.state = "COMPLETED"
    results = await asyncio.wait_for(asyncio.gather(*waits), 60)
    assert {r.status for r in results} == {"succeeded"}
    assert max(batches) == 500  # every watcher is in the same batch
    assert lists_per_batch[:3] == [10, 10, 10]  # one ListSteps per page of 50, not one call per watched step
    assert moto.count("emr", "DescribeStep") == 0


# --- find by token --------------------------------------------------------------------------------------


async def test_find_pages_through_newer_steps_and_stops_at_older_ones(moto: MotoEmr, steps: EmrStepClient):
    cid = moto.create_cluster()
    old = add_bulk_steps(moto, cid, 120)
    # older than the window (an hour before the intent: clocks may disagree) ; moto keeps naive UTC
    two_hours_ago = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(hours=2)
    for loc in old:
        moto.step(cid, loc["step_id"]).creation_date_time = two_hours_ago
    since = time.time()
    mine = await steps.submit(spec(cid), TOKEN)
    add_bulk_steps(moto, cid, 70)  # newer steps push ours to the second page
    before = moto.count("emr", "ListSteps")
    assert await steps.find(TOKEN, since=since, spec=spec(cid)) == mine
    assert moto.count("emr", "ListSteps") - before == 2
    before = moto.count("emr", "ListSteps")
    assert await steps.find(make_token("dag", "run", "other", -1, 0), since=since, spec=spec(cid)) is None
    # pages: 70 new + ours + 120 old (newest first): the second page ends among the old ones, so it stops
    assert moto.count("emr", "ListSteps") - before == 2


# --- throttling and refusals ----------------------------------------------------------------------------


async def test_throttled_polls_back_off_and_never_fail(moto: MotoEmr, steps: EmrStepClient):
    cid = busy_cluster(moto)
    loc = await steps.submit(spec(cid), TOKEN)
    moto.fail("emr", "ListSteps", code="ThrottlingException", times=4)
    waiting = asyncio.create_task(wait_for_outcome(steps, loc, PollSettings(interval=0.02, unknown_budget=120)))
    await eventually(lambda: moto.faults[("emr", "ListSteps")].times == 0, what="four throttled polls")
    assert not waiting.done()
    moto.set_step(cid, loc["step_id"], "COMPLETED")
    result = await asyncio.wait_for(waiting, 30)
    assert result.status == "succeeded"


async def test_throttled_submit_retries_and_adopts_a_step_that_landed_anyway(moto: MotoEmr, steps: EmrStepClient):
    cid = moto.create_cluster()
    moto.fail("emr", "AddJobFlowSteps", code="ThrottlingException", times=2)
    first = await steps.submit(spec(cid), TOKEN)
    assert len(moto.steps_with_token(cid, TOKEN)) == 1 and moto.count("emr", "AddJobFlowSteps") == 3
    # AWS may apply a throttled call (aws/aws-sdk-ruby#825): the retry looks the step up before adding again
    other = make_token("dag", "run", "step", -1, 1)
    moto.fail("emr", "AddJobFlowSteps", code="ThrottlingException", times=1, applied=True)
    second = await steps.submit(spec(cid), other)
    assert len(moto.steps_with_token(cid, other)) == 1 and moto.count("emr", "AddJobFlowSteps") == 4
    assert second["step_id"] == moto.steps_with_token(cid, other)[0].id != first["step_id"]


async def test_access_denied_and_validation_fail_fast_with_a_clear_message(moto: MotoEmr, steps: EmrStepClient):
    cid = moto.create_cluster()
    moto.fail(
        "emr",
        "AddJobFlowSteps",
        code="AccessDeniedException",
        message="User: arn:aws:iam::123456789012:user/airflow is not authorized to perform: AddJobFlowSteps",
    )
    with pytest.raises(AuthError, match="not authorized to perform: AddJobFlowSteps") as denied:
        await steps.submit(spec(cid), TOKEN)
    assert "aws_moto" in str(denied.value) and "retrying will not help" in str(denied.value)
    moto.fail("emr", "AddJobFlowSteps", code="ValidationException", message="A step name is too long")
    with pytest.raises(PermanentError, match="ValidationException: A step name is too long"):
        await steps.submit(spec(cid), TOKEN)
    assert moto.count("emr", "AddJobFlowSteps") == 2  # one request each: no retries
    loc = await steps.submit(spec(cid), TOKEN)
    # ListSteps denied, DescribeStep allowed: the step is still watched, one by one
    moto.fail("emr", "ListSteps", code="AccessDeniedException", times=1000, message="no ListSteps for you")
    moto.set_step(cid, loc["step_id"], "COMPLETED")
    result = await asyncio.wait_for(wait_for_outcome(steps, loc, FAST), 30)
    assert result.status == "succeeded" and moto.count("emr", "DescribeStep") >= 1
    # denied everything: the identity may not watch steps at all; every waiter gets an error
    loc = await steps.submit(spec(cid), make_token("dag", "run", "step", -1, 1))
    moto.fail("emr", "DescribeStep", code="AccessDeniedException", times=1000, message="no DescribeStep either")
    result = await asyncio.wait_for(wait_for_outcome(steps, loc, FAST), 30)
    assert result.status == "error" and "no DescribeStep either" in result.message


# --- triggers, shared clients, links --------------------------------------------------------------------


async def test_step_trigger_reads_the_connection_and_yields_one_event(moto: MotoEmr, aws_conn: str):
    cid = busy_cluster(moto)
    client = EmrStepClient(moto.config())
    loc = await client.submit(spec(cid), TOKEN)
    trig = EmrStepTrigger(job=loc, conn_id=aws_conn, token=TOKEN, generation=0, poll_interval=0.02)
    assert moto.endpoint not in json.dumps(trig.serialize()[1]) and "testing" not in json.dumps(trig.serialize()[1])
    run = trig.run()
    event = asyncio.create_task(run.__anext__())
    await eventually(lambda: moto.count("emr", "ListSteps") >= 2, what="the trigger polled")
    assert not event.done()
    moto.set_step(cid, loc["step_id"], "COMPLETED")
    payload = (await asyncio.wait_for(event, 30)).payload
    assert payload["status"] == "succeeded" and payload["job"] == loc and payload["token"] == TOKEN
    with pytest.raises(StopAsyncIteration):
        await run.__anext__()
    assert clients_created() == 1  # the test's client and the trigger's share one aiobotocore client
    await close_sessions()


async def test_links_point_at_the_console_and_the_step_logs(moto: MotoEmr, steps: EmrStepClient):
    cid = moto.create_cluster(log_uri="s3://my-logs/emr/")
    loc = await steps.submit(spec(cid), TOKEN)
    links = await steps.links(loc)
    console = f"https://console.aws.amazon.com/emr/home?region=us-east-1#/clusterDetails/{cid}"
    assert links == {
        "emr_console_url": console,
        "emr_cluster_url": console,
        "emr_logs_uri": f"s3://my-logs/emr/{cid}/steps/{loc['step_id']}/",
        "emr_logs_url": f"https://console.aws.amazon.com/s3/buckets/my-logs?region=us-east-1&prefix=emr/{cid}/steps/"
        f"{loc['step_id']}/",
    }


# --- clusters -------------------------------------------------------------------------------------------

JOB_FLOW = {
    "ReleaseLabel": "emr-7.1.0",
    "Instances": {"InstanceCount": 1, "MasterInstanceType": "m5.xlarge"},
    "JobFlowRole": "EMR_EC2_DefaultRole",
    "ServiceRole": "EMR_DefaultRole",
    "LogUri": "s3://logs/emr/",
}


async def test_cluster_starts_bootstraps_and_is_ready(moto: MotoEmr, aws_conn: str):
    clusters = EmrClusterClient(moto.config())
    loc = await clusters.submit(EmrCluster(name="etl", job_flow=JOB_FLOW), TOKEN)
    (cluster,) = moto.clusters_with_token(TOKEN)
    assert cluster.id == loc["cluster_id"] and cluster.tags == [{"Key": "durable-jobs:token", "Value": TOKEN}]
    moto.set_cluster(loc["cluster_id"], "STARTING")
    trig = EmrClusterTrigger(job=loc, conn_id=aws_conn, token=TOKEN, generation=0, poll_interval=0.02)
    event = asyncio.create_task(trig.run().__anext__())
    with poller_for(clusters, 0.02).watching(loc, FAST) as watch:
        await watch_until(watch, lambda s: s.raw_state == "STARTING")
        moto.set_cluster(loc["cluster_id"], "BOOTSTRAPPING")
        assert (await watch_until(watch, lambda s: s.raw_state == "BOOTSTRAPPING")).state is JobState.PENDING
        assert not event.done()
        moto.set_cluster(loc["cluster_id"], "WAITING")
        payload = (await asyncio.wait_for(event, 30)).payload
    assert payload["status"] == "succeeded" and payload["details"]["last"]["raw_state"] == "WAITING"
    assert await clusters.find(TOKEN, since=time.time(), spec=None) == loc
    await close_sessions()


async def test_cluster_failures_and_termination_map_to_outcomes(moto: MotoEmr):
    clusters = EmrClusterClient(moto.config())
    loc = await clusters.submit(EmrCluster(name="etl", job_flow=JOB_FLOW), TOKEN)
    moto.set_cluster(loc["cluster_id"], "TERMINATED_WITH_ERRORS", code="BOOTSTRAP_FAILURE", message="bootstrap failed")
    st = await clusters.status(loc)
    assert (st.state, st.message) == (JobState.FAILED, "BOOTSTRAP_FAILURE: bootstrap failed")
    moto.set_cluster(loc["cluster_id"], "TERMINATED", code="ALL_STEPS_COMPLETED", message="done")
    assert (await clusters.status(loc)).state is JobState.SUCCEEDED
    steps = EmrStepClient(moto.config())
    moto.set_cluster(loc["cluster_id"], "WAITING", code="")
    step = await steps.submit(spec(loc["cluster_id"]), make_token("d", "r", "t", -1, 0))
    await clusters.cancel(loc)  # terminate: its active steps are cancelled
    st = await clusters.status(loc)
    assert (st.state, st.raw_state) == (JobState.CANCELLED, "TERMINATED")
    assert (await steps.status(step)).state is JobState.CANCELLED
    await clusters.cancel(loc)  # terminating twice is fine
    assert (await clusters.status({"cluster_id": "j-NOSUCHCLUSTR"})).state is JobState.LOST
    await close_sessions()


class _Comms:
    def __init__(self, state: str) -> None:
        self.state = state

    async def asend(self, msg: Any) -> Any:
        return SimpleNamespace(task_states={"run1": {"step": self.state}})


@pytest.mark.parametrize(("ti_state", "cancels"), [("failed", True), ("deferred", False)])
async def test_trigger_on_kill_cancels_only_a_step_no_new_try_owns(
    moto: MotoEmr, aws_conn: str, monkeypatch: pytest.MonkeyPatch, ti_state: str, cancels: bool
):
    from airflow.sdk.execution_time import task_runner

    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", _Comms(ti_state), raising=False)
    cid = busy_cluster(moto)
    loc = await EmrStepClient(moto.config()).submit(spec(cid), TOKEN)
    trig = EmrStepTrigger(job=loc, conn_id=aws_conn, token=TOKEN, generation=0)
    trig.task_instance = SimpleNamespace(dag_id="d", run_id="run1", task_id="step", map_index=-1, try_number=1)
    await trig.on_kill()
    assert (moto.step(cid, loc["step_id"]).state == "CANCELLED") is cancels
    await close_sessions()
