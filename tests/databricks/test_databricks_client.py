"""The Databricks client against a stub workspace: submit, find, status, statuses, cancel, links, job names."""

from __future__ import annotations

import json
from typing import Any

import pytest

from durable_jobs.clients.base import locator_key
from durable_jobs.clients.databricks import (
    DatabricksClient,
    OAuthM2MAuth,
    RunNowSpec,
    SubmitRunSpec,
    status_from_run,
)
from durable_jobs.clients.databricks.answers import Run
from durable_jobs.errors import (
    AuthError,
    MalformedAnswer,
    PermanentError,
    RecordError,
    TransientError,
    UndecidableError,
)
from durable_jobs.status import JobState
from durable_jobs.testing.transport import json_response, response
from durable_jobs.transport import retry
from durable_jobs.transport.auth import BearerAuth
from tests.databricks.stub_workspace import HOST, PAT, StubWorkspace, error, is_route

TOKEN = "dj" + "a" * 20
OTHER = "dj" + "b" * 20
TASKS = [{"task_key": "main", "spark_python_task": {"python_file": "dbfs:/x.py"}, "existing_cluster_id": "c-1"}]


def submit_spec(name: str | None = "nightly") -> SubmitRunSpec:
    payload: dict[str, Any] = {"tasks": TASKS}
    if name is not None:
        payload["run_name"] = name
    return SubmitRunSpec(payload)


def sent(ws: StubWorkspace, route: str) -> dict[str, Any]:
    req = [r for r in ws.requests if r.url.endswith(route)][-1]
    assert req.body is not None
    body: dict[str, Any] = json.loads(req.body)
    return body


def run_of(**fields: Any) -> Run:
    from msgspec import convert

    return convert({"run_id": 7, **fields}, Run)


# --- submit ---------------------------------------------------------------------------------------------------


async def test_submit_carries_the_token_as_idempotency_token_and_in_the_run_name(
    ws: StubWorkspace, client: DatabricksClient
) -> None:
    loc = await client.submit(submit_spec(), TOKEN)
    body = sent(ws, "/runs/submit")
    assert body["idempotency_token"] == TOKEN
    assert body["run_name"] == f"nightly [{TOKEN}]"
    assert body["tasks"] == TASKS
    assert loc == {"run_id": ws.by_token(TOKEN)[0].run_id}
    assert client.validate_locator(loc) == loc


async def test_submit_without_a_run_name_uses_the_default_one(ws: StubWorkspace, client: DatabricksClient) -> None:
    await client.submit(submit_spec(None), TOKEN)
    assert sent(ws, "/runs/submit")["run_name"] == f"airflow-durable [{TOKEN}]"


async def test_the_same_token_twice_is_one_run(ws: StubWorkspace, client: DatabricksClient) -> None:
    first = await client.submit(submit_spec(), TOKEN)
    again = await client.submit(submit_spec(), TOKEN)
    assert first == again and len(ws.runs) == 1


async def test_run_now_by_job_id(ws: StubWorkspace, client: DatabricksClient) -> None:
    job = ws.create_job("etl")
    loc = await client.submit(RunNowSpec({"job_id": job, "job_parameters": {"day": "1"}}), TOKEN)
    body = sent(ws, "/run-now")
    assert body == {"job_id": job, "job_parameters": {"day": "1"}, "idempotency_token": TOKEN}
    assert ws.runs[loc["run_id"]].run_type == "JOB_RUN"
    assert ws.count("/list") == 0  # no lookup by name


async def test_run_now_resolves_the_job_by_its_exact_name(ws: StubWorkspace, client: DatabricksClient) -> None:
    ws.create_job("other")
    job = ws.create_job("etl")
    await client.submit(RunNowSpec({"job_parameters": {}}, job_name="etl"), TOKEN)
    assert sent(ws, "/run-now")["job_id"] == job
    lookup = next(r for r in ws.requests if r.url.endswith("/jobs/list"))
    assert ("name", "etl") in lookup.params


async def test_run_now_by_a_name_no_job_has_is_permanent(ws: StubWorkspace, client: DatabricksClient) -> None:
    with pytest.raises(PermanentError, match=r"no Databricks job .* named 'etl'"):
        await client.submit(RunNowSpec({}, job_name="etl"), TOKEN)
    assert not ws.runs


async def test_run_now_by_a_name_several_jobs_have_is_permanent(ws: StubWorkspace, client: DatabricksClient) -> None:
    jobs = [{"job_id": i, "settings": {"name": "etl"}} for i in (1, 2)] + [{"job_id": 3, "settings": {"name": "x"}}]
    ws.override(is_route("GET", "list"), json_response({"jobs": jobs, "has_more": False}))
    with pytest.raises(PermanentError, match=r"several Databricks jobs .*\(ids 1, 2 at least\)"):
        await client.submit(RunNowSpec({}, job_name="etl"), TOKEN)


async def test_run_now_of_a_job_that_does_not_exist_is_permanent(ws: StubWorkspace, client: DatabricksClient) -> None:
    with pytest.raises(PermanentError, match="INVALID_PARAMETER_VALUE: Job 9 does not exist"):
        await client.submit(RunNowSpec({"job_id": 9}), TOKEN)


def test_specs_check_their_payload() -> None:
    with pytest.raises(ValueError, match="idempotency_token is set by durable_jobs"):
        SubmitRunSpec({"tasks": TASKS, "idempotency_token": "x"})
    with pytest.raises(ValueError, match="needs tasks"):
        SubmitRunSpec({"run_name": "x"})
    with pytest.raises(ValueError, match="JSON values only"):
        SubmitRunSpec({"tasks": TASKS, "when": object()})
    with pytest.raises(ValueError, match="job_id in the payload, or a job_name"):
        RunNowSpec({})
    with pytest.raises(ValueError, match="job_id must be a positive integer"):
        RunNowSpec({"job_id": "12"})
    SubmitRunSpec({"notebook_task": {"notebook_path": "/x"}, "existing_cluster_id": "c"})  # the legacy shape


async def test_a_refused_submission_is_permanent_and_says_why(ws: StubWorkspace, client: DatabricksClient) -> None:
    ws.override(is_route("POST", "runs/submit"), error(400, "INVALID_PARAMETER_VALUE", "Cluster c-1 does not exist"))
    with pytest.raises(PermanentError, match="INVALID_PARAMETER_VALUE: Cluster c-1 does not exist"):
        await client.submit(submit_spec(), TOKEN)


async def test_429_is_retried_after_its_retry_after(
    ws: StubWorkspace, client: DatabricksClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(retry, "sleep", sleep)
    ws.override(
        is_route("POST", "runs/submit"), error(429, "REQUEST_LIMIT_EXCEEDED", "slow down", {"Retry-After": "7"}), 2
    )
    loc = await client.submit(submit_spec(), TOKEN)
    assert ws.count("/runs/submit") == 3 and len(ws.runs) == 1 and loc["run_id"] in ws.runs
    assert len(waits) == 2 and all(w >= 7 for w in waits)


# --- find ------------------------------------------------------------------------------------------------------


async def test_find_adopts_the_run_whose_submit_answer_was_lost(ws: StubWorkspace, client: DatabricksClient) -> None:
    ws.override(is_route("POST", "runs/submit"), response(502, "<html>Bad gateway</html>"), times=3)
    with pytest.raises(TransientError):
        await client.submit(submit_spec(), TOKEN)  # the workspace got nothing: the override answered
    ws.add_run(token=TOKEN, run_name=f"nightly [{TOKEN}]", life="RUNNING")  # as if the first POST had landed
    retry_client = DatabricksClient(HOST, auth=BearerAuth(PAT))
    found = await retry_client.find(TOKEN, since=0, spec=submit_spec())
    assert found == {"run_id": ws.by_token(TOKEN)[0].run_id}
    assert len(ws.runs) == 1  # the same token again made no second run
    assert ws.count("/runs/get") == 1  # confirmed by runs/get


async def test_find_for_the_token_to_submit_next_creates_its_one_run(
    ws: StubWorkspace, client: DatabricksClient
) -> None:
    found = await client.find(TOKEN, since=0, spec=submit_spec())
    assert found is not None and len(ws.runs) == 1
    assert await client.submit(submit_spec(), TOKEN) == found  # the submit that follows: the same run


async def test_find_of_a_deleted_runs_token_scans_the_one_time_runs(
    ws: StubWorkspace, client: DatabricksClient
) -> None:
    ws.add_run(token=TOKEN, run_name=f"nightly [{TOKEN}]", deleted=True)
    for n in range(30):
        ws.add_run(run_name=f"other [dj{n:020x}]", life="TERMINATED", result="SUCCESS")
    kept = ws.add_run(token="copy", run_name=f"nightly [{TOKEN}]", life="TERMINATED", result="SUCCESS", run_id=5)
    found = await client.find(TOKEN, since=1_700_000_000.0, spec=submit_spec())
    assert found == {"run_id": kept.run_id}
    scan = [r for r in ws.requests if r.url.endswith("/runs/list")]
    assert scan and all(("run_type", "SUBMIT_RUN") in r.params for r in scan)
    assert all(("start_time_from", str((1_700_000_000 - 3600) * 1000)) in r.params for r in scan)


async def test_find_of_a_deleted_runs_token_never_resubmits(ws: StubWorkspace, client: DatabricksClient) -> None:
    ws.add_run(token=TOKEN, run_name=f"nightly [{TOKEN}]", deleted=True)
    with pytest.raises(PermanentError, match=r"was deleted.*may have succeeded.*clear the task"):
        await client.find(TOKEN, since=0, spec=submit_spec())
    job = ws.create_job("etl")
    ws.add_run(token=OTHER, run_type="JOB_RUN", job_id=job, deleted=True)
    with pytest.raises(PermanentError, match="was deleted"):
        await client.find(OTHER, since=0, spec=RunNowSpec({"job_id": job}))
    assert len(ws.runs) == 2 and ws.count("/runs/list") >= 1


async def test_find_is_undecidable_while_runs_get_does_not_know_the_answered_run(
    ws: StubWorkspace, client: DatabricksClient
) -> None:
    ws.override(is_route("GET", "runs/get"), error(404, "RESOURCE_DOES_NOT_EXIST", "Run 1001 does not exist."))
    with pytest.raises(UndecidableError):
        await client.find(TOKEN, since=0, spec=submit_spec())


async def test_find_does_not_believe_a_run_that_carries_another_token(
    ws: StubWorkspace, client: DatabricksClient
) -> None:
    ws.add_run(token=TOKEN, run_name=f"nightly [{OTHER}]")
    with pytest.raises(MalformedAnswer, match="carries no such token"):
        await client.find(TOKEN, since=0, spec=submit_spec())


def test_find_unrecorded_is_off() -> None:
    assert DatabricksClient.find_unrecorded is False  # find by re-sending would start old generations' runs


# --- the state mapping -----------------------------------------------------------------------------------------

STATE_TABLE = [
    ("QUEUED", None, JobState.PENDING),
    ("PENDING", None, JobState.PENDING),
    ("BLOCKED", None, JobState.PENDING),
    ("WAITING_FOR_RETRY", None, JobState.PENDING),
    ("RUNNING", None, JobState.RUNNING),
    ("TERMINATING", None, JobState.RUNNING),
    ("TERMINATING", "SUCCESS", JobState.RUNNING),
    ("TERMINATED", "SUCCESS", JobState.SUCCEEDED),
    ("TERMINATED", "SUCCESS_WITH_FAILURES", JobState.SUCCEEDED),
    ("TERMINATED", "FAILED", JobState.FAILED),
    ("TERMINATED", "TIMEDOUT", JobState.FAILED),
    ("TERMINATED", "CANCELED", JobState.CANCELLED),
    ("TERMINATED", "MAXIMUM_CONCURRENT_RUNS_REACHED", JobState.FAILED),
    ("TERMINATED", "EXCLUDED", JobState.FAILED),
    ("TERMINATED", "UPSTREAM_FAILED", JobState.FAILED),
    ("TERMINATED", "DISABLED", JobState.FAILED),
    ("INTERNAL_ERROR", "FAILED", JobState.FAILED),
    ("INTERNAL_ERROR", None, JobState.FAILED),
    ("SKIPPED", None, JobState.FAILED),
    ("TERMINATED", None, JobState.UNKNOWN),
    ("TERMINATED", "SOMETHING_NEW", JobState.UNKNOWN),
    ("HIBERNATING", None, JobState.UNKNOWN),
]


@pytest.mark.parametrize(("life", "result", "want"), STATE_TABLE)
async def test_state_mapping(
    ws: StubWorkspace, client: DatabricksClient, life: str, result: str | None, want: JobState
) -> None:
    run = ws.add_run(life=life, result=result, message="said the workspace")
    status = await client.status({"run_id": run.run_id})
    assert status.state is want
    assert status.raw_state == (f"{life}/{result}" if result else life)
    assert status.tracking_url == f"{HOST}/?o=1#job/0/run/{run.run_id}"


STATUS_TABLE = [
    ({"state": "QUEUED"}, JobState.PENDING),
    ({"state": "TERMINATING"}, JobState.RUNNING),
    ({"state": "TERMINATED", "termination_details": {"code": "SUCCESS", "type": "SUCCESS"}}, JobState.SUCCEEDED),
    ({"state": "TERMINATED", "termination_details": {"code": "SUCCESS_WITH_FAILURES"}}, JobState.SUCCEEDED),
    ({"state": "TERMINATED", "termination_details": {"code": "USER_CANCELED"}}, JobState.CANCELLED),
    ({"state": "TERMINATED", "termination_details": {"code": "DRIVER_ERROR", "type": "CLIENT_ERROR"}}, JobState.FAILED),
    ({"state": "TERMINATED", "termination_details": {"code": "SKIPPED"}}, JobState.FAILED),
    ({"state": "TERMINATED", "termination_details": {"code": "A_NEW_CODE", "type": "CLOUD_FAILURE"}}, JobState.FAILED),
    ({"state": "TERMINATED", "termination_details": {"code": "A_NEW_CODE", "type": "SUCCESS"}}, JobState.UNKNOWN),
    ({"state": "TERMINATED"}, JobState.UNKNOWN),
    ({"state": "NAPPING"}, JobState.UNKNOWN),
]


@pytest.mark.parametrize(("status", "want"), STATUS_TABLE)
def test_status_mapping_of_newer_workspaces(status: dict[str, Any], want: JobState) -> None:
    assert status_from_run(run_of(status=status)).state is want


def test_state_and_status_that_contradict_each_other_are_unknown() -> None:
    done = {"state": "TERMINATED", "termination_details": {"code": "SUCCESS"}}
    assert status_from_run(run_of(state={"life_cycle_state": "RUNNING"}, status=done)).state is JobState.UNKNOWN
    failed = {"life_cycle_state": "TERMINATED", "result_state": "FAILED"}
    assert status_from_run(run_of(state=failed, status=done)).state is JobState.UNKNOWN
    # agreeing, or one of them a word we do not know: the other one decides
    ok = {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS"}
    assert status_from_run(run_of(state=ok, status=done)).state is JobState.SUCCEEDED
    assert status_from_run(run_of(state=ok, status={"state": "NEWWORD"})).state is JobState.SUCCEEDED
    timed_out = {"life_cycle_state": "TERMINATED", "result_state": "TIMEDOUT"}
    cancelled = {"state": "TERMINATED", "termination_details": {"code": "CANCELED"}}
    assert status_from_run(run_of(state=timed_out, status=cancelled)).state is JobState.FAILED


def test_a_skipped_run_failed_because_it_did_not_run() -> None:
    status = status_from_run(run_of(state={"life_cycle_state": "SKIPPED", "state_message": "upstream failed"}))
    assert status.state is JobState.FAILED
    assert "was skipped (SKIPPED): it did not run. upstream failed" in status.message


def test_a_multi_task_failure_names_its_tasks_and_links_the_failed_one() -> None:
    tasks = [
        {"task_key": "extract", "state": {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS"}},
        {
            "task_key": "load",
            "run_id": 12,
            "state": {"life_cycle_state": "TERMINATED", "result_state": "FAILED", "state_message": "OOM in stage 3"},
            "run_page_url": "https://dbx.example.com/?o=1#job/1/run/12",
        },
        {"task_key": "report", "state": {"life_cycle_state": "SKIPPED", "state_message": "upstream failed"}},
    ]
    state = {"life_cycle_state": "TERMINATED", "result_state": "FAILED", "state_message": "2 tasks failed"}
    status = status_from_run(run_of(state=state, tasks=tasks, run_page_url="https://dbx.example.com/run/7"))
    assert status.state is JobState.FAILED
    assert status.message.startswith("failed tasks: load TERMINATED/FAILED: OOM in stage 3; report SKIPPED")
    assert status.message.endswith("2 tasks failed")
    assert status.tracking_url == "https://dbx.example.com/?o=1#job/1/run/12"


def test_success_with_failures_succeeds_and_names_what_failed() -> None:
    tasks = [{"task_key": "optional", "state": {"life_cycle_state": "TERMINATED", "result_state": "FAILED"}}]
    state = {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS_WITH_FAILURES"}
    status = status_from_run(run_of(state=state, tasks=tasks))
    assert status.state is JobState.SUCCEEDED and "optional TERMINATED/FAILED" in status.message


# --- lost ------------------------------------------------------------------------------------------------------


async def test_a_forgotten_run_is_lost(ws: StubWorkspace, client: DatabricksClient) -> None:
    run = ws.add_run(life="TERMINATED", result="SUCCESS")
    run.forgotten = True
    status = await client.status({"run_id": run.run_id})
    assert status.state is JobState.LOST and "RESOURCE_DOES_NOT_EXIST" in status.message
    assert any(("active_only", "true") in r.params for r in ws.requests)  # the second source was asked


async def test_a_not_found_run_the_active_list_shows_is_not_lost(ws: StubWorkspace, client: DatabricksClient) -> None:
    run = ws.add_run(life="RUNNING")
    ws.override(is_route("GET", "runs/get"), error(404, "RESOURCE_DOES_NOT_EXIST", "Run does not exist."))
    status = await client.status({"run_id": run.run_id})
    assert status.state is JobState.RUNNING


async def test_a_proxy_404_page_is_transient(ws: StubWorkspace, client: DatabricksClient) -> None:
    run = ws.add_run(life="TERMINATED", result="SUCCESS")
    run.forgotten = True
    ws.override(is_route("GET", "runs/get"), response(404, "<html>Not Found</html>", content_type="text/html"))
    with pytest.raises(TransientError):
        await client.status({"run_id": run.run_id})


# --- statuses --------------------------------------------------------------------------------------------------


async def test_statuses_walk_the_active_runs_once_and_get_only_the_unlisted(
    ws: StubWorkspace, client: DatabricksClient
) -> None:
    for _ in range(50):
        ws.add_run(life="RUNNING")  # other tasks' runs: the listing has three pages
    watched = [ws.add_run(life="RUNNING"), ws.add_run(life="PENDING"), ws.add_run(life="TERMINATED", result="FAILED")]
    first = min(ws.runs)
    ws.set(first, "QUEUED")
    locs = [{"run_id": r.run_id} for r in watched] + [{"run_id": first}]
    out = await client.statuses(locs)
    assert [out[locator_key(loc)].state for loc in locs] == [
        JobState.RUNNING,
        JobState.PENDING,
        JobState.FAILED,
        JobState.PENDING,
    ]
    lists = [r for r in ws.requests if r.url.endswith("/runs/list")]
    assert len(lists) == 3 and all(("limit", "24") in r.params and ("active_only", "true") in r.params for r in lists)
    gets = [r for r in ws.requests if r.url.endswith("/runs/get")]
    assert [dict(r.params)["run_id"] for r in gets] == [str(watched[2].run_id)]


async def test_statuses_stop_walking_once_every_run_is_seen(ws: StubWorkspace, client: DatabricksClient) -> None:
    for _ in range(60):
        ws.add_run(life="RUNNING")
    newest = max(ws.runs)  # the stub lists the newest first
    out = await client.statuses([{"run_id": newest}])
    assert out[locator_key({"run_id": newest})].state is JobState.RUNNING
    assert ws.count("/runs/list") == 1 and ws.count("/runs/get") == 0


async def test_statuses_call_a_forgotten_run_lost_and_touch_no_other(
    ws: StubWorkspace, client: DatabricksClient
) -> None:
    gone, kept = ws.add_run(life="RUNNING"), ws.add_run(life="RUNNING")
    gone.forgotten = True
    out = await client.statuses([{"run_id": gone.run_id}, {"run_id": kept.run_id}])
    assert out[locator_key({"run_id": gone.run_id})].state is JobState.LOST
    assert out[locator_key({"run_id": kept.run_id})].state is JobState.RUNNING


def test_list_limit_is_at_most_24() -> None:
    with pytest.raises(ValueError, match="1 to 24"):
        DatabricksClient(HOST, auth=BearerAuth(PAT), list_limit=25)


async def test_statuses_use_the_list_limit(ws: StubWorkspace) -> None:
    client = DatabricksClient(HOST, auth=BearerAuth(PAT), list_limit=5)
    runs = [ws.add_run(life="RUNNING") for _ in range(12)]
    await client.statuses([{"run_id": runs[0].run_id}])
    assert ws.count("/runs/list") == 3 and all(("limit", "5") in r.params for r in ws.requests)


# --- cancel, links, locators, key ------------------------------------------------------------------------------


async def test_cancel_is_idempotent(ws: StubWorkspace, client: DatabricksClient) -> None:
    run = ws.add_run(life="RUNNING")
    await client.cancel({"run_id": run.run_id})
    await client.cancel({"run_id": run.run_id})
    assert (await client.status({"run_id": run.run_id})).state is JobState.CANCELLED
    done = ws.add_run(life="TERMINATED", result="SUCCESS")
    await client.cancel({"run_id": done.run_id})
    assert (await client.status({"run_id": done.run_id})).state is JobState.SUCCEEDED
    await client.cancel({"run_id": 999_999})  # unknown: nothing to stop
    assert sent(ws, "/runs/cancel") == {"run_id": 999_999}


async def test_cancel_refused_is_an_auth_error(ws: StubWorkspace) -> None:
    client = DatabricksClient(HOST, auth=BearerAuth("wrong"))
    with pytest.raises(AuthError):
        await client.cancel({"run_id": 5})


async def test_links_give_the_run_page(ws: StubWorkspace, client: DatabricksClient) -> None:
    run = ws.add_run(life="RUNNING", job_id=3)
    assert await client.links({"run_id": run.run_id}) == {"run_page_url": f"{HOST}/?o=1#job/3/run/{run.run_id}"}
    ws.down = True
    assert await client.links({"run_id": run.run_id}) == {"run_page_url": f"{HOST}/#job/runs/{run.run_id}"}


@pytest.mark.parametrize(
    "bad",
    [None, {}, {"run_id": "12"}, {"run_id": 0}, {"run_id": -1}, {"run_id": 2**63}, {"run_id": True},
     {"run_id": 1.0}, {"run_id": 1, "x": 2}, [("run_id", 1)]],
)  # fmt: skip
def test_validate_locator_refuses_anything_but_a_positive_int_run_id(client: DatabricksClient, bad: Any) -> None:
    with pytest.raises(RecordError):
        client.validate_locator(bad)


async def test_a_recorded_run_id_is_checked_before_any_request(ws: StubWorkspace, client: DatabricksClient) -> None:
    with pytest.raises(RecordError):
        await client.status({"run_id": "1/../../x"})
    with pytest.raises(RecordError):
        await client.cancel({"run_id": "1?x"})
    assert not ws.requests


def test_the_key_is_the_workspace_and_the_identity_never_a_secret() -> None:
    a = DatabricksClient(HOST + "/", auth=BearerAuth(PAT))
    b = DatabricksClient(HOST, auth=BearerAuth(PAT))
    c = DatabricksClient(HOST, auth=BearerAuth("another"))
    assert a.key == b.key != c.key
    oauth = DatabricksClient(HOST, auth=OAuthM2MAuth(HOST, "sp-1", "very-secret-value"))
    assert oauth.key == ("https://dbx.example.com:443", "oauth-m2m:https://dbx.example.com:443:sp-1")
    assert "very-secret-value" not in repr(oauth.key) and PAT not in repr(a.key)
    assert DatabricksClient.system == "databricks"


async def test_statuses_of_unreadable_locators_ask_nothing(ws: StubWorkspace, client: DatabricksClient) -> None:
    run = ws.add_run(life="RUNNING")
    bad = {"run_id": "1/../x"}
    out = await client.statuses([bad])
    assert out[locator_key(bad)].state is JobState.UNKNOWN and not ws.requests
    out = await client.statuses([bad, {"run_id": run.run_id}])
    assert out[locator_key(bad)].state is JobState.UNKNOWN
    assert out[locator_key({"run_id": run.run_id})].state is JobState.RUNNING
