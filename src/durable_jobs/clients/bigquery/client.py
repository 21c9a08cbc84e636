"""The :class:`BigQueryClient`: the :class:`~durable_jobs.clients.base.JobClient` contract on BigQuery jobs.

**The token is in the job id.** The client chooses the id (``<job_id_prefix><token>``) and BigQuery refuses a
second ``jobs.insert`` of it with 409 ``duplicate``: submit adopts that job only when its label
``durable_jobs_token`` carries the token, and otherwise fails without submitting (the id is someone else's).
find is a ``jobs.get`` of that id: a lookup by name, cheap, so ``find_unrecorded`` is True.

**Lost** needs the documented not-found answer to ``jobs.get`` (404 ``notFound``) *and* the job's absence from
a complete walk of the pending and running jobs; a 404 page from a proxy, or a listing that could not be read
whole, leaves the job unknown.

**Batched polling.** :meth:`BigQueryClient.statuses` walks ``jobs.list?stateFilter=pending&stateFilter=running
&projection=minimal&allUsers=false`` once per project and poll (jobs of every location; matched by id and
location here) and asks ``jobs.get`` only for the jobs it does not list (they ended, or are gone), up to
:data:`ENDED_PER_POLL` per poll. A listing that fails makes the poll ask at most ``status_concurrency`` jobs
one by one, none of which can then be called lost.

Give the job's ``location`` for regions other than the US and EU multi-regions: ``jobs.get`` without one
finds only jobs there. The location BigQuery answers on insert is what the locator keeps.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, ClassVar

from durable_jobs.clients.base import JobClient, Locator, locator_key
from durable_jobs.clients.bigquery.answers import Job, JobsListing
from durable_jobs.clients.bigquery.api import RETRY, BigQueryApi, DuplicateJob
from durable_jobs.clients.bigquery.specs import (
    SYSTEM,
    BigQueryJobSpec,
    job_url,
    validate_job_id,
    validate_location,
    validate_project,
)
from durable_jobs.clients.bigquery.states import lost, result_of, status_from_job
from durable_jobs.errors import (
    AuthError,
    MalformedAnswer,
    PermanentError,
    RecordError,
    RedirectRefused,
    TransientError,
    UndecidableError,
)
from durable_jobs.messages import cut
from durable_jobs.status import JobStatus

log = logging.getLogger(__name__)

#: jobs.get per poll for jobs that left the active list (they ended): beyond it, the next poll asks the others
ENDED_PER_POLL = 1024
ACTIVE_PARAMS = (
    ("stateFilter", "pending"),
    ("stateFilter", "running"),
    ("projection", "minimal"),
    ("allUsers", "false"),
    ("maxResults", "1000"),
)

# set while a poll asks jobs.get for jobs its listing did not show: the listing (read whole or not) or why it
# failed. A jobs.get not-found is then judged against it instead of walking the listing again per job
_LISTED: contextvars.ContextVar[JobsListing | str | None] = contextvars.ContextVar("bigquery_listed", default=None)


class BigQueryClient(BigQueryApi, JobClient[BigQueryJobSpec]):
    """BigQuery jobs of one project. Locator: ``{"project": str, "location": str | None, "job_id": str}``.

    ``BigQueryClient(project, *, auth, base_url="https://bigquery.googleapis.com", timeout=30.0,
    verify_ssl=True, ca_file=None, max_response_bytes=None)``.
    """

    system: ClassVar[str] = SYSTEM
    find_unrecorded: ClassVar[bool] = True  # find is one jobs.get of the id the token gives

    @property
    def key(self) -> Hashable:
        """The endpoint, the project and who we are (an identity, never a credential)."""
        return (self.endpoint.origin, self.project, self.auth.identity)

    @property
    def endpoint_name(self) -> str:
        return f"BigQuery project {self.project}"

    def validate_locator(self, locator: Mapping[str, Any]) -> Locator:
        if not isinstance(locator, Mapping) or set(locator) != {"project", "location", "job_id"}:
            raise RecordError(f"a BigQuery locator has exactly the fields project, location, job_id; got {locator!r}")
        return {
            "project": validate_project(locator["project"]),
            "location": validate_location(locator["location"]),
            "job_id": validate_job_id(locator["job_id"]),
        }

    def describe(self, locator: Locator) -> str:
        return f"BigQuery job {locator.get('project')}:{locator.get('location') or ''}.{locator.get('job_id')}"

    def locator_matches_token(self, locator: Locator, token: str) -> bool:
        return str(locator.get("job_id", "")).endswith(token)

    @staticmethod
    def _locator(job: Job, spec_location: str | None) -> Locator:
        ref = job.jobReference
        return {"project": ref.projectId, "location": ref.location or spec_location, "job_id": ref.jobId}

    def _ours(self, job: Job, token: str) -> bool:
        return job.jobReference.projectId == self.project and job.token == token

    # --- submit and find ------------------------------------------------------------------------------------

    async def submit(self, spec: BigQueryJobSpec, token: str, *, reserved: Locator | None = None) -> Locator:
        """``jobs.insert`` with the token's job id; a 409 ``duplicate`` adopts the job if its label says ours."""
        job_id = spec.job_id(token)
        body = spec.request_body(self.project, token)
        try:
            # repeating the insert is safe: the same job id never makes a second job
            job = await RETRY.call(lambda: self.insert(self.project, body, job_id), what=f"jobs.insert ({token})")
        except DuplicateJob as exc:
            found = await self._get_ours(job_id, spec.location, token)
            if found is None:
                raise UndecidableError(f"{exc}; but jobs.get does not show job {job_id} (yet)") from None
            log.info("job %s exists already and carries token %s: adopting it", job_id, token)
            return found
        if not self._ours(job, token):
            raise MalformedAnswer(f"jobs.insert of {job_id} answered a job without the label of token {token}")
        return self._locator(job, spec.location)

    async def _get_ours(self, job_id: str, location: str | None, token: str) -> Locator | None:
        job = await RETRY.call(lambda: self.get(self.project, job_id, location), what=f"jobs.get of job {job_id}")
        if job is None:
            return None
        if not self._ours(job, token):
            raise PermanentError(
                f"BigQuery job {self.project}:{job_id} exists but its label durable_jobs_token is "
                f"{cut(str(job.token), 40)!r}, not {token}: another task's (or someone's) job has this id. It is "
                "not adopted and nothing is submitted: change job_id_prefix"
            )
        return self._locator(job, location)

    async def find(
        self, token: str, *, since: float, spec: BigQueryJobSpec, reserved: Locator | None = None
    ) -> Locator | None:
        """The job of ``token``: a ``jobs.get`` of its id (None on 404 ``notFound``), checked by its label."""
        return await self._get_ours(spec.job_id(token), spec.location, token)

    # --- status ---------------------------------------------------------------------------------------------

    async def status(self, locator: Locator) -> JobStatus:
        """``jobs.get``; on its documented not-found, the active jobs listing decides between LOST and a job
        that is still listed. Raises only :class:`TransientError` (unknown) or an :class:`AuthError`."""
        loc = self.validate_locator(locator)
        job_id = loc["job_id"]
        listed = _LISTED.get()
        try:
            job = await self.get(loc["project"], job_id, loc["location"])
        except AuthError as exc:
            if isinstance(listed, JobsListing):  # the listing just accepted our credentials
                raise TransientError(f"{exc} (the jobs list was read: this is about job {job_id} only)") from None
            raise
        except PermanentError as exc:  # an odd 4xx about one job proves nothing about it
            raise TransientError(str(exc), status=exc.status) from None
        if job is not None:
            return status_from_job(job)
        if listed is None:
            try:
                listed = await self._active(loc["project"], done=lambda ls: ls.seen(job_id))
            except (TransientError, PermanentError) as exc:
                listed = str(exc)
        return self._judged(loc, listed)

    def _judged(self, loc: Locator, listed: JobsListing | str) -> JobStatus:
        """A job jobs.get does not know, judged by the second source."""
        job_id = loc["job_id"]
        if isinstance(listed, str):
            return JobStatus.unknown(
                f"jobs.get says job {job_id} does not exist, and the active jobs list could not be read: {listed}"
            )
        if job_id in listed.malformed:
            return JobStatus.unknown(listed.malformed[job_id])
        job = listed.jobs.get(job_id)
        if job is not None and self._same_place(job, loc):
            log.info("jobs.get says job %s does not exist, but the active jobs list shows it: using that", job_id)
            return status_from_job(job)
        if not listed.complete:
            return JobStatus.unknown(
                f"jobs.get says job {job_id} does not exist, and the active jobs list was not read whole "
                f"({listed.unreadable} unreadable entries{', more pages than read' if listed.capped else ''})"
            )
        return lost(job_id, "the list of pending and running jobs")

    @staticmethod
    def _same_place(job: Job, loc: Locator) -> bool:
        ref = job.jobReference
        return ref.projectId == loc["project"] and (loc["location"] is None or ref.location in (None, loc["location"]))

    async def _active(self, project: str, done: Callable[[JobsListing], bool]) -> JobsListing:
        return await self.walk(project, ACTIVE_PARAMS, what=f"pending and running jobs of {project}", done=done)

    async def statuses(self, locators: Sequence[Locator]) -> dict[str, JobStatus]:
        """One walk of the active jobs per project; ``jobs.get`` for the few it does not list."""
        out: dict[str, JobStatus] = {}
        by_project: dict[str, list[tuple[Locator, Locator]]] = {}
        for raw in locators:
            try:
                loc = self.validate_locator(raw)
            except RecordError as exc:
                out[locator_key(raw)] = JobStatus.unknown_from(exc)
                continue
            by_project.setdefault(loc["project"], []).append((raw, loc))
        for project, pairs in by_project.items():
            out.update(await self._project_statuses(project, pairs))
        return out

    async def _project_statuses(self, project: str, pairs: list[tuple[Locator, Locator]]) -> dict[str, JobStatus]:
        wanted = {loc["job_id"] for _, loc in pairs}
        try:
            listing = await self._active(project, done=lambda ls: all(ls.seen(i) for i in wanted))
        except AuthError:
            raise  # our credentials, refused for everyone: the poller fetches fresh ones
        except (TransientError, PermanentError) as exc:
            if isinstance(exc, TransientError) and exc.connect_failed and not isinstance(exc, RedirectRefused):
                raise  # BigQuery cannot be reached: every job is unknown, asking each cannot help
            log.info("%s; asking at most %d jobs one by one", exc, self.status_concurrency)
            return await self._each([raw for raw, _ in pairs], str(exc), fallback=True)
        out: dict[str, JobStatus] = {}
        rest: list[Locator] = []
        for raw, loc in pairs:
            job_id = loc["job_id"]
            job = listing.jobs.get(job_id)
            if job_id in listing.malformed:
                out[locator_key(raw)] = JobStatus.unknown(listing.malformed[job_id])
            elif job is not None and self._same_place(job, loc):
                out[locator_key(raw)] = self._listed_status(job)
            else:
                rest.append(raw)  # not active any more (or gone): jobs.get says which
        if len(rest) > ENDED_PER_POLL:
            start = getattr(self, "_ended_cursor", 0) % len(rest)
            rest = [rest[(start + i) % len(rest)] for i in range(ENDED_PER_POLL)]
            self._ended_cursor = start + ENDED_PER_POLL
        return {**out, **(await self._each(rest, listing) if rest else {})}

    @staticmethod
    def _listed_status(job: Job) -> JobStatus:
        try:
            return status_from_job(job)
        except Exception as exc:  # a bug or an unforeseen answer: unknown for this job only
            log.warning("status of job %s failed unexpectedly", job.jobReference.jobId, exc_info=True)
            return JobStatus.unknown_from(exc)

    async def _each(
        self, locators: list[Locator], listed: JobsListing | str, *, fallback: bool = False
    ) -> dict[str, JobStatus]:
        """``jobs.get`` for these jobs, judged against this poll's listing."""
        saved = _LISTED.set(listed)
        try:
            if fallback:
                return await self.fallback_statuses(locators)
            results, _ = await self._one_by_one(locators)
            return {locator_key(loc): st for loc, st in zip(locators, results, strict=True)}
        finally:
            _LISTED.reset(saved)

    # --- cancel, links, results -----------------------------------------------------------------------------

    async def cancel(self, locator: Locator) -> None:
        """``jobs.cancel``: idempotent (an ended job is answered as it is, an unknown one 404: nothing to stop)."""
        loc = self.validate_locator(locator)
        known = await RETRY.call(
            lambda: self.cancel_job(loc["project"], loc["job_id"], loc["location"]),
            what=f"jobs.cancel of job {loc['job_id']}",
        )
        if not known:
            log.info("%s is unknown to BigQuery: nothing to cancel", self.describe(loc))

    async def links(self, locator: Locator) -> dict[str, str]:
        loc = self.validate_locator(locator)
        return {"bigquery_job_url": job_url(loc["project"], loc["location"], loc["job_id"])}

    async def result(self, locator: Locator) -> dict[str, Any]:
        """What the job leaves for XCom: ``destination_table`` (``project.dataset.table``),
        ``total_bytes_processed`` and ``total_slot_ms`` (None where BigQuery does not say)."""
        loc = self.validate_locator(locator)
        job = await RETRY.call(
            lambda: self.get(loc["project"], loc["job_id"], loc["location"]), what=f"jobs.get of {loc['job_id']}"
        )
        if job is None:
            raise TransientError(f"jobs.get does not know {self.describe(loc)}: no result to read")
        return result_of(job)


__all__ = ["ACTIVE_PARAMS", "ENDED_PER_POLL", "BigQueryClient"]
