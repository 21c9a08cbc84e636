"""The crash matrix's AWS: moto's server as its own process, with EMR Serverless runs and steps that live by the clock.

Driven through the library's real clients (aiobotocore over HTTP): a run or step sleeps and succeeds or fails
with its exit code, a cancel goes through ``CANCELLING`` (``CANCEL_PENDING``), a repeated ``clientToken``
starts another run (only the protocol prevents duplicates there), a paused server answers nothing, and the
process stops when its stdin closes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from botocore.config import Config

from durable_jobs.clients.emr.runs import JobRunClient
from durable_jobs.clients.emr.serverless import EmrServerlessClient, EmrServerlessJob
from durable_jobs.clients.emr.steps import EmrStep, EmrStepClient
from durable_jobs.record import make_token
from durable_jobs.status import JobState
from durable_jobs.transport.http import close_sessions
from durable_jobs_harness.emr_sleep_exit import sleep_exit_args, sleep_exit_driver
from durable_jobs_harness.moto_emr import ROLE_ARN, eventually
from durable_jobs_harness.moto_emr_server import MotoEmrProcess

pytestmark = pytest.mark.moto

TOKEN = make_token("dag", "run", "job", -1, 0)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoEmrProcess]:
    proc = MotoEmrProcess(tmp_path_factory.mktemp("moto") / "moto.log", pending=0.2, cancelling=0.5)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def application(server: MotoEmrProcess) -> str:
    return server.create_application("e2e")


@pytest.fixture
async def client(server: MotoEmrProcess) -> AsyncIterator[EmrServerlessClient]:
    yield EmrServerlessClient(server.config())
    await close_sessions()


def job(application: str, seconds: float, exit_code: int) -> EmrServerlessJob:
    return EmrServerlessJob(
        application_id=application,
        execution_role_arn=ROLE_ARN,
        job_driver=sleep_exit_driver(seconds, exit_code),
        name="sleep exit",
    )


async def states_until_ended(client: JobRunClient[Any] | EmrStepClient, loc: dict[str, str]) -> list[str]:
    """The raw states the client saw, polling every 10 ms, until the job ended (deadline 60 s)."""
    seen: list[str] = []

    async def ended() -> bool:
        status = await client.status(loc)
        if not seen or seen[-1] != status.raw_state:
            seen.append(status.raw_state)
        return status.state.is_terminal

    await eventually(ended, timeout=60, what="the run to end")
    return seen


@pytest.mark.parametrize(
    ("exit_code", "ended", "state"), [(0, "SUCCESS", JobState.SUCCEEDED), (3, "FAILED", JobState.FAILED)]
)
async def test_a_run_sleeps_then_ends_with_its_exit_code(
    client: EmrServerlessClient, application: str, exit_code: int, ended: str, state: JobState
) -> None:
    loc = await client.submit(job(application, 2, exit_code), TOKEN)
    seen = await states_until_ended(client, loc)
    assert seen[0] in ("SUBMITTED", "SCHEDULED", "RUNNING"), seen
    assert seen[-2:] == ["RUNNING", ended], seen
    final = await client.status(loc)
    assert final.state is state
    assert ("ExitCode: 3." in final.message) is (exit_code == 3), final


async def test_cancel_goes_through_cancelling_and_an_ended_run_is_not_cancellable(
    server: MotoEmrProcess, client: EmrServerlessClient, application: str
) -> None:
    loc = await client.submit(job(application, 300, 0), TOKEN)

    async def running() -> bool:
        return (await client.status(loc)).raw_state == "RUNNING"

    await eventually(running, timeout=30, what="the run to be RUNNING")
    await client.cancel(loc)
    assert (await client.status(loc)).raw_state in ("CANCELLING", "CANCELLED")
    assert (await states_until_ended(client, loc))[-1] == "CANCELLED"
    # AWS refuses to cancel an ended run (moto alone would accept); the client takes that as done
    with pytest.raises(botocore.exceptions.ClientError, match="ValidationException"):
        server.boto("emr-serverless").cancel_job_run(applicationId=application, jobRunId=loc["job_run_id"])
    await client.cancel(loc)


async def test_a_repeated_client_token_starts_another_run_and_find_adopts_the_oldest(
    client: EmrServerlessClient, application: str
) -> None:
    token = make_token("dag", "run", "twice", -1, 0)
    since = time.time()
    spec = job(application, 0, 0)
    first = await client.submit(spec, token)
    await asyncio.sleep(0.01)
    second = await client.submit(spec, token)
    assert first != second  # stricter than AWS: the protocol, not the token, prevents a duplicate here
    assert await client.find(token, since=since, spec=spec) == first


async def test_an_application_without_runs_lists_none(client: EmrServerlessClient, server: MotoEmrProcess) -> None:
    empty = server.create_application("empty")
    assert await client.find(TOKEN, since=time.time(), spec=job(empty, 0, 0)) is None
    assert server.boto("emr-serverless").list_job_runs(applicationId=empty)["jobRuns"] == []


def test_a_paused_server_answers_nothing_until_resumed(server: MotoEmrProcess, application: str) -> None:
    boto = server.boto("emr-serverless", config=Config(read_timeout=1, retries={"total_max_attempts": 1}))
    server.pause()
    try:
        with pytest.raises(botocore.exceptions.ReadTimeoutError):
            boto.list_job_runs(applicationId=application)
    finally:
        server.resume()
    assert isinstance(boto.list_job_runs(applicationId=application)["jobRuns"], list)


def test_the_process_stops_when_its_stdin_closes(tmp_path: Path) -> None:
    proc = MotoEmrProcess(tmp_path / "moto.log").start()
    try:
        assert proc.proc is not None and proc.proc.stdin is not None
        proc.proc.stdin.close()
        assert proc.proc.wait(30) == 0
        assert "stopping" in proc.logs_tail()
    finally:
        proc.stop()


# --- EMR steps --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(server: MotoEmrProcess) -> str:
    return server.create_cluster("e2e")


@pytest.fixture
async def steps(server: MotoEmrProcess) -> AsyncIterator[EmrStepClient]:
    yield EmrStepClient(server.config())
    await close_sessions()


def step(cluster: str, seconds: float, exit_code: int) -> EmrStep:
    return EmrStep(cluster_id=cluster, name="sleep exit", args=sleep_exit_args(seconds, exit_code))


@pytest.mark.parametrize(("exit_code", "ended"), [(0, "COMPLETED"), (3, "FAILED")])
async def test_a_step_sleeps_then_ends_with_its_exit_code(
    steps: EmrStepClient, cluster: str, exit_code: int, ended: str
) -> None:
    loc = await steps.submit(step(cluster, 2, exit_code), TOKEN)
    seen = await states_until_ended(steps, loc)
    assert seen[0] in ("PENDING", "RUNNING"), seen
    assert seen[-2:] == ["RUNNING", ended], seen
    assert ("ExitCode: 3." in (await steps.status(loc)).message) is (exit_code == 3)


async def test_a_running_step_is_cancelled_through_cancel_pending(steps: EmrStepClient, cluster: str) -> None:
    loc = await steps.submit(step(cluster, 300, 0), TOKEN)

    async def running() -> bool:
        return (await steps.status(loc)).raw_state == "RUNNING"

    await eventually(running, timeout=30, what="the step to be RUNNING")
    await steps.cancel(loc)
    assert (await steps.status(loc)).raw_state in ("CANCEL_PENDING", "CANCELLED")
    assert (await states_until_ended(steps, loc))[-1] == "CANCELLED"
