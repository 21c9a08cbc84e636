"""The BigQuery client passes the generic JobClient contract suite against the contract fake."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from durable_jobs.clients.base import JobClient, Locator
from durable_jobs.clients.bigquery import BigQueryClient, ServiceAccountAuth
from durable_jobs.status import JobState
from durable_jobs.testing.contract import JobClientContract, endpoint_down
from durable_jobs_harness.fake_bigquery import FakeBigQuery
from tests.bigquery.conftest import spec


class TestBigQueryContract(JobClientContract):
    settle_timeout = 5.0
    settle_interval = 0.02

    @pytest.fixture(autouse=True)
    def _fake(self, fake: FakeBigQuery) -> None:
        self.fake = fake
        self.auth = ServiceAccountAuth(fake.service_account_info())

    async def make_client(self) -> JobClient[Any]:
        return BigQueryClient(self.fake.project, auth=self.auth, base_url=self.fake.url, timeout=5.0)

    def make_spec(self) -> Any:
        return spec()

    async def end_job(self, locator: Locator, state: JobState) -> None:
        self.fake.finish(locator["job_id"], "DONE" if state is JobState.SUCCEEDED else "FAILED")

    async def vanish(self, locator: Locator) -> None:
        self.fake.forget(locator["job_id"])

    def unreachable(self) -> AbstractAsyncContextManager[None]:
        return endpoint_down(self.fake.stop, self.fake.start)
