"""OAuth M2M: a cached token, refreshed before it expires, fetched once for many requests, refreshed once after
a 401, and the secret never shown."""

from __future__ import annotations

import asyncio

import pytest

from durable_jobs.clients.databricks import DatabricksClient, OAuthM2MAuth
from durable_jobs.errors import AuthError, MalformedAnswer, TransientError
from durable_jobs.status import JobState
from durable_jobs.testing.transport import json_response, response
from durable_jobs.transport.base import Request, Response
from tests.databricks.stub_workspace import HOST, StubWorkspace, is_route

SECRET = "stub-secret-value"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def is_token(req: Request) -> bool:
    return req.url.endswith("/oidc/v1/token")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(clock: Clock) -> OAuthM2MAuth:
    return OAuthM2MAuth(HOST, "stub-client", SECRET, clock=clock)


@pytest.fixture
def oauth_client(ws: StubWorkspace, auth: OAuthM2MAuth) -> DatabricksClient:
    ws.pat = None  # only OAuth tokens are accepted
    return DatabricksClient(HOST, auth=auth)


async def test_the_token_is_fetched_once_and_sent_as_a_bearer(
    ws: StubWorkspace, auth: OAuthM2MAuth, oauth_client: DatabricksClient
) -> None:
    run = ws.add_run(life="RUNNING")
    for _ in range(3):
        assert (await oauth_client.status({"run_id": run.run_id})).state is JobState.RUNNING
    assert auth.fetches == 1 and len(ws.tokens_issued) == 1
    token_req = next(r for r in ws.requests if is_token(r))
    assert token_req.method == "POST" and token_req.body == b"grant_type=client_credentials&scope=all-apis"
    assert token_req.headers["Authorization"].startswith("Basic ")
    assert token_req.headers["Content-Type"] == "application/x-www-form-urlencoded"
    api = [r for r in ws.requests if not is_token(r)]
    assert all(r.headers["Authorization"] == f"Bearer {ws.tokens_issued[0]}" for r in api)


async def test_the_token_is_refreshed_before_it_expires(
    ws: StubWorkspace, auth: OAuthM2MAuth, oauth_client: DatabricksClient, clock: Clock
) -> None:
    run = ws.add_run(life="RUNNING")
    await oauth_client.status({"run_id": run.run_id})
    clock.now += 3600 - 300 - 1  # still more than refresh_margin before the expiry
    await oauth_client.status({"run_id": run.run_id})
    assert auth.fetches == 1
    clock.now += 2  # within the margin: a new token, although the old one is still valid
    await oauth_client.status({"run_id": run.run_id})
    assert auth.fetches == 2
    assert ws.requests[-1].headers["Authorization"] == f"Bearer {ws.tokens_issued[1]}"


async def test_a_short_lived_token_is_refreshed_at_half_its_life(
    ws: StubWorkspace, auth: OAuthM2MAuth, oauth_client: DatabricksClient, clock: Clock
) -> None:
    ws.token_ttl = 60  # shorter than the margin: renewed after 30 s, not on every request
    run = ws.add_run(life="RUNNING")
    await oauth_client.status({"run_id": run.run_id})
    clock.now += 29
    await oauth_client.status({"run_id": run.run_id})
    assert auth.fetches == 1
    clock.now += 2
    await oauth_client.status({"run_id": run.run_id})
    assert auth.fetches == 2


async def test_fifty_concurrent_requests_fetch_one_token(
    ws: StubWorkspace, auth: OAuthM2MAuth, oauth_client: DatabricksClient
) -> None:
    async def slow_token(req: Request) -> Response:
        await asyncio.sleep(0.05)
        return ws.token(req)

    ws.override(is_token, slow_token)
    run = ws.add_run(life="RUNNING")
    results = await asyncio.gather(*(oauth_client.status({"run_id": run.run_id}) for _ in range(50)))
    assert all(s.state is JobState.RUNNING for s in results)
    assert auth.fetches == 1 and len(ws.tokens_issued) == 1


async def test_a_401_makes_one_refresh_and_one_more_attempt(
    ws: StubWorkspace, auth: OAuthM2MAuth, oauth_client: DatabricksClient
) -> None:
    run = ws.add_run(life="RUNNING")
    await oauth_client.status({"run_id": run.run_id})
    ws.valid_tokens.clear()  # revoked: the workspace answers 401 to the cached token
    assert (await oauth_client.status({"run_id": run.run_id})).state is JobState.RUNNING
    assert auth.fetches == 2


async def test_concurrent_401s_share_one_refresh(
    ws: StubWorkspace, auth: OAuthM2MAuth, oauth_client: DatabricksClient
) -> None:
    run = ws.add_run(life="RUNNING")
    await oauth_client.status({"run_id": run.run_id})
    ws.valid_tokens.clear()
    results = await asyncio.gather(*(oauth_client.status({"run_id": run.run_id}) for _ in range(20)))
    assert all(s.state is JobState.RUNNING for s in results)
    assert auth.fetches == 2


async def test_a_401_with_a_fresh_token_is_an_auth_error_after_one_refresh(
    ws: StubWorkspace, auth: OAuthM2MAuth, oauth_client: DatabricksClient
) -> None:
    ws.override(lambda r: not is_token(r), json_response({"error_code": "UNAUTHENTICATED"}, 401))
    with pytest.raises(AuthError):
        await oauth_client.status({"run_id": 5})
    assert auth.fetches == 2 and sum(1 for r in ws.requests if not is_token(r)) == 2


async def test_refused_credentials_are_an_auth_error_without_the_secret(ws: StubWorkspace, clock: Clock) -> None:
    ws.pat = None
    auth = OAuthM2MAuth(HOST, "stub-client", "a-wrong-secret-value", clock=clock)
    client = DatabricksClient(HOST, auth=auth)
    with pytest.raises(AuthError) as caught:
        await client.status({"run_id": 5})
    assert "invalid_client" in str(caught.value) and "a-wrong-secret-value" not in str(caught.value)
    assert "a-wrong-secret-value" not in repr(auth) and "a-wrong-secret-value" not in auth.identity
    assert not any(not is_token(r) for r in ws.requests)  # nothing was sent without a token


async def test_a_token_endpoint_that_echoes_the_secret_is_redacted(
    ws: StubWorkspace, auth: OAuthM2MAuth, oauth_client: DatabricksClient
) -> None:
    ws.override(is_token, response(400, f"bad client stub-client:{SECRET}", content_type="text/plain"))
    with pytest.raises(TransientError) as caught:
        await oauth_client.status({"run_id": 5})
    assert SECRET not in str(caught.value) and "client stub-client:***" in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [b"", b"<html>login</html>", b'{"access_token": 5, "expires_in": 3600}', b'{"access_token": "x"}',
     b'{"access_token": "x", "expires_in": -1}', b'{"access_token": "x", "expires_in": 60, "token_type": "MAC"}'],
)  # fmt: skip
async def test_a_malformed_token_answer_is_unknown(
    ws: StubWorkspace, oauth_client: DatabricksClient, body: bytes
) -> None:
    ws.override(is_token, response(200, body, content_type="application/json"))
    with pytest.raises(MalformedAnswer):
        await oauth_client.status({"run_id": 5})


async def test_a_busy_token_endpoint_is_transient_with_its_retry_after(
    ws: StubWorkspace, oauth_client: DatabricksClient
) -> None:
    ws.override(is_token, response(503, "busy", headers={"Retry-After": "12"}))
    with pytest.raises(TransientError) as caught:
        await oauth_client.status({"run_id": 5})
    assert caught.value.retry_after == 12


async def test_secrets_name_the_secret_and_the_current_token(
    ws: StubWorkspace, auth: OAuthM2MAuth, oauth_client: DatabricksClient
) -> None:
    assert auth.secrets() == (SECRET,)
    run = ws.add_run(life="RUNNING")
    await oauth_client.status({"run_id": run.run_id})
    assert auth.secrets() == (SECRET, ws.tokens_issued[0])
    ws.override(is_route("GET", "runs/get"), response(500, f"echo {ws.tokens_issued[0]} and {SECRET}"))
    with pytest.raises(TransientError) as caught:
        await oauth_client.status({"run_id": run.run_id})
    assert ws.tokens_issued[0] not in str(caught.value) and SECRET not in str(caught.value)


def test_oauth_needs_credentials() -> None:
    with pytest.raises(ValueError):
        OAuthM2MAuth(HOST, "", "x")
    with pytest.raises(ValueError):
        OAuthM2MAuth("ftp://x", "a", "b")
