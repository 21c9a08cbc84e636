"""Property-based fuzzing of the Databricks decoders, the state mapping and the client's reading of answers.

Random JSON, random values in every field read, random bytes and cut bodies: nothing escapes but
:class:`MalformedAnswer`/:class:`TransientError` (an :class:`AuthError` only for a 401/403), nothing malformed
becomes LOST or FAILED, nothing answered with 200 is LOST, and FAILED comes only from a well-formed run object
whose words say it failed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from durable_jobs.clients.base import locator_key
from durable_jobs.clients.databricks import (
    CODES,
    FAILURE_TYPES,
    RESULTS,
    DatabricksClient,
    OAuthM2MAuth,
    Run,
    RunsListing,
    decode_run,
    decode_runs_page,
    error_of,
    from_state,
    from_status,
    status_from_run,
)
from durable_jobs.clients.databricks.answers import RunState, RunStatusInfo, TerminationDetails
from durable_jobs.errors import AuthError, DurableJobError, MalformedAnswer, TransientError
from durable_jobs.status import JobState, JobStatus
from durable_jobs.testing.transport import MockTransport, response
from durable_jobs.transport import retry
from durable_jobs.transport.auth import BearerAuth
from durable_jobs.transport.http import use_transport
from tests.yarn.test_yarn_fuzz import body_of, cuts, json_values, mutated

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HOST = "https://dbx.example.com"
RUN_ID = 1001
LIVES = ["QUEUED", "PENDING", "RUNNING", "TERMINATING", "TERMINATED", "SKIPPED", "INTERNAL_ERROR", "BLOCKED",
         "WAITING_FOR_RETRY", "EXPLODED", ""]  # fmt: skip
RESULT_WORDS = [*RESULTS, "NEW_RESULT", ""]
STATUS_WORDS = ["QUEUED", "PENDING", "RUNNING", "TERMINATING", "TERMINATED", "BLOCKED", "WAITING_FOR_RETRY", "ZZZ"]
CODE_WORDS = [*CODES, "NEW_CODE", ""]
TYPE_WORDS = [*FAILURE_TYPES, "SUCCESS", "NEW_TYPE"]
FAILED_RESULTS = {r for r, s in RESULTS.items() if s is JobState.FAILED}
FAILED_CODES = {c for c, s in CODES.items() if s is JobState.FAILED}

states = mutated(
    st.fixed_dictionaries(
        {"life_cycle_state": st.sampled_from(LIVES)},
        optional={
            "result_state": st.sampled_from(RESULT_WORDS),
            "state_message": st.text(max_size=30),
            "user_cancelled_or_timedout": st.booleans(),
        },
    )
)
statuses = mutated(
    st.fixed_dictionaries(
        {"state": st.sampled_from(STATUS_WORDS)},
        optional={
            "termination_details": mutated(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "code": st.sampled_from(CODE_WORDS),
                        "type": st.sampled_from(TYPE_WORDS),
                        "message": st.text(max_size=20),
                    },
                )
            )
        },
    )
)
tasks = st.lists(
    mutated(
        st.fixed_dictionaries(
            {"task_key": st.text(max_size=8)},
            optional={"state": states, "status": statuses, "run_page_url": st.sampled_from(["https://x/r", "js:x"])},
        )
    ),
    max_size=3,
)
good_runs = st.fixed_dictionaries(
    {"run_id": st.sampled_from([RUN_ID, RUN_ID, RUN_ID + 1])},
    optional={
        "state": states,
        "status": statuses,
        "tasks": tasks,
        "run_page_url": st.sampled_from([f"{HOST}/run/1", "javascript:x", ""]),
        "run_name": st.text(max_size=20),
        "job_id": st.integers(1, 10),
        "unread": json_values,
    },
)
run_objects = mutated(good_runs)
run_like = run_objects | run_objects | run_objects | json_values


run_bodies = st.builds(body_of, run_like, cuts) | st.binary(max_size=200)
page_bodies = (
    st.builds(
        body_of,
        mutated(
            st.fixed_dictionaries(
                {"runs": st.lists(run_like, max_size=4), "has_more": st.booleans()},
                optional={"next_page_token": st.sampled_from(["t1", "", None])},
            )
        ),
        cuts,
    )
    | st.builds(body_of, json_values)
    | st.binary(max_size=100)
)


def says_failed(run: Any) -> bool:
    """Whether a run object's own words say it failed (the only source FAILED may come from)."""
    if not isinstance(run, dict):
        return False
    state, status = run.get("state"), run.get("status")
    if isinstance(state, dict):
        life, result = state.get("life_cycle_state"), state.get("result_state")
        if life in ("SKIPPED", "INTERNAL_ERROR") or (life == "TERMINATED" and result in FAILED_RESULTS):
            return True
    if isinstance(status, dict) and status.get("state") == "TERMINATED":
        details = status.get("termination_details")
        if isinstance(details, dict) and (details.get("code") in FAILED_CODES or details.get("type") in FAILURE_TYPES):
            return True
    return False


def check_status(status: JobStatus, sources: list[Any]) -> None:
    assert isinstance(status, JobStatus)
    assert status.state is not JobState.LOST
    if status.state is JobState.FAILED:
        assert any(says_failed(s) for s in sources), (status, sources)
    assert len(status.message) <= 2000 and len(status.raw_state) <= 100
    assert status.tracking_url is None or status.tracking_url.startswith(("http://", "https://"))


@FUZZ
@given(run_bodies)
def test_decode_run_raises_only_malformed_and_never_invents_a_failure(body: bytes) -> None:
    try:
        run = decode_run(body, RUN_ID, what="fuzz")
    except DurableJobError as exc:
        assert isinstance(exc, MalformedAnswer)
        return
    assert isinstance(run, Run) and run.run_id == RUN_ID
    check_status(status_from_run(run), [json.loads(body)])


@FUZZ
@given(page_bodies)
def test_a_runs_page_is_read_entry_by_entry(body: bytes) -> None:
    try:
        entries, next_token = decode_runs_page(body, what="fuzz")
    except DurableJobError as exc:
        assert isinstance(exc, MalformedAnswer)
        return
    assert next_token is None or next_token
    listing = RunsListing()
    listing.add_page(entries, "fuzz")
    raw = json.loads(body).get("runs") or []
    assert len(listing.runs) + len(listing.malformed) + listing.unreadable <= len(raw)
    for run_id, run in listing.runs.items():
        assert run.run_id == run_id and run_id not in listing.malformed
        check_status(status_from_run(run), [r for r in raw if isinstance(r, dict) and r.get("run_id") == run_id])


@FUZZ
@given(st.binary(max_size=100) | st.builds(body_of, json_values))
def test_error_of_never_raises(body: bytes) -> None:
    err = error_of(body)
    assert err is None or isinstance(err.error_code, str)


@FUZZ
@given(
    st.sampled_from(LIVES) | st.text(max_size=10),
    st.none() | st.sampled_from(RESULT_WORDS) | st.text(max_size=10),
    st.sampled_from(STATUS_WORDS) | st.text(max_size=10),
    st.none() | st.sampled_from(CODE_WORDS) | st.text(max_size=10),
    st.none() | st.sampled_from(TYPE_WORDS) | st.text(max_size=10),
)
def test_the_state_mapping_never_says_lost_and_unknown_words_stay_unknown(
    life: str, result: str | None, word: str, code: str | None, kind: str | None
) -> None:
    legacy = from_state(RunState(life_cycle_state=life, result_state=result))
    new = from_status(RunStatusInfo(state=word, termination_details=TerminationDetails(code=code, type=kind)))
    for reading in (legacy, new):
        if reading is not None:
            assert reading.state is not JobState.LOST
    if legacy is not None and legacy.state is JobState.FAILED:
        assert life in ("SKIPPED", "INTERNAL_ERROR") or result in FAILED_RESULTS
    if legacy is not None and life not in LIVES[:-2]:
        assert legacy.state is JobState.UNKNOWN  # a life-cycle word Databricks does not document
    if new is not None and new.state is JobState.FAILED:
        assert word == "TERMINATED" and (code in FAILED_CODES or kind in FAILURE_TYPES)
    if new is not None and word not in STATUS_WORDS[:-1]:
        assert new.state is JobState.UNKNOWN


# what the workspace may answer about run A: its object, a not-found, anything (each possibly broken)
a_runs = mutated(
    st.fixed_dictionaries({"run_id": st.just(RUN_ID), "state": states}, optional={"status": statuses, "tasks": tasks})
)
not_found = st.sampled_from(
    [
        {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"Run {RUN_ID} does not exist."},
        {"error_code": "ENDPOINT_NOT_FOUND", "message": "no"},
        {"error_code": 404},
    ]
)
get_answers = st.one_of(
    st.tuples(st.just(200), st.builds(body_of, a_runs, cuts)),
    st.tuples(st.just(404), st.builds(body_of, not_found, cuts)),
    st.tuples(st.sampled_from([200, 404, 400, 409, 429, 500, 503, 302]), run_bodies),
)
list_bodies = st.one_of(
    st.builds(body_of, st.fixed_dictionaries({"runs": st.lists(a_runs | run_objects, max_size=3)}), cuts),
    st.just(b'{"has_more": false}'),
    page_bodies,
)


def _complete_without_a(status: int, body: bytes) -> bool:
    """The oracle: a readable, complete, single page that does not show A."""
    if status != 200:
        return False
    try:
        entries, next_token = decode_runs_page(body, what="oracle")
    except DurableJobError:
        return False
    listing = RunsListing()
    listing.add_page(entries, "oracle")
    return next_token is None and listing.complete and RUN_ID not in listing.runs and RUN_ID not in listing.malformed


def _sources(*bodies: bytes) -> list[Any]:
    out: list[Any] = []
    for raw in bodies:
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        out.append(data)
        if isinstance(data, dict) and isinstance(data.get("runs"), list):
            out.extend(data["runs"])
    return out


@settings(FUZZ, max_examples=500)
@given(get_answers, st.sampled_from([200, 200, 200, 500, 429]), list_bodies)
def test_the_client_never_loses_or_fails_a_run_on_a_malformed_answer(
    get: tuple[int, bytes], list_status: int, list_body: bytes
) -> None:
    get_status, get_body = get

    def handler(req: Any) -> Any:
        if req.url.endswith("/runs/list"):
            return response(list_status, list_body, content_type="application/json")
        headers = {"Location": "https://elsewhere.example.com/x"} if get_status == 302 else None
        return response(get_status, get_body, headers=headers, content_type="application/json")

    client = DatabricksClient(HOST, auth=BearerAuth("dapi-fuzz"))
    loc, other = {"run_id": RUN_ID}, {"run_id": RUN_ID + 7}

    async def run() -> list[JobStatus]:
        out: list[JobStatus] = []
        with use_transport(MockTransport(handler)):
            try:
                out.append(await client.status(loc))
            except (TransientError, AuthError) as exc:
                assert not isinstance(exc, AuthError) or get_status in (401, 403), exc
                event(f"status raised {type(exc).__name__}")
            try:
                batch = await client.statuses([loc, other])
            except TransientError as exc:
                event(f"statuses raised {type(exc).__name__}")
            else:
                if locator_key(loc) in batch:
                    out.append(batch[locator_key(loc)])
        return out

    lost_allowed = (
        get_status == 404
        and (err := error_of(get_body)) is not None
        and err.error_code == "RESOURCE_DOES_NOT_EXIST"
        and _complete_without_a(list_status, list_body)
    )
    for status in asyncio.run(run()):
        event(status.state.value)
        if status.state is JobState.LOST:
            assert lost_allowed and get_status != 200, (get_status, get_body, list_status, list_body)
        if status.state is JobState.FAILED:
            assert any(says_failed(s) for s in _sources(get_body, list_body)), (get_body, list_body)


@FUZZ
@given(st.sampled_from([200, 200, 200, 400, 401, 404, 500, 503, 302]), run_bodies | st.builds(body_of, json_values))
def test_the_token_endpoint_raises_only_our_errors(status: int, body: bytes) -> None:
    auth = OAuthM2MAuth(HOST, "client", "fuzz-secret-value")

    def handler(req: Any) -> Any:
        return response(status, body, content_type="application/json")

    async def run() -> None:
        with use_transport(MockTransport(handler)), retry.instant_waits():
            await auth.token()

    try:
        asyncio.run(run())
    except DurableJobError as exc:
        assert isinstance(exc, (TransientError, AuthError)), exc
        assert "fuzz-secret-value" not in str(exc)
        event(type(exc).__name__)
