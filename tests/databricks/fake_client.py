"""A stand-in for the Databricks client in the Airflow layer's tests: the scripted system, with run locators.

The operators, hook and trigger are tested against it so that they do not depend on the real client
(``durable_jobs.clients.databricks``): it records the specs it is given and answers with ``{"run_id": N}``
locators and a run page URL, as the client's interface says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from durable_jobs.clients.base import Locator
from durable_jobs.errors import RecordError
from durable_jobs.status import JobStatus
from durable_jobs.testing.scripted import ScriptedClient

WORKSPACE = "https://adb-1234567890123456.7.azuredatabricks.net"


def _scripted(locator: Locator) -> Locator:
    return {"id": f"job-{locator['run_id']}"}


@dataclass
class FakeRunsClient(ScriptedClient):
    """Scripted runs with ``{"run_id": <int>}`` locators; ``links`` gives the run page URL."""

    system: ClassVar[str] = "databricks"

    def validate_locator(self, locator: Mapping[str, Any]) -> Locator:
        run_id = locator.get("run_id") if isinstance(locator, Mapping) and len(locator) == 1 else None
        if type(run_id) is not int or not 0 < run_id < 2**63:
            raise RecordError(f"a Databricks locator is {{'run_id': <int>}}; got {locator!r}")
        return {"run_id": run_id}

    def specs(self) -> list[Any]:
        return [job.spec for job in self.jobs.values()]

    async def submit(self, spec: Any, token: str, *, reserved: Locator | None = None) -> Locator:
        located = await super().submit(spec, token, reserved=reserved)
        return {"run_id": int(located["id"].removeprefix("job-"))}

    async def status(self, locator: Locator) -> JobStatus:
        return await super().status(_scripted(locator))

    async def cancel(self, locator: Locator) -> None:
        await super().cancel(_scripted(locator))

    async def find(self, token: str, *, since: float, spec: Any, reserved: Locator | None = None) -> Locator | None:
        found = await super().find(token, since=since, spec=spec)
        return None if found is None else {"run_id": int(found["id"].removeprefix("job-"))}

    async def links(self, locator: Locator) -> dict[str, str]:
        return {"run_page_url": f"{WORKSPACE}/#job/runs/{locator['run_id']}"}

    def describe(self, locator: Locator) -> str:
        return f"Databricks run {locator.get('run_id')}"
