"""A stand-in for the BigQuery client in the Airflow layer's tests: the scripted system, with job locators.

The operator, hook and trigger are tested against it so that they do not depend on the real client
(``durable_jobs.clients.bigquery``): it records the specs it is given, answers with
``{"project", "location", "job_id"}`` locators (the id is the spec's prefix and the token), the console link,
and a job's statistics from ``result``, as the client's interface says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from durable_jobs.clients.base import Locator
from durable_jobs.errors import RecordError
from durable_jobs.status import JobStatus
from durable_jobs.testing.scripted import ScriptedClient

PROJECT = "analytics-prod"
STATISTICS = {
    "destination_table": "analytics-prod.reports.daily",
    "total_bytes_processed": 1_048_576,
    "total_slot_ms": 4_200,
}


def console_url(locator: Mapping[str, Any]) -> str:
    return (
        f"https://console.cloud.google.com/bigquery?project={locator['project']}"
        f"&j=bq:{locator['location']}:{locator['job_id']}&page=queryresults"
    )


@dataclass
class FakeJobsClient(ScriptedClient):
    """Scripted jobs with BigQuery locators; ``result`` gives :data:`STATISTICS`, ``results`` counts the calls."""

    system: ClassVar[str] = "bigquery"
    project: str = PROJECT
    results: list[Locator] = field(default_factory=list)
    _scripted: dict[str, str] = field(default_factory=dict)  # job id -> the scripted client's id

    def validate_locator(self, locator: Mapping[str, Any]) -> Locator:
        if not isinstance(locator, Mapping) or set(locator) != {"project", "location", "job_id"}:
            raise RecordError(f"a BigQuery locator is {{'project', 'location', 'job_id'}}; got {locator!r}")
        return dict(locator)

    def specs(self) -> list[Any]:
        return [job.spec for job in self.jobs.values()]

    def _located(self, spec: Any, token: str, scripted: Locator) -> Locator:
        job_id = f"{spec.job_id_prefix}{token}"
        self._scripted[job_id] = scripted["id"]
        return {"project": self.project, "location": spec.location or "US", "job_id": job_id}

    async def submit(self, spec: Any, token: str, *, reserved: Locator | None = None) -> Locator:
        return self._located(spec, token, await super().submit(spec, token, reserved=reserved))

    async def status(self, locator: Locator) -> JobStatus:
        return await super().status({"id": self._scripted[locator["job_id"]]})

    async def cancel(self, locator: Locator) -> None:
        await super().cancel({"id": self._scripted[locator["job_id"]]})

    async def find(self, token: str, *, since: float, spec: Any, reserved: Locator | None = None) -> Locator | None:
        found = await super().find(token, since=since, spec=spec)
        return None if found is None else self._located(spec, token, found)

    async def links(self, locator: Locator) -> dict[str, str]:
        return {"bigquery_job_url": console_url(locator)}

    async def result(self, locator: Locator) -> dict[str, Any]:
        self.results.append(dict(locator))
        return dict(STATISTICS)

    def describe(self, locator: Locator) -> str:
        return f"BigQuery job {locator.get('job_id')}"
