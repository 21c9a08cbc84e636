"""EMR Serverless and EMR on EKS job runs against moto over real HTTP, one test body for both flavours."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from durable_jobs.clients.emr.aws import FIND_WINDOW, TOKEN_TAG
from durable_jobs.clients.emr.eks import EmrEksClient, EmrEksJob
from durable_jobs.clients.emr.runs import JobRunClient
from durable_jobs.clients.emr.serverless import EmrServerlessClient, EmrServerlessJob
from durable_jobs.errors import AuthError, PermanentError
from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.polling import PollSettings, poller_for, wait_for_outcome
from durable_jobs.protocol import Defer, JobProtocol, ProtocolSettings, deadline_pad
from durable_jobs.record import TaskIdentity, make_token
from durable_jobs.status import JobState
from durable_jobs.transport.http import close_sessions
from durable_jobs.triggers.base import DurableJobTrigger
from durable_jobs.triggers.emr import EmrEksTrigger, EmrServerlessTrigger
from durable_jobs_harness.moto_emr import (
    EKS_RELEASE,
    FOREIGN_ROLE_ARN,
    ROLE_ARN,
    DictStore,
    MotoEmr,
    eventually,
    watch_until,
    worker_loop,
)

TOKEN = make_token("dag", "run", "job", -1, 0)
FAST = PollSettings(interval=0.02, lost_confirmations=2)
LOGS = {"monitoringConfiguration": {"s3MonitoringConfiguration": {"logUri": "s3://my-logs/runs/"}}}


@dataclass(frozen=True)
class Flavour:
    """What differs between EMR Serverless and EMR on EKS, for tests."""

    name: str
    service: str
    client_class: type[JobRunClient[Any]]
    trigger_class: type[DurableJobTrigger]
    container_field: str
    lifecycle: tuple[str, ...]  # the states a successful run walks through
    cancelling: str
    failure_message: Callable[[], tuple[dict[str, str], str]]

    def container(self, moto: MotoEmr) -> str:
        return moto.create_application() if self.name == "serverless" else moto.create_virtual_cluster()

    def spec(self, container: str, name: str = "daily etl", role: str = ROLE_ARN, **kw: Any) -> Any:
        if self.name == "serverless":
            driver = {"sparkSubmit": {"entryPoint": "s3://b/etl.py"}}
            return EmrServerlessJob(
                application_id=container, execution_role_arn=role, job_driver=driver, name=name, **kw
            )
        driver = {"sparkSubmitJobDriver": {"entryPoint": "s3://b/etl.py"}}
        return EmrEksJob(
            virtual_cluster_id=container,
            name=name,
            execution_role_arn=role,
            release_label=kw.pop("release_label", EKS_RELEASE),
            job_driver=driver,
            **kw,
        )

    def runs(self, moto: MotoEmr, container: str) -> list[Any]:
        return moto.serverless_runs(container) if self.name == "serverless" else moto.eks_runs(container)

    def run_of(self, moto: MotoEmr, loc: dict[str, str]) -> Any:
        return next(r for r in self.runs(moto, loc[self.container_field]) if r.id == loc["job_run_id"])

    def set(self, moto: MotoEmr, loc: dict[str, str], state: str, **kw: Any) -> None:
        if self.name == "serverless":
            moto.set_serverless_run(loc["application_id"], loc["job_run_id"], state, details=kw.get("details"))
        else:
            moto.set_eks_run(loc["job_run_id"], state, **kw)


SERVERLESS = Flavour(
    name="serverless",
    service="emr-serverless",
    client_class=EmrServerlessClient,
    trigger_class=EmrServerlessTrigger,
    container_field="application_id",
    lifecycle=("SUBMITTED", "PENDING", "SCHEDULED", "QUEUED", "RUNNING", "SUCCESS"),
    cancelling="CANCELLING",
    failure_message=lambda: (
        {"details": "Job failed, ExitCode: 1. Check the driver's stderr."},
        "Job failed, ExitCode: 1. Check the driver's stderr.",
    ),
)
EKS = Flavour(
    name="eks",
    service="emr-containers",
    client_class=EmrEksClient,
    trigger_class=EmrEksTrigger,
    container_field="virtual_cluster_id",
    lifecycle=("PENDING", "SUBMITTED", "RUNNING", "COMPLETED"),
    cancelling="CANCEL_PENDING",
    failure_message=lambda: (
        {"failure_reason": "USER_ERROR", "details": "Spark driver exited with code 1"},
        "USER_ERROR: Spark driver exited with code 1",
    ),
)


@pytest.fixture(params=[SERVERLESS, EKS], ids=lambda f: f.name)
def flavour(request: pytest.FixtureRequest) -> Flavour:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def client(moto: MotoEmr, flavour: Flavour) -> AsyncIterator[JobRunClient[Any]]:
    yield flavour.client_class(moto.config())
    await close_sessions()


async def start(flavour: Flavour, client: JobRunClient[Any], container: str, token: str = TOKEN, **kw: Any) -> Any:
    return await client.submit(flavour.spec(container, **kw), token)


async def test_lifecycle_is_observed_state_by_state(moto: MotoEmr, flavour: Flavour, client: JobRunClient[Any]):
    container = flavour.container(moto)
    loc = await start(flavour, client, container)
    flavour.set(moto, loc, flavour.lifecycle[0])  # moto starts runs finished (Serverless) or running (EKS)
    seen = []
    with poller_for(client, FAST.interval).watching(loc, FAST) as watch:
        for raw in flavour.lifecycle:
            flavour.set(moto, loc, raw)
            status = await watch_until(watch, lambda s, raw=raw: s.raw_state == raw)
            seen.append(status.state)
    assert seen[-1] is JobState.SUCCEEDED and JobState.RUNNING in seen
    assert seen[: flavour.lifecycle.index("RUNNING")] == [JobState.PENDING] * flavour.lifecycle.index("RUNNING")


async def test_failure_details_become_the_message(moto: MotoEmr, flavour: Flavour, client: JobRunClient[Any]):
    loc = await start(flavour, client, flavour.container(moto))
    kw, message = flavour.failure_message()
    flavour.set(moto, loc, "FAILED", **kw)
    result = await wait_for_outcome(client, loc, FAST)
    assert (result.status, result.message) == ("failed", message)


async def test_cancel_in_flight_and_cancel_after_the_end(moto: MotoEmr, flavour: Flavour, client: JobRunClient[Any]):
    container = flavour.container(moto)
    loc = await start(flavour, client, container)
    flavour.set(moto, loc, "RUNNING")
    with poller_for(client, FAST.interval).watching(loc, FAST) as watch:
        await watch_until(watch, lambda s: s.raw_state == "RUNNING")
        await client.cancel(loc)
        flavour.set(moto, loc, flavour.cancelling)  # AWS takes a while; moto cancels at once
        cancelling = await watch_until(watch, lambda s: s.raw_state == flavour.cancelling)
        assert cancelling.state is JobState.RUNNING
        flavour.set(moto, loc, "CANCELLED")
        assert (await watch_until(watch, lambda s: s.state.is_terminal)).state is JobState.CANCELLED
    # AWS refuses to cancel a run that ended (moto's EKS does; its Serverless accepts): not an error for us
    moto.fail(flavour.service, "CancelJobRun", code="ValidationException", message="Job run is not cancellable")
    await client.cancel(loc)
    flavour.set(moto, loc, "RUNNING")
    moto.fail(flavour.service, "CancelJobRun", code="ValidationException", message="Something else is wrong")
    with pytest.raises(PermanentError, match="Something else is wrong"):
        await client.cancel(loc)  # a refusal while the run still runs is an error


async def test_unknown_run_and_unknown_container_are_lost(moto: MotoEmr, flavour: Flavour, client: JobRunClient[Any]):
    container = flavour.container(moto)
    await start(flavour, client, container)  # the container has runs, just not this one
    for loc in (
        {flavour.container_field: container, "job_run_id": "nosuchrun0000000000"},
        {flavour.container_field: "nosuchcontainer0000", "job_run_id": "nosuchrun0000000000"},
    ):
        assert (await wait_for_outcome(client, loc, FAST)).status == "lost", loc


# --- tokens ---------------------------------------------------------------------------------------------


async def test_client_token_contract_same_token_same_run(moto: MotoEmr, flavour: Flavour, client: JobRunClient[Any]):
    """AWS's idempotency, which moto lacks, reproduced by a backend that dedupes by token."""
    container = flavour.container(moto)
    with moto.dedupe_client_tokens():
        first = await start(flavour, client, container)
        again = await start(flavour, client, container)
        other = await start(flavour, client, container, token=make_token("dag", "run", "job", -1, 1))
    assert first == again != other
    assert len(flavour.runs(moto, container)) == 2
    run = flavour.run_of(moto, first)
    assert run.client_token == TOKEN and run.tags[TOKEN_TAG] == TOKEN and TOKEN in run.name
    # moto itself starts a second run for a repeated token: the gap the contract above stands in for
    await start(flavour, client, container)
    assert len(flavour.runs(moto, container)) == 3


async def test_find_by_name_and_tag_after_the_idempotency_window(
    moto: MotoEmr, flavour: Flavour, client: JobRunClient[Any]
):
    container = flavour.container(moto)
    since = time.time()
    assert await client.find(TOKEN, since=since, spec=flavour.spec(container)) is None
    loc = await start(flavour, client, container)
    await start(flavour, client, container, token=make_token("dag", "run", "other", -1, 0))
    assert await client.find(TOKEN, since=since, spec=flavour.spec(container)) == loc
    # a run created long before the intent is not this generation's
    flavour.run_of(moto, loc).created_at = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(hours=2)
    assert await client.find(TOKEN, since=since, spec=flavour.spec(container)) is None


# --- batched polling ------------------------------------------------------------------------------------


async def test_one_list_per_container_and_tick_serves_all_its_runs(
    moto: MotoEmr, flavour: Flavour, client: JobRunClient[Any]
):
    busy, quiet = flavour.container(moto), flavour.container(moto)
    many = [await start(flavour, client, busy, token=make_token("d", "r", "t", i, 0)) for i in range(30)]
    one = await start(flavour, client, quiet)
    for loc in [*many, one]:
        flavour.set(moto, loc, "RUNNING")
    get = "GetJobRun" if flavour.name == "serverless" else "DescribeJobRun"
    lists, gets = moto.count(flavour.service, "ListJobRuns"), moto.count(flavour.service, get)
    result = await client.statuses([*many, one])
    assert {s.state for s in result.values()} == {JobState.RUNNING} and len(result) == 31
    assert moto.count(flavour.service, "ListJobRuns") - lists == 1  # the busy container: one list for 30 runs
    assert moto.count(flavour.service, get) - gets == 1  # the quiet one: its single run, fetched directly
    # a couple of runs ended: they are not listed as active any more, and are fetched one by one
    for loc in many[:2]:
        flavour.set(moto, loc, "FAILED")
    lists, gets = moto.count(flavour.service, "ListJobRuns"), moto.count(flavour.service, get)
    result = await client.statuses(many)
    assert sum(1 for s in result.values() if s.state is JobState.FAILED) == 2
    assert moto.count(flavour.service, "ListJobRuns") - lists == 1
    assert moto.count(flavour.service, get) - gets == 2
    # many ended at once: one more list (runs ended since the oldest of them was created) serves them all
    for loc in many[2:20]:
        flavour.set(moto, loc, "CANCELLED")
    lists, gets = moto.count(flavour.service, "ListJobRuns"), moto.count(flavour.service, get)
    result = await client.statuses(many[2:])
    assert sum(1 for s in result.values() if s.state is JobState.CANCELLED) == 18
    assert moto.count(flavour.service, "ListJobRuns") - lists == 2
    assert moto.count(flavour.service, get) - gets == 0


# --- throttling and refusals ----------------------------------------------------------------------------


async def test_throttled_start_and_polls_back_off(moto: MotoEmr, flavour: Flavour, client: JobRunClient[Any]):
    container = flavour.container(moto)
    moto.fail(flavour.service, "StartJobRun", code="TooManyRequestsException", status=429, times=2)
    loc = await start(flavour, client, container)
    assert len(flavour.runs(moto, container)) == 1 and moto.count(flavour.service, "StartJobRun") == 3
    # a throttled start that AWS applied anyway: the retry carries the same clientToken, so AWS returns that run
    with moto.dedupe_client_tokens():
        moto.fail(flavour.service, "StartJobRun", code="ThrottlingException", times=1, applied=True)
        assert await start(flavour, client, container) == loc
    assert len(flavour.runs(moto, container)) == 1
    flavour.set(moto, loc, "RUNNING")
    get = "GetJobRun" if flavour.name == "serverless" else "DescribeJobRun"
    moto.fail(flavour.service, get, code="ThrottlingException", times=3)
    waiting = asyncio.create_task(wait_for_outcome(client, loc, FAST))
    await eventually(lambda: moto.faults[(flavour.service, get)].times == 0, what="three throttled polls")
    assert not waiting.done()
    flavour.set(moto, loc, flavour.lifecycle[-1])
    assert (await asyncio.wait_for(waiting, 30)).status == "succeeded"


async def test_access_denied_and_bad_requests_fail_fast(moto: MotoEmr, flavour: Flavour, client: JobRunClient[Any]):
    container = flavour.container(moto)
    if flavour.name == "serverless":  # moto refuses a cross-account role like IAM would
        with pytest.raises(AuthError, match="Cross-account pass role is not allowed") as denied:
            await start(flavour, client, container, role=FOREIGN_ROLE_ARN)
    else:
        moto.fail(flavour.service, "StartJobRun", code="AccessDeniedException", message="not authorized: StartJobRun")
        with pytest.raises(AuthError, match="not authorized: StartJobRun") as denied:
            await start(flavour, client, container)
    assert "aws_moto" in str(denied.value) and moto.count(flavour.service, "StartJobRun") == 1
    if flavour.name == "eks":
        with pytest.raises(PermanentError, match=r"Release emr-6\.99\.0-bogus doesn't exist"):
            await start(flavour, client, container, release_label="emr-6.99.0-bogus")
    else:
        with pytest.raises(PermanentError, match="RunTimeout must be at least 5 minutes"):
            await start(flavour, client, container, execution_timeout_minutes=1)
    assert moto.count(flavour.service, "StartJobRun") == 2 and flavour.runs(moto, container) == []


# --- triggers and links ---------------------------------------------------------------------------------


async def test_trigger_reads_the_connection_and_yields_one_event(
    moto: MotoEmr, flavour: Flavour, client: JobRunClient[Any], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_MOTO", moto.connection())
    DurableJobHook.clear_cache()
    loc = await start(flavour, client, flavour.container(moto))
    flavour.set(moto, loc, "RUNNING")
    trig = flavour.trigger_class(job=loc, conn_id="aws_moto", token=TOKEN, generation=0, poll_interval=0.02)
    event = asyncio.create_task(trig.run().__anext__())
    get = "GetJobRun" if flavour.name == "serverless" else "DescribeJobRun"
    await eventually(lambda: moto.count(flavour.service, get) >= 2, what="the trigger polled")
    assert not event.done()
    flavour.set(moto, loc, flavour.lifecycle[-1])
    payload = (await asyncio.wait_for(event, 30)).payload
    assert payload["status"] == "succeeded" and payload["job"] == loc
    DurableJobHook.clear_cache()


async def test_links_and_status_carry_the_s3_logs(moto: MotoEmr, flavour: Flavour, client: JobRunClient[Any]):
    container = flavour.container(moto)
    loc = await start(flavour, client, container, configuration_overrides=LOGS)
    prefix = (
        f"runs/applications/{container}/jobs/{loc['job_run_id']}/"
        if flavour.name == "serverless"
        else f"runs/{container}/jobs/{loc['job_run_id']}/"
    )
    console = "https://console.aws.amazon.com/emr/home?region=us-east-1#/" + (
        f"serverless-applications/{container}/job-runs/{loc['job_run_id']}"
        if flavour.name == "serverless"
        else f"eks/clusters/{container}"
    )
    logs = f"https://console.aws.amazon.com/s3/buckets/my-logs?region=us-east-1&prefix={prefix}"
    links = await client.links(loc)
    assert links == {
        "emr_console_url": console,
        "log_uri": f"s3://my-logs/{prefix}",
        "emr_logs_url": logs,
        "logs_url": logs,
    }
    assert (await client.status(loc)).extra["log_uri"] == links["log_uri"]


# --- a lost record ----------------------------------------------------------------------------------------


def test_a_lost_record_lists_runs_since_the_job_timeout_not_since_the_run(moto: MotoEmr, flavour: Flavour):
    """A run from months ago, cleared today, its record gone: the lookup lists the runs created since the job's
    timeout (plus the pad and FIND_WINDOW) before now, not since the run's date: the pages stay few."""
    container = flavour.container(moto)
    client = flavour.client_class(moto.config())
    listed: list[datetime] = []
    list_runs = client._list_runs

    async def spy(params: Any, what: str, on_page: Any, **kw: Any) -> bool:
        listed.append(params[client.created_after_param])
        return await list_runs(params, what, on_page, **kw)

    client._list_runs = spy  # type: ignore[method-assign]
    # 120 runs of other tasks from a month ago (two pages: moto answers 100 a page), and this task's generation 0
    with worker_loop() as run:
        for i in range(120):
            old = run(start(flavour, client, container, token=make_token("d", "r", "other", i, 0)))
            flavour.run_of(moto, old).created_at = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(days=30)
        spec = flavour.spec(container)
        mine = run(client.submit(spec, make_token("emr_dag", "run1", "task", -1, 0)))
        flavour.set(moto, mine, "RUNNING")
        starts, pages = moto.count(flavour.service, "StartJobRun"), moto.count(flavour.service, "ListJobRuns")
        timeout, pad = 3600.0, deadline_pad(30.0)
        proto = JobProtocol(
            client=client,
            store=DictStore(),
            identity=TaskIdentity("emr_dag", "run1", "task", -1, try_number=3, clear_number=1),
            spec=lambda _record: spec,
            run=run,
            settings=ProtocolSettings(confirm_delay=0.0, timeout=timeout, deadline_pad=pad),
            sleep=lambda s: None,
            run_after=time.time() - 90 * 86400,
        )
        before = time.time()
        decision = proto.start()
    assert isinstance(decision, Defer) and decision.adopted and decision.record.job == mine
    assert moto.count(flavour.service, "StartJobRun") == starts  # nothing started
    # generation 0 is running: nothing follows it, so one listing, of one page (only today's run is in it)
    assert len(listed) == 1 and moto.count(flavour.service, "ListJobRuns") - pages == 1
    cutoff = listed[0].timestamp()
    expected = before - timeout - pad - FIND_WINDOW
    assert expected - 5 <= cutoff <= expected + 5  # createdAtAfter = since - FIND_WINDOW (and AWS's clock)
    # the run's own date would have listed every page of the month-old runs
    pages = moto.count(flavour.service, "ListJobRuns")
    with worker_loop() as run:
        client._list_runs = list_runs  # type: ignore[method-assign]
        assert run(client.find(TOKEN, since=time.time() - 90 * 86400, spec=spec)) is None
    assert moto.count(flavour.service, "ListJobRuns") - pages == 2
