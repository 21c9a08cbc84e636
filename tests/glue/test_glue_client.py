"""The Glue client against moto's Glue (with its gaps closed in moto_glue): every call over real HTTP."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from durable_jobs.clients.base import locator_key
from durable_jobs.clients.emr.aws_config import AwsConfig
from durable_jobs.clients.glue import GlueClient, GlueJobRunSpec
from durable_jobs.errors import RecordError, TransientError, UndecidableError
from durable_jobs.record import make_token
from durable_jobs.status import JobState
from durable_jobs.transport.http import close_sessions
from durable_jobs_harness.moto_glue import GlueMoto

JOB = "nightly-etl"
OFFLINE = AwsConfig(region_name="us-east-1", endpoint_url="http://127.0.0.1:9", label="aws_offline")


def token(n: int = 0) -> str:
    return make_token("glue_dag", f"run{n}", "task", -1, 0)


@pytest.fixture
async def client(glue: GlueMoto) -> AsyncIterator[GlueClient]:
    glue.create_job(JOB)
    c = GlueClient(glue.moto.config(retry_budget=0.5), list_pages=10)
    try:
        yield c
    finally:
        await close_sessions()


def spec(**kw: Any) -> GlueJobRunSpec:
    return GlueJobRunSpec(job_name=JOB, arguments={"--day": "2026-12-03"}, **kw)


async def test_glue_submit_carries_the_token_in_the_arguments(client: GlueClient, glue: GlueMoto) -> None:
    loc = await client.submit(spec(timeout=30, worker_type="G.1X", number_of_workers=2), token())
    assert set(loc) == {"job_name", "run_id"} and loc["job_name"] == JOB
    run = glue.run(JOB, loc["run_id"])
    assert run.arguments["--durable_jobs_token"] == token()
    assert run.arguments["--day"] == "2026-12-03" and run.arguments["--job-language"] == "python"
    assert run.timeout == 30 and run.worker_type == "G.1X" and run.number_of_workers == 2


async def test_glue_states_map_from_every_glue_word(client: GlueClient, glue: GlueMoto) -> None:
    loc = await client.submit(spec(), token())
    expected = {
        "STARTING": JobState.PENDING,
        "WAITING": JobState.PENDING,
        "RUNNING": JobState.RUNNING,
        "STOPPING": JobState.RUNNING,
        "SUCCEEDED": JobState.SUCCEEDED,
        "FAILED": JobState.FAILED,
        "TIMEOUT": JobState.FAILED,
        "ERROR": JobState.FAILED,
        "EXPIRED": JobState.FAILED,
        "STOPPED": JobState.CANCELLED,
        "HIBERNATING": JobState.UNKNOWN,
    }
    for raw, state in expected.items():
        glue.set_run(JOB, loc["run_id"], raw)
        st = await client.status(loc)
        assert (st.state, st.raw_state) == (state, raw)
    assert "not one this library knows" in st.message


async def test_glue_failure_message_names_the_error_and_the_log_stream(client: GlueClient, glue: GlueMoto) -> None:
    loc = await client.submit(spec(), token())
    glue.set_run(JOB, loc["run_id"], "FAILED", error="SyntaxError: invalid syntax (etl.py, line 3)")
    st = await client.status(loc)
    assert st.state is JobState.FAILED
    assert "SyntaxError: invalid syntax" in st.message
    assert "test/log/error" in st.message and loc["run_id"] in st.message  # moto's LogGroupName is test/log
    assert st.extra["log_stream"] == loc["run_id"] and st.extra["log_group"] == "test/log/error"
    assert st.tracking_url == (await client.links(loc))["glue_run_url"]


async def test_glue_find_adopts_the_run_carrying_the_token(client: GlueClient, glue: GlueMoto) -> None:
    since = time.time()
    other = await client.submit(spec(), token(1))
    mine = await client.submit(spec(), token(2))
    assert await client.find(token(2), since=since, spec=spec()) == mine
    assert await client.find(token(1), since=since, spec=spec()) == other
    assert await client.find(token(3), since=since, spec=spec()) is None


async def test_glue_find_of_a_job_that_does_not_exist_is_none(client: GlueClient) -> None:
    assert await client.find(token(), since=time.time(), spec=GlueJobRunSpec(job_name="no-such-job")) is None


async def test_glue_find_reads_pages_back_to_the_intent(glue: GlueMoto, client: GlueClient) -> None:
    since = time.time()
    mine = await client.submit(spec(), token(0))
    for n in range(1, 6):
        await client.submit(spec(), token(n))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("durable_jobs.clients.glue.client.PAGE_SIZE", 2)
        assert await client.find(token(0), since=since, spec=spec()) == mine
        short = GlueClient(glue.moto.config(retry_budget=0.5), list_pages=2)
        with pytest.raises(UndecidableError, match="did not reach back"):
            await short.find(token(99), since=since, spec=spec())
        assert await client.find(token(99), since=since, spec=spec()) is None


async def test_glue_find_ignores_an_older_generation_outside_the_window(client: GlueClient, glue: GlueMoto) -> None:
    loc = await client.submit(spec(), token())
    glue.run(JOB, loc["run_id"]).started_on = glue.run(JOB, loc["run_id"]).started_on.replace(year=2020)
    assert await client.find(token(), since=time.time(), spec=spec()) is None


async def test_glue_concurrent_runs_exceeded_is_transient_never_failed(glue: GlueMoto) -> None:
    glue.create_job("single", max_concurrent_runs=1)
    client = GlueClient(glue.moto.config(retry_budget=0.2))
    try:
        one = GlueJobRunSpec(job_name="single")
        await client.submit(one, token(1))
        with pytest.raises(TransientError, match="ConcurrentRunsExceededException"):
            await client.submit(one, token(2))
        assert glue.with_token("single", token(2)) == []
    finally:
        await close_sessions()


async def test_glue_a_throttled_start_that_landed_is_found_not_resent(client: GlueClient, glue: GlueMoto) -> None:
    glue.moto.fail("glue", "StartJobRun", applied=True)
    loc = await client.submit(spec(), token())
    assert [r.job_run_id for r in glue.with_token(JOB, token())] == [loc["run_id"]]
    assert glue.moto.count("glue", "StartJobRun") == 1


async def test_glue_statuses_make_one_listing_per_job_name(client: GlueClient, glue: GlueMoto) -> None:
    glue.create_job("other-job")
    locs = [await client.submit(spec(), token(n)) for n in range(5)]
    locs.append(await client.submit(GlueJobRunSpec(job_name="other-job"), token(9)))
    glue.set_run(JOB, locs[0]["run_id"], "SUCCEEDED")
    glue.set_run(JOB, locs[1]["run_id"], "RUNNING")
    glue.moto.requests.clear()
    answer = await client.statuses(locs)
    assert answer[locator_key(locs[0])].state is JobState.SUCCEEDED
    assert answer[locator_key(locs[1])].state is JobState.RUNNING
    assert answer[locator_key(locs[5])].state is JobState.PENDING
    assert glue.moto.count("glue", "GetJobRuns") == 1  # the job with five runs
    assert glue.moto.count("glue", "GetJobRun") == 1  # the job with one run: asked directly


async def test_glue_statuses_ask_runs_the_walk_did_not_reach(client: GlueClient, glue: GlueMoto) -> None:
    locs = [await client.submit(spec(), token(n)) for n in range(4)]
    short = GlueClient(glue.moto.config(retry_budget=0.5), list_pages=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("durable_jobs.clients.glue.client.PAGE_SIZE", 2)
        glue.moto.requests.clear()
        answer = await short.statuses(locs)
    assert {st.state for st in answer.values()} == {JobState.PENDING} and len(answer) == 4
    assert glue.moto.count("glue", "GetJobRuns") == 1 and glue.moto.count("glue", "GetJobRun") == 2


async def test_glue_a_forgotten_run_is_lost_only_when_the_listing_agrees(client: GlueClient, glue: GlueMoto) -> None:
    loc = await client.submit(spec(), token())
    glue.forget(JOB, loc["run_id"])
    st = await client.status(loc)
    assert st.state is JobState.LOST and "does not list it" in st.message
    assert glue.moto.count("glue", "GetJobRuns") >= 1


async def test_glue_a_denied_run_the_listing_shows_keeps_its_state(client: GlueClient, glue: GlueMoto) -> None:
    loc = await client.submit(spec(), token())
    glue.set_run(JOB, loc["run_id"], "SUCCEEDED")
    glue.moto.fail("glue", "GetJobRun", code="EntityNotFoundException", message="Job run not found")
    st = await client.status(loc)
    assert st.state is JobState.SUCCEEDED


async def test_glue_a_deleted_job_makes_its_runs_lost(client: GlueClient, glue: GlueMoto) -> None:
    loc = await client.submit(spec(), token())
    glue.moto.boto("glue").delete_job(JobName=JOB)
    assert (await client.status(loc)).state is JobState.LOST


async def test_glue_cancel_stops_and_reads_the_errors_list(client: GlueClient, glue: GlueMoto) -> None:
    loc = await client.submit(spec(), token())
    glue.set_run(JOB, loc["run_id"], "RUNNING")
    await client.cancel(loc)
    assert glue.run(JOB, loc["run_id"]).status == "STOPPING"
    await client.cancel(loc)  # stopping already: Glue's Errors entry is fine
    glue.set_run(JOB, loc["run_id"], "STOPPED")
    await client.cancel(loc)
    assert (await client.status(loc)).state is JobState.CANCELLED
    done = await client.submit(spec(), token(1))
    glue.set_run(JOB, done["run_id"], "SUCCEEDED")
    await client.cancel(done)
    assert (await client.status(done)).state is JobState.SUCCEEDED


async def test_glue_links_point_at_the_glue_studio_run_page(client: GlueClient) -> None:
    loc = {"job_name": JOB, "run_id": "jr_" + "a" * 64}
    assert await client.links(loc) == {
        "glue_run_url": "https://us-east-1.console.aws.amazon.com/gluestudio/home?region=us-east-1"
        f"#/job/nightly-etl/run/jr_{'a' * 64}"
    }


@pytest.mark.parametrize(
    "bad",
    [
        {"job_name": JOB},
        {"job_name": JOB, "run_id": "jr_123"},
        {"job_name": JOB, "run_id": "jr_" + "A" * 64},
        {"job_name": JOB, "run_id": "jr_" + "a" * 64 + "_attempt_1"},
        {"job_name": "", "run_id": "jr_" + "a" * 64},
        {"job_name": "a\nb", "run_id": "jr_" + "a" * 64},
        {"job_name": "nightly etl", "run_id": "jr_" + "a" * 64},
        {"job_name": "../etl", "run_id": "jr_" + "a" * 64},
        {"job_name": "x" * 256, "run_id": "jr_" + "a" * 64},
        {"job_name": JOB, "run_id": "jr_" + "a" * 64, "more": 1},
    ],
)
def test_glue_locators_are_validated_strictly(bad: dict[str, Any]) -> None:
    config = OFFLINE
    with pytest.raises(RecordError):
        GlueClient(config).validate_locator(bad)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"arguments": {"--durable_jobs_token": "x"}}, "set by durable_jobs"),
        ({"arguments": {"--n": 3}}, "strings"),
        ({"timeout": 0}, "positive"),
        ({"number_of_workers": True}, "positive"),
        ({"max_capacity": 2.0, "worker_type": "G.1X"}, "not both"),
        ({"execution_class": "CHEAP"}, "execution_class"),
        ({"job_name": "a\tb\n"}, "invalid Glue job name"),
    ],
)
def test_glue_spec_refuses_what_glue_would(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"job_name": JOB, **kwargs}
    with pytest.raises(ValueError, match=match):
        GlueJobRunSpec(**args)


def test_glue_spec_request_sends_only_what_is_set() -> None:
    body = GlueJobRunSpec(job_name=JOB, execution_class="FLEX", job_run_queuing_enabled=True).request("tok")
    assert body == {
        "JobName": JOB,
        "Arguments": {"--durable_jobs_token": "tok"},
        "ExecutionClass": "FLEX",
        "JobRunQueuingEnabled": True,
    }


def test_glue_client_is_built_from_an_aws_config_like_the_emr_clients() -> None:
    config = OFFLINE
    client = GlueClient(config)
    assert client.list_pages == 10 and client.system == "glue" and client.find_unrecorded
    assert client.key == config.client_key("glue")
    with pytest.raises(ValueError, match="list_pages"):
        GlueClient(config, list_pages=0)


def test_glue_client_is_made_from_an_aws_connection_by_the_emr_hook_machinery(glue: GlueMoto) -> None:
    """What the Airflow side does: a DurableAwsHook whose client is ``durable_jobs.clients.glue.GlueClient``."""
    from airflow.models.connection import Connection

    from durable_jobs.hooks.emr import DurableAwsHook

    class GlueProbeHook(DurableAwsHook):
        client_module = "durable_jobs.clients.glue"
        client_class_name = "GlueClient"

    conn = Connection.from_json(glue.moto.connection(), conn_id="aws_moto")
    client = GlueProbeHook.client_from_connection(conn)
    assert isinstance(client, GlueClient) and client.config.endpoint_for("glue") == glue.moto.endpoint
    assert client.config.label == "aws_moto" and client.config.aws_access_key_id == "testing"
