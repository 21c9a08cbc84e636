"""Property-based fuzzing of the Glue decoders and state mapping, through the real aiobotocore client (scripted
answers, no network). Properties: nothing escapes but the library's errors; a malformed answer is unknown or a
transient error, never LOST, FAILED, CANCELLED or SUCCEEDED; a well-formed one gives exactly its mapped state;
find never adopts a run that does not carry the token."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable_jobs.clients.base import locator_key
from durable_jobs.clients.glue import GLUE_STATES, GlueClient, GlueJobRunSpec, JobRunView, run_status
from durable_jobs.errors import DurableJobError, TransientError
from durable_jobs.status import JobState, JobStatus
from durable_jobs.transport.http import close_sessions
from tests.glue.scripted import JOB, Script, error, got, listing, run, run_id, scripted_client

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOKEN = "dj00fuzz00fuzz00fuzz00"
LOCS = [{"job_name": JOB, "run_id": run_id(n)} for n in (1, 2)]
WORDS = st.sampled_from([*GLUE_STATES, "QUEUED", "", "succeeded", "FAILED "]) | st.text(max_size=12)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
FIELDS = ("Id", "JobRunState", "JobName", "StartedOn", "Arguments", "ErrorMessage", "LogGroupName", "Attempt")


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    yield lp
    lp.run_until_complete(close_sessions())
    lp.close()


@pytest.fixture(scope="module")
def script() -> Script:
    return Script()


@pytest.fixture(scope="module")
def client(loop: asyncio.AbstractEventLoop, script: Script) -> GlueClient:
    c: GlueClient = loop.run_until_complete(scripted_client(script))
    return c


def outcome(loop: asyncio.AbstractEventLoop, aw: Any) -> Any:
    try:
        return loop.run_until_complete(asyncio.wait_for(aw, 10))
    except DurableJobError as exc:
        return exc


def mapped(raw: Any) -> JobState:
    return GLUE_STATES.get(raw, JobState.UNKNOWN) if isinstance(raw, str) else JobState.UNKNOWN


@st.composite
def fuzzed_run(draw: st.DrawFn, n: int) -> Any:
    """A run of Glue's shape with some fields replaced by anything, or anything at all."""
    base = run(n, draw(WORDS), token=draw(st.sampled_from([TOKEN, "other", None])))
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)):
        if draw(st.booleans()):
            base.pop(name, None)
        else:
            base[name] = draw(JSON)
    return draw(st.just(base) | JSON)


@FUZZ
@given(raw=WORDS, message=st.none() | st.text(max_size=20))
def test_glue_state_mapping_is_total_and_unknown_words_never_fail(raw: str, message: str | None) -> None:
    status = run_status(JobRunView(id=run_id(1), job_run_state=raw, error_message=message), "https://x")
    assert status.state is mapped(raw) and status.raw_state == raw[:200]
    if raw not in GLUE_STATES:
        assert "not one this library knows" in status.message


@FUZZ
@given(body=fuzzed_run(1))
def test_glue_a_fuzzed_get_job_run_is_its_mapped_state_or_unknown(
    loop: asyncio.AbstractEventLoop, script: Script, client: GlueClient, body: Any
) -> None:
    script.on("GetJobRun", got(body))
    script.on("GetJobRuns", error("InternalServiceException", "down", 500))
    out = outcome(loop, client.status(LOCS[0]))
    if isinstance(out, JobStatus):
        assert isinstance(body, dict) and body.get("Id") == run_id(1)
        assert out.state is mapped(body.get("JobRunState"))
    else:
        assert isinstance(out, TransientError), out


@FUZZ
@given(items=st.lists(st.integers(1, 4).flatmap(fuzzed_run), max_size=5))
def test_glue_find_never_adopts_a_run_without_the_token(
    loop: asyncio.AbstractEventLoop, script: Script, client: GlueClient, items: list[Any]
) -> None:
    script.on("GetJobRuns", listing(*items))
    out = outcome(loop, client.find(TOKEN, since=0.0, spec=GlueJobRunSpec(job_name=JOB)))
    if isinstance(out, dict):
        ours = {"Id": out["run_id"], "Arguments": {"--durable_jobs_token": TOKEN}}
        carriers = [i for i in items if isinstance(i, dict) and ours.items() <= i.items()]
        assert carriers, f"find adopted {out} from {items}"
    elif out is not None:
        assert isinstance(out, TransientError), out


@FUZZ
@given(items=st.lists(st.integers(1, 3).flatmap(fuzzed_run), max_size=4))
def test_glue_a_fuzzed_listing_never_makes_a_run_lost_or_ended_it_does_not_say(
    loop: asyncio.AbstractEventLoop, script: Script, client: GlueClient, items: list[Any]
) -> None:
    script.on("GetJobRuns", listing(*items))
    script.on("GetJobRun", error("InternalServiceException", "down", 500))
    out = outcome(loop, client.statuses(LOCS))
    if isinstance(out, DurableJobError):
        assert isinstance(out, TransientError)
        return
    for loc in LOCS:
        status = out.get(locator_key(loc))
        if status is None or status.state is JobState.UNKNOWN:
            continue
        assert status.state is not JobState.LOST
        said = [i for i in items if isinstance(i, dict) and i.get("Id") == loc["run_id"]]
        assert status.state in {mapped(i.get("JobRunState")) for i in said}, (status, items)
