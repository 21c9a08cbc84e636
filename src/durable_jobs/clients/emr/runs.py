"""What EMR Serverless and EMR on EKS job runs have in common: one client shape for both.

A run lives in a container (a Serverless application, an EKS virtual cluster) and is started with
``StartJobRun``, whose ``clientToken`` is the protocol's token: AWS answers a repeated token with the
same run for a while, so a blind retry of a start is safe. The token is also in the run's name and in a
``durable-jobs:token`` tag, so ``find`` (``ListJobRuns`` created since an hour before the intent) still
adopts the run after that idempotency window has closed; it answers "none" only when every listed run
could be read.

Batched polling: per container, one run is fetched directly; several are served by listing the
container's *active* runs (one ``ListJobRuns`` per page of 50 with a ``states`` filter). Watched runs it
does not show have just ended: when there are several, one bounded list of the runs that ended (since the
oldest of them was created, when known) finds them, and whatever is still missing is fetched one by one,
at most ``status_concurrency`` per poll. A container whose listing fails makes its runs unknown, asked
one by one within the same bound; other containers are untouched.

Every answer is typed (each flavour's schemas); each listed run is decoded on its own, so a malformed
run makes that run unknown and no other. Lost is proven by two sources: ``GetJobRun``/``DescribeJobRun``
answers ``ResourceNotFoundException`` naming the run (or its container) **and** the container's run
history (``ListJobRuns``, every state) does not list it; a run the history still lists has the state
listed there (a finished one keeps its outcome). When the history cannot be read, the run is unknown.

A flavour (:mod:`~durable_jobs.clients.emr.serverless`, :mod:`~durable_jobs.clients.emr.eks`) only names
its operations, fields, states and schemas, says how a listed run carries the token, and builds its
``StartJobRun`` body as a :class:`RunSpec`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from durable_jobs.clients.base import Locator, locator_key
from durable_jobs.clients.emr.aws import FIND_WINDOW, TOKEN_TAG, AwsJobClient, SpecT, join_uri
from durable_jobs.clients.emr.aws_config import AwsConfig
from durable_jobs.clients.emr.aws_decoding import decode_item, epoch, item_field, state_of, unknown_state
from durable_jobs.clients.emr.aws_errors import AwsRequestError
from durable_jobs.errors import MalformedAnswer, PermanentError, RecordError
from durable_jobs.status import JobState, JobStatus

log = logging.getLogger(__name__)

RUN_ID_RE = re.compile(r"^[0-9a-z]{1,64}\Z")
LIST_PAGE_SIZE = 50
#: pages of ListJobRuns read to confirm that a run is gone (50 runs each; beyond, the run stays unknown)
RUN_HISTORY_PAGES = 400


# --- what is read from the answers (camelCase) ----------------------------------------------------------


class _Schema(msgspec.Struct, rename="camel", frozen=True, gc=False):
    """The job run services use camelCase names; unknown fields are ignored, read ones have exact types."""


class S3Monitoring(_Schema, frozen=True):
    log_uri: str | None = None


class Monitoring(_Schema, frozen=True):
    s3_monitoring_configuration: S3Monitoring | None = None


class Overrides(_Schema, frozen=True):
    monitoring_configuration: Monitoring | None = None


class RunView(_Schema, frozen=True):
    """What both flavours read of a run (a whole run or a listed summary).

    A flavour names the answer's id fields: ``run_id`` and ``container_id`` are redeclared with
    ``msgspec.field(name=...)``.
    """

    state: str
    run_id: str = ""
    container_id: str | None = None
    state_details: str | None = None
    failure_reason: str | None = None
    created_at: datetime | None = None
    attempt: int | None = None
    name: str | None = None
    client_token: str | None = None
    tags: dict[str, str] = {}
    configuration_overrides: Overrides | None = None


class StartAnswer(_Schema, frozen=True):
    """A ``StartJobRun`` answer: the flavour declares both fields, in its answer's order and names."""

    if TYPE_CHECKING:
        run_id: str
        container_id: str


def validate_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not RUN_ID_RE.match(value):
        raise RecordError(f"invalid {what} {value!r} (lower-case letters and digits)")
    return value


def check_spec_id(value: str, what: str) -> None:
    """A spec's container id: a bad one is the caller's error (ValueError), not a bad record."""
    try:
        validate_id(value, what)
    except RecordError as exc:
        raise ValueError(str(exc)) from None


def refuse_own_fields(extra: Mapping[str, Any], own: Sequence[str]) -> None:
    clash = sorted(set(extra) & set(own))
    if clash:
        raise ValueError(f"{', '.join(clash)} are set by durable_jobs or by their own parameters; not in extra")


class RunSpec:
    """What a flavour's spec (a frozen dataclass with ``name``, ``tags`` and ``extra``) sends to ``StartJobRun``.

    ``extra`` first, then the token (client token and tag), the name carrying it, and the spec's own
    fields that are not None.
    """

    name: str
    tags: Mapping[str, str]
    extra: Mapping[str, Any]

    def token_name(self, token: str) -> str:
        """The run's name, carrying ``token``."""
        raise NotImplementedError

    def own_fields(self) -> dict[str, Any]:
        """The spec's fields of the request, None for one it leaves out."""
        raise NotImplementedError

    def request(self, token: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            **dict(self.extra),
            "clientToken": token,
            "name": self.token_name(token),
            "tags": {**{k: str(v) for k, v in self.tags.items()}, TOKEN_TAG: token},
        }
        body.update({k: v for k, v in self.own_fields().items() if v is not None})
        return body


class JobRunClient(AwsJobClient[SpecT]):
    """Job runs of one flavour; subclasses name the operations, fields, schemas and states."""

    #: one listing of the container's runs created since ``since`` (the protocol bounds it by the job's timeout)
    find_unrecorded: ClassVar[bool] = True
    container_field: ClassVar[str]  # locator key of the container id
    container_param: ClassVar[str]  # request parameter of the container id
    run_param: ClassVar[str]  # request parameter of the run id in get/cancel
    get_operation: ClassVar[str]
    get_action: ClassVar[str]  # the API's name of the get call, for messages
    created_after_param: ClassVar[str]
    states: ClassVar[Mapping[str, JobState]]
    active_states: ClassVar[tuple[str, ...]]
    kind: ClassVar[str]  # e.g. "EMR Serverless job run"
    container_kind: ClassVar[str]
    get_schema: ClassVar[type[Any]]  # the get answer: its ``job_run`` is a RunView
    summary_schema: ClassVar[type[RunView]]  # a listed run
    start_schema: ClassVar[type[StartAnswer]]
    #: where a run's logs are under its S3 log base: fixed parts and locator fields in braces
    log_path: ClassVar[tuple[str, ...]]
    #: the run's AWS console page: ``{region}`` and locator fields in braces
    console_page: ClassVar[str]

    def __init__(self, config: AwsConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._created: dict[str, float] = {}  # creation time of each active run seen, to list the ended ones

    @property
    def ended_states(self) -> tuple[str, ...]:
        return tuple(raw for raw, state in self.states.items() if state.is_terminal)

    def validate_locator(self, locator: Mapping[str, Any]) -> Locator:
        if not isinstance(locator, Mapping) or set(locator) != {self.container_field, "job_run_id"}:
            raise RecordError(
                f"an {self.kind} locator has exactly {self.container_field} and job_run_id; got {locator!r}"
            )
        return {
            self.container_field: validate_id(locator[self.container_field], f"{self.container_kind} id"),
            "job_run_id": validate_id(locator["job_run_id"], "job run id"),
        }

    def describe(self, locator: Locator) -> str:
        return f"{self.kind} {locator.get('job_run_id')} in {self.container_kind} {locator.get(self.container_field)}"

    def _answered(self, container: str, run_id: Any, what: str) -> Locator:
        try:
            return self.validate_locator({self.container_field: container, "job_run_id": run_id})
        except RecordError as exc:
            raise MalformedAnswer(f"{what}: {exc}") from None

    # --- what a flavour says about its runs --------------------------------------------------------------

    def container_of(self, spec: Any) -> str:
        container: str = getattr(spec, self.container_field)  # a spec names its container as the locator does
        return container

    def start_request(self, spec: Any, token: str) -> dict[str, Any]:
        body: dict[str, Any] = spec.request(token)
        return body

    def carries(self, run: RunView, token: str) -> bool:
        """Does this listed run carry ``token``?"""
        raise NotImplementedError

    def message(self, run: RunView) -> str:
        return run.state_details or ""

    def log_uri(self, locator: Locator, run: RunView) -> str | None:
        base = s3_log_base(run)
        if not base:
            return None
        return join_uri(base, *(part.format(**locator) for part in self.log_path))

    # --- the JobClient contract --------------------------------------------------------------------------

    async def submit(self, spec: Any, token: str, *, reserved: Locator | None = None) -> Locator:
        container = self.container_of(spec)
        body = self.start_request(spec, token)
        what = f"start {self.kind} in {self.container_kind} {container}"

        async def start() -> Locator:
            resp = await self.call("start_job_run", what=what, schema=self.start_schema, **body)
            if resp.container_id != container:
                raise MalformedAnswer(f"{what}: the answer is about {self.container_kind} {resp.container_id!r}")
            return self._answered(container, resp.run_id, what)

        # the clientToken makes a repeated start return the same run: retrying is safe
        return await self.retrying(start, what=what)

    async def find(self, token: str, *, since: float, spec: Any, reserved: Locator | None = None) -> Locator | None:
        container = self.container_of(spec)
        what = f"list {self.kind}s of {self.container_kind} {container}"
        mine: list[tuple[float, str]] = []
        doubtful = ""

        def on_page(items: list[Any]) -> bool:
            nonlocal doubtful
            for item in items:
                try:
                    run = decode_item(item, self.summary_schema, what=what)
                except MalformedAnswer as exc:
                    doubtful = str(exc)  # it might be ours: "none" cannot be answered
                    continue
                if self.carries(run, token):
                    try:
                        loc = self._answered(container, run.run_id, what)
                    except MalformedAnswer as exc:
                        doubtful = str(exc)
                        continue
                    mine.append((epoch(run.created_at), loc["job_run_id"]))
            return False

        created_after = datetime.fromtimestamp(self.find_cutoff(since), tz=timezone.utc)
        try:
            params = {self.container_param: container, self.created_after_param: created_after}
            await self._list_runs(params, what, on_page, budget=None)
        except AwsRequestError as exc:
            if exc.denies(container):  # no such container (yet): nothing was started in it
                return None
            raise
        if not mine:
            if doubtful:
                raise MalformedAnswer(f"{what}: cannot tell whether token {token} was submitted ({doubtful})")
            return None
        if len(mine) > 1:
            log.warning("%d runs carry token %s; adopting the oldest", len(mine), token)
        return {self.container_field: container, "job_run_id": min(mine)[1]}

    def _status(self, loc: Locator, run: RunView) -> JobStatus:
        raw = run.state
        state = state_of(self.states, raw)
        if state.is_terminal:
            self._created.pop(loc["job_run_id"], None)
        elif run.created_at is not None:
            self._created[loc["job_run_id"]] = epoch(run.created_at)
        extra: dict[str, Any] = {}
        tracking_url = None
        log_uri = self.log_uri(loc, run)
        if log_uri:
            extra["log_uri"] = log_uri
            tracking_url = self.s3_console_url(log_uri)
        if run.attempt is not None and run.attempt > 1:
            extra["attempt"] = run.attempt
        message = self.message(run)
        if state is JobState.UNKNOWN:
            message = unknown_state(raw, message)
        return JobStatus(state, raw_state=raw, message=message, tracking_url=tracking_url, extra=extra)

    def _lost(self, loc: Locator, why: str) -> JobStatus:
        self._created.pop(loc["job_run_id"], None)
        return JobStatus(JobState.LOST, raw_state="not found", message=f"AWS does not know {self.describe(loc)}: {why}")

    async def get_run(self, locator: Locator) -> RunView:
        loc = self.validate_locator(locator)
        what = f"get {self.describe(loc)}"
        resp = await self.call(
            self.get_operation,
            what=what,
            schema=self.get_schema,
            **{self.container_param: loc[self.container_field], self.run_param: loc["job_run_id"]},
        )
        run: RunView = resp.job_run
        if run.run_id != loc["job_run_id"] or run.container_id not in (None, loc[self.container_field]):
            raise MalformedAnswer(f"{what}: the answer is about another run ({run.run_id!r} in {run.container_id!r})")
        return run

    async def status(self, locator: Locator) -> JobStatus:
        """The get call; a run it denies is lost only if the container's run history agrees."""
        loc = self.validate_locator(locator)
        try:
            run = await self.get_run(loc)
        except AwsRequestError as exc:
            if not exc.denies(loc["job_run_id"], loc[self.container_field]):
                raise
            return await self._history_says(loc, f"{self.get_action}: {exc}")
        return self._status(loc, run)

    async def _history_says(self, loc: Locator, denied: str) -> JobStatus:
        """The second source: ``ListJobRuns`` of the container, every state, until the run shows up."""
        container, run_id = loc[self.container_field], loc["job_run_id"]
        what = f"list {self.kind}s of {self.container_kind} {container}"
        found: list[JobStatus] = []
        unreadable = False

        def on_page(items: list[Any]) -> bool:
            nonlocal unreadable
            for item in items:
                rid = item_field(item, "id")
                if rid is None:
                    unreadable = True
                elif rid == run_id:
                    found.append(self._status(loc, decode_item(item, self.summary_schema, what=what)))
                    return True
            return False

        params: dict[str, Any] = {self.container_param: container, "maxResults": LIST_PAGE_SIZE}
        created = self._created.get(run_id)
        if created:
            params[self.created_after_param] = datetime.fromtimestamp(created - FIND_WINDOW, tz=timezone.utc)
        try:
            await self._list_runs(params, what, on_page, max_pages=RUN_HISTORY_PAGES)
        except AwsRequestError as exc:
            if exc.denies(container):
                return self._lost(loc, f"{denied}; ListJobRuns: {exc}")
            raise
        if found:
            return found[0]  # the history lists it: that is what became of it
        if unreadable:
            raise MalformedAnswer(f"{denied}, and the {self.container_kind}'s run list had an unreadable item")
        return self._lost(loc, f"{denied}; the {self.container_kind}'s run history does not list it either")

    async def statuses(self, locators: Sequence[Locator]) -> dict[str, JobStatus]:
        return await self.statuses_by_group(
            locators,
            lambda loc: str(loc[self.container_field]),
            self._poll_container,
            asked_directly=lambda locs: len(locs) == 1,
        )

    async def _poll_container(self, container: str, locators: list[Locator]) -> dict[str, JobStatus]:
        if len(locators) == 1:
            # its own request: a failure makes this run unknown (and is not asked again in the same poll)
            return {locator_key(locators[0]): await self.status(locators[0])}
        wanted = {loc["job_run_id"]: loc for loc in locators}
        # each page is read into statuses and dropped: a poll of thousands of runs keeps no page (kept pages
        # reach the oldest GC generation, whose collections stall the loop)
        seen: dict[str, JobStatus] = {}
        what = f"list {self.kind}s of {self.container_kind} {container}"

        def collect(items: list[Any]) -> bool:
            for item in items:
                rid = item_field(item, "id")
                if rid is None or rid not in wanted:
                    continue
                try:
                    seen[rid] = self._status(wanted[rid], decode_item(item, self.summary_schema, what=what))
                except MalformedAnswer as exc:
                    seen[rid] = JobStatus.unknown_from(exc)
            return all(r in seen for r in wanted)

        base = {self.container_param: container, "maxResults": LIST_PAGE_SIZE}

        def ended(ids: list[str]) -> dict[str, Any]:
            # the runs that ended since the oldest of them was created, when known
            params: dict[str, Any] = {**base, "states": list(self.ended_states)}
            created = [self._created.get(rid) for rid in ids]
            if all(created):
                oldest = min(c for c in created if c)
                params[self.created_after_param] = datetime.fromtimestamp(oldest - 1, tz=timezone.utc)
            return params

        try:
            missing = await self.list_watched(
                lambda params, pages: self._list_runs(params, what, collect, limit_pages=pages),
                list(wanted),
                seen,
                active={**base, "states": list(self.active_states)},
                ended=ended,
                page_size=LIST_PAGE_SIZE,
                look_back_over=2,
            )
        except AwsRequestError as exc:
            if not exc.denies(container):
                raise
            # the container is gone: each run is confirmed on its own (get, then the history)
            return await self.fallback_statuses(locators)
        out = {locator_key(wanted[rid]): status for rid, status in seen.items()}
        if missing:  # not listed (yet): one request each, bounded
            out.update(await self.fallback_statuses([wanted[rid] for rid in missing]))
        return out

    async def _list_runs(
        self, params: Mapping[str, Any], what: str, on_page: Callable[[list[Any]], bool], **kwargs: Any
    ) -> bool:
        """``ListJobRuns`` page by page into ``on_page`` (``kwargs`` as for :meth:`pages`)."""
        return await self.pages(
            "list_job_runs", params, what=what, items="jobRuns", marker_in="nextToken", on_page=on_page, **kwargs
        )

    async def cancel(self, locator: Locator) -> None:
        loc = self.validate_locator(locator)
        what = f"cancel {self.describe(loc)}"
        params = {self.container_param: loc[self.container_field], self.run_param: loc["job_run_id"]}
        try:
            await self.retrying(lambda: self.send("cancel_job_run", what=what, **params), what=what)
        except AwsRequestError as exc:
            if exc.not_found:
                return
            # AWS refuses to cancel a run that has ended: that is not an error for us
            current = await self.status(loc)
            if current.state.is_terminal:
                log.info("%s: already %s", what, current.raw_state)
                return
            raise PermanentError(f"{what}: {exc}") from None

    async def links(self, locator: Locator) -> dict[str, str]:
        loc = self.validate_locator(locator)
        out = {"emr_console_url": self.console_url(self.console_page, **loc)}
        status = await self.status(loc)
        if status.extra.get("log_uri"):
            out["log_uri"] = str(status.extra["log_uri"])
        if status.tracking_url:
            out["emr_logs_url"] = out["logs_url"] = status.tracking_url  # logs_url: as in 0.1
        return out


def s3_log_base(run: RunView) -> str | None:
    """The run's S3 log location (``configurationOverrides.monitoringConfiguration.s3MonitoringConfiguration``)."""
    overrides = run.configuration_overrides
    monitoring = overrides.monitoring_configuration if overrides else None
    s3 = monitoring.s3_monitoring_configuration if monitoring else None
    return s3.log_uri if s3 and s3.log_uri else None


__all__ = [
    "JobRunClient",
    "RunSpec",
    "RunView",
    "StartAnswer",
    "check_spec_id",
    "refuse_own_fields",
    "s3_log_base",
    "validate_id",
]
