"""The :class:`DatabricksClient`: the :class:`~durable_jobs.clients.base.JobClient` contract on a Databricks
workspace, over the Jobs API 2.2.

**The token is Databricks' idempotency token.** Every submission (``runs/submit`` or ``run-now``) carries
the protocol's token as ``idempotency_token``; Databricks launches exactly one run per token and answers the
same token again with that run's id. So :meth:`DatabricksClient.find` sends the very request the protocol
would submit next, with the same token: it answers the existing run, or creates the run the protocol was
about to create anyway. The run is then confirmed with ``runs/get``. The token of a deleted run is refused
for good: find then scans the one-time runs since the intent for the token in their name (``runs/submit``
puts it at the end of ``run_name``), and otherwise fails without resubmitting (the run may have succeeded).

**Lost** needs the documented not-found answer to ``runs/get`` (404 ``RESOURCE_DOES_NOT_EXIST``) *and* the
run's absence from a complete ``runs/list?active_only=true`` walk; a 404 page from a proxy, or a listing
that could not be read whole, leaves the run unknown.

**Batched polling.** :meth:`DatabricksClient.statuses` walks ``runs/list?active_only=true`` once per poll
for every watched run (stopping once it has seen them all) and asks ``runs/get`` only for the runs it does
not list (they just ended, or are gone): every one of them, ``status_concurrency`` at a time, up to
:data:`ENDED_PER_POLL` per poll (then in turn). An active-only listing leaves out every run that ended, so each
ending run costs one ``runs/get``, once. A listing that fails makes the poll ask at most ``status_concurrency``
runs one by one (:meth:`~durable_jobs.clients.base.JobClient.fallback_statuses`), none of which can then be
called lost. The walk reads at most :data:`~durable_jobs.clients.databricks.workspace.MAX_PAGES` pages, or twice
the pages the watched runs fill if that is more.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, ClassVar

from durable_jobs.clients.base import JobClient, Locator, locator_key
from durable_jobs.clients.databricks.answers import Run, RunsListing
from durable_jobs.clients.databricks.specs import (
    SYSTEM,
    DatabricksSpec,
    SubmitRunSpec,
    token_of_run_name,
    validate_run_id,
)
from durable_jobs.clients.databricks.states import lost, status_from_run
from durable_jobs.clients.databricks.workspace import MAX_PAGES, RETRY, TokenOfDeletedRun, Workspace
from durable_jobs.errors import (
    AuthError,
    DurableJobError,
    MalformedAnswer,
    PermanentError,
    RecordError,
    RedirectRefused,
    TransientError,
    UndecidableError,
)
from durable_jobs.messages import cut
from durable_jobs.status import JobStatus, safe_url

log = logging.getLogger(__name__)

#: how far before the intent a scan for a deleted run's token starts (the worker's and the workspace's
#: clocks need not agree)
SCAN_SLACK = 3600.0

# set while a poll asks runs/get for runs its listing did not show: the listing (read whole or not) or why it
# failed. A runs/get not-found is then judged against it instead of walking the listing again per run
_LISTED: contextvars.ContextVar[RunsListing | str | None] = contextvars.ContextVar("databricks_listed", default=None)


#: runs/get per poll for runs that left the active list (they ended): beyond it, the next poll asks the others
ENDED_PER_POLL = 1024


class DatabricksClient(Workspace, JobClient[DatabricksSpec]):
    """One Databricks workspace. Locator: ``{"run_id": <int>}``.

    ``DatabricksClient(host, *, auth, timeout=30.0, verify_ssl=True, ca_file=None, max_response_bytes=None,
    list_limit=24)`` (:class:`~durable_jobs.clients.databricks.workspace.Workspace`).
    """

    system: ClassVar[str] = SYSTEM
    # find re-sends the submission with the token (the only way to look a run-now run up by its token), which
    # creates the run when none exists: right for the token the protocol is about to submit, wrong for the old
    # generations a try without a record would probe (it would start a run for each). So never without a record
    find_unrecorded: ClassVar[bool] = False

    @property
    def host(self) -> str:
        return self.endpoint.base_url

    @property
    def key(self) -> Hashable:
        """The workspace and who we are (an identity, never a credential)."""
        return (self.endpoint.origin, self.auth.identity)

    @property
    def endpoint_name(self) -> str:
        return f"Databricks workspace {self.host}"

    def validate_locator(self, locator: Mapping[str, Any]) -> Locator:
        if not isinstance(locator, Mapping) or set(locator) != {"run_id"}:
            raise RecordError(f"a Databricks locator has exactly one field, run_id; got {locator!r}")
        return {"run_id": validate_run_id(locator["run_id"])}

    def describe(self, locator: Locator) -> str:
        return f"Databricks run {locator.get('run_id')}"

    # --- submit and find ------------------------------------------------------------------------------------

    async def _request_of(self, spec: DatabricksSpec, token: str) -> tuple[str, dict[str, Any]]:
        """The path and body that submit ``spec`` with ``token`` (a run-now by job name looks the job up)."""
        if isinstance(spec, SubmitRunSpec):
            return "runs/submit", spec.request_body(token)
        job_id = spec.job_id
        if job_id is None:
            assert spec.job_name is not None  # the spec checks it has one or the other
            job_id = await self.resolve_job(spec.job_name)
        return "run-now", spec.request_body(token, job_id)

    async def resolve_job(self, name: str) -> int:
        """The id of the one job named exactly ``name``; none or several is a :class:`PermanentError`."""
        ids = await self.jobs_named(name)
        if not ids:
            raise PermanentError(f"no Databricks job on {self.host} is named {name!r}")
        if len(ids) > 1:
            raise PermanentError(
                f"several Databricks jobs on {self.host} are named {name!r} (ids {', '.join(map(str, ids))} at least): "
                "give the job_id instead"
            )
        return ids[0]

    async def submit(self, spec: DatabricksSpec, token: str, *, reserved: Locator | None = None) -> Locator:
        path, body = await self._request_of(spec, token)
        # repeating the POST is safe: the same idempotency token never launches a second run
        run_id = await RETRY.call(lambda: self.post_run(path, body, token), what=f"{path} ({token})")
        return {"run_id": run_id}

    async def find(
        self, token: str, *, since: float, spec: DatabricksSpec, reserved: Locator | None = None
    ) -> Locator | None:
        """The run of ``token``: the same request again (Databricks answers the existing run), confirmed by
        ``runs/get``. The protocol calls this only with the token it would submit next, so this never starts a
        run it would not have started. Never None: a token always has its run."""
        path, body = await self._request_of(spec, token)
        try:
            run_id = await RETRY.call(lambda: self.post_run(path, body, token), what=f"find {token}")
        except TokenOfDeletedRun:
            if isinstance(spec, SubmitRunSpec):
                found = await self._scan_for(token, since)
                if found is not None:
                    return {"run_id": found}
            raise
        run = await RETRY.call(lambda: self.get_run(run_id), what=f"runs/get of run {run_id}")
        if run is None:
            raise UndecidableError(f"{path} answered run {run_id} for token {token}, but runs/get does not know it yet")
        self._check_ours(run, spec, token)
        return {"run_id": run_id}

    def _check_ours(self, run: Run, spec: DatabricksSpec, token: str) -> None:
        """A run the token's answer named, that shows it belongs to another request, is not believed."""
        if isinstance(spec, SubmitRunSpec):
            if run.run_name is not None and token_of_run_name(run.run_name) != token:
                raise MalformedAnswer(
                    f"run {run.run_id} was answered for token {token}, but its name "
                    f"{cut(run.run_name, 200)!r} carries no such token; not believing it"
                )
        elif spec.job_id is not None and run.job_id is not None and run.job_id != spec.job_id:
            raise MalformedAnswer(
                f"run {run.run_id} was answered for token {token} and job {spec.job_id}, but belongs to job "
                f"{run.job_id}; not believing it"
            )

    async def _scan_for(self, token: str, since: float) -> int | None:
        """A one-time run since ``since`` whose name carries ``token`` (the first one), or None."""
        params = {
            "run_type": "SUBMIT_RUN",
            "start_time_from": str(max(0, int((since - SCAN_SLACK) * 1000))),
            "limit": str(self.list_limit),
        }

        def found(listing: RunsListing) -> list[int]:
            return sorted(i for i, r in listing.runs.items() if token_of_run_name(r.run_name) == token)

        listing = await self.walk(
            params, what=f"one-time runs carrying {token}", done=lambda ls: bool(found(ls)), policy=RETRY
        )
        ids = found(listing)
        return ids[0] if ids else None

    # --- status ---------------------------------------------------------------------------------------------

    async def status(self, locator: Locator) -> JobStatus:
        """``runs/get``; on its documented not-found, the active runs listing decides between LOST and a run
        that is still listed. Raises only :class:`TransientError` (unknown) or an :class:`AuthError`."""
        run_id = validate_run_id(locator["run_id"])
        listed = _LISTED.get()
        try:
            run = await self.get_run(run_id)
        except AuthError as exc:
            if isinstance(listed, RunsListing):  # the listing just accepted our credentials
                raise TransientError(f"{exc} (the runs list was read: this is about run {run_id} only)") from None
            raise
        except PermanentError as exc:  # an odd 4xx about one run proves nothing about it
            raise TransientError(str(exc), status=exc.status) from None
        if run is not None:
            return status_from_run(run)
        if listed is None:
            try:
                listed = await self._active(done=lambda ls: run_id in ls.runs or run_id in ls.malformed)
            except (TransientError, PermanentError) as exc:
                listed = str(exc)
        return self._judged(run_id, listed)

    def _judged(self, run_id: int, listed: RunsListing | str) -> JobStatus:
        """A run runs/get does not know, judged by the second source."""
        if isinstance(listed, str):
            return JobStatus.unknown(
                f"runs/get says run {run_id} does not exist, and the active runs list could not be read: {listed}"
            )
        if run_id in listed.malformed:
            return JobStatus.unknown(listed.malformed[run_id])
        if run_id in listed.runs:
            log.info("runs/get says run %d does not exist, but the active runs list shows it: using that", run_id)
            return status_from_run(listed.runs[run_id])
        if not listed.complete:
            return JobStatus.unknown(
                f"runs/get says run {run_id} does not exist, and the active runs list was not read whole "
                f"({listed.unreadable} unreadable entries{', more pages than read' if listed.capped else ''})"
            )
        return lost(run_id, "the active runs list")

    async def _active(self, done: Callable[[RunsListing], bool], watched: int = 0) -> RunsListing:
        params = {"active_only": "true", "limit": str(self.list_limit)}
        pages = max(MAX_PAGES, 2 * -(-watched // self.list_limit))  # room for every watched run, twice over
        return await self.walk(params, what="active runs", done=done, max_pages=pages)

    async def statuses(self, locators: Sequence[Locator]) -> dict[str, JobStatus]:
        """One walk of the active runs for every run; ``runs/get`` for the few it does not list."""
        if not locators:
            return {}
        out: dict[str, JobStatus] = {}
        wanted: dict[int, list[Locator]] = {}
        for loc in locators:
            try:
                wanted.setdefault(validate_run_id(loc.get("run_id")), []).append(loc)
            except RecordError as exc:
                out[locator_key(loc)] = JobStatus.unknown_from(exc)
        if not wanted:
            return out
        try:
            listing = await self._active(
                done=lambda ls: all(i in ls.runs or i in ls.malformed for i in wanted), watched=len(wanted)
            )
        except AuthError:
            raise  # our credentials, refused for everyone: the poller fetches fresh ones
        except (TransientError, PermanentError) as exc:
            if isinstance(exc, TransientError) and exc.connect_failed and not isinstance(exc, RedirectRefused):
                raise  # the workspace cannot be reached: every run is unknown, asking each cannot help
            log.info("%s; asking at most %d runs one by one", exc, self.status_concurrency)
            return {**out, **await self._each([loc for locs in wanted.values() for loc in locs], str(exc))}
        rest: list[Locator] = []
        for run_id, locs in wanted.items():
            run = listing.runs.get(run_id)
            if run is not None:
                status = self._listed_status(run)
            elif run_id in listing.malformed:
                status = JobStatus.unknown(listing.malformed[run_id])
            else:
                rest += locs  # not active any more (or gone): runs/get says which
                continue
            out.update((locator_key(loc), status) for loc in locs)
        return {**out, **(await self._ended(rest, listing) if rest else {})}

    @staticmethod
    def _listed_status(run: Run) -> JobStatus:
        try:
            return status_from_run(run)
        except Exception as exc:  # a bug or an unforeseen answer: unknown for this run only
            log.warning("status of run %d failed unexpectedly", run.run_id, exc_info=True)
            return JobStatus.unknown_from(exc)

    async def _ended(self, locators: list[Locator], listed: RunsListing) -> dict[str, JobStatus]:
        """``runs/get`` for the runs the listing no longer shows, judged against it: up to ENDED_PER_POLL."""
        n = len(locators)
        if n > ENDED_PER_POLL:
            start = getattr(self, "_ended_cursor", 0) % n
            locators = [locators[(start + i) % n] for i in range(ENDED_PER_POLL)]
            self._ended_cursor = start + ENDED_PER_POLL
        saved = _LISTED.set(listed)
        try:
            results, _ = await self._one_by_one(locators)
        finally:
            _LISTED.reset(saved)
        return {locator_key(loc): st for loc, st in zip(locators, results, strict=True)}

    async def _each(self, locators: list[Locator], listed: RunsListing | str) -> dict[str, JobStatus]:
        """``runs/get`` for these runs, judged against this poll's listing: ``status_concurrency`` per poll."""
        saved = _LISTED.set(listed)
        try:
            return await self.fallback_statuses(locators)
        finally:
            _LISTED.reset(saved)

    # --- cancel and links -----------------------------------------------------------------------------------

    async def cancel(self, locator: Locator) -> None:
        """``runs/cancel``: idempotent (an ended run answers ``{}``, an unknown one 404: nothing to stop)."""
        run_id = validate_run_id(locator["run_id"])
        known = await RETRY.call(lambda: self.cancel_run(run_id), what=f"runs/cancel of run {run_id}")
        if not known:
            log.info("run %d is unknown to %s: nothing to cancel", run_id, self.host)

    async def links(self, locator: Locator) -> dict[str, str]:
        run_id = validate_run_id(locator["run_id"])
        try:
            run = await self.get_run(run_id)
        except DurableJobError:
            run = None
        url = safe_url(run.run_page_url) if run is not None else None
        return {"run_page_url": url or f"{self.host}/#job/runs/{run_id}"}


__all__ = ["DatabricksClient"]
