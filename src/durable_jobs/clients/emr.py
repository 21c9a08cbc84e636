"""EMR on EC2: steps on an existing cluster, and the cluster itself (create, describe, terminate).

Neither ``AddJobFlowSteps`` nor ``RunJobFlow`` takes a client token, so the token travels in the name:
a step is named ``"<name> [<token>]"`` and so is a cluster (which also gets a ``durable-jobs:token``
tag). ``find`` lists the cluster's steps (``ListSteps``, newest first, stopping at the intent's time)
or the clusters created since the intent (``ListClusters``) and adopts the one carrying the token.
A submit that fails transiently is looked up the same way before it is sent again, because a throttled
``AddJobFlowSteps`` may have been applied (aws/aws-sdk-ruby#825).

Batched polling: the shared poller hands every watched step of a connection to :meth:`statuses`, which
makes per cluster one ``ListSteps`` with a ``StepIds`` filter when at most 10 steps are watched (the API's
limit), and otherwise lists the cluster's *active* steps (``PENDING``, ``CANCEL_PENDING``, ``RUNNING``:
one request per page of 50; EMR documents a limit of 256 steps per cluster). Watched steps it did not
see have just ended: many of them are found on the newest pages of ended steps (a bounded look), the
rest by id, 10 per request. The request rate grows with clusters and pages, not with triggers. Each page
is dropped once read, and steps alike (the running ones) share one status object.

States: ``PENDING`` -> pending; ``RUNNING`` and ``CANCEL_PENDING`` -> running; ``COMPLETED`` -> succeeded;
``FAILED`` and ``INTERRUPTED`` -> failed; ``CANCELLED`` -> cancelled. A step the cluster does not list,
or a cluster EMR no longer knows ("Cluster id ... is not valid", two months after termination) -> lost
(confirmed by the poller before it counts). ``FailureDetails`` (reason, message, log file) become the
message. A cluster job is *ready* (succeeded) when it is ``WAITING`` or ``RUNNING``.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar

from durable_jobs.clients.aws import TOKEN_TAG, AwsConfig, AwsJobClient, AwsRequestError, epoch, join_uri, state_of
from durable_jobs.clients.base import Locator, locator_key
from durable_jobs.errors import PermanentError, RecordError, TransientError
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
FIND_CLOCK_SKEW = 300.0  # seconds: the intent's clock and AWS's may disagree
MAX_NAME = 256

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


def validate_cluster_id(value: Any) -> str:
    if not isinstance(value, str) or not CLUSTER_ID_RE.match(value):
        raise RecordError(f"invalid EMR cluster id {value!r} (expected j-XXXXXXXXXXXXX)")
    return value


def validate_step_id(value: Any) -> str:
    if not isinstance(value, str) or not STEP_ID_RE.match(value):
        raise RecordError(f"invalid EMR step id {value!r} (expected s-XXXXXXXXXXXXX)")
    return value


def named(name: str, token: str) -> str:
    """``"<name> [<token>]"``, within EMR's 256 characters."""
    suffix = f" [{token}]"
    return name[: MAX_NAME - len(suffix)] + suffix


def _created(item: Mapping[str, Any]) -> float:
    return epoch(((item.get("Status") or {}).get("Timeline") or {}).get("CreationDateTime"))


def _unknown_id(exc: AwsRequestError) -> bool:
    """EMR's answer for an id it does not know: InvalidRequestException "Cluster id '...' is not valid"."""
    return exc.code == "InvalidRequestException" and "is not valid" in str(exc)


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


class _EmrClient(AwsJobClient[Any]):
    service: ClassVar[str] = "emr"

    def cluster_url(self, cluster_id: str) -> str:
        return self.console_url("emr/home?region={region}#/clusterDetails/" + cluster_id)

    async def describe_cluster(self, cluster_id: str, *, budget: float | None = None) -> dict[str, Any]:
        cluster_id = validate_cluster_id(cluster_id)
        what = f"describe EMR cluster {cluster_id}"
        resp = await self.retrying(
            lambda: self.call("describe_cluster", what=what, ClusterId=cluster_id), what=what, budget=budget
        )
        return dict(resp.get("Cluster") or {})

    async def terminate_cluster(self, cluster_id: str) -> None:
        """``TerminateJobFlows``; idempotent (a terminated or unknown cluster is not an error)."""
        cluster_id = validate_cluster_id(cluster_id)
        what = f"terminate EMR cluster {cluster_id}"
        try:
            await self.retrying(lambda: self.call("terminate_job_flows", what=what, JobFlowIds=[cluster_id]), what=what)
        except AwsRequestError as exc:
            if not _unknown_id(exc):
                raise
            log.info("%s: EMR does not know the cluster any more; nothing to terminate", what)

    async def _cluster_links(self, cluster_id: str, *, step_id: str | None = None) -> dict[str, str]:
        out = {"emr_cluster_url": self.cluster_url(cluster_id)}
        try:
            cluster = await self.describe_cluster(cluster_id, budget=5.0)
        except (TransientError, PermanentError) as exc:  # links are a courtesy: never fail nor hold a task
            log.info("no log links for %s: %s", cluster_id, exc)
            return out
        log_uri = cluster.get("LogUri")
        if isinstance(log_uri, str) and log_uri:
            logs = join_uri(log_uri, cluster_id, *(("steps", step_id) if step_id else ()))
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
            resp = await self.call("add_job_flow_steps", what=what, **params)
            ids = resp.get("StepIds") or []
            if len(ids) != 1:
                raise PermanentError(f"{what}: expected one step id, EMR answered {ids!r}")
            return {"cluster_id": spec.cluster_id, "step_id": validate_step_id(ids[0])}

        async def applied_anyway() -> Locator | None:
            return await self._find(spec.cluster_id, token, since=started, budget=0.0)

        return await self.retrying(add, what=what, before_retry=applied_anyway)

    async def find(self, token: str, *, since: float, spec: EmrStep, reserved: Locator | None = None) -> Locator | None:
        return await self._find(spec.cluster_id, token, since=since, budget=None)

    async def _find(self, cluster_id: str, token: str, *, since: float, budget: float | None) -> Locator | None:
        needle = f"[{token}]"
        cutoff = since - FIND_CLOCK_SKEW
        steps = await self.pages(
            "list_steps",
            {"ClusterId": cluster_id},
            what=f"list steps of EMR cluster {cluster_id}",
            items="Steps",
            marker_in="Marker",
            stop=lambda page: bool(page) and _created(page[-1]) < cutoff,  # newest first: older pages are older
            budget=budget,
        )
        mine = [s for s in steps if needle in str(s.get("Name", "")) and _created(s) >= cutoff]
        if not mine:
            return None
        if len(mine) > 1:
            log.warning("%d steps on %s carry token %s; adopting the oldest", len(mine), cluster_id, token)
        first = min(mine, key=_created)
        return {"cluster_id": cluster_id, "step_id": validate_step_id(first.get("Id"))}

    # --- status ------------------------------------------------------------------------------------------

    def _status(self, loc: Locator, step: Mapping[str, Any] | None) -> JobStatus:
        url = self.cluster_url(loc["cluster_id"])
        return _step_status(step, url, {}) if step else _not_listed(loc, url)

    async def status(self, locator: Locator) -> JobStatus:
        loc = self.validate_locator(locator)
        what = f"describe {self.describe(loc)}"
        try:
            resp = await self.call("describe_step", what=what, ClusterId=loc["cluster_id"], StepId=loc["step_id"])
        except AwsRequestError as exc:
            if _unknown_id(exc):
                return self._status(loc, None)
            raise
        return self._status(loc, resp.get("Step"))  # moto answers {} for an unknown step id

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
        what = f"list steps of EMR cluster {cluster_id}"

        def collect(page: list[dict[str, Any]]) -> bool:
            for step in page:
                sid = step.get("Id")
                if isinstance(sid, str) and sid in wanted:
                    seen[sid] = _step_status(step, url, alike)
            return len(seen) == len(wanted)

        try:
            if len(wanted) > STEP_IDS_PER_CALL:
                await self._list(what, {"ClusterId": cluster_id, "StepStates": list(ACTIVE_STEP_STATES)}, collect)
                ended = len(wanted) - len(seen)
                if ended > STEP_IDS_PER_CALL:
                    # many just ended: a bounded look at the newest ended steps is cheaper than asking by id
                    await self._list(
                        what,
                        {"ClusterId": cluster_id, "StepStates": list(ENDED_STEP_STATES)},
                        collect,
                        limit_pages=math.ceil(ended / LIST_PAGE_SIZE) + 1,
                    )
            missing = [sid for sid in wanted if sid not in seen]
            for i in range(0, len(missing), STEP_IDS_PER_CALL):
                chunk = missing[i : i + STEP_IDS_PER_CALL]
                await self._list(what, {"ClusterId": cluster_id, "StepIds": chunk}, collect)
        except AwsRequestError as exc:
            if not _unknown_id(exc):
                raise
            seen.clear()  # every step of a cluster EMR forgot is lost
        return {locator_key(loc): seen.get(sid) or _not_listed(loc, url) for sid, loc in wanted.items()}

    async def _list(
        self,
        what: str,
        params: Mapping[str, Any],
        collect: Callable[[list[dict[str, Any]]], bool],
        *,
        limit_pages: int | None = None,
    ) -> None:
        """List steps page by page into ``collect``, until it has every watched step."""
        await self.pages(
            "list_steps",
            params,
            what=what,
            items="Steps",
            marker_in="Marker",
            stop=collect,
            limit_pages=limit_pages,
            keep=False,
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
                    ClusterId=loc["cluster_id"],
                    StepIds=[loc["step_id"]],
                    StepCancellationOption=self.cancellation_option,
                ),
                what=what,
            )
        except AwsRequestError as exc:
            if _unknown_id(exc):
                return
            raise
        for info in resp.get("CancelStepsInfoList") or ():
            if info.get("Status") != "SUBMITTED":
                # e.g. the step already ended: nothing left to stop; the poller reports its real state
                log.info("%s: EMR did not cancel it (%s)", what, info.get("Reason") or info.get("Status"))

    async def links(self, locator: Locator) -> dict[str, str]:
        loc = self.validate_locator(locator)
        return await self._cluster_links(loc["cluster_id"], step_id=loc["step_id"])


def _step_status(step: Mapping[str, Any], url: str, alike: dict[tuple[str, str, str, str], JobStatus]) -> JobStatus:
    """The status of a listed or described step; one object per distinct (state, message, logs) in ``alike``."""
    st = step.get("Status") or {}
    raw = str(st.get("State", ""))
    log_file = str((st.get("FailureDetails") or {}).get("LogFile") or "")
    log_uri = str(step.get("LogUri") or "")
    message = _step_message(raw, st)
    key = (raw, message, log_file, log_uri)
    status = alike.get(key)
    if status is None:
        extra: dict[str, Any] = {}
        if log_file:
            extra["log_file"] = log_file
        if log_uri:
            extra["log_uri"] = log_uri
        status = alike[key] = JobStatus(
            state_of(STEP_STATES, raw), raw_state=raw, message=message, tracking_url=url, extra=extra
        )
    return status


def _not_listed(loc: Locator, url: str) -> JobStatus:
    return JobStatus(
        JobState.LOST,
        raw_state="not listed",
        message=f"cluster {loc['cluster_id']} does not list step {loc['step_id']}",
        tracking_url=url,
    )


def _step_message(raw: str, status: Mapping[str, Any]) -> str:
    failure = status.get("FailureDetails") or {}
    parts = [str(failure[k]) for k in ("Reason", "Message") if failure.get(k)]
    if failure.get("LogFile"):
        parts.append(f"(log: {failure['LogFile']})")
    if parts:
        return " ".join(parts)
    reason = (status.get("StateChangeReason") or {}).get("Message")
    if reason:
        return str(reason)
    if raw == "INTERRUPTED":
        return "the step was interrupted (typically its cluster terminated)"
    return ""


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
            resp = await self.call("run_job_flow", what=what, **body)
            return {"cluster_id": validate_cluster_id(resp.get("JobFlowId"))}

        async def applied_anyway() -> Locator | None:
            return await self._find(token, since=started, budget=0.0)

        return await self.retrying(run, what=what, before_retry=applied_anyway)

    async def find(
        self, token: str, *, since: float, spec: EmrCluster, reserved: Locator | None = None
    ) -> Locator | None:
        return await self._find(token, since=since, budget=None)

    async def _find(self, token: str, *, since: float, budget: float | None) -> Locator | None:
        needle = f"[{token}]"
        cutoff = since - FIND_CLOCK_SKEW
        clusters = await self.pages(
            "list_clusters",
            {"CreatedAfter": datetime.fromtimestamp(cutoff, tz=timezone.utc)},
            what="list EMR clusters",
            items="Clusters",
            marker_in="Marker",
            budget=budget,
        )
        mine = [c for c in clusters if needle in str(c.get("Name", ""))]
        if not mine:
            return None
        if len(mine) > 1:
            log.warning("%d clusters carry token %s; adopting the oldest", len(mine), token)
        first = min(mine, key=_created)
        return {"cluster_id": validate_cluster_id(first.get("Id"))}

    async def status(self, locator: Locator) -> JobStatus:
        loc = self.validate_locator(locator)
        what = f"describe {self.describe(loc)}"
        url = self.cluster_url(loc["cluster_id"])
        try:
            resp = await self.call("describe_cluster", what=what, ClusterId=loc["cluster_id"])
        except AwsRequestError as exc:
            if not _unknown_id(exc):
                raise
            return JobStatus(JobState.LOST, raw_state="not valid", message=str(exc), tracking_url=url)
        cluster = resp.get("Cluster") or {}
        st = cluster.get("Status") or {}
        raw = str(st.get("State", ""))
        reason = st.get("StateChangeReason") or {}
        code = str(reason.get("Code") or "")
        if raw == "TERMINATED":
            state = {"ALL_STEPS_COMPLETED": JobState.SUCCEEDED, "USER_REQUEST": JobState.CANCELLED}.get(
                code, JobState.FAILED
            )
        else:
            state = state_of(CLUSTER_STATES, raw)
        parts = [f"{code}: {reason['Message']}" if code and reason.get("Message") else str(reason.get("Message") or "")]
        parts += [str(e.get("ErrorMessage")) for e in st.get("ErrorDetails") or () if e.get("ErrorMessage")]
        extra = {"log_uri": str(cluster["LogUri"])} if cluster.get("LogUri") else {}
        if cluster.get("MasterPublicDnsName"):
            extra["master_public_dns_name"] = str(cluster["MasterPublicDnsName"])
        return JobStatus(state, raw_state=raw, message="; ".join(p for p in parts if p), tracking_url=url, extra=extra)

    async def cancel(self, locator: Locator) -> None:
        await self.terminate_cluster(self.validate_locator(locator)["cluster_id"])

    async def links(self, locator: Locator) -> dict[str, str]:
        return await self._cluster_links(self.validate_locator(locator)["cluster_id"])


__all__ = [
    "CLUSTER_SYSTEM",
    "STEP_SYSTEM",
    "EmrCluster",
    "EmrClusterClient",
    "EmrStep",
    "EmrStepClient",
    "named",
    "validate_cluster_id",
    "validate_step_id",
]
