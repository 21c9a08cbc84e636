"""The crash matrix's Glue: moto's server as its own process, with runs that live by their ``--durable_fake`` argument.

Driven through the library's Glue client (aiobotocore over HTTP): a run goes ``STARTING`` -> ``RUNNING`` -> its
scripted end (a failure with its ``ErrorMessage``), a stop goes through ``STOPPING`` to ``STOPPED``, the same token
twice is two runs (Glue has no idempotency token), and a paused server answers nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import botocore.exceptions
import pytest
from botocore.config import Config

from durable_jobs.clients.glue import GlueClient, GlueJobRunSpec
from durable_jobs.record import make_token
from durable_jobs.status import JobState
from durable_jobs.transport.http import close_sessions
from durable_jobs_harness.moto_emr import eventually
from durable_jobs_harness.moto_glue import create_glue_job
from durable_jobs_harness.moto_glue_server import FAILED_MESSAGE, MotoGlueProcess, script_of

pytestmark = pytest.mark.moto

TOKEN = make_token("dag", "run", "job", -1, 0)
JOB = "e2e"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoGlueProcess]:
    proc = MotoGlueProcess(tmp_path_factory.mktemp("moto") / "moto.log", pending=0.2, cancelling=0.5)
    proc.start()
    try:
        create_glue_job(proc, JOB)
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def client(server: MotoGlueProcess) -> AsyncIterator[GlueClient]:
    yield GlueClient(server.config())
    await close_sessions()


def spec(script: str) -> GlueJobRunSpec:
    return GlueJobRunSpec(job_name=JOB, arguments={"--durable_fake": script})


async def states_until_ended(client: GlueClient, loc: dict[str, str]) -> list[str]:
    seen: list[str] = []

    async def ended() -> bool:
        status = await client.status(loc)
        if not seen or seen[-1] != status.raw_state:
            seen.append(status.raw_state)
        return status.state.is_terminal

    await eventually(ended, timeout=60, what="the run to end")
    return seen


def test_script_of_reads_the_argument_and_defaults() -> None:
    assert script_of({"--durable_fake": "durable-fake:2.5s:FAILED"}) == (2.5, 1)
    assert script_of({"--durable_fake": "durable-fake:4s:SUCCEEDED"}) == (4.0, 0)
    assert script_of({"--durable_fake": "durable-fake:4s:DONE"}) == (3.0, 0)
    assert script_of(None) == (3.0, 0)


@pytest.mark.parametrize(("result", "end"), [("SUCCEEDED", JobState.SUCCEEDED), ("FAILED", JobState.FAILED)])
async def test_a_run_lives_by_its_script(client: GlueClient, result: str, end: JobState) -> None:
    loc = await client.submit(spec(f"durable-fake:1s:{result}"), TOKEN)
    seen = await states_until_ended(client, loc)
    assert set(seen) <= {"STARTING", "RUNNING", result} and seen[-1] == result, seen
    status = await client.status(loc)
    assert status.state is end
    assert (FAILED_MESSAGE in status.message) is (result == "FAILED")


async def test_a_stop_goes_through_stopping(client: GlueClient) -> None:
    loc = await client.submit(spec("durable-fake:60s:SUCCEEDED"), TOKEN)
    await client.cancel(loc)
    assert (await client.status(loc)).raw_state == "STOPPING"
    assert (await states_until_ended(client, loc))[-1] == "STOPPED"
    await client.cancel(loc)  # an ended run: fine


async def test_the_same_token_twice_is_two_runs_and_find_adopts_the_oldest(
    server: MotoGlueProcess, client: GlueClient
) -> None:
    token = make_token("dag", "run", "twice", -1, 0)
    first = await client.submit(spec("durable-fake:1s:SUCCEEDED"), token)
    second = await client.submit(spec("durable-fake:1s:SUCCEEDED"), token)
    assert first != second
    runs = server.boto("glue").get_job_runs(JobName=JOB)["JobRuns"]
    assert [r["Id"] for r in runs if r["Arguments"].get("--durable_jobs_token") == token] == [
        second["run_id"],
        first["run_id"],
    ]  # newest first, as AWS
    assert await client.find(token, since=0, spec=spec("")) == first


def test_a_paused_server_answers_nothing(server: MotoGlueProcess) -> None:
    glue = server.boto("glue", config=Config(read_timeout=1, connect_timeout=1, retries={"total_max_attempts": 1}))
    server.pause()
    try:
        with pytest.raises(botocore.exceptions.ReadTimeoutError):
            glue.get_job_runs(JobName=JOB)
    finally:
        server.resume()
    assert glue.get_job_runs(JobName=JOB)["JobRuns"]
