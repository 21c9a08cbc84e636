"""Fixtures of the BigQuery client's tests: the contract fake on 127.0.0.1, a client with its service-account
key, instant retries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from durable_jobs.clients.bigquery import BigQueryClient, BigQueryJobSpec, ServiceAccountAuth
from durable_jobs.transport import retry
from durable_jobs.transport.http import close_sessions
from durable_jobs_harness.fake_bigquery import FakeBigQuery

#: a query that runs until the test ends it (or an hour)
LONG = "SELECT 1 -- durable-fake:3600s:DONE"


def spec(query: str = LONG, **kw: object) -> BigQueryJobSpec:
    return BigQueryJobSpec({"query": {"query": query, "useLegacySql": False}}, **kw)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _instant_retries() -> Iterator[None]:
    with retry.instant_waits():
        yield


@pytest.fixture
async def fake() -> AsyncIterator[FakeBigQuery]:
    async with FakeBigQuery(time_scale=0.01) as bq:
        yield bq
    await close_sessions()


@pytest.fixture
def auth(fake: FakeBigQuery) -> ServiceAccountAuth:
    return ServiceAccountAuth(fake.service_account_info())


@pytest.fixture
def client(fake: FakeBigQuery, auth: ServiceAccountAuth) -> BigQueryClient:
    return BigQueryClient(fake.project, auth=auth, base_url=fake.url, timeout=5.0)
