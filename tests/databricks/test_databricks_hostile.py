"""A hostile workspace: answers that are truncated, garbage, huge, of the wrong types, from a proxy, throttled,
redirected elsewhere, or that lie about their pages. Malformed means unknown: never LOST, never FAILED, and an
answer about one run touches that run only.

Every run-level case watches two runs: A, whose answers the workspace abuses, and B, which is fine. A is a run
that has just ended successfully (so a poll asks ``runs/get`` for it); B is running (the listing shows it).
The socket-level cases (a cut body, a body past ``max_response_bytes``, a reset, a hang, a redirect to another
host) run against a real aiohttp server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from durable_jobs.clients.base import locator_key
from durable_jobs.clients.databricks import DatabricksClient, SubmitRunSpec
from durable_jobs.errors import (
    AnswerTooLarge,
    AuthError,
    MalformedAnswer,
    PermanentError,
    RedirectRefused,
    TransientError,
)
from durable_jobs.status import JobState
from durable_jobs.testing.transport import json_response, response
from durable_jobs.transport.auth import BearerAuth
from durable_jobs.transport.base import Request, Response
from durable_jobs.transport.http import close_sessions, use_transport
from tests.databricks.stub_workspace import PAT, StubRun, StubWorkspace, error, is_route

pytestmark = pytest.mark.timeout(120)

TOKEN = "dj" + "c" * 20
SPEC = SubmitRunSpec({"run_name": "x", "tasks": [{"task_key": "t", "notebook_task": {"notebook_path": "/n"}}]})


def good_run_json(ws: StubWorkspace, run: StubRun) -> dict[str, Any]:
    return run.to_json(ws.host)


def get_of(run_id: int) -> Callable[[Request], bool]:
    return lambda req: req.url.endswith("/runs/get") and ("run_id", str(run_id)) in req.params


def mangled(fn: Callable[[dict[str, Any]], Any]) -> Callable[[StubWorkspace, StubRun], Response]:
    """A's run object becomes ``fn(run)``."""
    return lambda ws, a: json_response(fn(good_run_json(ws, a)))


def raw(status: int, body: bytes | str, **headers: str) -> Callable[[StubWorkspace, StubRun], Response]:
    return lambda ws, a: response(status, body, headers=headers or None, content_type="application/json")


def with_state(**state: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda run: {**run, "state": {**run["state"], **state}}


# what the workspace answers to A's runs/get
GET_CASES: dict[str, Callable[[StubWorkspace, StubRun], Response]] = {
    "truncated-json": raw(200, b'{"run_id": 1001, "state": {"life_cycle_st'),
    "garbage-bytes": raw(200, b"\x00\xff\xfe garbage \x81"),
    "empty-body": raw(200, b""),
    "html-200": lambda ws, a: response(200, "<html><body>Sign in</body></html>", content_type="text/html"),
    "deep-nesting": raw(200, b'{"run_id": 1001, "tasks": ' + b"[" * 20000 + b"]" * 20000 + b"}"),
    "run-id-a-string": mangled(lambda run: {**run, "run_id": str(run["run_id"])}),
    "run-id-a-float": mangled(lambda run: {**run, "run_id": run["run_id"] + 0.5}),
    "run-id-too-big": mangled(lambda run: {**run, "run_id": 2**64}),
    "run-id-negative": mangled(lambda run: {**run, "run_id": -5}),
    "another-runs-answer": mangled(
        lambda run: {
            **run,
            "run_id": run["run_id"] + 1,
            "state": {"life_cycle_state": "TERMINATED", "result_state": "FAILED"},
        }
    ),
    "state-a-string": mangled(lambda run: {**run, "state": "TERMINATED"}),
    "life-cycle-a-number": mangled(with_state(life_cycle_state=5)),
    "result-a-list": mangled(with_state(result_state=["FAILED"])),
    "message-a-dict": mangled(with_state(state_message={"x": 1})),
    "cancelled-flag-a-string": mangled(with_state(user_cancelled_or_timedout="true")),
    "tasks-an-object": mangled(lambda run: {**run, "tasks": {"task_key": "x"}}),
    "task-of-wrong-types": mangled(lambda run: {**run, "tasks": [{"task_key": 5, "state": "FAILED"}]}),
    "status-a-list": mangled(lambda run: {**run, "status": ["TERMINATED"]}),
    "unknown-life-cycle": mangled(with_state(life_cycle_state="EXPLODED", result_state="FAILED")),
    "terminated-without-a-result": mangled(lambda run: {**run, "state": {"life_cycle_state": "TERMINATED"}}),
    "no-state-at-all": mangled(lambda run: {k: v for k, v in run.items() if k != "state"}),
    "run-is-a-list": mangled(lambda run: [run]),
    "run-is-null": mangled(lambda run: None),
    "html-404-from-a-proxy": lambda ws, a: response(404, "<html>404 Not Found</html>", content_type="text/html"),
    "empty-404": raw(404, b""),
    "404-of-another-error": lambda ws, a: error(404, "ENDPOINT_NOT_FOUND", "No API found"),
    "404-error-of-wrong-types": raw(404, json.dumps({"error_code": 404, "message": ["x"]})),
    "500": lambda ws, a: error(500, "INTERNAL_ERROR", "boom"),
    "502-html": lambda ws, a: response(502, "<html>Bad gateway</html>", content_type="text/html"),
    "503-with-retry-after": lambda ws, a: error(503, "TEMPORARILY_UNAVAILABLE", "later", {"Retry-After": "30"}),
    "429-with-retry-after": lambda ws, a: error(429, "REQUEST_LIMIT_EXCEEDED", "slow", {"Retry-After": "5"}),
    "400-html": lambda ws, a: response(400, "<html>Bad request</html>", content_type="text/html"),
    "400-invalid-parameter": lambda ws, a: error(400, "INVALID_PARAMETER_VALUE", "run_id is weird"),
    "409": lambda ws, a: error(409, "RESOURCE_CONFLICT", "busy"),
    "302-to-another-host": lambda ws, a: response(302, "", headers={"Location": "https://evil.example.com/x"}),
    "huge-body": raw(200, b" " * (70 * 1024) + b"{}"),
}


@pytest.fixture
def small_client(ws: StubWorkspace) -> DatabricksClient:
    return DatabricksClient(ws.host, auth=BearerAuth(PAT), max_response_bytes=64 * 1024)


@pytest.mark.parametrize("case", sorted(GET_CASES))
async def test_a_hostile_runs_get_leaves_its_run_unknown_and_touches_no_other(
    ws: StubWorkspace, small_client: DatabricksClient, case: str
) -> None:
    a = ws.add_run(life="TERMINATED", result="SUCCESS")
    b = ws.add_run(life="RUNNING")
    ws.override(get_of(a.run_id), lambda req: GET_CASES[case](ws, a))
    loc_a, loc_b = {"run_id": a.run_id}, {"run_id": b.run_id}
    for _ in range(2):  # the protocol's look, then a confirmation
        assert await unknown_or_raised(small_client, loc_a) is JobState.UNKNOWN, case
    out = await small_client.statuses([loc_a, loc_b])
    assert out[locator_key(loc_b)].state is JobState.RUNNING
    if locator_key(loc_a) in out:
        assert out[locator_key(loc_a)].state is JobState.UNKNOWN, (case, out[locator_key(loc_a)])


def test_every_get_case_is_about_a_status_word_or_an_answer() -> None:
    assert len(GET_CASES) >= 30


# --- listings that lie ------------------------------------------------------------------------------------------


def list_answer(body: Any, status: int = 200) -> Callable[[Request], Response]:
    return lambda req: json_response(body, status)


LIST_CASES: dict[str, Callable[[Request], Response]] = {
    "garbage": lambda req: response(200, b"<html>proxy</html>", content_type="text/html"),
    "truncated": lambda req: response(200, b'{"runs": [{"run_id": 10', content_type="application/json"),
    "runs-an-object": list_answer({"runs": {"run_id": 1}, "has_more": False}),
    "has-more-a-string": list_answer({"runs": [], "has_more": "false"}),
    "has-more-without-a-token": list_answer({"runs": [], "has_more": True}),
    "a-list": list_answer([]),
    "429": lambda req: error(429, "REQUEST_LIMIT_EXCEEDED", "slow", {"Retry-After": "3"}),
    "500": lambda req: error(500, "INTERNAL_ERROR", "boom"),
    "400": lambda req: error(400, "INVALID_PARAMETER_VALUE", "limit too big"),
    "same-page-token-forever": list_answer({"runs": [], "has_more": True, "next_page_token": "again"}),
}


@pytest.mark.parametrize("case", sorted(LIST_CASES))
async def test_a_listing_that_cannot_be_read_never_makes_a_run_lost(
    ws: StubWorkspace, client: DatabricksClient, case: str
) -> None:
    gone, b = ws.add_run(life="RUNNING"), ws.add_run(life="RUNNING")
    gone.forgotten = True  # runs/get says RESOURCE_DOES_NOT_EXIST: only a readable listing may agree
    ws.override(is_route("GET", "runs/list"), LIST_CASES[case])
    locs = [{"run_id": gone.run_id}, {"run_id": b.run_id}]
    out = await client.statuses(locs)
    assert out[locator_key(locs[0])].state is JobState.UNKNOWN
    assert out[locator_key(locs[1])].state is JobState.RUNNING  # asked one by one instead
    assert (await unknown_or_raised(client, locs[0])) is JobState.UNKNOWN  # alone too: no second source


async def unknown_or_raised(client: DatabricksClient, loc: dict[str, Any]) -> JobState:
    """The state ``status`` says, UNKNOWN when it raised a transient error."""
    try:
        return (await client.status(loc)).state
    except TransientError:
        return JobState.UNKNOWN


async def test_a_listing_with_more_pages_for_ever_is_capped_and_proves_no_loss(
    ws: StubWorkspace, client: DatabricksClient, caplog: pytest.LogCaptureFixture
) -> None:
    gone, b = ws.add_run(life="RUNNING"), ws.add_run(life="RUNNING")
    gone.forgotten = True
    pages = iter(range(10**6))
    ws.override(
        is_route("GET", "runs/list"),
        lambda req: json_response({"runs": [], "has_more": True, "next_page_token": f"p{next(pages)}"}),
    )
    caplog.set_level(logging.WARNING)
    out = await client.statuses([{"run_id": gone.run_id}, {"run_id": b.run_id}])
    assert ws.count("/runs/list") == 200
    assert "more than 200 pages" in caplog.text
    assert out[locator_key({"run_id": gone.run_id})].state is JobState.UNKNOWN
    assert out[locator_key({"run_id": b.run_id})].state is JobState.RUNNING


async def test_one_bad_entry_in_a_listing_touches_only_its_run(ws: StubWorkspace, client: DatabricksClient) -> None:
    a, b = ws.add_run(life="RUNNING"), ws.add_run(life="RUNNING")

    def listing(req: Request) -> Response:
        runs = [{**good_run_json(ws, a), "state": "RUNNING"}, good_run_json(ws, b)]
        return json_response({"runs": runs, "has_more": False})

    ws.override(is_route("GET", "runs/list"), listing)
    out = await client.statuses([{"run_id": a.run_id}, {"run_id": b.run_id}])
    assert out[locator_key({"run_id": a.run_id})].state is JobState.UNKNOWN
    assert "malformed" in out[locator_key({"run_id": a.run_id})].message
    assert out[locator_key({"run_id": b.run_id})].state is JobState.RUNNING
    assert ws.count("/runs/get") == 0


async def test_an_entry_without_a_readable_id_makes_absence_prove_nothing(
    ws: StubWorkspace, client: DatabricksClient
) -> None:
    gone, b = ws.add_run(life="RUNNING"), ws.add_run(life="RUNNING")
    gone.forgotten = True

    def listing(req: Request) -> Response:
        return json_response({"runs": [{"run_id": "x"}, 5, good_run_json(ws, b)], "has_more": False})

    ws.override(is_route("GET", "runs/list"), listing)
    out = await client.statuses([{"run_id": gone.run_id}, {"run_id": b.run_id}])
    assert out[locator_key({"run_id": gone.run_id})].state is JobState.UNKNOWN
    assert out[locator_key({"run_id": b.run_id})].state is JobState.RUNNING


async def test_a_run_listed_twice_in_two_states_is_unknown(ws: StubWorkspace, client: DatabricksClient) -> None:
    a = ws.add_run(life="RUNNING")

    def listing(req: Request) -> Response:
        twin = {**good_run_json(ws, a), "state": {"life_cycle_state": "TERMINATED", "result_state": "FAILED"}}
        return json_response({"runs": [good_run_json(ws, a), twin], "has_more": False})

    ws.override(is_route("GET", "runs/list"), listing)
    out = await client.statuses([{"run_id": a.run_id}])
    assert out[locator_key({"run_id": a.run_id})].state is JobState.UNKNOWN


async def test_a_poll_with_the_workspace_unreachable_raises_once(ws: StubWorkspace, client: DatabricksClient) -> None:
    a = ws.add_run(life="RUNNING")
    ws.down = True
    with pytest.raises(TransientError):
        await client.statuses([{"run_id": a.run_id}])
    assert len(ws.requests) == 1  # no per-run storm against a workspace that does not answer


async def test_a_poll_refused_for_our_credentials_is_an_auth_error(ws: StubWorkspace) -> None:
    client = DatabricksClient(ws.host, auth=BearerAuth("revoked"))
    with pytest.raises(AuthError):
        await client.statuses([{"run_id": 5}, {"run_id": 6}])


async def test_a_403_on_one_run_after_the_listing_read_fine_is_unknown_for_it_only(
    ws: StubWorkspace, client: DatabricksClient
) -> None:
    a, b = ws.add_run(life="TERMINATED", result="SUCCESS"), ws.add_run(life="RUNNING")
    ws.override(get_of(a.run_id), error(403, "PERMISSION_DENIED", "no access to run"))
    out = await client.statuses([{"run_id": a.run_id}, {"run_id": b.run_id}])
    assert out[locator_key({"run_id": a.run_id})].state is JobState.UNKNOWN
    assert out[locator_key({"run_id": b.run_id})].state is JobState.RUNNING


# --- the write path --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        response(200, b'{"run_id": "1001"}', content_type="application/json"),
        response(200, b"<html>welcome</html>", content_type="text/html"),
        response(200, b"", content_type="application/json"),
        response(200, b'{"run_id": 0}', content_type="application/json"),
        response(404, b"<html>not here</html>", content_type="text/html"),
    ],
)
async def test_an_unreadable_submit_answer_is_transient_never_permanent(
    ws: StubWorkspace, client: DatabricksClient, answer: Response
) -> None:
    ws.override(is_route("POST", "runs/submit"), answer)
    with pytest.raises(TransientError) as caught:
        await client.submit(SPEC, TOKEN)
    assert not isinstance(caught.value, PermanentError)


async def test_a_submit_redirected_elsewhere_is_not_followed_nor_repeated(
    ws: StubWorkspace, client: DatabricksClient
) -> None:
    ws.override(is_route("POST", "runs/submit"), response(307, "", headers={"Location": "https://evil.example.com/"}))
    with pytest.raises(RedirectRefused):
        await client.submit(SPEC, TOKEN)
    assert ws.count("/runs/submit") == 1 and not any("evil" in r.url for r in ws.requests)


async def test_a_5xx_on_submit_is_repeated_with_the_same_token(ws: StubWorkspace, client: DatabricksClient) -> None:
    ws.override(is_route("POST", "runs/submit"), error(503, "TEMPORARILY_UNAVAILABLE", "later"), times=2)
    loc = await client.submit(SPEC, TOKEN)
    assert ws.count("/runs/submit") == 3 and len(ws.runs) == 1 and ws.runs[loc["run_id"]].token == TOKEN


async def test_a_hostile_cancel_answer_is_transient(ws: StubWorkspace, client: DatabricksClient) -> None:
    ws.override(is_route("POST", "runs/cancel"), response(404, b"<html>gone</html>", content_type="text/html"))
    with pytest.raises(MalformedAnswer):
        await client.cancel({"run_id": 5})


# --- a real socket --------------------------------------------------------------------------------------------

Act = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Hostile:
    def __init__(self) -> None:
        self.act: Act | None = None
        self.release = asyncio.Event()
        self.url = ""


@pytest.fixture
async def hostile() -> AsyncIterator[Hostile]:
    h = Hostile()

    async def handle(req: web.Request) -> web.StreamResponse:
        assert h.act is not None
        return await h.act(req)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    h.url = f"http://127.0.0.1:{port}"
    try:
        yield h
    finally:
        h.release.set()
        await close_sessions()
        await runner.cleanup()


async def truncated(req: web.Request) -> web.StreamResponse:
    body = b'{"run_id": 5, "state": {"life_cycle_state": "TERMINATED", "result_state": "FAILED"}}'
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    resp.content_length = len(body)
    await resp.prepare(req)
    await resp.write(body[:30])
    assert req.transport is not None
    req.transport.close()
    return resp


async def chunked_huge(req: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(req)
    await resp.write(b'{"run_id": 5, "state": {"state_message": "')
    try:
        for _ in range(64):
            await resp.write(b"x" * 65536)
    except (ConnectionResetError, RuntimeError):
        pass  # the client stopped reading: as it should
    return resp


async def reset(req: web.Request) -> web.StreamResponse:
    assert req.transport is not None
    req.transport.abort()
    return web.Response(status=500)


async def elsewhere(req: web.Request) -> web.StreamResponse:
    return web.Response(status=302, headers={"Location": "http://127.0.0.2:9/api/2.2/jobs/runs/get?run_id=5"})


@pytest.mark.parametrize(
    ("act", "error_type"),
    [
        (truncated, TransientError),
        (chunked_huge, AnswerTooLarge),
        (reset, TransientError),
        (elsewhere, RedirectRefused),
    ],
)
async def test_socket_level_hostility_is_unknown(hostile: Hostile, act: Act, error_type: type[Exception]) -> None:
    hostile.act = act
    client = DatabricksClient(hostile.url, auth=BearerAuth(PAT), timeout=2.0, max_response_bytes=256 * 1024)
    with use_transport_default():
        with pytest.raises(error_type):
            await client.status({"run_id": 5})
        try:
            out = await client.statuses([{"run_id": 5}])
        except TransientError:
            return
        assert [s.state for s in out.values()] == [JobState.UNKNOWN]


async def test_a_workspace_that_never_answers_times_out(hostile: Hostile) -> None:
    async def hang(req: web.Request) -> web.StreamResponse:
        await hostile.release.wait()
        return web.Response(status=503)

    hostile.act = hang
    client = DatabricksClient(hostile.url, auth=BearerAuth(PAT), timeout=0.5)
    with use_transport_default(), pytest.raises(TransientError):
        await client.status({"run_id": 5})


def use_transport_default() -> Any:
    """The real aiohttp transport, whatever a fixture installed."""
    from durable_jobs.transport.http import DEFAULT_TRANSPORT

    return use_transport(DEFAULT_TRANSPORT)
