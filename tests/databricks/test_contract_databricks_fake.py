"""The JobClient contract suite against the contract fake: the same subclasses as ``test_contract_databricks.py``
(one-time runs, and run-now of a job found by its name), with the stub workspace swapped for the fake.

The two checks that module overrides (Databricks can only look a token up by re-sending its request, which
creates the run when none exists) hold here too: find starts exactly the one run of its token, the submit that
follows gets that run, and another generation's token never gets the old run. The jobs run until the test ends
them (``FakeDatabricks.finish``); "vanish" is the workspace ageing the run out (``forget_run``); "unreachable"
stops the fake and starts it again on the same port, with its runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from durable_jobs.clients.base import JobClient, Locator
from durable_jobs.clients.databricks import DatabricksClient, SubmitRunSpec
from durable_jobs.status import JobState
from durable_jobs.testing.contract import endpoint_down
from durable_jobs.transport.auth import BearerAuth
from durable_jobs_harness.fake_databricks import FakeDatabricks, FakeRun
from tests.databricks import test_contract_databricks as stub_contract

SCALE = 0.01
#: a run that lasts until the test ends it (36 s at SCALE, longer than any check)
LONG = "durable-fake:3600s:SUCCESS"


def long_task() -> dict[str, Any]:
    return {"task_key": "t", "notebook_task": {"notebook_path": "/n", "base_parameters": {"script": LONG}}}


@dataclass
class FakeWorkspaceView:
    """What the stub suite's checks ask of ``self.ws`` (``by_token``, ``create_job``), answered by the fake."""

    fake: FakeDatabricks

    def by_token(self, token: str) -> list[FakeRun]:
        """Every run the workspace holds for ``token`` (its idempotency token)."""
        return [run for run in self.fake.runs if run.token == token]

    def create_job(self, name: str) -> int:
        return self.fake.create_job(name, [long_task()])


class TestDatabricksFakeSubmitRunContract(stub_contract.TestDatabricksSubmitRunContract):
    settle_timeout = 5.0

    @pytest.fixture(autouse=True)
    async def _workspace(self) -> AsyncIterator[None]:  # type: ignore[override]
        async with FakeDatabricks(time_scale=SCALE) as fake:
            self.fake = fake
            self.ws = FakeWorkspaceView(fake)  # type: ignore[assignment]
            yield

    async def make_client(self) -> JobClient[Any]:
        return DatabricksClient(self.fake.url, auth=BearerAuth(self.fake.pat), timeout=5.0)

    def make_spec(self) -> Any:
        return SubmitRunSpec({"run_name": "contract", "tasks": [long_task()]})

    async def end_job(self, locator: Locator, state: JobState) -> None:
        self.fake.finish(locator["run_id"], stub_contract.RESULTS[state])

    async def vanish(self, locator: Locator) -> None:
        self.fake.forget_run(locator["run_id"])

    @contextlib.asynccontextmanager
    async def unreachable(self) -> AsyncIterator[None]:
        async with endpoint_down(self.fake.stop, self.fake.start):  # start() binds the port it had
            yield


class TestDatabricksFakeRunNowContract(TestDatabricksFakeSubmitRunContract, stub_contract.TestDatabricksRunNowContract):
    """run-now of the job ``contract-job`` (created by the stub suite's fixture, on the fake), found by its name."""

    def make_spec(self) -> Any:
        return stub_contract.TestDatabricksRunNowContract.make_spec(self)
