"""The library's Databricks client against the contract fake (``durable_jobs_harness.fake_databricks``).

The client was written against a stub of the tests' own (``stub_workspace.py``); the fake was written apart,
from the Jobs API 2.2 reference. Here the two meet over real HTTP: submit (``runs/submit``, ``run-now`` by
``job_id`` and by ``job_name``) and the idempotency token, ``find``, the status of every scripted end as
``states.py`` documents it, cancel, LOST (only for a run the workspace forgot), the token of a deleted run,
links, and the fake's injected faults.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any
from unittest import mock

import pytest

from durable_jobs.clients.base import Locator, locator_key
from durable_jobs.clients.databricks import (
    DatabricksClient,
    DatabricksSpec,
    RunNowSpec,
    SubmitRunSpec,
    TokenOfDeletedRun,
    token_of_run_name,
)
from durable_jobs.errors import TransientError
from durable_jobs.status import JobState, JobStatus
from durable_jobs.transport import retry
from durable_jobs.transport.auth import BearerAuth
from durable_jobs.transport.http import close_sessions
from durable_jobs_harness.fake_databricks import FakeDatabricks, FakeRun
from tests.databricks.workspace import API, new_token

pytestmark = pytest.mark.timeout(60)

#: every scripted duration is multiplied by this: a 5 s script lasts 100 ms
SCALE = 0.02
#: a run that lasts until the test ends it (72 s at SCALE)
LONG = "durable-fake:3600s:SUCCESS"
JOB_NAME = "nightly-etl"
KINDS = ("submit", "job_id", "job_name")
RUN_NOW_KINDS = ("job_id", "job_name")
ACTIVE = (JobState.PENDING, JobState.RUNNING)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDatabricks]:
    async with FakeDatabricks(time_scale=SCALE) as workspace:
        try:
            yield workspace
        finally:
            await close_sessions()


@pytest.fixture
def dbx(fake: FakeDatabricks) -> DatabricksClient:
    return DatabricksClient(fake.url, auth=BearerAuth(fake.pat), timeout=5.0)


def task(key: str, script: str | None = None, depends_on: Sequence[str] = ()) -> dict[str, Any]:
    params = {"script": script} if script else {}
    out: dict[str, Any] = {
        "task_key": key,
        "notebook_task": {"notebook_path": f"/etl/{key}", "base_parameters": params},
    }
    if depends_on:
        out["depends_on"] = [{"task_key": k} for k in depends_on]
    return out


def job_id_of(fake: FakeDatabricks) -> int:
    """The job run-now starts (created once per workspace: its name must stay unique)."""
    for job in fake.jobs.values():
        if job.name == JOB_NAME:
            return job.job_id
    return fake.create_job(JOB_NAME, [task("main")])


def spec_of(kind: str, fake: FakeDatabricks, script: str = LONG) -> DatabricksSpec:
    """A one-time run, or a run of the job by its id or its name; the script rides in the body."""
    if kind == "submit":
        return SubmitRunSpec({"run_name": "nightly", "tasks": [task("main", script)]})
    job_id = job_id_of(fake)
    if kind == "job_id":
        return RunNowSpec({"job_id": job_id, "job_parameters": {"script": script}})
    return RunNowSpec({"job_parameters": {"script": script}}, job_name=JOB_NAME)


def the_run(fake: FakeDatabricks, locator: Locator) -> FakeRun:
    return fake.run(locator["run_id"])


def queries(fake: FakeDatabricks, route: str) -> list[dict[str, str]]:
    return [q for _, path, q in fake.requests if path == f"{API}/{route}"]


async def until_ended(dbx: DatabricksClient, locator: Locator) -> list[JobStatus]:
    """Every status read until the run ended (a read every few ms)."""
    seen: list[JobStatus] = []
    deadline = time.monotonic() + 20
    while not seen or not seen[-1].state.is_terminal:
        assert time.monotonic() < deadline, f"run {locator} never ended: {seen[-1:]}"
        seen.append(await dbx.status(locator))
        await asyncio.sleep(0.002)
    return seen


# --- submit: one run per token ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_a_submit_makes_one_run_carrying_our_token(
    fake: FakeDatabricks, dbx: DatabricksClient, kind: str
) -> None:
    tok = new_token()
    located = await dbx.submit(spec_of(kind, fake), tok)
    (run,) = fake.runs
    assert located == {"run_id": run.run_id}
    assert run.token == tok and run.body["idempotency_token"] == tok
    if kind == "submit":
        assert run.run_type == "SUBMIT_RUN" and run.job_id is None
        assert run.run_name == f"nightly [{tok}]" and token_of_run_name(run.run_name) == tok
    else:  # run-now has no run name: the idempotency token alone carries ours
        assert (run.run_type, run.job_id, run.run_name) == ("JOB_RUN", job_id_of(fake), JOB_NAME)
        assert run.body["job_parameters"] == {"script": LONG}
    # a job name is looked up with jobs/list?name=, a job id is not
    assert queries(fake, "list") == ([{"name": JOB_NAME, "limit": "25"}] if kind == "job_name" else [])


@pytest.mark.parametrize("kind", KINDS)
async def test_the_same_token_again_is_the_same_run_and_find_returns_it(
    fake: FakeDatabricks, dbx: DatabricksClient, kind: str
) -> None:
    tok, since = new_token(), time.time()
    first = await dbx.submit(spec_of(kind, fake), tok)
    assert await dbx.submit(spec_of(kind, fake), tok) == first
    found = await dbx.find(tok, since=since, spec=spec_of(kind, fake))
    assert found == first and len(fake.runs) == 1
    assert queries(fake, "runs/get") == [{"run_id": str(first["run_id"])}]  # find confirmed the answered run
    other = await dbx.submit(spec_of(kind, fake), new_token())
    assert other != first and len(fake.runs) == 2
    assert await dbx.find(tok, since=since, spec=spec_of(kind, fake)) == first  # still its own run, not the newest


async def test_find_after_a_run_ended_still_returns_it(fake: FakeDatabricks, dbx: DatabricksClient) -> None:
    tok = new_token()
    located = await dbx.submit(spec_of("submit", fake), tok)
    fake.finish(located["run_id"], "FAILED")
    assert (await dbx.status(located)).state is JobState.FAILED
    assert await dbx.find(tok, since=time.time(), spec=spec_of("submit", fake)) == located
    assert len(fake.runs) == 1


# --- status: every scripted end, as states.py documents it ---------------------------------------------------

ENDS = {
    "SUCCESS": (JobState.SUCCEEDED, "TERMINATED/SUCCESS"),
    "TIMEDOUT": (JobState.FAILED, "TERMINATED/TIMEDOUT"),  # the result says more than status' CANCELED code
    "CANCELED": (JobState.CANCELLED, "TERMINATED/CANCELED"),
    "INTERNAL_ERROR": (JobState.FAILED, "INTERNAL_ERROR/FAILED"),
    "SKIPPED": (JobState.FAILED, "SKIPPED"),  # a run that did not run produced nothing
}
ORDER = (JobState.PENDING, JobState.RUNNING)


def assert_forward(seen: list[JobStatus]) -> None:
    """Only forward: PENDING, RUNNING, then the end; never unknown or lost on the way."""
    *active, end = seen
    assert all(st.state in ORDER for st in active), [st.state for st in active]
    positions = [ORDER.index(st.state) for st in active]
    assert positions == sorted(positions), [st.state for st in active]
    assert end.state.is_terminal


@pytest.mark.parametrize("result", list(ENDS))
async def test_each_scripted_end_maps_as_documented(fake: FakeDatabricks, dbx: DatabricksClient, result: str) -> None:
    located = await dbx.submit(spec_of("submit", fake, f"durable-fake:5s:{result}"), new_token())
    seen = await until_ended(dbx, located)
    assert_forward(seen)
    end = seen[-1]
    assert (end.state, end.raw_state) == ENDS[result]
    assert end.extra["run_type"] == "SUBMIT_RUN" and end.extra["end_time"] > 0
    assert end.tracking_url is not None and end.tracking_url.startswith(fake.url)
    if result in ("INTERNAL_ERROR", "SKIPPED"):
        assert JobState.RUNNING not in [st.state for st in seen]  # never left PENDING
    if result == "SKIPPED":
        assert f"run {located['run_id']} was skipped (SKIPPED): it did not run" in end.message
    if result == "INTERNAL_ERROR":
        assert "An internal error occurred" in end.message
    if result in ("TIMEDOUT", "CANCELED"):
        assert end.extra["user_cancelled_or_timedout"] is True
    # the batched path (active list, then runs/get for a run it does not show) says the same
    batched = (await dbx.statuses([located]))[locator_key(located)]
    assert (batched.state, batched.raw_state, batched.message) == (end.state, end.raw_state, end.message)


async def test_timeout_seconds_ends_the_run_failed_timedout(fake: FakeDatabricks, dbx: DatabricksClient) -> None:
    spec = SubmitRunSpec({"run_name": "slow", "tasks": [task("main", LONG)], "timeout_seconds": 5})
    end = (await until_ended(dbx, await dbx.submit(spec, new_token())))[-1]
    assert (end.state, end.raw_state) == (JobState.FAILED, "TERMINATED/TIMEDOUT")
    assert "Run timed out." in end.message and end.extra["user_cancelled_or_timedout"] is True


async def test_a_failed_multi_task_run_names_the_failing_task(fake: FakeDatabricks, dbx: DatabricksClient) -> None:
    tasks = [task("prep"), task("work", "durable-fake:5s:FAILED", ["prep"]), task("report", depends_on=["work"])]
    located = await dbx.submit(SubmitRunSpec({"run_name": "etl", "tasks": tasks}), new_token())
    seen = await until_ended(dbx, located)
    assert_forward(seen)
    end = seen[-1]
    assert (end.state, end.raw_state) == (JobState.FAILED, "TERMINATED/FAILED")
    failed_part = end.message.split(". Task ", 1)[0]
    assert failed_part.startswith("failed tasks: work TERMINATED/FAILED: Workload failed")
    assert "report SKIPPED/UPSTREAM_FAILED" in failed_part and "prep" not in failed_part
    assert "Task work failed with message" in end.message  # the run's own state message follows
    work = next(t for t in the_run(fake, located).tasks if t.task_key == "work")
    assert end.tracking_url == f"{fake.url}/?o=0#run/{work.run_id}"  # the failed task's page, not the run's


@pytest.mark.parametrize("kind", RUN_NOW_KINDS)
async def test_a_run_now_run_ends_as_its_job_parameters_say(
    fake: FakeDatabricks, dbx: DatabricksClient, kind: str
) -> None:
    located = await dbx.submit(spec_of(kind, fake, "durable-fake:5s:FAILED"), new_token())
    end = (await until_ended(dbx, located))[-1]
    assert (end.state, end.raw_state) == (JobState.FAILED, "TERMINATED/FAILED")
    assert end.message.startswith("failed tasks: main TERMINATED/FAILED")
    assert (end.extra["run_type"], end.extra["job_id"]) == ("JOB_RUN", job_id_of(fake))


# --- cancel ---------------------------------------------------------------------------------------------------


async def test_cancel_twice_then_after_the_end_is_fine_and_the_run_is_cancelled(
    fake: FakeDatabricks, dbx: DatabricksClient
) -> None:
    located = await dbx.submit(spec_of("submit", fake), new_token())
    assert (await dbx.status(located)).state in ACTIVE
    await dbx.cancel(located)
    await dbx.cancel(located)
    end = (await until_ended(dbx, located))[-1]
    assert (end.state, end.raw_state) == (JobState.CANCELLED, "TERMINATED/CANCELED")
    assert end.extra["user_cancelled_or_timedout"] is True
    await dbx.cancel(located)  # an ended run answers {}
    assert (await dbx.status(located)).state is JobState.CANCELLED
    assert [t.task_key for t in the_run(fake, located).tasks] == ["main"]
    assert len(queries(fake, "runs/cancel")) == 3 and len(fake.runs) == 1


async def test_cancel_of_a_run_the_workspace_forgot_is_fine(fake: FakeDatabricks, dbx: DatabricksClient) -> None:
    located = await dbx.submit(spec_of("submit", fake), new_token())
    fake.forget_run(located["run_id"])
    await dbx.cancel(located)  # 404 RESOURCE_DOES_NOT_EXIST: nothing to stop
    assert len(queries(fake, "runs/cancel")) == 1


# --- LOST: only for a run the workspace no longer knows ----------------------------------------------------------


async def test_lost_only_once_the_workspace_forgot_the_run(fake: FakeDatabricks, dbx: DatabricksClient) -> None:
    running, ended, other = [await dbx.submit(spec_of("submit", fake), new_token()) for _ in range(3)]
    fake.finish(ended["run_id"], "SUCCESS")
    for _ in range(3):
        assert (await dbx.status(running)).state in ACTIVE
        assert (await dbx.status(ended)).state is JobState.SUCCEEDED
    fake.forget_run(running["run_id"])
    fake.forget_run(ended["run_id"])
    for located in (running, ended):
        st = await dbx.status(located)
        assert (st.state, st.raw_state) == (JobState.LOST, "RESOURCE_DOES_NOT_EXIST")
        assert f"does not know run {located['run_id']}" in st.message
    answer = await dbx.statuses([running, ended, other])
    assert {k: st.state for k, st in answer.items()} == {
        locator_key(running): JobState.LOST,
        locator_key(ended): JobState.LOST,
        locator_key(other): answer[locator_key(other)].state,
    }
    assert answer[locator_key(other)].state in ACTIVE


async def test_a_not_found_for_a_run_the_active_list_shows_is_not_lost(
    fake: FakeDatabricks, dbx: DatabricksClient
) -> None:
    located = await dbx.submit(spec_of("submit", fake), new_token())
    fake.fail_next(1, status=404, error_code="RESOURCE_DOES_NOT_EXIST", path_prefix=f"{API}/runs/get")
    st = await dbx.status(located)
    assert st.state in ACTIVE  # the second source, runs/list?active_only=true, shows the run
    assert queries(fake, "runs/list")[-1]["active_only"] == "true"


async def test_a_404_that_is_not_the_documented_not_found_proves_nothing(
    fake: FakeDatabricks, dbx: DatabricksClient
) -> None:
    located = await dbx.submit(spec_of("submit", fake), new_token())
    fake.forget_run(located["run_id"])
    fake.fail_next(1, status=404, error_code="ENDPOINT_NOT_FOUND", path_prefix=f"{API}/runs/get")
    with pytest.raises(TransientError):
        await dbx.status(located)
    assert (await dbx.status(located)).state is JobState.LOST  # the documented answer, and the list agrees


async def test_a_listing_that_fails_makes_no_run_lost(fake: FakeDatabricks, dbx: DatabricksClient) -> None:
    running, gone = [await dbx.submit(spec_of("submit", fake), new_token()) for _ in range(2)]
    fake.forget_run(gone["run_id"])
    fake.fail_next(1, status=503, path_prefix=f"{API}/runs/list")
    answer = await dbx.statuses([running, gone])  # asked one by one instead
    assert answer[locator_key(running)].state in ACTIVE
    assert answer[locator_key(gone)].state is JobState.UNKNOWN  # not found, and no list to say it is gone
    assert (await dbx.statuses([running, gone]))[locator_key(gone)].state is JobState.LOST


# --- the token of a deleted run ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_a_deleted_runs_token_is_refused_for_good_and_never_resubmitted(
    fake: FakeDatabricks, dbx: DatabricksClient, kind: str
) -> None:
    tok, since = new_token(), time.time()
    located = await dbx.submit(spec_of(kind, fake), tok)
    fake.finish(located["run_id"], "SUCCESS")
    fake.delete_run(located["run_id"])
    with pytest.raises(TokenOfDeletedRun, match=tok):
        await dbx.find(tok, since=since, spec=spec_of(kind, fake))
    with pytest.raises(TokenOfDeletedRun):
        await dbx.submit(spec_of(kind, fake), tok)
    assert len(fake.runs) == 1  # it may have succeeded: nothing was started again
    assert (await dbx.status(located)).state is JobState.LOST
    scans = [q for q in queries(fake, "runs/list") if q.get("run_type") == "SUBMIT_RUN"]
    if kind == "submit":  # the one-time runs since the intent (less the clock slack) were scanned for the token
        assert scans and all(int(q["start_time_from"]) <= since * 1000 for q in scans)
    else:  # a run-now run carries the token nowhere but in its idempotency token: nothing to scan
        assert scans == []


async def test_find_of_a_deleted_runs_token_finds_the_run_whose_name_carries_it(
    fake: FakeDatabricks, dbx: DatabricksClient
) -> None:
    tok, since = new_token(), time.time()
    deleted = await dbx.submit(spec_of("submit", fake), tok)
    fake.finish(deleted["run_id"], "SUCCESS")
    fake.delete_run(deleted["run_id"])
    # a run that carries the token in its name only (no idempotency token)
    body = {"run_name": f"nightly [{tok}]", "tasks": [task("main", LONG)]}
    named = await dbx.post_run("runs/submit", body, tok)
    assert await dbx.find(tok, since=since, spec=spec_of("submit", fake)) == {"run_id": named}
    # the scan starts at the intent (less an hour of clock slack): a run older than that is not taken
    with pytest.raises(TokenOfDeletedRun):
        await dbx.find(tok, since=time.time() + 7200, spec=spec_of("submit", fake))
    assert len(fake.runs) == 2


# --- links -----------------------------------------------------------------------------------------------------------


async def test_links_are_the_workspaces_run_page(fake: FakeDatabricks, dbx: DatabricksClient) -> None:
    one_time = await dbx.submit(spec_of("submit", fake), new_token())
    job_run = await dbx.submit(spec_of("job_name", fake), new_token())
    assert await dbx.links(one_time) == {"run_page_url": f"{fake.url}/?o=0#run/{one_time['run_id']}"}
    job_page = f"{fake.url}/?o=0#job/{job_id_of(fake)}/run/{job_run['run_id']}"
    assert await dbx.links(job_run) == {"run_page_url": job_page}
    assert (await dbx.status(job_run)).tracking_url == job_page
    fake.forget_run(one_time["run_id"])  # no run to read the page from: the workspace's usual address
    assert await dbx.links(one_time) == {"run_page_url": f"{fake.url}/#job/runs/{one_time['run_id']}"}


# --- injected faults: transient, then success -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_a_503_on_submit_is_repeated_with_the_same_token(
    fake: FakeDatabricks, dbx: DatabricksClient, kind: str
) -> None:
    tok = new_token()
    fake.fail_next(2, status=503, path_prefix=f"{API}/run")  # runs/submit and run-now alike
    located = await dbx.submit(spec_of(kind, fake), tok)
    (run,) = fake.runs
    assert located == {"run_id": run.run_id} and run.token == tok
    route = "runs/submit" if kind == "submit" else "run-now"
    assert len(queries(fake, route)) == 3


async def test_a_429_is_waited_out_for_at_least_its_retry_after(
    fake: FakeDatabricks, dbx: DatabricksClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleep = mock.AsyncMock()  # every wait the retry policy takes, taken at once
    monkeypatch.setattr(retry, "sleep", sleep)
    fake.fail_next(2, status=429, error_code="REQUEST_LIMIT_EXCEEDED", retry_after=2, path_prefix=f"{API}/runs/submit")
    located = await dbx.submit(spec_of("submit", fake), new_token())
    waits = [call.args[0] for call in sleep.await_args_list]
    assert len(waits) == 2 and all(w >= 2 for w in waits), waits
    assert [r.run_id for r in fake.runs] == [located["run_id"]]


async def test_submit_gives_up_transiently_and_the_next_try_gets_one_run(
    fake: FakeDatabricks, dbx: DatabricksClient
) -> None:
    tok = new_token()
    fake.fail_next(3, status=503, path_prefix=f"{API}/runs/submit")
    with pytest.raises(TransientError, match="TEMPORARILY_UNAVAILABLE"):
        await dbx.submit(spec_of("submit", fake), tok)
    assert fake.runs == []
    located = await dbx.submit(spec_of("submit", fake), tok)
    assert [r.run_id for r in fake.runs] == [located["run_id"]]


async def test_a_refused_status_read_is_transient_then_answers(fake: FakeDatabricks, dbx: DatabricksClient) -> None:
    located = await dbx.submit(spec_of("submit", fake), new_token())
    fake.fail_next(1, status=503, path_prefix=f"{API}/runs/get")
    fake.fail_next(1, status=429, error_code="REQUEST_LIMIT_EXCEEDED", retry_after=7, path_prefix=f"{API}/runs/get")
    with pytest.raises(TransientError) as unavailable:
        await dbx.status(located)
    assert unavailable.value.status == 503
    with pytest.raises(TransientError) as throttled:
        await dbx.status(located)
    assert (throttled.value.status, throttled.value.retry_after) == (429, 7)
    assert (await dbx.status(located)).state in ACTIVE


async def test_a_throttled_poll_is_unknown_with_its_retry_after_then_answers(
    fake: FakeDatabricks, dbx: DatabricksClient
) -> None:
    located = await dbx.submit(spec_of("submit", fake), new_token())
    fake.fail_next(1, status=429, error_code="REQUEST_LIMIT_EXCEEDED", retry_after=7)  # the listing
    fake.fail_next(1, status=429, error_code="REQUEST_LIMIT_EXCEEDED", retry_after=7)  # its runs/get fallback
    throttled = (await dbx.statuses([located]))[locator_key(located)]
    assert throttled.state is JobState.UNKNOWN and throttled.extra["retry_after"] == 7
    assert (await dbx.statuses([located]))[locator_key(located)].state in ACTIVE
