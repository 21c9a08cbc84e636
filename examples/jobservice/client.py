"""The job service's client: the ``JobClient`` contract over its HTTP API (plain asyncio, no Airflow)."""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, TypeVar
from urllib.parse import quote

import msgspec

from durable_jobs.clients.base import JobClient, Locator, locator_key
from durable_jobs.errors import RecordError
from durable_jobs.status import JobState, JobStatus
from durable_jobs.transport.base import NO_AUTH, Auth
from durable_jobs.transport.http import Endpoint, request

T = TypeVar("T")
JOB_ID = r"^job-[0-9]{1,12}$"
STATES = {
    "queued": JobState.PENDING,
    "running": JobState.RUNNING,
    "succeeded": JobState.SUCCEEDED,
    "failed": JobState.FAILED,
    "cancelled": JobState.CANCELLED,
}


# the answers, as typed schemas: anything else is malformed, so unknown (never lost, never failed)
class Job(msgspec.Struct):
    id: Annotated[str, msgspec.Meta(pattern=JOB_ID)]
    token: str
    state: str
    message: str = ""


class Jobs(msgspec.Struct):
    jobs: list[Job]


class Created(msgspec.Struct):
    id: Annotated[str, msgspec.Meta(pattern=JOB_ID)]


class NotFound(msgspec.Struct):
    error: str


@dataclass(frozen=True)
class JobSpec:
    command: str
    seconds: float | None = None


class JobServiceClient(JobClient[JobSpec]):
    system: ClassVar[str] = "jobservice"  # written into every stored record: never change it

    def __init__(self, url: str, *, auth: Auth = NO_AUTH, timeout: float = 30.0) -> None:
        self.endpoint = Endpoint(url, timeout=timeout)
        self.auth = auth

    @property
    def key(self) -> Hashable:
        return self.endpoint.base_url  # the jobs of clients with equal keys share one poller

    def validate_locator(self, locator: Mapping[str, Any]) -> Locator:
        job_id = locator.get("job_id") if isinstance(locator, Mapping) and len(locator) == 1 else None
        if not isinstance(job_id, str) or not re.fullmatch(JOB_ID, job_id):
            raise RecordError(f"a job service locator is {{'job_id': 'job-<n>'}}; got {locator!r}")
        return {"job_id": job_id}  # a clean copy, which validates to itself

    def describe(self, locator: Locator) -> str:
        return f"job service job {locator.get('job_id')}"

    async def _get(self, method: str, path: str, what: str, schema: type[T], **kwargs: Any) -> T:
        resp = await request(self.endpoint, method, path, auth=self.auth, what=what, **kwargs)
        resp.raise_for_status(what)  # 5xx and 429 are transient, 401/403 an AuthError
        return resp.decode(schema, what=what)

    async def _job(self, method: str, locator: Locator, what: str, action: str = "") -> Job | None:
        """The job, or None on the service's documented "no such job" (a proxy's 404 page proves nothing)."""
        path = f"/jobs/{quote(locator['job_id'])}{action}"
        resp = await request(self.endpoint, method, path, auth=self.auth, what=what)
        if resp.status == 404 and resp.decode(NotFound, what=what).error == "no such job":
            return None
        resp.raise_for_status(what)
        return resp.decode(Job, what=what)

    def _status(self, job: Job) -> JobStatus:
        url = self.endpoint.url(f"/jobs/{job.id}")
        return JobStatus(STATES.get(job.state, JobState.UNKNOWN), job.state, job.message, tracking_url=url)

    async def submit(self, spec: JobSpec, token: str, *, reserved: Locator | None = None) -> Locator:
        body = {"token": token, "command": spec.command, "seconds": spec.seconds}  # the token: find() sees it
        return {"job_id": (await self._get("POST", "/jobs", "submit", Created, json_body=body)).id}

    async def find(self, token: str, *, since: float, spec: JobSpec, reserved: Locator | None = None) -> Locator | None:
        found = await self._get("GET", "/jobs", "find", Jobs, params={"token": token})
        mine = [j.id for j in found.jobs if j.token == token]
        return {"job_id": mine[0]} if mine else None  # the service keeps one job per token

    async def status(self, locator: Locator) -> JobStatus:
        job = await self._job("GET", locator, f"status of {locator['job_id']}")
        if job is None:  # LOST only when the second source, the listing, does not show it either
            job = (await self._listed()).get(locator["job_id"])
        if job is None:
            return JobStatus(JobState.LOST, "404", f"the job service does not know {locator['job_id']}")
        return self._status(job)

    async def _listed(self) -> dict[str, Job]:
        return {j.id: j for j in (await self._get("GET", "/jobs", "list jobs", Jobs)).jobs}

    async def statuses(self, locators: Sequence[Locator]) -> dict[str, JobStatus]:
        """One listing for every job; the few it does not show are asked one by one (to confirm a loss)."""
        listed = await self._listed()
        out = {locator_key(loc): self._status(listed[loc["job_id"]]) for loc in locators if loc["job_id"] in listed}
        missing = [loc for loc in locators if loc["job_id"] not in listed]
        return {**out, **(await super().statuses(missing) if missing else {})}

    async def cancel(self, locator: Locator) -> None:
        await self._job("POST", locator, f"cancel {locator['job_id']}", "/cancel")  # an unknown job: nothing to stop

    async def links(self, locator: Locator) -> dict[str, str]:
        return {"job_url": self.endpoint.url(f"/jobs/{locator['job_id']}")}
