"""The Glue client passes the JobClient contract suite, against moto's Glue (gaps closed in moto_glue).

"Unreachable" is the EMR suite's relay in front of the shared moto server, closed and reopened.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from durable_jobs.clients.base import JobClient, Locator
from durable_jobs.clients.glue import GlueClient, GlueJobRunSpec
from durable_jobs.status import JobState
from durable_jobs_harness.moto_glue import GlueMoto
from tests.emr.test_contract_emr import AwsContract

ENDED = {JobState.SUCCEEDED: "SUCCEEDED", JobState.FAILED: "FAILED"}


class TestGlueContract(AwsContract):
    @pytest.fixture(autouse=True)
    async def _glue(self, _aws: None, glue: GlueMoto) -> AsyncIterator[None]:
        self.glue = glue
        glue.create_job("contract")
        async with glue.glue_stops():  # Glue ends a STOPPING run as STOPPED
            yield

    async def make_client(self) -> JobClient[Any]:
        return GlueClient(self.aws_config())

    def make_spec(self) -> GlueJobRunSpec:
        return GlueJobRunSpec(job_name="contract", arguments={"--mode": "contract"})

    async def end_job(self, locator: Locator, state: JobState) -> None:
        self.glue.set_run(locator["job_name"], locator["run_id"], ENDED[state])

    async def vanish(self, locator: Locator) -> None:
        self.glue.forget(locator["job_name"], locator["run_id"])
