"""AWS Glue job runs as jobs (system ``glue``): start with the token, find by token, poll, stop, links.

Calls go through the EMR room's AWS plumbing (:class:`~durable_jobs.clients.emr.aws.AwsJobClient`: pooled
aiobotocore clients, classified and redacted errors, retries within a budget, schema-checked answers), so
a Glue client is built from an ``aws`` connection exactly as an EMR client is: ``GlueClient(AwsConfig)``.

* submit: ``StartJobRun`` with the token as the argument ``--durable_jobs_token``. Glue takes no client
  token, so a start that failed transiently is looked up by token before it is sent again (it may have
  been applied). ``ConcurrentRunsExceededException`` (the job's ``MaxConcurrentRuns`` reached) is
  transient: look again later, never a failure.
* find: ``GetJobRuns`` of the job, newest first, page by page until the runs started before
  :data:`~durable_jobs.clients.emr.aws.FIND_WINDOW` before the intent (wider when AWS's clock is behind
  ours), adopting the oldest run whose ``Arguments`` carry the token. At most ``list_pages`` pages: a scan
  that could not reach back that far raises :class:`~durable_jobs.errors.UndecidableError` (it cannot say
  "none"); so ``find_unrecorded`` is cheap and bounded, and is True.
* statuses: per job name one ``GetJobRuns`` walk (until every watched run was seen, or only runs older
  than the oldest watched one are left, or ``list_pages`` pages), then ``GetJobRun`` for the few not seen.
* lost: ``GetJobRun`` answers ``EntityNotFoundException`` **and** the job's run listing (the second
  source) does not list the run, read to its end (or the job itself is gone). Otherwise unknown.
* cancel: ``BatchStopJobRun``, idempotent: its ``Errors`` entry for the run is fine when the run has
  already ended (or is stopping, or is gone), an error otherwise.

Not followed: Glue's own retries (a job's ``MaxRetries``) start ``jr_…_attempt_N`` runs carrying the same
arguments; the locator is the first run, whose failure is reported as it is. Leave retries to Airflow
(``MaxRetries`` 0), or a retried task may start its next generation while Glue's attempt still runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from durable_jobs.clients.base import Locator, locator_key
from durable_jobs.clients.emr.aws import FIND_WINDOW, AwsJobClient
from durable_jobs.clients.emr.aws_config import AwsConfig
from durable_jobs.clients.emr.aws_decoding import decode_item, epoch, item_field
from durable_jobs.clients.emr.aws_errors import AwsRequestError
from durable_jobs.clients.glue.answers import (
    RUN_ID_RE,
    BatchStopJobRunAnswer,
    GetJobRunAnswer,
    JobRunView,
    StartJobRunAnswer,
    answered_run_id,
    validate_job_name,
    validate_run_id,
)
from durable_jobs.clients.glue.specs import TOKEN_ARGUMENT, GlueJobRunSpec
from durable_jobs.clients.glue.states import run_status, run_url
from durable_jobs.errors import MalformedAnswer, PermanentError, RecordError, TransientError, UndecidableError
from durable_jobs.status import JobState, JobStatus

log = logging.getLogger(__name__)

SYSTEM = "glue"
NOT_FOUND = "EntityNotFoundException"
#: the job's MaxConcurrentRuns is reached: Glue starts nothing; a later start may succeed
BUSY_CODES = frozenset({"ConcurrentRunsExceededException"})
#: GetJobRuns answers at most 200 runs a page
PAGE_SIZE = 200
#: pages of GetJobRuns read to confirm that a run is gone (beyond, the run stays unknown)
HISTORY_PAGES = 50
#: a listing newest first may order runs started within this many seconds either way
ORDER_SLACK = 60.0


class GlueClient(AwsJobClient[GlueJobRunSpec]):
    """Runs of existing Glue jobs. Locator: ``{"job_name": <name>, "run_id": "jr_<64 hex>"}``.

    ``list_pages`` bounds each ``GetJobRuns`` walk of ``find`` and of a poll (200 runs a page).
    """

    system: ClassVar[str] = SYSTEM
    service: ClassVar[str] = "glue"
    find_unrecorded: ClassVar[bool] = True

    def __init__(self, config: AwsConfig, *, list_pages: int = 10) -> None:
        super().__init__(config)
        if isinstance(list_pages, bool) or not isinstance(list_pages, int) or list_pages < 1:
            raise ValueError(f"list_pages must be a positive integer, not {list_pages!r}")
        self.list_pages = list_pages
        self._started: dict[str, float] = {}  # start time of each active watched run seen, to end walks early

    # --- locators ----------------------------------------------------------------------------------------

    def validate_locator(self, locator: Mapping[str, Any]) -> Locator:
        if not isinstance(locator, Mapping) or set(locator) != {"job_name", "run_id"}:
            raise RecordError(f"a Glue job run locator has exactly job_name and run_id; got {locator!r}")
        return {"job_name": validate_job_name(locator["job_name"]), "run_id": validate_run_id(locator["run_id"])}

    def describe(self, locator: Locator) -> str:
        return f"Glue job run {locator.get('run_id')} of job {locator.get('job_name')!r}"

    def run_url(self, loc: Locator) -> str:
        region = self.config.region_name or "us-east-1"
        return run_url(region, self.config.console_domain(), loc["job_name"], loc["run_id"])

    async def links(self, locator: Locator) -> dict[str, str]:
        return {"glue_run_url": self.run_url(self.validate_locator(locator))}

    # --- submit and find ---------------------------------------------------------------------------------

    async def submit(self, spec: GlueJobRunSpec, token: str, *, reserved: Locator | None = None) -> Locator:
        started = time.time()
        what = f"start a run of Glue job {spec.job_name!r}"
        body = spec.request(token)

        async def start() -> Locator:
            try:
                resp = await self.call("start_job_run", what=what, schema=StartJobRunAnswer, **body)
            except AwsRequestError as exc:
                if exc.code in BUSY_CODES:
                    raise TransientError(
                        f"{exc} (the job runs as many runs as its MaxConcurrentRuns allows; trying again later)",
                        status=exc.status,
                    ) from None
                raise
            return {"job_name": spec.job_name, "run_id": answered_run_id(resp.job_run_id, what)}

        async def applied_anyway() -> Locator | None:
            # no client token: a start that failed transiently may have been applied (look before resending)
            return await self._find(spec.job_name, token, since=started, budget=0.0)

        return await self.retrying(start, what=what, before_retry=applied_anyway)

    async def find(
        self, token: str, *, since: float, spec: GlueJobRunSpec, reserved: Locator | None = None
    ) -> Locator | None:
        return await self._find(spec.job_name, token, since=since, budget=None)

    async def _find(self, job_name: str, token: str, *, since: float, budget: float | None) -> Locator | None:
        """The oldest run of ``job_name`` carrying ``token``, started in the window before ``since``."""
        what = f"list runs of Glue job {job_name!r}"
        mine: list[tuple[float, str]] = []
        doubtful = ""

        def on_page(items: list[Any]) -> bool:
            nonlocal doubtful
            cutoff = self.find_cutoff(since)  # after the first answer: AWS's clock is known
            for item in items:
                if _visibly_not(item, token):
                    continue
                try:
                    run = decode_item(item, JobRunView, what=what)
                except MalformedAnswer as exc:
                    doubtful = str(exc)  # it might be ours: "none" cannot be answered
                    continue
                if run.arguments.get(TOKEN_ARGUMENT) != token:
                    continue
                if not RUN_ID_RE.match(run.id):
                    if run.previous_run_id:
                        continue  # Glue's retry attempt (jr_…_attempt_N) of a run listed too
                    doubtful = f"{what}: a run carrying the token has the id {run.id!r}"
                    continue
                started = epoch(run.started_on)
                if started and started < cutoff:
                    continue  # an older generation's namesake
                mine.append((started, run.id))
            last = raw_started(items[-1]) if items else None
            return last is not None and last < cutoff

        try:
            complete = await self._runs(job_name, on_page, limit_pages=self.list_pages, budget=budget)
        except AwsRequestError as exc:
            if exc.code == NOT_FOUND:
                return None  # no such job: no run of it was started
            raise
        if mine:
            if len(mine) > 1:
                log.warning("%d runs of Glue job %r carry token %s; adopting the oldest", len(mine), job_name, token)
            return {"job_name": job_name, "run_id": min(mine)[1]}
        if doubtful:
            raise MalformedAnswer(f"{what}: cannot tell whether token {token} was submitted ({doubtful})")
        if not complete:
            raise UndecidableError(
                f"{what}: {self.list_pages} pages of runs did not reach back to the intent; cannot tell whether "
                f"token {token} was submitted"
            )
        return None

    async def _runs(
        self, job_name: str, on_page: Callable[[list[Any]], bool], *, limit_pages: int, budget: float | None = 0.0
    ) -> bool:
        """``GetJobRuns`` of ``job_name`` page by page into ``on_page``; False when ``limit_pages`` cut it short."""
        return await self.pages(
            "get_job_runs",
            {"JobName": job_name, "MaxResults": PAGE_SIZE},
            what=f"list runs of Glue job {job_name!r}",
            items="JobRuns",
            marker_in="NextToken",
            on_page=on_page,
            limit_pages=limit_pages,
            budget=budget,
        )

    # --- status ------------------------------------------------------------------------------------------

    def _status(self, loc: Locator, run: JobRunView) -> JobStatus:
        status = run_status(run, self.run_url(loc))
        if status.state.is_terminal:
            self._started.pop(loc["run_id"], None)
        elif run.started_on is not None:
            self._started[loc["run_id"]] = epoch(run.started_on)
        return status

    def _lost(self, loc: Locator, why: str) -> JobStatus:
        self._started.pop(loc["run_id"], None)
        return JobStatus(
            JobState.LOST,
            raw_state="not found",
            message=f"AWS Glue does not know {self.describe(loc)}: {why}",
            tracking_url=self.run_url(loc),
        )

    async def get_run(self, locator: Locator) -> JobRunView:
        loc = self.validate_locator(locator)
        what = f"get {self.describe(loc)}"
        resp = await self.call(
            "get_job_run",
            what=what,
            schema=GetJobRunAnswer,
            JobName=loc["job_name"],
            RunId=loc["run_id"],
            PredecessorsIncluded=False,
        )
        run = resp.job_run
        if run.id != loc["run_id"] or run.job_name not in (None, loc["job_name"]):
            raise MalformedAnswer(f"{what}: the answer is about another run ({run.id!r} of {run.job_name!r})")
        return run

    async def status(self, locator: Locator) -> JobStatus:
        """``GetJobRun``; a run it denies is lost only if the job's run listing agrees."""
        loc = self.validate_locator(locator)
        try:
            run = await self.get_run(loc)
        except AwsRequestError as exc:
            if exc.code != NOT_FOUND:
                raise
            return await self._history_says(loc, f"GetJobRun: {exc}")
        return self._status(loc, run)

    async def _history_says(self, loc: Locator, denied: str) -> JobStatus:
        """The second source: ``GetJobRuns`` of the job until the run shows up or the listing ends."""
        run_id = loc["run_id"]
        what = f"list runs of Glue job {loc['job_name']!r}"
        found: list[JobStatus] = []
        unreadable = False
        known = self._started.get(run_id)
        floor = known - FIND_WINDOW if known else None

        def on_page(items: list[Any]) -> bool:
            nonlocal unreadable
            for item in items:
                rid = item_field(item, "Id")
                if rid is None:
                    unreadable = True
                elif rid == run_id:
                    found.append(self._status(loc, decode_item(item, JobRunView, what=what)))
                    return True
            last = raw_started(items[-1]) if items else None
            return floor is not None and last is not None and last < floor

        try:
            complete = await self._runs(loc["job_name"], on_page, limit_pages=HISTORY_PAGES)
        except AwsRequestError as exc:
            if exc.code == NOT_FOUND:
                return self._lost(loc, f"{denied}; GetJobRuns: {exc}")
            raise
        if found:
            return found[0]  # the listing has it: that is what became of it
        if unreadable:
            raise MalformedAnswer(f"{denied}, and the job's run listing had an unreadable run: cannot confirm")
        if not complete:
            raise MalformedAnswer(f"{denied}, and the job's run listing is longer than {HISTORY_PAGES} pages")
        return self._lost(loc, f"{denied}; the job's run listing does not list it either")

    async def statuses(self, locators: Sequence[Locator]) -> dict[str, JobStatus]:
        return await self.statuses_by_group(
            locators, lambda loc: str(loc["job_name"]), self._poll_job, asked_directly=lambda locs: len(locs) == 1
        )

    async def _poll_job(self, job_name: str, locators: list[Locator]) -> dict[str, JobStatus]:
        if len(locators) == 1:
            # its own request: a failure makes this run unknown (and is not asked again in the same poll)
            return {locator_key(locators[0]): await self.status(locators[0])}
        wanted = {loc["run_id"]: loc for loc in locators}
        seen: dict[str, JobStatus] = {}
        what = f"list runs of Glue job {job_name!r}"
        starts = [self._started.get(rid) for rid in wanted]
        floor = min(s for s in starts if s) - ORDER_SLACK if all(starts) else None

        def collect(items: list[Any]) -> bool:
            for item in items:
                rid = item_field(item, "Id")
                if rid is None or rid not in wanted:
                    continue
                try:
                    seen[rid] = self._status(wanted[rid], decode_item(item, JobRunView, what=what))
                except MalformedAnswer as exc:
                    seen[rid] = JobStatus.unknown_from(exc)
            if all(r in seen for r in wanted):
                return True
            last = raw_started(items[-1]) if items else None
            return floor is not None and last is not None and last < floor  # only older runs are left

        try:
            await self._runs(job_name, collect, limit_pages=self.list_pages)
        except AwsRequestError as exc:
            if exc.code != NOT_FOUND:
                raise
            return await self.fallback_statuses(locators)  # the job is gone: each run is confirmed on its own
        out = {locator_key(wanted[rid]): status for rid, status in seen.items()}
        missing = [loc for rid, loc in wanted.items() if rid not in seen]
        if missing:  # not listed within the walk: one GetJobRun each, bounded
            out.update(await self.fallback_statuses(missing))
        return out

    # --- cancel ------------------------------------------------------------------------------------------

    async def cancel(self, locator: Locator) -> None:
        loc = self.validate_locator(locator)
        what = f"stop {self.describe(loc)}"
        try:
            resp = await self.retrying(
                lambda: self.call(
                    "batch_stop_job_run",
                    what=what,
                    schema=BatchStopJobRunAnswer,
                    JobName=loc["job_name"],
                    JobRunIds=[loc["run_id"]],
                ),
                what=what,
            )
        except AwsRequestError as exc:
            if exc.code == NOT_FOUND:
                return  # the job is gone: nothing left to stop
            raise
        errors = [e for e in resp.errors if e.job_run_id == loc["run_id"]]
        if not errors:
            if not any(s.job_run_id == loc["run_id"] for s in resp.successful_submissions):
                raise MalformedAnswer(f"{what}: the answer neither stops the run nor says why not")
            return
        detail = errors[0].error_detail
        said = f"{detail.error_code or 'no code'}: {detail.error_message or 'no message'}"
        if detail.error_code == NOT_FOUND:
            return
        current = await self.status(loc)
        if current.state.is_terminal or current.raw_state == "STOPPING":
            log.info("%s: nothing to stop, the run is %s (%s)", what, current.raw_state, said)
            return
        raise PermanentError(f"{what}: Glue refused ({said})")


def raw_started(item: Any) -> float | None:
    """The ``StartedOn`` of a raw listed run, or None when it cannot be read."""
    value = item.get("StartedOn") if isinstance(item, dict) else None
    started = epoch(value) if value is not None else 0.0
    return started or None


def _visibly_not(item: Any, token: str) -> bool:
    """A listed run whose readable ``Arguments`` do not carry ``token`` (malformed or not, it is not ours)."""
    args = item.get("Arguments", {}) if isinstance(item, dict) else None
    return isinstance(args, dict) and args.get(TOKEN_ARGUMENT) != token


__all__ = ["SYSTEM", "GlueClient", "raw_started"]
