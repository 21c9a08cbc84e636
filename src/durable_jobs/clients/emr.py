"""EMR on EC2: steps on an existing cluster, and the cluster itself (create, describe, terminate).

Neither ``AddJobFlowSteps`` nor ``RunJobFlow`` takes a client token, so the token travels in the name:
a step is named ``"<name> [<token>]"`` and so is a cluster (which also gets a ``durable-jobs:token``
tag). ``find`` lists the cluster's steps (``ListSteps``, newest first, stopping an hour before the
intent's time, see :data:`~durable_jobs.clients.aws.FIND_WINDOW`) or the clusters created since then
(``ListClusters``) and adopts the one carrying the token. A submit that fails transiently is looked up
the same way before it is sent again, because a throttled ``AddJobFlowSteps`` may have been applied
(aws/aws-sdk-ruby#825). ``find`` answers "none" only when every listed item could be read.

Batched polling: the shared poller hands every watched step of a connection to :meth:`statuses`, which
makes per cluster one ``ListSteps`` with a ``StepIds`` filter when at most 10 steps are watched (the API's
limit), and otherwise lists the cluster's *active* steps (``PENDING``, ``CANCEL_PENDING``, ``RUNNING``:
one request per page of 50; EMR documents a limit of 256 steps per cluster). Watched steps it did not
see have just ended: many of them are found on the newest pages of ended steps (a bounded look), the
rest by id, 10 per request. The request rate grows with clusters and pages, not with triggers. Each page
is dropped once read, and steps alike (the running ones) share one status object.

Every answer is typed (the schemas below); each listed item is decoded on its own, so a malformed step
makes that step unknown and no other. A cluster whose listing fails makes its steps unknown, asked one
by one within the poll's bound; other clusters are untouched.

States: ``PENDING`` -> pending; ``RUNNING`` and ``CANCEL_PENDING`` -> running; ``COMPLETED`` -> succeeded;
``FAILED`` and ``INTERRUPTED`` -> failed; ``CANCELLED`` -> cancelled; anything else -> unknown.
``FailureDetails`` (reason, message, log file) become the message. A cluster job is *ready* (succeeded)
when it is ``WAITING`` or ``RUNNING``.

Lost is proven by two sources: a step is lost when ``DescribeStep`` answers EMR's not-found
(``InvalidRequestException: Step id 's-…' is not valid``, or the same for its cluster) **and** the cluster's
step history (``ListSteps`` by id, every state) does not list it; a step the history still lists has the
state listed there (a ``COMPLETED`` one succeeded). A cluster is lost when ``DescribeCluster`` says its id
is not valid and ``ListClusters`` (two months of history) does not list it. When the second source
cannot be read, the job is unknown.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar

import msgspec

from durable_jobs.clients.aws import (
    TOKEN_TAG,
    AwsConfig,
    AwsJobClient,
    AwsRequestError,
    decode_item,
    endpoint_wide,
    epoch,
    item_field,
    join_uri,
    state_of,
    unknown_state,
)
from durable_jobs.clients.base import Locator, locator_key
from durable_jobs.errors import DurableJobError, MalformedAnswer, RecordError
from durable_jobs.status import JobState, JobStatus

log = logging.getLogger(__name__)

STEP_SYSTEM = "emr-step"
CLUSTER_SYSTEM = "emr-cluster"
CLUSTER_ID_RE = re.compile(r"^j-[A-Z0-9]{1,64}$")
STEP_ID_RE = re.compile(r"^s-[A-Z0-9]{1,64}$")
STEP_IDS_PER_CALL = 10  # ListSteps' StepIds filter takes at most 10 ids
ACTIVE_STEP_STATES = ("PENDING", "CANCEL_PENDING", "RUNNING")
ENDED_STEP_STATES = ("COMPLETED", "CANCELLED", "FAILED", "INTERRUPTED")
LIST_PAGE_SIZE = 50  # ListSteps answers at most 50 steps per page
ACTIONS_ON_FAILURE = ("TERMINATE_JOB_FLOW", "TERMINATE_CLUSTER", "CANCEL_AND_WAIT", "CONTINUE")
CANCELLATION_OPTIONS = ("SEND_INTERRUPT", "TERMINATE_PROCESS")
MAX_NAME = 256
#: pages of ListClusters read to confirm that a cluster is gone (50 clusters each)
CLUSTER_HISTORY_PAGES = 400

STEP_STATES = {
    "PENDING": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "CANCEL_PENDING": JobState.RUNNING,  # still running until EMR confirms the cancel
    "COMPLETED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
    "INTERRUPTED": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,
}
CLUSTER_STATES = {
    "STARTING": JobState.PENDING,
    "BOOTSTRAPPING": JobState.PENDING,
    "RUNNING": JobState.SUCCEEDED,  # ready: the job of a cluster operator is to get one
    "WAITING": JobState.SUCCEEDED,
    "TERMINATING": JobState.RUNNING,  # the final state (and its reason) is not known yet
    "TERMINATED_WITH_ERRORS": JobState.FAILED,
}


# --- what is read from EMR's answers ---------------------------------------------------------------------


class _Schema(msgspec.Struct, rename="pascal", frozen=True, gc=False):
    """EMR's answers use PascalCase names; unknown fields are ignored, read ones have exact types."""


class Reason(_Schema, frozen=True):
    code: str | None = None
    message: str | None = None


class FailureDetails(_Schema, frozen=True):
    reason: str | None = None
    message: str | None = None
    log_file: str | None = None


class Timeline(_Schema, frozen=True):
    creation_date_time: datetime | None = None


class StepStatusView(_Schema, frozen=True):
    state: str
    state_change_reason: Reason = Reason()
    failure_details: FailureDetails | None = None
    timeline: Timeline = Timeline()


class StepView(_Schema, frozen=True):
    """A step of ``DescribeStep`` or a ``StepSummary`` of ``ListSteps``."""

    id: str
    status: StepStatusView
    name: str = ""
    log_uri: str | None = None


class DescribeStepAnswer(_Schema, frozen=True):
    step: StepView


class AddJobFlowStepsAnswer(_Schema, frozen=True):
    step_ids: list[str]


class CancelStepsInfo(_Schema, frozen=True):
    step_id: str | None = None
    status: str | None = None
    reason: str | None = None


class CancelStepsAnswer(_Schema, frozen=True):
    cancel_steps_info_list: list[CancelStepsInfo] = []


class ErrorDetail(_Schema, frozen=True):
    error_code: str | None = None
    error_message: str | None = None


class ClusterStatusView(_Schema, frozen=True):
    state: str
    state_change_reason: Reason = Reason()
    error_details: list[ErrorDetail] = []
    timeline: Timeline = Timeline()


class ClusterView(_Schema, frozen=True):
    """A cluster of ``DescribeCluster`` or a ``ClusterSummary`` of ``ListClusters``."""

    id: str
    status: ClusterStatusView
    name: str = ""
    log_uri: str | None = None
    master_public_dns_name: str | None = None


class DescribeClusterAnswer(_Schema, frozen=True):
    cluster: ClusterView


class RunJobFlowAnswer(_Schema, frozen=True):
    job_flow_id: str


# --- ids, names, specs -----------------------------------------------------------------------------------


def validate_cluster_id(value: Any) -> str:
    if not isinstance(value, str) or not CLUSTER_ID_RE.match(value):
        raise RecordError(f"invalid EMR cluster id {value!r} (expected j-XXXXXXXXXXXXX)")
    return value


def validate_step_id(value: Any) -> str:
    if not isinstance(value, str) or not STEP_ID_RE.match(value):
        raise RecordError(f"invalid EMR step id {value!r} (expected s-XXXXXXXXXXXXX)")
    return value


def _answered_id(value: Any, check: Callable[[Any], str], what: str) -> str:
    """An id read from an answer: a malformed one is a malformed answer (unknown), not a bad record."""
    try:
        return check(value)
    except RecordError as exc:
        raise MalformedAnswer(f"{what}: {exc}") from None


def named(name: str, token: str) -> str:
    """``"<name> [<token>]"``, within EMR's 256 characters."""
    suffix = f" [{token}]"
    return name[: MAX_NAME - len(suffix)] + suffix


def _raw_created(item: Any) -> float | None:
    """The creation time of a raw listed step or cluster, or None when it cannot be read."""
    status = item.get("Status") if isinstance(item, dict) else None
    timeline = status.get("Timeline") if isinstance(status, dict) else None
    value = timeline.get("CreationDateTime") if isinstance(timeline, dict) else None
    return epoch(value) if isinstance(value, datetime) else None


@dataclass(frozen=True)
class EmrStep:
    """A step for ``AddJobFlowSteps``: by default ``command-runner.jar`` with ``args`` (e.g. spark-submit)."""

    cluster_id: str
    name: str
    args: Sequence[str] = ()
    jar: str = "command-runner.jar"
    main_class: str | None = None
    properties: Mapping[str, str] = field(default_factory=dict)
    action_on_failure: str = "CONTINUE"
    execution_role_arn: str | None = None

    def __post_init__(self) -> None:
        try:
            validate_cluster_id(self.cluster_id)
        except RecordError as exc:
            raise ValueError(str(exc)) from None
        if self.action_on_failure not in ACTIONS_ON_FAILURE:
            raise ValueError(f"action_on_failure must be one of {', '.join(ACTIONS_ON_FAILURE)}")
        if not self.jar:
            raise ValueError("jar is required (command-runner.jar runs spark-submit and other commands)")

    def request(self, token: str) -> dict[str, Any]:
        jar_step: dict[str, Any] = {"Jar": self.jar, "Args": [str(a) for a in self.args]}
        if self.main_class:
            jar_step["MainClass"] = self.main_class
        if self.properties:
            jar_step["Properties"] = [{"Key": str(k), "Value": str(v)} for k, v in self.properties.items()]
        return {"Name": named(self.name, token), "ActionOnFailure": self.action_on_failure, "HadoopJarStep": jar_step}


@dataclass(frozen=True)
class EmrCluster:
    """A cluster for ``RunJobFlow``: ``job_flow`` holds its arguments except ``Name`` (Instances, ReleaseLabel...).

    ``Instances.KeepJobFlowAliveWhenNoSteps`` defaults to True here (AWS's default, False, terminates a
    cluster without steps as soon as it is ready, which defeats create-cluster -> add steps).
    """

    name: str
    job_flow: Mapping[str, Any]

    def __post_init__(self) -> None:
        if "Name" in self.job_flow:
            raise ValueError("give the cluster name as `name`; durable_jobs appends the token to it")
        if not isinstance(self.job_flow.get("Instances"), Mapping):
            raise ValueError("job_flow needs an Instances mapping (instance types and counts)")

    def request(self, token: str) -> dict[str, Any]:
        body = {k: v for k, v in self.job_flow.items()}
        instances = dict(body["Instances"])
        instances.setdefault("KeepJobFlowAliveWhenNoSteps", True)
        tags = [t for t in body.get("Tags") or () if t.get("Key") != TOKEN_TAG]
        body.update(Name=named(self.name, token), Instances=instances, Tags=[*tags, {"Key": TOKEN_TAG, "Value": token}])
        return body


# --- statuses --------------------------------------------------------------------------------------------


def _step_status(step: StepView, url: str, alike: dict[tuple[str, str, str, str], JobStatus]) -> JobStatus:
    """The status of a listed or described step; one object per distinct (state, message, logs) in ``alike``."""
    st = step.status
    raw = st.state
    log_file = (st.failure_details.log_file if st.failure_details else None) or ""
    log_uri = step.log_uri or ""
    message = _step_message(raw, st)
    key = (raw, message, log_file, log_uri)
    status = alike.get(key)
    if status is None:
        extra: dict[str, Any] = {}
        if log_file:
            extra["log_file"] = log_file
        if log_uri:
            extra["log_uri"] = log_uri
        state = state_of(STEP_STATES, raw)
        if state is JobState.UNKNOWN:
            message = unknown_state(raw, message)
        status = alike[key] = JobStatus(state, raw_state=raw, message=message, tracking_url=url, extra=extra)
    return status


def _step_message(raw: str, status: StepStatusView) -> str:
    failure = status.failure_details
    if failure is not None:
        parts = [p for p in (failure.reason, failure.message) if p]
        if failure.log_file:
            parts.append(f"(log: {failure.log_file})")
        if parts:
            return " ".join(parts)
    if status.state_change_reason.message:
        return status.state_change_reason.message
    if raw == "INTERRUPTED":
        return "the step was interrupted (typically its cluster terminated)"
    return ""


def _lost_step(loc: Locator, url: str, why: str) -> JobStatus:
    return JobStatus(
        JobState.LOST,
        raw_state="not found",
        message=f"EMR does not know step {loc['step_id']} of cluster {loc['cluster_id']}: {why}",
        tracking_url=url,
    )


def _cluster_status(cluster: ClusterView, url: str) -> JobStatus:
    st = cluster.status
    raw = st.state
    code = st.state_change_reason.code or ""
    reason_message = st.state_change_reason.message or ""
    if raw == "TERMINATED":
        state = {"ALL_STEPS_COMPLETED": JobState.SUCCEEDED, "USER_REQUEST": JobState.CANCELLED}.get(
            code, JobState.FAILED
        )
    else:
        state = state_of(CLUSTER_STATES, raw)
    parts = [f"{code}: {reason_message}" if code and reason_message else reason_message]
    if state is JobState.UNKNOWN:
        parts.insert(0, unknown_state(raw, ""))
    parts += [e.error_message for e in st.error_details if e.error_message]
    extra = {"log_uri": cluster.log_uri} if cluster.log_uri else {}
    if cluster.master_public_dns_name:
        extra["master_public_dns_name"] = cluster.master_public_dns_name
    return JobStatus(state, raw_state=raw, message="; ".join(p for p in parts if p), tracking_url=url, extra=extra)


# --- the clients -----------------------------------------------------------------------------------------


class _EmrClient(AwsJobClient[Any]):
    service: ClassVar[str] = "emr"

    def cluster_url(self, cluster_id: str) -> str:
        return self.console_url("emr/home?region={region}#/clusterDetails/" + cluster_id)

    async def describe_cluster(self, cluster_id: str, *, budget: float | None = None) -> ClusterView:
        cluster_id = validate_cluster_id(cluster_id)
        what = f"describe EMR cluster {cluster_id}"
        resp = await self.retrying(
            lambda: self.call("describe_cluster", what=what, schema=DescribeClusterAnswer, ClusterId=cluster_id),
            what=what,
            budget=budget,
        )
        if resp.cluster.id != cluster_id:
            raise MalformedAnswer(f"{what}: the answer is about cluster {resp.cluster.id!r}")
        return resp.cluster

    async def terminate_cluster(self, cluster_id: str) -> None:
        """``TerminateJobFlows``; idempotent (a terminated or unknown cluster is not an error)."""
        cluster_id = validate_cluster_id(cluster_id)
        what = f"terminate EMR cluster {cluster_id}"
        try:
            await self.retrying(lambda: self.send("terminate_job_flows", what=what, JobFlowIds=[cluster_id]), what=what)
        except AwsRequestError as exc:
            if not exc.denies(cluster_id):
                raise
            log.info("%s: EMR does not know the cluster any more; nothing to terminate", what)

    async def _cluster_links(self, cluster_id: str, *, step_id: str | None = None) -> dict[str, str]:
        out = {"emr_cluster_url": self.cluster_url(cluster_id)}
        try:
            cluster = await self.describe_cluster(cluster_id, budget=min(5.0, self.config.retry_budget))
        except DurableJobError as exc:  # links are a courtesy: never fail nor hold a task
            log.info("no log links for %s: %s", cluster_id, exc)
            return out
        if cluster.log_uri:
            logs = join_uri(cluster.log_uri, cluster_id, *(("steps", step_id) if step_id else ()))
            out["emr_logs_uri"] = logs
            url = self.s3_console_url(logs)
            if url:
                out["emr_logs_url"] = url
        return out


class EmrStepClient(_EmrClient):
    """Steps on an existing EMR cluster. Locator: ``{"cluster_id": "j-...", "step_id": "s-..."}``."""

    system: ClassVar[str] = STEP_SYSTEM

    def __init__(self, config: AwsConfig, *, cancellation_option: str = "SEND_INTERRUPT", **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        if cancellation_option not in CANCELLATION_OPTIONS:
            raise ValueError(f"step cancellation option must be one of {', '.join(CANCELLATION_OPTIONS)}")
        self.cancellation_option = cancellation_option

    def validate_locator(self, locator: Mapping[str, Any]) -> Locator:
        if set(locator) != {"cluster_id", "step_id"}:
            raise RecordError(f"an EMR step locator has exactly cluster_id and step_id; got {dict(locator)!r}")
        return {
            "cluster_id": validate_cluster_id(locator["cluster_id"]),
            "step_id": validate_step_id(locator["step_id"]),
        }

    def describe(self, locator: Locator) -> str:
        return f"EMR step {locator.get('step_id')} on cluster {locator.get('cluster_id')}"

    # --- submit and find ---------------------------------------------------------------------------------

    async def submit(self, spec: EmrStep, token: str, *, reserved: Locator | None = None) -> Locator:
        started = time.time()
        what = f"add step {spec.name!r} to EMR cluster {spec.cluster_id}"
        params: dict[str, Any] = {"JobFlowId": spec.cluster_id, "Steps": [spec.request(token)]}
        if spec.execution_role_arn:
            params["ExecutionRoleArn"] = spec.execution_role_arn

        async def add() -> Locator:
            resp = await self.call("add_job_flow_steps", what=what, schema=AddJobFlowStepsAnswer, **params)
            if len(resp.step_ids) != 1:
                raise MalformedAnswer(f"{what}: expected one step id, EMR answered {len(resp.step_ids)}")
            return {"cluster_id": spec.cluster_id, "step_id": _answered_id(resp.step_ids[0], validate_step_id, what)}

        async def applied_anyway() -> Locator | None:
            return await self._find(spec.cluster_id, token, since=started, budget=0.0)

        return await self.retrying(add, what=what, before_retry=applied_anyway)

    async def find(self, token: str, *, since: float, spec: EmrStep, reserved: Locator | None = None) -> Locator | None:
        return await self._find(spec.cluster_id, token, since=since, budget=None)

    async def _find(self, cluster_id: str, token: str, *, since: float, budget: float | None) -> Locator | None:
        """The oldest step of ``cluster_id`` named with ``token`` and created in the window before ``since``.

        ``ListSteps`` answers newest first: the listing stops at the first page that ends before the window.
        """
        needle = f"[{token}]"
        what = f"list steps of EMR cluster {cluster_id}"
        mine: list[tuple[float, str]] = []
        doubtful = ""

        def on_page(items: list[Any]) -> bool:
            nonlocal doubtful
            cutoff = self.find_cutoff(since)  # after the first answer: AWS's clock is known
            for item in items:
                name = item_field(item, "Name")
                if name is None:
                    doubtful = "a listed step without a readable name"
                    continue
                if needle not in name:
                    continue
                try:
                    step = decode_item(item, StepView, what=what)
                    step_id = _answered_id(step.id, validate_step_id, what)
                except MalformedAnswer as exc:
                    doubtful = str(exc)
                    continue
                created = epoch(step.status.timeline.creation_date_time)
                if created and created < cutoff:
                    continue  # an older generation's namesake (e.g. a deleted and re-created DAG run)
                mine.append((created, step_id))
            last = _raw_created(items[-1]) if items else None
            return last is not None and last < cutoff

        await self.pages(
            "list_steps", {"ClusterId": cluster_id}, what=what, items="Steps", marker_in="Marker", on_page=on_page,
            budget=budget,
        )  # fmt: skip
        if not mine:
            if doubtful:
                raise MalformedAnswer(f"{what}: cannot tell whether token {token} was submitted ({doubtful})")
            return None
        if len(mine) > 1:
            log.warning("%d steps on %s carry token %s; adopting the oldest", len(mine), cluster_id, token)
        return {"cluster_id": cluster_id, "step_id": min(mine)[1]}

    # --- status ------------------------------------------------------------------------------------------

    async def _describe_step(self, loc: Locator) -> StepView:
        what = f"describe {self.describe(loc)}"
        resp = await self.call(
            "describe_step", what=what, schema=DescribeStepAnswer, ClusterId=loc["cluster_id"], StepId=loc["step_id"]
        )
        if resp.step.id != loc["step_id"]:
            raise MalformedAnswer(f"{what}: the answer is about step {resp.step.id!r}")
        return resp.step

    async def status(self, locator: Locator) -> JobStatus:
        """``DescribeStep``; a step it denies is lost only if the cluster's step history agrees."""
        loc = self.validate_locator(locator)
        url = self.cluster_url(loc["cluster_id"])
        try:
            step = await self._describe_step(loc)
        except AwsRequestError as exc:
            if not exc.denies(loc["step_id"], loc["cluster_id"]):
                raise
            return await self._history_says(loc, url, f"DescribeStep: {exc}")
        return _step_status(step, url, {})

    async def _history_says(self, loc: Locator, url: str, denied: str) -> JobStatus:
        """The second source, after ``DescribeStep`` denied the step: ``ListSteps`` by id (every state)."""
        found: dict[str, JobStatus] = {}
        try:
            complete = await self._by_ids(loc["cluster_id"], {loc["step_id"]: loc}, url, {}, found)
        except AwsRequestError as exc:
            if exc.denies(loc["cluster_id"]):
                return _lost_step(loc, url, f"{denied}; ListSteps: {exc}")
            raise
        if loc["step_id"] in found:
            return found[loc["step_id"]]  # the history lists it (e.g. COMPLETED): that is what became of it
        if not complete:
            raise MalformedAnswer(f"{denied}, and the cluster's step list could not be read whole: cannot confirm")
        return _lost_step(loc, url, f"{denied}; the cluster's step history does not list it either")

    async def _by_ids(
        self,
        cluster_id: str,
        wanted: Mapping[str, Locator],
        url: str,
        alike: dict[tuple[str, str, str, str], JobStatus],
        seen: dict[str, JobStatus],
    ) -> bool:
        """``ListSteps`` with ``StepIds`` (10 per request) into ``seen``; False when an item was unreadable."""
        collect, clean = self._collector(cluster_id, wanted, url, alike, seen)
        ids = list(wanted)
        for i in range(0, len(ids), STEP_IDS_PER_CALL):
            await self._list(cluster_id, {"StepIds": ids[i : i + STEP_IDS_PER_CALL]}, collect)
        return clean()

    def _collector(
        self,
        cluster_id: str,
        wanted: Mapping[str, Locator],
        url: str,
        alike: dict[tuple[str, str, str, str], JobStatus],
        seen: dict[str, JobStatus],
    ) -> tuple[Callable[[list[Any]], bool], Callable[[], bool]]:
        """A page reader that keeps the statuses of watched steps, and whether every item could be read.

        A watched step whose item is malformed is UNKNOWN (that step only); an item whose id cannot be read
        could be any step, so the listing then proves no absence.
        """
        unreadable = False

        def collect(items: list[Any]) -> bool:
            nonlocal unreadable
            for item in items:
                sid = item_field(item, "Id")
                if sid is None:
                    unreadable = True
                    continue
                if sid not in wanted:
                    continue
                try:
                    step = decode_item(item, StepView, what=f"list steps of EMR cluster {cluster_id}")
                except MalformedAnswer as exc:
                    seen[sid] = JobStatus.unknown(str(exc))
                    continue
                seen[sid] = _step_status(step, url, alike)
            return all(s in seen for s in wanted)

        return collect, lambda: not unreadable

    async def statuses(self, locators: Sequence[Locator]) -> dict[str, JobStatus]:
        return await self.statuses_by_group(locators, lambda loc: str(loc["cluster_id"]), self._poll_cluster)

    async def _poll_cluster(self, cluster_id: str, locators: list[Locator]) -> dict[str, JobStatus]:
        wanted = {loc["step_id"]: loc for loc in locators}
        url = self.cluster_url(cluster_id)
        # Each page is read into statuses and dropped at once: nothing botocore parsed outlives its page (at
        # thousands of steps, pages kept for the whole poll were promoted to the oldest GC generation and
        # brought on full collections that stalled the loop). Steps alike (the running ones, mostly) share
        # one immutable status.
        alike: dict[tuple[str, str, str, str], JobStatus] = {}
        seen: dict[str, JobStatus] = {}
        try:
            if len(wanted) > STEP_IDS_PER_CALL:
                collect, _ = self._collector(cluster_id, wanted, url, alike, seen)
                await self._list(cluster_id, {"StepStates": list(ACTIVE_STEP_STATES)}, collect)
                ended = len(wanted) - len(seen)
                if ended > STEP_IDS_PER_CALL:
                    # many just ended: a bounded look at the newest ended steps is cheaper than asking by id
                    await self._list(
                        cluster_id,
                        {"StepStates": list(ENDED_STEP_STATES)},
                        collect,
                        limit_pages=math.ceil(ended / LIST_PAGE_SIZE) + 1,
                    )
            missing = {sid: loc for sid, loc in wanted.items() if sid not in seen}
            complete = await self._by_ids(cluster_id, missing, url, alike, seen) if missing else True
        except AwsRequestError as exc:
            if not exc.denies(cluster_id):
                raise
            return await self._cluster_gone(cluster_id, locators, f"ListSteps: {exc}")
        out = {locator_key(wanted[sid]): status for sid, status in seen.items()}
        absent = [loc for sid, loc in wanted.items() if sid not in seen]
        if absent and not complete:
            unknown = JobStatus.unknown(f"the step list of cluster {cluster_id} had an item that could not be read")
            out.update({locator_key(loc): unknown for loc in absent})
        elif absent:
            out.update(await self._confirm_absent(absent, url, alike))
        return out

    async def _confirm_absent(
        self, absent: list[Locator], url: str, alike: dict[tuple[str, str, str, str], JobStatus]
    ) -> dict[str, JobStatus]:
        """Steps the history does not list: lost only if ``DescribeStep`` denies them too (bounded, isolated)."""
        sem = asyncio.Semaphore(self.status_concurrency)

        async def one(loc: Locator) -> JobStatus:
            async with sem:
                try:
                    step = await self._describe_step(loc)
                except AwsRequestError as exc:
                    if exc.denies(loc["step_id"], loc["cluster_id"]):
                        return _lost_step(loc, url, f"the step history does not list it; DescribeStep: {exc}")
                    return JobStatus.unknown(str(exc))
                except DurableJobError as exc:
                    if endpoint_wide(exc):
                        raise
                    return JobStatus.unknown(str(exc))
                return _step_status(step, url, alike)  # described but not listed: the listing lagged

        results = await asyncio.gather(*(one(loc) for loc in absent))
        return {locator_key(loc): st for loc, st in zip(absent, results, strict=True)}

    async def _cluster_gone(self, cluster_id: str, locators: list[Locator], denied: str) -> dict[str, JobStatus]:
        """``ListSteps`` says the cluster is not valid: lost when ``DescribeCluster`` agrees, else unknown."""
        url = self.cluster_url(cluster_id)
        try:
            await self.describe_cluster(cluster_id, budget=0.0)
        except AwsRequestError as exc:
            if not exc.denies(cluster_id):
                raise
            why = f"{denied}; DescribeCluster: {exc}"
            return {locator_key(loc): _lost_step(loc, url, why) for loc in locators}
        unknown = JobStatus.unknown(f"{denied}, but DescribeCluster knows cluster {cluster_id}")
        return {locator_key(loc): unknown for loc in locators}

    async def _list(
        self,
        cluster_id: str,
        params: Mapping[str, Any],
        collect: Callable[[list[Any]], bool],
        *,
        limit_pages: int | None = None,
    ) -> bool:
        """List steps page by page into ``collect``, until it has every watched step."""
        return await self.pages(
            "list_steps",
            {"ClusterId": cluster_id, **params},
            what=f"list steps of EMR cluster {cluster_id}",
            items="Steps",
            marker_in="Marker",
            on_page=collect,
            limit_pages=limit_pages,
        )

    # --- cancel and links --------------------------------------------------------------------------------

    async def cancel(self, locator: Locator) -> None:
        loc = self.validate_locator(locator)
        what = f"cancel {self.describe(loc)}"
        try:
            resp = await self.retrying(
                lambda: self.call(
                    "cancel_steps",
                    what=what,
                    schema=CancelStepsAnswer,
                    ClusterId=loc["cluster_id"],
                    StepIds=[loc["step_id"]],
                    StepCancellationOption=self.cancellation_option,
                ),
                what=what,
            )
        except AwsRequestError as exc:
            if exc.denies(loc["cluster_id"], loc["step_id"]):
                return
            raise
        for info in resp.cancel_steps_info_list:
            if info.status != "SUBMITTED":
                # e.g. the step already ended: nothing left to stop; the poller reports its real state
                log.info("%s: EMR did not cancel it (%s)", what, info.reason or info.status)

    async def links(self, locator: Locator) -> dict[str, str]:
        loc = self.validate_locator(locator)
        return await self._cluster_links(loc["cluster_id"], step_id=loc["step_id"])


class EmrClusterClient(_EmrClient):
    """EMR clusters as jobs: submit = ``RunJobFlow``, succeeded = ready (``WAITING``/``RUNNING``).

    Locator: ``{"cluster_id": "j-..."}``. Cancel terminates the cluster.
    """

    system: ClassVar[str] = CLUSTER_SYSTEM

    def validate_locator(self, locator: Mapping[str, Any]) -> Locator:
        if set(locator) != {"cluster_id"}:
            raise RecordError(f"an EMR cluster locator has exactly one field, cluster_id; got {dict(locator)!r}")
        return {"cluster_id": validate_cluster_id(locator["cluster_id"])}

    def describe(self, locator: Locator) -> str:
        return f"EMR cluster {locator.get('cluster_id')}"

    async def submit(self, spec: EmrCluster, token: str, *, reserved: Locator | None = None) -> Locator:
        started = time.time()
        what = f"create EMR cluster {spec.name!r}"
        body = spec.request(token)

        async def run() -> Locator:
            resp = await self.call("run_job_flow", what=what, schema=RunJobFlowAnswer, **body)
            return {"cluster_id": _answered_id(resp.job_flow_id, validate_cluster_id, what)}

        async def applied_anyway() -> Locator | None:
            return await self._find(token, since=started, budget=0.0)

        return await self.retrying(run, what=what, before_retry=applied_anyway)

    async def find(
        self, token: str, *, since: float, spec: EmrCluster, reserved: Locator | None = None
    ) -> Locator | None:
        return await self._find(token, since=since, budget=None)

    async def _find(self, token: str, *, since: float, budget: float | None) -> Locator | None:
        needle = f"[{token}]"
        what = "list EMR clusters"
        mine: list[tuple[float, str]] = []
        doubtful = ""

        def on_page(items: list[Any]) -> bool:
            nonlocal doubtful
            for item in items:
                name = item_field(item, "Name")
                if name is None:
                    doubtful = "a listed cluster without a readable name"
                    continue
                if needle not in name:
                    continue
                try:
                    cluster = decode_item(item, ClusterView, what=what)
                    cluster_id = _answered_id(cluster.id, validate_cluster_id, what)
                except MalformedAnswer as exc:
                    doubtful = str(exc)
                    continue
                mine.append((epoch(cluster.status.timeline.creation_date_time), cluster_id))
            return False

        created_after = datetime.fromtimestamp(self.find_cutoff(since), tz=timezone.utc)
        await self.pages(
            "list_clusters", {"CreatedAfter": created_after}, what=what, items="Clusters", marker_in="Marker",
            on_page=on_page, budget=budget,
        )  # fmt: skip
        if not mine:
            if doubtful:
                raise MalformedAnswer(f"{what}: cannot tell whether token {token} was submitted ({doubtful})")
            return None
        if len(mine) > 1:
            log.warning("%d clusters carry token %s; adopting the oldest", len(mine), token)
        return {"cluster_id": min(mine)[1]}

    async def status(self, locator: Locator) -> JobStatus:
        loc = self.validate_locator(locator)
        cluster_id = loc["cluster_id"]
        url = self.cluster_url(cluster_id)
        what = f"describe {self.describe(loc)}"
        try:
            resp = await self.call("describe_cluster", what=what, schema=DescribeClusterAnswer, ClusterId=cluster_id)
        except AwsRequestError as exc:
            if not exc.denies(cluster_id):
                raise
            return await self._history_says(cluster_id, url, f"DescribeCluster: {exc}")
        if resp.cluster.id != cluster_id:
            raise MalformedAnswer(f"{what}: the answer is about cluster {resp.cluster.id!r}")
        return _cluster_status(resp.cluster, url)

    async def _history_says(self, cluster_id: str, url: str, denied: str) -> JobStatus:
        """The second source, after ``DescribeCluster`` denied the cluster: ``ListClusters`` (every state)."""
        what = "list EMR clusters"
        found: list[JobStatus] = []
        unreadable = False

        def on_page(items: list[Any]) -> bool:
            nonlocal unreadable
            for item in items:
                cid = item_field(item, "Id")
                if cid is None:
                    unreadable = True
                elif cid == cluster_id:
                    found.append(_cluster_status(decode_item(item, ClusterView, what=what), url))
                    return True
            return False

        await self.pages(
            "list_clusters", {}, what=what, items="Clusters", marker_in="Marker", on_page=on_page,
            max_pages=CLUSTER_HISTORY_PAGES,
        )  # fmt: skip
        if found:
            return found[0]
        if unreadable:
            raise MalformedAnswer(f"{denied}, and the cluster list had an unreadable item: cannot confirm")
        return JobStatus(
            JobState.LOST,
            raw_state="not found",
            message=f"{denied}; ListClusters does not list it either",
            tracking_url=url,
        )

    async def cancel(self, locator: Locator) -> None:
        await self.terminate_cluster(self.validate_locator(locator)["cluster_id"])

    async def links(self, locator: Locator) -> dict[str, str]:
        return await self._cluster_links(self.validate_locator(locator)["cluster_id"])


__all__ = [
    "CLUSTER_SYSTEM",
    "STEP_SYSTEM",
    "ClusterView",
    "EmrCluster",
    "EmrClusterClient",
    "EmrStep",
    "EmrStepClient",
    "StepView",
    "named",
    "validate_cluster_id",
    "validate_step_id",
]
