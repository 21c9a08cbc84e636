"""A stand-in for the Glue client in the Airflow layer's tests: the scripted system, with Glue run locators.

The operator, hook and trigger are tested against it so that they do not depend on the real client
(``durable_jobs.clients.glue``): it records the specs it is given and answers with
``{"job_name": ..., "run_id": "jr_<64 hex>"}`` locators and the console URL, as the client's interface says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from durable_jobs.clients.base import Locator
from durable_jobs.errors import RecordError
from durable_jobs.status import JobStatus
from durable_jobs.testing.scripted import ScriptedClient

REGION = "eu-west-1"
RUN_ID = re.compile(r"jr_[0-9a-f]{64}")


def run_id(n: int) -> str:
    return f"jr_{n:064x}"


def run_url(job_name: str, run: str) -> str:
    return f"https://{REGION}.console.aws.amazon.com/gluestudio/home?region={REGION}#/job/{job_name}/run/{run}"


def _scripted(locator: Locator) -> Locator:
    return {"id": f"job-{int(locator['run_id'].removeprefix('jr_'), 16)}"}


@dataclass
class FakeGlueClient(ScriptedClient):
    """Scripted runs with ``{"job_name", "run_id"}`` locators; ``links`` gives the console URL."""

    system: ClassVar[str] = "glue"

    def validate_locator(self, locator: Mapping[str, Any]) -> Locator:
        if not isinstance(locator, Mapping) or set(locator) != {"job_name", "run_id"}:
            raise RecordError(f"a Glue locator is {{'job_name': ..., 'run_id': 'jr_...'}}; got {locator!r}")
        name, run = locator["job_name"], locator["run_id"]
        if not isinstance(name, str) or not name or not isinstance(run, str) or not RUN_ID.fullmatch(run):
            raise RecordError(f"a Glue locator is {{'job_name': ..., 'run_id': 'jr_...'}}; got {locator!r}")
        return {"job_name": name, "run_id": run}

    def specs(self) -> list[Any]:
        return [job.spec for job in self.jobs.values()]

    def _located(self, located: Locator, spec: Any) -> Locator:
        return {"job_name": spec.job_name, "run_id": run_id(int(located["id"].removeprefix("job-")))}

    async def submit(self, spec: Any, token: str, *, reserved: Locator | None = None) -> Locator:
        return self._located(await super().submit(spec, token, reserved=reserved), spec)

    async def status(self, locator: Locator) -> JobStatus:
        return await super().status(_scripted(locator))

    async def cancel(self, locator: Locator) -> None:
        await super().cancel(_scripted(locator))

    async def find(self, token: str, *, since: float, spec: Any, reserved: Locator | None = None) -> Locator | None:
        found = await super().find(token, since=since, spec=spec)
        return None if found is None else self._located(found, spec)

    async def links(self, locator: Locator) -> dict[str, str]:
        return {"glue_run_url": run_url(locator["job_name"], locator["run_id"])}

    def describe(self, locator: Locator) -> str:
        return f"Glue run {locator.get('run_id')} of job {locator.get('job_name')!r}"
