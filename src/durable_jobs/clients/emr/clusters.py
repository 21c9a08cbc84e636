"""EMR clusters as jobs (system ``emr-cluster``), and what steps and clusters share: the ``emr`` service.

``RunJobFlow`` takes no client token, so the token travels in the cluster's name (``"<name> [<token>]"``)
and in a ``durable-jobs:token`` tag. ``find`` lists the clusters created since
:data:`~durable_jobs.clients.emr.aws.FIND_WINDOW` before the intent (``ListClusters``) and adopts the one
carrying the token; it answers "none" only when every listed cluster could be read. A create that fails
transiently is looked up the same way before it is sent again.

States: a cluster job is *ready* (succeeded) when it is ``WAITING`` or ``RUNNING``; ``STARTING`` and
``BOOTSTRAPPING`` -> pending; ``TERMINATING`` -> running; ``TERMINATED`` -> succeeded after all steps
completed, cancelled on a user request, else failed; ``TERMINATED_WITH_ERRORS`` -> failed.

Lost is proven by two sources: ``DescribeCluster`` says its id is not valid and ``ListClusters`` (two
months of history) does not list it. When the second source cannot be read, the job is unknown.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, ClassVar

from durable_jobs.clients.base import Locator
from durable_jobs.clients.emr.aws import TOKEN_TAG, AwsJobClient, join_uri, named
from durable_jobs.clients.emr.aws_decoding import decode_item, epoch, item_field, state_of, unknown_state
from durable_jobs.clients.emr.aws_errors import AwsRequestError
from durable_jobs.clients.emr.shapes import (
    ClusterView,
    DescribeClusterAnswer,
    RunJobFlowAnswer,
    answered_id,
    validate_cluster_id,
)
from durable_jobs.errors import DurableJobError, MalformedAnswer, RecordError
from durable_jobs.status import JobState, JobStatus

log = logging.getLogger(__name__)

CLUSTER_SYSTEM = "emr-cluster"
#: pages of ListClusters read to confirm that a cluster is gone (50 clusters each)
CLUSTER_HISTORY_PAGES = 400

CLUSTER_STATES = {
    "STARTING": JobState.PENDING,
    "BOOTSTRAPPING": JobState.PENDING,
    "RUNNING": JobState.SUCCEEDED,  # ready: the job of a cluster operator is to get one
    "WAITING": JobState.SUCCEEDED,
    "TERMINATING": JobState.RUNNING,  # the final state (and its reason) is not known yet
    "TERMINATED_WITH_ERRORS": JobState.FAILED,
}


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


def cluster_status(cluster: ClusterView, url: str) -> JobStatus:
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


class EmrClient(AwsJobClient[Any]):
    """The ``emr`` service: what steps and clusters share (the cluster's page, describe, terminate, log links)."""

    service: ClassVar[str] = "emr"
    # a lost record is not looked up: steps carry no client token (a cluster's steps are listed newest first)
    # and clusters are listed region-wide, so a lookup costs pages that grow with everything run since
    find_unrecorded: ClassVar[bool] = False

    def cluster_url(self, cluster_id: str) -> str:
        return self.console_url("emr/home?region={region}#/clusterDetails/{cluster_id}", cluster_id=cluster_id)

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
        # a step's page is its cluster's (the console lists the steps there); emr_cluster_url: as in 0.1
        page = self.cluster_url(cluster_id)
        out = {"emr_console_url": page, "emr_cluster_url": page}
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


class EmrClusterClient(EmrClient):
    """EMR clusters as jobs: submit = ``RunJobFlow``, succeeded = ready (``WAITING``/``RUNNING``).

    Locator: ``{"cluster_id": "j-..."}``. Cancel terminates the cluster.
    """

    system: ClassVar[str] = CLUSTER_SYSTEM

    def validate_locator(self, locator: Mapping[str, Any]) -> Locator:
        if not isinstance(locator, Mapping) or set(locator) != {"cluster_id"}:
            raise RecordError(f"an EMR cluster locator has exactly one field, cluster_id; got {locator!r}")
        return {"cluster_id": validate_cluster_id(locator["cluster_id"])}

    def describe(self, locator: Locator) -> str:
        return f"EMR cluster {locator.get('cluster_id')}"

    async def submit(self, spec: EmrCluster, token: str, *, reserved: Locator | None = None) -> Locator:
        started = time.time()
        what = f"create EMR cluster {spec.name!r}"
        body = spec.request(token)

        async def run() -> Locator:
            resp = await self.call("run_job_flow", what=what, schema=RunJobFlowAnswer, **body)
            return {"cluster_id": answered_id(resp.job_flow_id, validate_cluster_id, what)}

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
                    cluster_id = answered_id(cluster.id, validate_cluster_id, what)
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
        return cluster_status(resp.cluster, url)

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
                    found.append(cluster_status(decode_item(item, ClusterView, what=what), url))
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


__all__ = ["CLUSTER_STATES", "CLUSTER_SYSTEM", "EmrClient", "EmrCluster", "EmrClusterClient", "cluster_status"]
