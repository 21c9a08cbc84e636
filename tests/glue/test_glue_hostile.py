"""Hostile Glue answers, scripted: malformed means unknown (never LOST, never FAILED, never a crash), an error
about one run or job touches that one only, and a doubtful submit is looked up, never sent twice."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from durable_jobs.clients.base import locator_key
from durable_jobs.clients.glue import GlueClient, GlueJobRunSpec
from durable_jobs.errors import DurableJobError, MalformedAnswer, PermanentError, TransientError, UndecidableError
from durable_jobs.status import JobState
from durable_jobs.transport.http import close_sessions
from tests.glue.scripted import CONFIG, JOB, Script, error, got, listing, run, run_id, scripted_client

TOKEN = "dj0123456789abcdef0123"
LOC = {"job_name": JOB, "run_id": run_id(1)}
SPEC = GlueJobRunSpec(job_name=JOB)


@pytest.fixture
async def script() -> AsyncIterator[Script]:
    try:
        yield Script()
    finally:
        await close_sessions()


async def status_of(client: GlueClient, loc: dict[str, str] = LOC) -> Any:
    try:
        return await client.status(loc)
    except DurableJobError as exc:
        return exc


@pytest.mark.parametrize(
    "answer",
    [
        (502, b"<html>Bad gateway</html>"),
        (200, b"{not json"),
        (200, {"JobRun": None}),
        (200, {"JobRun": {"Id": run_id(1), "JobRunState": 7}}),
        (200, {"JobRun": {"Id": run_id(1), "JobRunState": "FAILED", "Arguments": ["x"]}}),
        (200, {"JobRun": {"Id": run_id(2), "JobRunState": "FAILED"}}),  # about another run
        (200, {"JobRun": {"Id": run_id(1), "JobName": "other", "JobRunState": "FAILED"}}),
        (404, b""),  # no AWS error code: a proxy's page
    ],
)
async def test_glue_a_hostile_get_job_run_is_unknown_never_lost_or_failed(script: Script, answer: Any) -> None:
    script.on("GetJobRun", answer)
    client = await scripted_client(script)
    out = await status_of(client)
    assert isinstance(out, TransientError), out
    polled = await client.statuses([LOC])
    assert polled[locator_key(LOC)].state is JobState.UNKNOWN


async def test_glue_not_found_with_an_unreadable_listing_is_not_lost(script: Script) -> None:
    script.on("GetJobRun", error("EntityNotFoundException", "Job run not found"))
    script.on("GetJobRuns", listing({"JobRunState": "RUNNING"}, run(5)))
    out = await status_of(await scripted_client(script))
    assert isinstance(out, MalformedAnswer) and "cannot confirm" in str(out)


async def test_glue_not_found_but_listed_keeps_the_listed_state(script: Script) -> None:
    script.on("GetJobRun", error("EntityNotFoundException", "Job run not found"))
    script.on("GetJobRuns", listing(run(5), run(1, "SUCCEEDED")))
    assert (await status_of(await scripted_client(script))).state is JobState.SUCCEEDED


async def test_glue_not_found_with_a_listing_that_never_ends_is_not_lost(script: Script) -> None:
    script.on("GetJobRun", error("EntityNotFoundException", "Job run not found"))
    script.on("GetJobRuns", listing(run(5), next_token="same"))  # the marker repeats
    out = await status_of(await scripted_client(script))
    assert isinstance(out, MalformedAnswer)


async def test_glue_find_with_a_malformed_run_that_might_be_ours_cannot_say_none(script: Script) -> None:
    for doubtful in ({"Id": 3, "Arguments": {"--durable_jobs_token": TOKEN}}, {"Id": run_id(3), "Arguments": "x"}):
        script.on("GetJobRuns", listing(run(2, token="another"), doubtful))
        with pytest.raises(MalformedAnswer):
            await (await scripted_client(script)).find(TOKEN, since=0.0, spec=SPEC)
    script.on("GetJobRuns", listing(run(2, token="another"), {"Id": 3, "Arguments": {"--durable_jobs_token": "x"}}))
    assert await (await scripted_client(script)).find(TOKEN, since=0.0, spec=SPEC) is None  # visibly not ours


async def test_glue_find_adopts_the_original_not_a_retry_attempt(script: Script) -> None:
    attempt = run(1, token=TOKEN, Id=run_id(1) + "_attempt_1", PreviousRunId=run_id(1))
    script.on("GetJobRuns", listing(attempt, run(1, "FAILED", token=TOKEN)))
    assert await (await scripted_client(script)).find(TOKEN, since=0.0, spec=SPEC) == LOC


async def test_glue_find_that_cannot_reach_the_intent_is_undecidable(script: Script) -> None:
    pages = iter(range(100))
    script.on("GetJobRuns", lambda _p: listing(run(0, token="x"), next_token=f"p{next(pages)}"))
    client = await scripted_client(script, list_pages=3)
    with pytest.raises(UndecidableError):
        await client.find(TOKEN, since=0.0, spec=SPEC)
    assert script.count("GetJobRuns") == 3


async def test_glue_a_hostile_start_answer_is_looked_up_never_sent_twice(script: Script) -> None:
    script.on("StartJobRun", (200, {"JobRunId": "not-a-run-id"}))
    script.on("GetJobRuns", listing(run(1, "STARTING", token=TOKEN)))  # it landed
    client = GlueClient(dataclasses.replace(CONFIG, retry_budget=1.0))
    (await client.client()).meta.events.register_first("before-send", script)
    assert await client.submit(SPEC, TOKEN) == LOC
    assert script.count("StartJobRun") == 1


async def test_glue_a_refused_start_is_permanent_and_a_busy_one_transient(script: Script) -> None:
    script.on("StartJobRun", error("InvalidInputException", "Worker type G.9X is not supported"))
    with pytest.raises(PermanentError, match=r"G\.9X"):
        await (await scripted_client(script)).submit(SPEC, TOKEN)
    script.on("StartJobRun", error("ConcurrentRunsExceededException", "Concurrent runs exceeded"))
    script.on("GetJobRuns", listing())
    with pytest.raises(TransientError, match="MaxConcurrentRuns"):
        await (await scripted_client(script)).submit(SPEC, TOKEN)


async def test_glue_a_failing_listing_of_one_job_touches_that_job_only(script: Script) -> None:
    other = [{"job_name": "other", "run_id": run_id(n)} for n in (7, 8)]
    mine = [{"job_name": JOB, "run_id": run_id(n)} for n in (1, 2)]

    def runs(params: dict[str, Any]) -> Any:
        if params["JobName"] == JOB:
            return 500, b"<html>oops</html>"
        return listing(run(7, "SUCCEEDED", JobName="other"), run(8, "FAILED", JobName="other"))

    script.on("GetJobRuns", runs)
    script.on("GetJobRun", lambda p: got(run(int(p["RunId"][3:], 16), "RUNNING")))
    answer = await (await scripted_client(script)).statuses(mine + other)
    assert answer[locator_key(other[0])].state is JobState.SUCCEEDED
    assert answer[locator_key(other[1])].state is JobState.FAILED
    assert {answer[locator_key(m)].state for m in mine} <= {JobState.RUNNING, JobState.UNKNOWN}


async def test_glue_a_malformed_listed_run_makes_that_run_unknown_only(script: Script) -> None:
    locs = [{"job_name": JOB, "run_id": run_id(n)} for n in (1, 2)]
    script.on("GetJobRuns", listing(run(1, "SUCCEEDED"), {"Id": run_id(2), "JobRunState": ["FAILED"]}))
    answer = await (await scripted_client(script)).statuses(locs)
    assert answer[locator_key(locs[0])].state is JobState.SUCCEEDED
    assert answer[locator_key(locs[1])].state is JobState.UNKNOWN


async def test_glue_cancel_reads_the_errors_list(script: Script) -> None:
    client = await scripted_client(script)
    script.on("BatchStopJobRun", (200, {"SuccessfulSubmissions": [], "Errors": []}))
    with pytest.raises(MalformedAnswer):
        await client.cancel(LOC)
    refused = {"JobName": JOB, "JobRunId": run_id(1), "ErrorDetail": {"ErrorCode": "InvalidInputException"}}
    script.on("BatchStopJobRun", (200, {"Errors": [refused]}))
    script.on("GetJobRun", got(run(1, "RUNNING")))
    with pytest.raises(PermanentError, match="InvalidInputException"):
        await client.cancel(LOC)
    script.on("GetJobRun", got(run(1, "SUCCEEDED")))
    await client.cancel(LOC)  # ended already: nothing to stop
    gone = {**refused, "ErrorDetail": {"ErrorCode": "EntityNotFoundException"}}
    script.on("BatchStopJobRun", (200, {"Errors": [gone]}))
    await client.cancel(LOC)


async def test_glue_messages_never_quote_the_credentials(script: Script) -> None:
    script.on("GetJobRun", error("InvalidInputException", f"bad key {CONFIG.aws_secret_access_key} here"))
    out = await status_of(await scripted_client(script))
    assert isinstance(out, PermanentError) and "scripted-secret-key" not in str(out)
