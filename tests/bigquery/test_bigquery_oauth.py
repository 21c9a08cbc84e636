"""Google OAuth for BigQuery: the JWT bearer grant verified by the fake, a token refreshed before it expires,
fetched once for many requests, refreshed once after a 401, the authorized-user and metadata-server flows,
application_default's choice, and no key, secret or token in an error, a repr or an identity."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import jwt
import pytest

from durable_jobs.clients.bigquery import (
    AuthorizedUserAuth,
    BigQueryClient,
    MetadataServerAuth,
    ServiceAccountAuth,
    application_default,
)
from durable_jobs.errors import AuthError, MalformedAnswer, TransientError
from durable_jobs.status import JobState
from durable_jobs_harness.fake_bigquery import FakeBigQuery
from tests.bigquery.conftest import spec

TOKEN = "dj" + "b" * 20
LOC = {"project": "fake-project", "location": "US", "job_id": "airflow_durable_" + TOKEN}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sa(fake: FakeBigQuery, clock: Clock | None = None) -> ServiceAccountAuth:
    return ServiceAccountAuth(fake.service_account_info(), clock=clock or Clock())


def bq(fake: FakeBigQuery, auth: object) -> BigQueryClient:
    return BigQueryClient(fake.project, auth=auth, base_url=fake.url)  # type: ignore[arg-type]


async def test_the_jwt_grant_is_verified_and_the_token_sent_as_a_bearer(fake: FakeBigQuery) -> None:
    auth = sa(fake)
    client = bq(fake, auth)
    loc = await client.submit(spec(), TOKEN)
    for _ in range(3):
        await client.status(loc)
    assert auth.fetches == 1 and fake.assertions_verified == 1 and len(fake.tokens_issued) == 1
    claims = jwt.decode(auth.assertion(), options={"verify_signature": False})
    assert claims["iss"] == fake.client_email and claims["aud"] == fake.token_uri
    assert claims["scope"] == "https://www.googleapis.com/auth/cloud-platform"
    assert claims["exp"] - claims["iat"] == 3600
    assert jwt.get_unverified_header(auth.assertion())["kid"] == fake.key_id


async def test_the_token_is_refreshed_before_it_expires(fake: FakeBigQuery) -> None:
    clock = Clock()
    auth = sa(fake, clock)
    client = bq(fake, auth)
    loc = await client.submit(spec(), TOKEN)
    clock.now += 3600 - 300 - 1
    await client.status(loc)
    assert auth.fetches == 1
    clock.now += 2  # within the margin: a new token, although the old one is still valid
    await client.status(loc)
    assert auth.fetches == 2 and len(fake.tokens_issued) == 2


async def test_fifty_concurrent_requests_fetch_one_token(fake: FakeBigQuery) -> None:
    auth = sa(fake)
    client = bq(fake, auth)
    results = await asyncio.gather(*(client.find(f"dj{i:020x}", since=0, spec=spec()) for i in range(50)))
    assert results == [None] * 50
    assert auth.fetches == 1 and fake.assertions_verified == 1


async def test_a_401_makes_one_refresh_and_one_more_attempt(fake: FakeBigQuery) -> None:
    auth = sa(fake)
    client = bq(fake, auth)
    loc = await client.submit(spec(), TOKEN)
    fake.expire_tokens()  # revoked: the API answers 401 to the cached token
    results = await asyncio.gather(*(client.status(loc) for _ in range(10)))
    assert all(s.state.is_active for s in results)
    assert auth.fetches == 2


async def test_a_401_with_a_fresh_token_is_an_auth_error_after_one_refresh(fake: FakeBigQuery) -> None:
    auth = sa(fake)
    client = bq(fake, auth)
    fake.fail_next(2, status=401, reason="unauthorized", path_prefix="/bigquery/")
    with pytest.raises(AuthError):
        await client.find(TOKEN, since=0, spec=spec())
    assert auth.fetches == 2


async def test_a_key_the_fake_does_not_know_is_refused_without_showing_it(fake: FakeBigQuery) -> None:
    other = FakeBigQuery()  # another key, never started: only its key is used
    info = {**other.service_account_info(), "token_uri": fake.token_uri, "client_email": fake.client_email}
    auth = ServiceAccountAuth(info)
    with pytest.raises(AuthError) as caught:
        await bq(fake, auth).find(TOKEN, since=0, spec=spec())
    text = str(caught.value)
    assert "invalid_grant" in text and "PRIVATE KEY" not in text
    assert "PRIVATE" not in repr(auth) and "PRIVATE" not in auth.identity
    assert fake.count(fake.jobs_path(spec().job_id(TOKEN))) == 0  # nothing was sent without a token


async def test_a_token_endpoint_echoing_the_assertion_and_the_token_is_redacted(fake: FakeBigQuery) -> None:
    auth = sa(fake)
    client = bq(fake, auth)
    loc = await client.submit(spec(), TOKEN)
    token = fake.tokens_issued[0]
    fake.raw_next(1, 500, f"echo {token}".encode(), path_prefix="/bigquery/", content_type="text/plain")
    with pytest.raises(TransientError) as caught:
        await client.status(loc)
    assert token not in str(caught.value) and "echo ***" in str(caught.value)
    assert token in auth.secrets()
    auth._access = None  # the next fetch: the endpoint echoes the form it got (the signed assertion)
    fake.raw_next(1, 400, b"grant_type=...&assertion=" + auth.assertion().encode(), "/token", "text/plain")
    with pytest.raises(TransientError) as caught:
        await client.status(loc)
    assert auth._assertion is not None and auth._assertion not in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [b"", b"<html>login</html>", b'{"access_token": 5, "expires_in": 3600}', b'{"access_token": "x"}',
     b'{"access_token": "x", "expires_in": -1}', b'{"access_token": "x", "expires_in": 60, "token_type": "MAC"}'],
)  # fmt: skip
async def test_a_malformed_token_answer_is_unknown(fake: FakeBigQuery, body: bytes) -> None:
    fake.raw_next(1, 200, body, path_prefix="/token")
    with pytest.raises(MalformedAnswer):
        await bq(fake, sa(fake)).status(LOC)


async def test_a_busy_token_endpoint_is_transient_with_its_retry_after(fake: FakeBigQuery) -> None:
    fake.raw_next(1, 503, b"busy", "/token", "text/plain", headers={"Retry-After": "12"})
    with pytest.raises(TransientError) as caught:
        await bq(fake, sa(fake)).status(LOC)
    assert caught.value.retry_after == 12


async def test_authorized_user_credentials(fake: FakeBigQuery) -> None:
    auth = AuthorizedUserAuth(fake.authorized_user_info())
    loc = await bq(fake, auth).submit(spec(), TOKEN)
    assert (await bq(fake, auth).status(loc)).state.is_active and auth.fetches == 1
    assert fake.user_secret not in repr(auth) and fake.refresh_token not in repr(auth)
    assert set(auth.secrets()) >= {fake.user_secret, fake.refresh_token}
    bad = AuthorizedUserAuth({**fake.authorized_user_info(), "refresh_token": "1//revoked"})
    with pytest.raises(AuthError, match="invalid_grant"):
        await bq(fake, bad).status(loc)


async def test_the_metadata_server(fake: FakeBigQuery) -> None:
    auth = MetadataServerAuth(fake.url)
    loc = await bq(fake, auth).submit(spec(), TOKEN)
    assert (await bq(fake, auth).status(loc)).state is not JobState.UNKNOWN
    (_, path, _) = next(r for r in fake.requests if r[1].startswith("/computeMetadata/"))
    assert path == "/computeMetadata/v1/instance/service-accounts/default/token"


def test_application_default_picks_as_google_does(fake: FakeBigQuery, tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    key.write_text(json.dumps(fake.service_account_info()))
    assert isinstance(application_default({"GOOGLE_APPLICATION_CREDENTIALS": str(key)}), ServiceAccountAuth)
    gcloud = tmp_path / "gcloud"
    gcloud.mkdir()
    (gcloud / "application_default_credentials.json").write_text(json.dumps(fake.authorized_user_info()))
    assert isinstance(application_default({"CLOUDSDK_CONFIG": str(gcloud)}), AuthorizedUserAuth)
    meta = application_default({"HOME": str(tmp_path / "nobody"), "GCE_METADATA_HOST": "127.0.0.1:1"})
    assert isinstance(meta, MetadataServerAuth) and meta.base == "http://127.0.0.1:1"
    assert isinstance(application_default({}), MetadataServerAuth)
    (tmp_path / "bad.json").write_text('{"type": "external_account"}')
    with pytest.raises(ValueError, match="external_account"):
        application_default({"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "bad.json")})


def test_a_bad_key_is_refused_without_quoting_it() -> None:
    info = {"type": "service_account", "client_email": "a@b", "private_key": "-----BEGIN PRIVATE KEY-----\nsecretstuff"}
    with pytest.raises(ValueError) as caught:
        ServiceAccountAuth(info)
    assert "secretstuff" not in str(caught.value)
    with pytest.raises(ValueError):
        ServiceAccountAuth({"type": "service_account", "client_email": "a@b"})
    with pytest.raises(ValueError):
        AuthorizedUserAuth({"client_id": "x"})
