"""The YARN client passes the JobClient contract suite, against the contract fake of the ResourceManager REST API
(``new-application`` reserves the id before the submit, as on a real RM)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from durable_jobs.clients.base import JobClient, Locator
from durable_jobs.clients.yarn import SparkSubmitApplication, YarnApplication
from durable_jobs.status import JobState
from durable_jobs.testing.contract import JobClientContract, endpoint_down
from durable_jobs_harness.fake_yarn import FakeSparkSubmit, FakeYarnRM
from durable_jobs_harness.yarn_fixtures import simple_client

END_STATES = {JobState.SUCCEEDED: "SUCCEEDED", JobState.FAILED: "FAILED"}


class TestYarnContract(JobClientContract):
    settle_timeout = 5.0

    @pytest.fixture(autouse=True)
    async def _rm(self) -> AsyncIterator[None]:
        self.rm = await FakeYarnRM(auth="simple").start()
        try:
            yield
        finally:
            await self.rm.stop()

    async def make_client(self) -> JobClient[Any]:
        return simple_client(self.rm, timeout=2.0)

    def make_spec(self) -> YarnApplication:
        return YarnApplication(name="contract", command="sleep 600")

    async def end_job(self, locator: Locator, state: JobState) -> None:
        self.rm.advance(locator["application_id"], "FINISHED", END_STATES[state], "ended by the test")

    async def vanish(self, locator: Locator) -> None:
        del self.rm.apps[locator["application_id"]]  # as yarn.resourcemanager.max-completed-applications does

    def unreachable(self) -> AbstractAsyncContextManager[None]:
        return endpoint_down(self.rm.stop, self.rm.start)


class TestYarnSparkSubmitContract(TestYarnContract):
    """Spark on YARN through ``spark-submit``: no reservation, the application found by its tag."""

    @pytest.fixture(autouse=True)
    def _spark_submit(self, _rm: None) -> None:
        self.runner = FakeSparkSubmit(self.rm.cluster)

    async def make_client(self) -> JobClient[Any]:
        client = simple_client(self.rm, timeout=2.0)
        client.runner = self.runner
        return client

    def make_spec(self) -> SparkSubmitApplication:  # type: ignore[override]
        return SparkSubmitApplication(application="/apps/job.jar", main_class="demo.Main", name="contract")

    @contextlib.asynccontextmanager
    async def unreachable(self) -> AsyncIterator[None]:
        self.runner.register = False  # spark-submit cannot reach the RM either
        try:
            async with super().unreachable():
                yield
        finally:
            self.runner.register = True
