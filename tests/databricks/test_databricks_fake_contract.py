"""The Jobs API 2.2 wire contract, with plain HTTP: against the fake, and against a real workspace when one is given.

``DURABLE_JOBS_DATABRICKS_HOST`` and ``DURABLE_JOBS_DATABRICKS_TOKEN`` (plus the python file and cluster that
:mod:`tests.databricks.workspace` names) add a ``real-databricks`` target (marker ``databricks_real``) to every
test; unset, the same tests run against the fake only (nothing skips). What needs the fake's own controls
(faults, deleting or forgetting runs behind the API, OAuth expiry) is in ``test_databricks_fake_faults.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.databricks.workspace import (
    API,
    Workspace,
    assert_in_order,
    fake_workspace,
    new_token,
    real_workspace,
    real_workspace_configured,
)

pytestmark = pytest.mark.timeout(300)

TARGETS = [pytest.param("fake", id="fake-databricks")]
if real_workspace_configured():
    TARGETS.append(pytest.param("real", id="real-databricks", marks=pytest.mark.databricks_real))


@pytest.fixture(params=TARGETS)
async def ws(request: pytest.FixtureRequest) -> AsyncIterator[Workspace]:
    if request.param == "fake":
        async with fake_workspace() as fake:
            yield fake
    else:
        async with real_workspace() as real:
            yield real


def name(what: str) -> str:
    return f"durable-jobs-contract-{what}-{new_token()}"


# --- idempotency tokens ---------------------------------------------------------------------------------------


async def test_submit_answers_a_run_id_and_get_describes_the_run(ws: Workspace) -> None:
    tok = new_token()
    run_name = f"{name('get')} [{tok}]"
    run_id = await ws.submit(run_name, "durable-fake:1s:SUCCESS", token=tok)
    run = await ws.get(run_id)
    assert run["run_id"] == run_id
    assert run["run_name"] == run_name
    assert run["run_type"] == "SUBMIT_RUN"
    assert run["state"]["life_cycle_state"] in ("QUEUED", "PENDING", "RUNNING", "TERMINATING", "TERMINATED")
    assert isinstance(run["start_time"], int) and run["start_time"] > 0
    assert run["run_page_url"].startswith(ws.host)
    assert [t["task_key"] for t in run["tasks"]] == ["main"]
    assert isinstance(run["tasks"][0]["run_id"], int) and run["tasks"][0]["run_id"] != run_id


async def test_the_same_token_answers_the_same_run(ws: Workspace) -> None:
    tok = new_token()
    first = await ws.submit(name("same"), "durable-fake:30s:SUCCESS", token=tok)
    second = await ws.submit(name("same-again"), "durable-fake:30s:SUCCESS", token=tok)
    assert first == second


async def test_the_token_stays_reserved_after_the_run_ended(ws: Workspace) -> None:
    tok = new_token()
    run_id = await ws.submit(name("ended"), "durable-fake:1s:FAILED", token=tok)
    run, _ = await ws.until_terminal(run_id)
    assert run["state"]["result_state"] == "FAILED"
    assert await ws.submit(name("ended-again"), "durable-fake:1s:SUCCESS", token=tok) == run_id


async def test_twenty_concurrent_submits_with_one_token_make_one_run(ws: Workspace) -> None:
    tok = new_token()
    started = int(time.time() * 1000) - 1000
    run_name = f"{name('race')} [{tok}]"
    ids = await asyncio.gather(*(ws.submit(run_name, "durable-fake:30s:SUCCESS", token=tok) for _ in range(20)))
    assert len(set(ids)) == 1
    listed = await ws.list_runs(run_type="SUBMIT_RUN", start_time_from=str(started), limit="24")
    assert [r["run_id"] for r in listed.body.get("runs", []) if r["run_name"] == run_name] == [ids[0]]


async def test_a_deleted_runs_token_is_an_error(ws: Workspace) -> None:
    tok = new_token()
    run_id = await ws.submit(name("deleted"), "durable-fake:30s:SUCCESS", token=tok)
    await ws.cancel(run_id)
    await ws.until_terminal(run_id)
    deleted = await ws.call("POST", f"{API}/runs/delete", body={"run_id": run_id})
    assert (deleted.status, deleted.body) == (200, {})
    again = await ws.call("POST", f"{API}/runs/submit", body=ws.submit_body(name("deleted-again"), token=tok))
    assert again.status == 400
    assert again.body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "deleted" in again.body["message"]
    gone = await ws.call("GET", f"{API}/runs/get", params={"run_id": str(run_id)})
    assert gone.status in (400, 404)


async def test_a_token_over_64_characters_is_refused(ws: Workspace) -> None:
    body = ws.submit_body(name("long-token"), token="x" * 65)
    answer = await ws.call("POST", f"{API}/runs/submit", body=body)
    assert answer.status == 400
    assert answer.body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert isinstance(answer.body["message"], str)
    assert (await ws.submit(name("token-64"), "durable-fake:1s:SUCCESS", token="y" * 64)) > 0


async def test_a_submit_without_tasks_is_refused(ws: Workspace) -> None:
    answer = await ws.call("POST", f"{API}/runs/submit", body={"run_name": name("no-tasks")})
    assert answer.status == 400
    assert answer.body["error_code"] == "INVALID_PARAMETER_VALUE"


# --- life cycles ----------------------------------------------------------------------------------------------


async def test_a_successful_run_moves_forward_to_terminated_success(ws: Workspace) -> None:
    run_id = await ws.submit(name("success"), "durable-fake:2s:SUCCESS")
    run, seen = await ws.until_terminal(run_id)
    assert_in_order(seen)
    assert "RUNNING" in seen or ws.fake is None  # the fake's 2 s run is always seen running
    assert (run["state"]["life_cycle_state"], run["state"]["result_state"]) == ("TERMINATED", "SUCCESS")
    assert run["state"]["user_cancelled_or_timedout"] is False
    assert run["end_time"] >= run["start_time"] > 0
    assert run["status"]["state"] == "TERMINATED"
    assert run["status"]["termination_details"]["code"] == "SUCCESS"


async def test_a_failed_multi_task_run_names_the_failing_task(ws: Workspace) -> None:
    tasks = [
        ws.task("prep"),
        ws.task("work", "durable-fake:1s:FAILED", depends_on=["prep"]),
        ws.task("after", depends_on=["work"]),
    ]
    run_id = await ws.submit(name("failed"), tasks=tasks)
    run, seen = await ws.until_terminal(run_id)
    assert_in_order(seen)
    assert (run["state"]["life_cycle_state"], run["state"]["result_state"]) == ("TERMINATED", "FAILED")
    by_key = {t["task_key"]: t for t in run["tasks"]}
    assert by_key["prep"]["state"]["result_state"] == "SUCCESS"
    assert by_key["work"]["state"]["result_state"] == "FAILED"
    assert by_key["work"]["state"]["state_message"]
    assert by_key["after"]["state"]["result_state"] == "UPSTREAM_FAILED"
    assert "work" in run["state"]["state_message"]
    assert by_key["work"]["run_page_url"].startswith(ws.host)
    assert len({t["run_id"] for t in run["tasks"]} | {run_id}) == 4


async def test_timeout_seconds_ends_the_run_timedout(ws: Workspace) -> None:
    run_id = await ws.submit(name("timeout"), "durable-fake:60s:SUCCESS", timeout_seconds=1)
    run, seen = await ws.until_terminal(run_id)
    assert_in_order(seen)
    assert (run["state"]["life_cycle_state"], run["state"]["result_state"]) == ("TERMINATED", "TIMEDOUT")
    assert run["state"]["user_cancelled_or_timedout"] is True


async def test_a_cancel_ends_the_run_canceled(ws: Workspace) -> None:
    run_id = await ws.submit(name("cancel"), "durable-fake:60s:SUCCESS")
    await ws.until_state(run_id, ("RUNNING",))
    answer = await ws.cancel(run_id)
    assert (answer.status, answer.body) == (200, {})
    after = await ws.get(run_id)
    assert after["state"]["life_cycle_state"] in ("TERMINATING", "TERMINATED")
    run, _ = await ws.until_terminal(run_id)
    assert (run["state"]["life_cycle_state"], run["state"]["result_state"]) == ("TERMINATED", "CANCELED")
    assert run["state"]["user_cancelled_or_timedout"] is True
    assert run["tasks"][0]["state"]["result_state"] == "CANCELED"


async def test_cancel_is_idempotent_and_a_finished_run_answers_empty(ws: Workspace) -> None:
    run_id = await ws.submit(name("cancel-twice"), "durable-fake:60s:SUCCESS")
    for _ in range(2):
        answer = await ws.cancel(run_id)
        assert (answer.status, answer.body) == (200, {})
    run, _ = await ws.until_terminal(run_id)
    assert run["state"]["result_state"] == "CANCELED"
    answer = await ws.cancel(run_id)
    assert (answer.status, answer.body) == (200, {})
    assert (await ws.get(run_id))["state"]["result_state"] == "CANCELED"


async def test_an_unknown_run_is_404_resource_does_not_exist(ws: Workspace) -> None:
    unknown = 9_000_000_000_000 + int(time.time())
    for answer in (
        await ws.call("GET", f"{API}/runs/get", params={"run_id": str(unknown)}),
        await ws.cancel(unknown),
    ):
        assert answer.status == 404
        assert answer.body["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        assert isinstance(answer.body["message"], str) and answer.body["message"]


# --- runs/list --------------------------------------------------------------------------------------------------


async def test_runs_list_active_only_shows_active_runs_only(ws: Workspace) -> None:
    since = str(int(time.time() * 1000) - 1000)
    done = await ws.submit(name("list-done"), "durable-fake:1s:SUCCESS")
    active = await ws.submit(name("list-active"), "durable-fake:60s:SUCCESS")
    await ws.until_terminal(done)
    answer = await ws.list_runs(active_only="true", run_type="SUBMIT_RUN", start_time_from=since)
    ids = [r["run_id"] for r in answer.body.get("runs", [])]
    assert active in ids and done not in ids
    assert all(
        r["state"]["life_cycle_state"] in ("QUEUED", "PENDING", "RUNNING", "TERMINATING") for r in answer.body["runs"]
    )
    completed = await ws.list_runs(completed_only="true", run_type="SUBMIT_RUN", start_time_from=since)
    assert done in [r["run_id"] for r in completed.body.get("runs", [])]


async def test_sixty_runs_list_in_three_pages_of_24_each_run_once_newest_first(ws: Workspace) -> None:
    since = str(int(time.time() * 1000) - 1000)
    prefix = name("page")
    ours = set()
    for i in range(60):
        ours.add(await ws.submit(f"{prefix}-{i:02d}", "durable-fake:60s:SUCCESS"))
    pages: list[list[dict[str, Any]]] = []
    params = {"run_type": "SUBMIT_RUN", "start_time_from": since, "limit": "24"}
    while True:
        answer = await ws.list_runs(**params)
        assert answer.status == 200, answer
        pages.append(answer.body.get("runs", []))
        assert len(pages[-1]) <= 24
        if not answer.body["has_more"]:
            assert "next_page_token" not in answer.body or not answer.body["next_page_token"]
            break
        params["page_token"] = answer.body["next_page_token"]
        assert len(pages) < 20
    listed = [r for page in pages for r in page]
    mine = [r["run_id"] for r in listed if str(r["run_name"]).startswith(prefix)]
    assert sorted(mine) == sorted(ours)  # every run once
    starts = [(r["start_time"], r["run_id"]) for r in listed]
    assert starts == sorted(starts, reverse=True)  # newest first
    if len(listed) == 60:  # nobody else started a run in the window (always so on the fake)
        assert [len(p) for p in pages] == [24, 24, 12]
    assert "prev_page_token" not in (await ws.list_runs(run_type="SUBMIT_RUN", start_time_from=since)).body


async def test_a_limit_over_24_is_refused(ws: Workspace) -> None:
    answer = await ws.list_runs(limit="25")
    assert answer.status == 400
    assert answer.body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert (await ws.list_runs(limit="24")).status == 200


async def test_runs_list_filters_by_job_id_and_run_type(ws: Workspace) -> None:
    since = str(int(time.time() * 1000) - 1000)
    job_id = await ws.create_job(name("filter-job"), "durable-fake:60s:SUCCESS")
    answer = await ws.call("POST", f"{API}/run-now", body={"job_id": job_id})
    job_run = answer.body["run_id"]
    ws.started.append(job_run)
    submit_run = await ws.submit(name("filter-submit"), "durable-fake:60s:SUCCESS")
    by_job = await ws.list_runs(job_id=str(job_id))
    assert [r["run_id"] for r in by_job.body["runs"]] == [job_run]
    jobs_only = await ws.list_runs(run_type="JOB_RUN", start_time_from=since)
    ids = [r["run_id"] for r in jobs_only.body["runs"]]
    assert job_run in ids and submit_run not in ids
    assert all(r["run_type"] == "JOB_RUN" for r in jobs_only.body["runs"])


# --- auth -------------------------------------------------------------------------------------------------------


async def test_no_bearer_is_401(ws: Workspace) -> None:
    answer = await ws.call("GET", f"{API}/runs/list", bearer=None)
    assert answer.status == 401
    assert isinstance(answer.body, dict) and "message" in answer.body


async def test_a_bad_bearer_is_refused(ws: Workspace) -> None:
    answer = await ws.call("GET", f"{API}/runs/list", bearer="dapi-not-a-token")
    # the fake answers 401; some workspaces answer 403 "Invalid access token."
    assert answer.status == 401 if ws.fake is not None else answer.status in (401, 403)
    assert isinstance(answer.body, dict) and "message" in answer.body


# --- jobs and run-now ---------------------------------------------------------------------------------------------


async def test_jobs_list_by_name_and_run_now_of_the_job(ws: Workspace) -> None:
    job_name = name("job")
    job_id = await ws.create_job(job_name, "durable-fake:1s:SUCCESS")
    found = await ws.call("GET", f"{API}/list", params={"name": job_name})
    assert found.status == 200
    assert [(j["job_id"], j["settings"]["name"]) for j in found.body["jobs"]] == [(job_id, job_name)]
    assert "jobs" not in (await ws.call("GET", f"{API}/list", params={"name": name("no-such-job")})).body
    tok = new_token()
    answer = await ws.call("POST", f"{API}/run-now", body={"job_id": job_id, "idempotency_token": tok})
    assert answer.status == 200
    run_id = answer.body["run_id"]
    ws.started.append(run_id)
    assert isinstance(answer.body["number_in_job"], int)
    again = await ws.call("POST", f"{API}/run-now", body={"job_id": job_id, "idempotency_token": tok})
    assert again.body["run_id"] == run_id
    run, _ = await ws.until_terminal(run_id)
    assert (run["run_type"], run["job_id"]) == ("JOB_RUN", job_id)
    assert run["state"]["result_state"] == "SUCCESS"
    assert f"#job/{job_id}/run/{run_id}" in run["run_page_url"]


async def test_run_now_of_an_unknown_job_is_refused(ws: Workspace) -> None:
    answer = await ws.call("POST", f"{API}/run-now", body={"job_id": 9_000_000_000_000 + int(time.time())})
    assert (answer.status, answer.body["error_code"]) in (
        (400, "INVALID_PARAMETER_VALUE"),
        (404, "RESOURCE_DOES_NOT_EXIST"),
    )
    assert "does not exist" in answer.body["message"]
