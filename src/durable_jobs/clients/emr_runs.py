"""What EMR Serverless and EMR on EKS job runs have in common: one client shape for both.

A run lives in a container (a Serverless application, an EKS virtual cluster) and is started with
``StartJobRun``, whose ``clientToken`` is the protocol's token: AWS answers a repeated token with the
same run for a while, so a blind retry of a start is safe. The token is also in the run's name and in a
``durable-jobs:token`` tag, so ``find`` (``ListJobRuns`` created since the intent) still adopts the run
after that idempotency window has closed.

Batched polling: per container, one run is fetched directly; several are served by listing the
container's *active* runs (one ``ListJobRuns`` per page of 50 with a ``states`` filter). Watched runs it
does not show have just ended: when there are several, one bounded list of the runs that ended since
the oldest of them was created finds them, and whatever is still missing (not listed yet) is fetched
one by one. A container AWS does not know makes its runs lost, confirmed by the poller before they count.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, ClassVar

from durable_jobs.clients.aws import AwsConfig, AwsJobClient, AwsRequestError, SpecT, epoch, state_of
from durable_jobs.clients.base import Locator, locator_key
from durable_jobs.errors import PermanentError, RecordError
from durable_jobs.status import JobState, JobStatus

log = logging.getLogger(__name__)

RUN_ID_RE = re.compile(r"^[0-9a-z]{1,64}$")
FIND_CLOCK_SKEW = 300.0
LIST_PAGE_SIZE = 50


def validate_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not RUN_ID_RE.match(value):
        raise RecordError(f"invalid {what} {value!r} (lower-case letters and digits)")
    return value


def refuse_own_fields(extra: Mapping[str, Any], own: Sequence[str]) -> None:
    clash = sorted(set(extra) & set(own))
    if clash:
        raise ValueError(f"{', '.join(clash)} are set by durable_jobs or by their own parameters; not in extra")


class JobRunClient(AwsJobClient[SpecT]):
    """Job runs of one flavour; subclasses name the operations, fields and states."""

    container_field: ClassVar[str]  # locator key of the container id
    container_param: ClassVar[str]  # request parameter of the container id
    run_param: ClassVar[str]  # request parameter of the run id in get/cancel
    get_operation: ClassVar[str]
    run_key: ClassVar[str]  # where the run id is in a start answer
    created_after_param: ClassVar[str]
    states: ClassVar[Mapping[str, JobState]]
    active_states: ClassVar[tuple[str, ...]]
    kind: ClassVar[str]  # e.g. "EMR Serverless job run"
    container_kind: ClassVar[str]

    def __init__(self, config: AwsConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._created: dict[str, float] = {}  # creation time of each active run seen, to list the ended ones

    @property
    def ended_states(self) -> tuple[str, ...]:
        return tuple(raw for raw, state in self.states.items() if state.is_terminal)

    def validate_locator(self, locator: Mapping[str, Any]) -> Locator:
        if set(locator) != {self.container_field, "job_run_id"}:
            raise RecordError(
                f"an {self.kind} locator has exactly {self.container_field} and job_run_id; got {dict(locator)!r}"
            )
        return {
            self.container_field: validate_id(locator[self.container_field], f"{self.container_kind} id"),
            "job_run_id": validate_id(locator["job_run_id"], "job run id"),
        }

    def describe(self, locator: Locator) -> str:
        return f"{self.kind} {locator.get('job_run_id')} in {self.container_kind} {locator.get(self.container_field)}"

    def _locator(self, container: str, run_id: Any) -> Locator:
        return self.validate_locator({self.container_field: container, "job_run_id": run_id})

    # --- what a flavour says about its runs --------------------------------------------------------------

    def container_of(self, spec: Any) -> str:
        raise NotImplementedError

    def start_request(self, spec: Any, token: str) -> dict[str, Any]:
        raise NotImplementedError

    def carries(self, run: Mapping[str, Any], token: str) -> bool:
        """Does this listed run carry ``token``?"""
        raise NotImplementedError

    def message(self, run: Mapping[str, Any]) -> str:
        return str(run.get("stateDetails") or "")

    def log_uri(self, locator: Locator, run: Mapping[str, Any]) -> str | None:
        return None

    # --- the JobClient contract --------------------------------------------------------------------------

    async def submit(self, spec: Any, token: str, *, reserved: Locator | None = None) -> Locator:
        container = self.container_of(spec)
        body = self.start_request(spec, token)
        what = f"start {self.kind} in {self.container_kind} {container}"
        # the clientToken makes a repeated start return the same run: retrying is safe
        resp = await self.retrying(lambda: self.call("start_job_run", what=what, **body), what=what)
        return self._locator(container, resp.get(self.run_key))

    async def find(self, token: str, *, since: float, spec: Any, reserved: Locator | None = None) -> Locator | None:
        container = self.container_of(spec)
        try:
            runs = await self.pages(
                "list_job_runs",
                {
                    self.container_param: container,
                    self.created_after_param: datetime.fromtimestamp(since - FIND_CLOCK_SKEW, tz=timezone.utc),
                },
                what=f"list {self.kind}s of {self.container_kind} {container}",
                items="jobRuns",
                marker_in="nextToken",
                budget=None,
            )
        except AwsRequestError as exc:
            if exc.not_found:  # no such container (yet): nothing was started in it
                return None
            raise
        mine = [r for r in runs if self.carries(r, token)]
        if not mine:
            return None
        if len(mine) > 1:
            log.warning("%d runs carry token %s; adopting the oldest", len(mine), token)
        first = min(mine, key=lambda r: epoch(r.get("createdAt")))
        return self._locator(container, first.get("id"))

    def _status(self, loc: Locator, run: Mapping[str, Any] | None, *, why: str = "") -> JobStatus:
        if run is None:
            self._created.pop(loc["job_run_id"], None)
            return JobStatus(JobState.LOST, raw_state="not found", message=why or f"{self.describe(loc)} not found")
        raw = str(run.get("state", ""))
        state = state_of(self.states, raw)
        if state.is_terminal:
            self._created.pop(loc["job_run_id"], None)
        elif run.get("createdAt"):
            self._created[loc["job_run_id"]] = epoch(run["createdAt"])
        extra: dict[str, Any] = {}
        tracking_url = None
        log_uri = self.log_uri(loc, run)
        if log_uri:
            extra["log_uri"] = log_uri
            tracking_url = self.s3_console_url(log_uri)
        if run.get("attempt") and int(run["attempt"]) > 1:
            extra["attempt"] = int(run["attempt"])
        return JobStatus(state, raw_state=raw, message=self.message(run), tracking_url=tracking_url, extra=extra)

    async def get_run(self, locator: Locator) -> dict[str, Any]:
        loc = self.validate_locator(locator)
        resp = await self.call(
            self.get_operation,
            what=f"get {self.describe(loc)}",
            **{self.container_param: loc[self.container_field], self.run_param: loc["job_run_id"]},
        )
        return dict(resp.get("jobRun") or {})

    async def status(self, locator: Locator) -> JobStatus:
        loc = self.validate_locator(locator)
        try:
            run = await self.get_run(loc)
        except AwsRequestError as exc:
            if exc.not_found:
                return self._status(loc, None, why=str(exc))
            raise
        return self._status(loc, run)

    async def statuses(self, locators: Sequence[Locator]) -> dict[str, JobStatus]:
        return await self.statuses_by_group(locators, lambda loc: str(loc[self.container_field]), self._poll_container)

    async def _poll_container(self, container: str, locators: list[Locator]) -> dict[str, JobStatus]:
        if len(locators) == 1:
            return {locator_key(locators[0]): await self.status(locators[0])}
        wanted = {loc["job_run_id"]: loc for loc in locators}
        # each page is read into statuses and dropped: a poll of thousands of runs keeps no page (kept pages
        # reach the oldest GC generation, whose collections stall the loop)
        seen: dict[str, JobStatus] = {}
        what = f"list {self.kind}s of {self.container_kind} {container}"

        def collect(page: list[dict[str, Any]]) -> bool:
            for run in page:
                sid = run.get("id")
                if isinstance(sid, str) and sid in wanted:
                    seen[sid] = self._status(wanted[sid], run)
            return len(seen) == len(wanted)

        base = {self.container_param: container, "maxResults": LIST_PAGE_SIZE}
        try:
            await self.pages(
                "list_job_runs",
                {**base, "states": list(self.active_states)},
                what=what,
                items="jobRuns",
                marker_in="nextToken",
                stop=collect,
                keep=False,
            )
            ended = [sid for sid in wanted if sid not in seen]
            created = [self._created.get(sid) for sid in ended]
            if len(ended) > 2 and all(created):
                # several just ended: a bounded look at the runs that ended since the oldest of them was
                # created is cheaper than one request each
                after = datetime.fromtimestamp(min(c for c in created if c) - 1, tz=timezone.utc)
                await self.pages(
                    "list_job_runs",
                    {**base, "states": list(self.ended_states), self.created_after_param: after},
                    what=what,
                    items="jobRuns",
                    marker_in="nextToken",
                    stop=collect,
                    limit_pages=math.ceil(len(ended) / LIST_PAGE_SIZE) + 1,
                    keep=False,
                )
        except AwsRequestError as exc:
            if not exc.not_found:
                raise
            return {locator_key(loc): self._status(loc, None, why=str(exc)) for loc in locators}
        out = {locator_key(wanted[sid]): status for sid, status in seen.items()}
        rest = [loc for sid, loc in wanted.items() if sid not in seen]  # not listed (yet): one request each
        if rest:
            out.update(await self.statuses_one_by_one(rest))
        return out

    async def cancel(self, locator: Locator) -> None:
        loc = self.validate_locator(locator)
        what = f"cancel {self.describe(loc)}"
        params = {self.container_param: loc[self.container_field], self.run_param: loc["job_run_id"]}
        try:
            await self.retrying(lambda: self.call("cancel_job_run", what=what, **params), what=what)
        except AwsRequestError as exc:
            if exc.not_found:
                return
            # AWS refuses to cancel a run that has ended: that is not an error for us
            current = await self.status(loc)
            if current.state.is_terminal:
                log.info("%s: already %s", what, current.raw_state)
                return
            raise PermanentError(f"{what}: {exc}") from exc

    async def links(self, locator: Locator) -> dict[str, str]:
        status = await self.status(locator)
        out: dict[str, str] = {}
        if status.extra.get("log_uri"):
            out["log_uri"] = str(status.extra["log_uri"])
        if status.tracking_url:
            out["logs_url"] = status.tracking_url
        return out


def s3_log_base(run: Mapping[str, Any]) -> str | None:
    """The run's S3 log location (``configurationOverrides.monitoringConfiguration.s3MonitoringConfiguration``)."""
    overrides = run.get("configurationOverrides") or {}
    s3 = (overrides.get("monitoringConfiguration") or {}).get("s3MonitoringConfiguration") or {}
    uri = s3.get("logUri")
    return str(uri) if uri else None


__all__ = ["JobRunClient", "refuse_own_fields", "s3_log_base", "validate_id"]
