"""The Databricks client passes the JobClient contract suite, against the stub workspace of these tests (the
contract fake, ``durable_jobs_harness.fake_databricks``, is run by the integration's own suite).

Two of the suite's checks assume a find that only looks: "find before the submit finds nothing" and "the next
generation's token finds nothing before its submit". Databricks has no way to look a run-now run up by its token
but to send the request again with that token, which starts the run when none exists (``find`` is only called
with the token the protocol is about to submit, so it starts nothing the protocol would not). Those two checks
are replaced here by what the protocol relies on instead: find starts at most the one run of its token, the
submit that follows gets that same run, and another generation's token never gets the old run.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from durable_jobs.clients.base import JobClient, Locator
from durable_jobs.clients.databricks import DatabricksClient, RunNowSpec, SubmitRunSpec
from durable_jobs.status import JobState
from durable_jobs.testing.contract import JobClientContract
from durable_jobs.transport.auth import BearerAuth
from tests.databricks.stub_workspace import HOST, PAT, StubWorkspace

RESULTS = {JobState.SUCCEEDED: "SUCCESS", JobState.FAILED: "FAILED"}


class TestDatabricksSubmitRunContract(JobClientContract):
    settle_timeout = 2.0
    settle_interval = 0.01

    @pytest.fixture(autouse=True)
    def _workspace(self, ws: StubWorkspace) -> None:
        self.ws = ws

    async def make_client(self) -> JobClient[Any]:
        return DatabricksClient(HOST, auth=BearerAuth(PAT))

    def make_spec(self) -> Any:
        return SubmitRunSpec(
            {"run_name": "contract", "tasks": [{"task_key": "t", "notebook_task": {"notebook_path": "/n"}}]}
        )

    async def end_job(self, locator: Locator, state: JobState) -> None:
        self.ws.set(locator["run_id"], "TERMINATED", RESULTS[state], f"ended {state}")

    async def vanish(self, locator: Locator) -> None:
        self.ws.runs[locator["run_id"]].forgotten = True

    @contextlib.asynccontextmanager
    async def unreachable(self) -> AsyncIterator[None]:
        self.ws.down = True
        try:
            yield
        finally:
            self.ws.down = False

    # --- the two checks of a find that only looks, as Databricks keeps them (see the module's docstring) ------

    async def test_find_before_submitting_finds_nothing(self) -> None:
        async def test(client: JobClient[Any]) -> None:
            other = await self._submit(client, self.token())
            token, since = self.token(), time.time()
            found = await self._find(client, token, since)
            assert found is not None and found != other, f"find({token}) gave {found}; another task's run is {other}"
            assert len(self.ws.by_token(token)) == 1, "find started more than the one run of its token"
            assert await self._submit(client, token) == found, "the submit after find must get the same run"
            assert len(self.ws.by_token(token)) == 1

        await self._with_client(test)

    async def test_a_new_generation_does_not_adopt_the_old_job(self) -> None:
        async def test(client: JobClient[Any]) -> None:
            run = uuid.uuid4().hex
            old_token, new_token = self.token(0, run), self.token(1, run)
            old = await self._submit(client, old_token)
            await self.end_job(old, JobState.FAILED)
            await self._state(client, old, JobState.FAILED)
            found = await self._find(client, new_token, time.time())
            assert found is not None and found != old, f"generation 1 must not get generation 0's run {old}"
            assert await self._submit(client, new_token) == found
            assert await self._find(client, old_token, 0) == old, "the old token must still find the old run"
            assert len(self.ws.by_token(new_token)) == 1 and len(self.ws.by_token(old_token)) == 1

        await self._with_client(test)


class TestDatabricksRunNowContract(TestDatabricksSubmitRunContract):
    """run-now of a job found by its exact name: only the idempotency token carries the token."""

    @pytest.fixture(autouse=True)
    def _job(self, _workspace: None) -> None:
        self.ws.create_job("contract-job")

    def make_spec(self) -> Any:
        return RunNowSpec({"job_parameters": {"x": "1"}}, job_name="contract-job")
