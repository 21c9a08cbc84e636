"""The fake's own controls, always against the fake: injected faults, runs deleted or forgotten behind the API,
every scripted result, OAuth tokens that expire, the fake's strict body checks, and its request log.

These cannot run against a real workspace (nothing there injects a 429 or ages a run out on demand); the
protocol they rest on is checked against both in ``test_databricks_fake_contract.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from durable_jobs_harness.fake_databricks import FakeDatabricks
from tests.databricks.workspace import API, Workspace, assert_in_order, fake_workspace, new_token

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def ws() -> AsyncIterator[Workspace]:
    async with fake_workspace() as workspace:
        yield workspace


def fake_of(ws: Workspace) -> FakeDatabricks:
    assert ws.fake is not None
    return ws.fake


# --- injected faults --------------------------------------------------------------------------------------------


async def test_fail_next_answers_429_with_retry_after_then_works_again(ws: Workspace) -> None:
    fake_of(ws).fail_next(1, status=429, error_code="REQUEST_LIMIT_EXCEEDED", retry_after=7)
    throttled = await ws.list_runs()
    assert throttled.status == 429
    assert throttled.headers["Retry-After"] == "7"
    assert throttled.body["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert (await ws.list_runs()).status == 200
    assert fake_of(ws).count(f"{API}/runs/list") == 2


async def test_fail_next_on_a_path_prefix_leaves_other_paths_alone_and_has_no_effect(ws: Workspace) -> None:
    fake_of(ws).fail_next(2, path_prefix=f"{API}/runs/submit")
    assert (await ws.list_runs()).status == 200
    for _ in range(2):
        answer = await ws.call("POST", f"{API}/runs/submit", body=ws.submit_body("x", token=new_token()))
        assert (answer.status, answer.body["error_code"]) == (503, "TEMPORARILY_UNAVAILABLE")
        assert "Retry-After" not in answer.headers
    assert fake_of(ws).runs == []  # a faulted submit created nothing
    assert await ws.submit("x") > 0


async def test_raw_next_answers_hostile_bytes(ws: Workspace) -> None:
    fake_of(ws).raw_next(1, 200, b'{"run_id": "not-a-number", ', path_prefix=f"{API}/runs/get")
    run_id = await ws.submit("x")
    hostile = await ws.call("GET", f"{API}/runs/get", params={"run_id": str(run_id)})
    assert (hostile.status, hostile.body) == (200, b'{"run_id": "not-a-number", ')
    assert hostile.headers["Content-Type"].startswith("application/json")
    assert (await ws.get(run_id))["run_id"] == run_id


# --- runs deleted, forgotten, finished behind the API -------------------------------------------------------------


async def test_delete_run_makes_the_token_an_error_and_the_run_unknown(ws: Workspace) -> None:
    tok = new_token()
    run_id = await ws.submit("x", token=tok)
    fake_of(ws).delete_run(run_id)
    again = await ws.call("POST", f"{API}/runs/submit", body=ws.submit_body("x", token=tok))
    assert again.status == 400
    assert again.body == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": f"Run with idempotency token {tok} was deleted",
    }
    gone = await ws.call("GET", f"{API}/runs/get", params={"run_id": str(run_id)})
    assert (gone.status, gone.body) == (
        404,
        {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"Run {run_id} does not exist."},
    )
    assert [r.deleted for r in fake_of(ws).runs] == [True]


async def test_forget_run_is_404_and_absent_from_lists(ws: Workspace) -> None:
    tok = new_token()
    run_id = await ws.submit("x", "durable-fake:30s:SUCCESS", token=tok)
    fake_of(ws).forget_run(run_id)
    assert (await ws.call("GET", f"{API}/runs/get", params={"run_id": str(run_id)})).status == 404
    assert "runs" not in (await ws.list_runs()).body
    assert "runs" not in (await ws.list_runs(active_only="true")).body
    assert (await ws.cancel(run_id)).status == 404
    # the token stays reserved forever: it still answers the forgotten run's id
    assert await ws.submit("x", token=tok) == run_id
    run = fake_of(ws).run(run_id)
    assert (run.forgotten, run.token, run.run_type) == (True, tok, "SUBMIT_RUN")


async def test_finish_ends_a_run_now_with_the_result(ws: Workspace) -> None:
    run_id = await ws.submit("x", "durable-fake:600s:SUCCESS")
    fake_of(ws).finish(run_id, "FAILED")
    run = await ws.get(run_id)
    assert (run["state"]["life_cycle_state"], run["state"]["result_state"]) == ("TERMINATED", "FAILED")
    assert fake_of(ws).run(run_id).result_state == "FAILED"
    with pytest.raises(ValueError, match="result is one of"):
        fake_of(ws).finish(run_id, "BOGUS")


# --- every scripted result ----------------------------------------------------------------------------------------

ENDS = {
    "SUCCESS": ("TERMINATED", "SUCCESS", False, "SUCCESS"),
    "FAILED": ("TERMINATED", "FAILED", False, "RUN_EXECUTION_ERROR"),
    "TIMEDOUT": ("TERMINATED", "TIMEDOUT", True, "CANCELED"),
    "CANCELED": ("TERMINATED", "CANCELED", True, "USER_CANCELED"),
    "INTERNAL_ERROR": ("INTERNAL_ERROR", "FAILED", False, "INTERNAL_ERROR"),
    "SKIPPED": ("SKIPPED", None, False, "SKIPPED"),
}


@pytest.mark.parametrize("result", list(ENDS))
async def test_a_scripted_result_ends_the_run_as_documented(ws: Workspace, result: str) -> None:
    run_id = await ws.submit("x", f"durable-fake:1s:{result}")
    run, seen = await ws.until_terminal(run_id)
    assert_in_order(seen)
    life, result_state, user, code = ENDS[result]
    state = run["state"]
    assert (state["life_cycle_state"], state.get("result_state"), state["user_cancelled_or_timedout"]) == (
        life,
        result_state,
        user,
    )
    assert (run["status"]["state"], run["status"]["termination_details"]["code"]) == ("TERMINATED", code)
    assert run["end_time"] >= run["start_time"]
    if result in ("INTERNAL_ERROR", "SKIPPED"):
        assert "RUNNING" not in seen  # it never ran
    else:
        assert "RUNNING" in seen
    fake_run = fake_of(ws).run(run_id)
    assert (fake_run.life_cycle_state, fake_run.result_state) == (life, result_state)


async def test_a_run_is_pending_then_running_then_terminating(ws: Workspace) -> None:
    run_id = await ws.submit("x", "durable-fake:2s:SUCCESS")
    start = fake_of(ws).run(run_id).timeline.start  # PENDING to 0.5 s, RUNNING to 1.8 s, TERMINATING to 2 s
    assert (await ws.get(run_id))["state"]["life_cycle_state"] == "PENDING"
    await asyncio.sleep(max(0.0, start + 1.0 - time.monotonic()))
    assert (await ws.get(run_id))["state"]["life_cycle_state"] == "RUNNING"
    await asyncio.sleep(max(0.0, start + 1.85 - time.monotonic()))
    assert (await ws.get(run_id))["state"]["life_cycle_state"] in ("TERMINATING", "TERMINATED")
    run, _ = await ws.until_terminal(run_id)
    assert run["end_time"] - run["start_time"] == pytest.approx(2000, abs=50)


async def test_time_scale_shortens_every_duration() -> None:
    async with fake_workspace(time_scale=0.01) as ws:
        start = time.monotonic()
        run_id = await ws.submit("x", "durable-fake:60s:FAILED")
        run, _ = await ws.until_terminal(run_id)
        assert run["state"]["result_state"] == "FAILED"
        assert time.monotonic() - start < 10


async def test_the_default_script_is_three_seconds_then_success(ws: Workspace) -> None:
    start = time.monotonic()
    run_id = await ws.submit("x")
    run, _ = await ws.until_terminal(run_id)
    assert run["state"]["result_state"] == "SUCCESS"
    assert time.monotonic() - start >= 2.9


async def test_run_now_is_scripted_by_its_job_parameters(ws: Workspace) -> None:
    job_id = fake_of(ws).create_job("scripted")
    body = {"job_id": job_id, "job_parameters": {"mode": "durable-fake:1s:FAILED"}}
    answer = await ws.call("POST", f"{API}/run-now", body=body)
    run, _ = await ws.until_terminal(answer.body["run_id"])
    assert (run["run_type"], run["job_id"], run["state"]["result_state"]) == ("JOB_RUN", job_id, "FAILED")
    assert run["tasks"][0]["task_key"] == "main"


async def test_a_cancel_while_pending_terminates_then_cancels_every_task(ws: Workspace) -> None:
    tasks = [ws.task("a"), ws.task("b", "durable-fake:30s:SUCCESS")]
    run_id = await ws.submit("x", tasks=tasks)
    await ws.cancel(run_id)
    assert (await ws.get(run_id))["state"]["life_cycle_state"] == "TERMINATING"
    run, _ = await ws.until_terminal(run_id)
    assert [t["state"]["result_state"] for t in run["tasks"]] == ["CANCELED", "CANCELED"]
    assert run["state"]["state_message"] == "Run cancelled."


# --- run page URLs ------------------------------------------------------------------------------------------------


async def test_run_page_urls_of_submit_and_job_runs(ws: Workspace) -> None:
    run_id = await ws.submit("x")
    run = await ws.get(run_id)
    assert run["run_page_url"] == f"{ws.host}/?o=0#run/{run_id}"
    task_run = run["tasks"][0]["run_id"]
    assert run["tasks"][0]["run_page_url"] == f"{ws.host}/?o=0#run/{task_run}"
    job_id = fake_of(ws).create_job("urls")
    job_run = (await ws.call("POST", f"{API}/run-now", body={"job_id": job_id})).body["run_id"]
    assert (await ws.get(job_run))["run_page_url"] == f"{ws.host}/?o=0#job/{job_id}/run/{job_run}"


# --- strict bodies and queries ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("no_such_field", 1),
        ("run_name", 5),
        ("timeout_seconds", "60"),
        ("timeout_seconds", True),
        ("idempotency_token", 123),
        ("tasks", {"task_key": "a"}),
    ],
)
async def test_unknown_or_wrong_typed_fields_are_refused(ws: Workspace, field: str, value: Any) -> None:
    body = {**ws.submit_body("x"), field: value}
    answer = await ws.call("POST", f"{API}/runs/submit", body=body)
    assert answer.status == 400
    assert set(answer.body) == {"error_code", "message"}
    assert answer.body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert fake_of(ws).runs == []


@pytest.mark.parametrize(
    "tasks",
    [
        [{"task_key": "a", "existing_cluster_id": "c"}],  # no task type
        [{"task_key": "a", "notebook_task": {}, "spark_python_task": {}}],  # two
        [{"notebook_task": {}}],  # no task_key
        [{"task_key": "a", "notebook_task": {}}, {"task_key": "a", "notebook_task": {}}],  # duplicate key
        [],
    ],
)
async def test_bad_tasks_are_refused(ws: Workspace, tasks: list[dict[str, Any]]) -> None:
    answer = await ws.call("POST", f"{API}/runs/submit", body={"run_name": "x", "tasks": tasks})
    assert (answer.status, answer.body["error_code"]) == (400, "INVALID_PARAMETER_VALUE")


async def test_a_legacy_single_task_body_is_one_task(ws: Workspace) -> None:
    body = {
        "run_name": "legacy",
        "new_cluster": {"spark_version": "15.4.x-scala2.12", "num_workers": 1},
        "notebook_task": {"notebook_path": "/x", "base_parameters": {"s": "durable-fake:1s:FAILED"}},
        "idempotency_token": new_token(),
    }
    answer = await ws.call("POST", f"{API}/runs/submit", body=body)
    run, _ = await ws.until_terminal(answer.body["run_id"])
    assert [t["task_key"] for t in run["tasks"]] == ["task"]
    assert run["state"]["result_state"] == "FAILED"


async def test_malformed_json_and_a_non_object_body_are_refused(ws: Workspace) -> None:
    for raw in (b"{not json", b"[1, 2]"):
        async with ws.session.post(
            f"{ws.host}{API}/runs/submit", data=raw, headers={"Authorization": f"Bearer {ws.token}"}
        ) as resp:
            assert resp.status == 400
            assert (await resp.json())["error_code"] == "MALFORMED_REQUEST"


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "-1"},
        {"limit": "ten"},
        {"run_type": "BOGUS"},
        {"active_only": "true", "completed_only": "true"},
        {"page_token": "not-a-token"},
        {"job_id": "x"},
    ],
)
async def test_bad_list_queries_are_refused(ws: Workspace, params: dict[str, str]) -> None:
    answer = await ws.list_runs(**params)
    assert (answer.status, answer.body["error_code"]) == (400, "INVALID_PARAMETER_VALUE")


async def test_limit_zero_means_the_maximum_and_prev_page_token_goes_back(ws: Workspace) -> None:
    ids = [await ws.submit(f"r{i}") for i in range(30)]
    first = await ws.list_runs(limit="0")
    assert [r["run_id"] for r in first.body["runs"]] == ids[::-1][:24]
    second = await ws.list_runs(limit="10", page_token=first.body["next_page_token"])
    assert [r["run_id"] for r in second.body["runs"]] == ids[::-1][24:]
    assert second.body["has_more"] is False
    back = await ws.list_runs(limit="10", page_token=second.body["prev_page_token"])
    assert [r["run_id"] for r in back.body["runs"]] == ids[::-1][14:24]
    assert "tasks" not in first.body["runs"][0]
    assert "tasks" in (await ws.list_runs(limit="1", expand_tasks="true")).body["runs"][0]


async def test_an_unknown_endpoint_is_404_endpoint_not_found(ws: Workspace) -> None:
    answer = await ws.call("GET", f"{API}/runs/nope")
    assert (answer.status, answer.body["error_code"]) == (404, "ENDPOINT_NOT_FOUND")


# --- auth: the PAT, OAuth M2M -------------------------------------------------------------------------------------


async def test_a_bad_bearer_is_401_with_the_error_json(ws: Workspace) -> None:
    refused: list[dict[str, str]] = [
        {},  # no credential
        {"Authorization": "Bearer dapi-wrong"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic Zm9vOmJhcg=="},  # not a bearer
        {"Authorization": ws.token},  # no scheme
    ]
    for headers in refused:
        async with ws.session.get(f"{ws.host}{API}/runs/list", headers=headers) as resp:
            assert resp.status == 401, headers
            body = await resp.json()
            assert body["error_code"] == "UNAUTHENTICATED" and body["message"]


async def oauth(session: aiohttp.ClientSession, host: str, client: str, secret: str) -> tuple[int, Any]:
    form = {"grant_type": "client_credentials", "scope": "all-apis"}
    headers = {"Authorization": aiohttp.encode_basic_auth(client, secret)}
    async with session.post(f"{host}/oidc/v1/token", data=form, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_oauth_client_credentials_give_a_bearer_token(ws: Workspace) -> None:
    status, body = await oauth(ws.session, ws.host, "fake-client", "fake-secret")
    assert status == 200
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 3600, "all-apis")
    assert (await ws.call("GET", f"{API}/runs/list", bearer=body["access_token"])).status == 200
    assert fake_of(ws).oauth_tokens_issued == 1


@pytest.mark.parametrize(("client", "secret"), [("fake-client", "wrong"), ("someone-else", "fake-secret")])
async def test_oauth_bad_credentials_are_401_invalid_client(ws: Workspace, client: str, secret: str) -> None:
    status, body = await oauth(ws.session, ws.host, client, secret)
    assert status == 401
    assert body["error"] == "invalid_client" and body["error_description"]
    assert fake_of(ws).oauth_tokens_issued == 0


async def test_an_oauth_token_expires_after_its_ttl() -> None:
    async with fake_workspace(token_ttl=1.0) as ws:
        _, body = await oauth(ws.session, ws.host, "fake-client", "fake-secret")
        assert body["expires_in"] == 1
        assert (await ws.call("GET", f"{API}/runs/list", bearer=body["access_token"])).status == 200
        await asyncio.sleep(1.1)
        assert (await ws.call("GET", f"{API}/runs/list", bearer=body["access_token"])).status == 401


async def test_expire_tokens_ends_every_issued_token_and_a_new_one_works(ws: Workspace) -> None:
    _, old = await oauth(ws.session, ws.host, "fake-client", "fake-secret")
    fake_of(ws).expire_tokens()
    assert (await ws.call("GET", f"{API}/runs/list", bearer=old["access_token"])).status == 401
    _, new = await oauth(ws.session, ws.host, "fake-client", "fake-secret")
    assert (await ws.call("GET", f"{API}/runs/list", bearer=new["access_token"])).status == 200
    assert fake_of(ws).oauth_tokens_issued == 2


async def test_the_request_log_records_method_path_and_query(ws: Workspace) -> None:
    await ws.list_runs(active_only="true", limit="5")
    await ws.call("GET", f"{API}/runs/list", bearer=None)  # refused requests are logged too
    assert fake_of(ws).requests == [
        ("GET", f"{API}/runs/list", {"active_only": "true", "limit": "5"}),
        ("GET", f"{API}/runs/list", {}),
    ]
    assert fake_of(ws).count(f"{API}/runs/list") == 2
