"""The Spark standalone client passes the JobClient contract suite, against the fake master (REST and ``/json/``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from durable_jobs.clients.base import JobClient, Locator
from durable_jobs.clients.spark_standalone import SparkApplication, SparkStandaloneClient, SparkStandaloneConfig
from durable_jobs.status import JobState
from durable_jobs.testing.contract import JobClientContract, endpoint_down
from durable_jobs_harness.fake_spark import FakeSparkMaster

END_STATES = {JobState.SUCCEEDED: "FINISHED", JobState.FAILED: "FAILED"}


class TestSparkStandaloneContract(JobClientContract):
    settle_timeout = 5.0

    @pytest.fixture(autouse=True)
    async def _master(self) -> AsyncIterator[None]:
        self.master = await FakeSparkMaster().start()
        try:
            yield
        finally:
            await self.master.stop()

    async def make_client(self) -> JobClient[Any]:
        config = SparkStandaloneConfig(rest_urls=(self.master.url,), ui_urls=(self.master.url,), timeout=2.0)
        return SparkStandaloneClient(config)

    def make_spec(self) -> SparkApplication:
        return SparkApplication(app_resource="file:/apps/a.jar", main_class="demo.Main", name="contract")

    async def end_job(self, locator: Locator, state: JobState) -> None:
        self.master.drivers[locator["driver_id"]] = END_STATES[state]

    async def vanish(self, locator: Locator) -> None:
        del self.master.drivers[locator["driver_id"]]  # forgotten by the REST server and /json/ alike

    def unreachable(self) -> AbstractAsyncContextManager[None]:
        return endpoint_down(self.master.stop, self.master.start)
