"""Reading the states of EMR steps: one step, or every watched step of a cluster in one batched poll.

The shared poller hands every watched step of a connection to :meth:`StepReader.statuses`, which makes
per cluster one ``ListSteps`` with a ``StepIds`` filter when at most 10 steps are watched (the API's
limit), and otherwise lists the cluster's *active* steps (``PENDING``, ``CANCEL_PENDING``, ``RUNNING``:
one request per page of 50; EMR documents a limit of 256 steps per cluster). Watched steps it did not
see have just ended: many of them are found on the newest pages of ended steps (a bounded look), the
rest by id, 10 per request. The request rate grows with clusters and pages, not with triggers. Each page
is dropped once read, and steps alike (the running ones) share one status object. A cluster whose
listing fails makes its steps unknown, asked one by one within the poll's bound; other clusters are
untouched.

States: ``PENDING`` -> pending; ``RUNNING`` and ``CANCEL_PENDING`` -> running; ``COMPLETED`` -> succeeded;
``FAILED`` and ``INTERRUPTED`` -> failed; ``CANCELLED`` -> cancelled; anything else -> unknown.
``FailureDetails`` (reason, message, log file) become the message.

Lost is proven by two sources: a step is lost when ``DescribeStep`` answers EMR's not-found
(``InvalidRequestException: Step id 's-…' is not valid``, or the same for its cluster) **and** the cluster's
step history (``ListSteps`` by id, every state) does not list it; a step the history still lists has the
state listed there (a ``COMPLETED`` one succeeded). When the second source cannot be read, the job is
unknown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from durable_jobs.clients.base import Locator, locator_key
from durable_jobs.clients.emr.aws_decoding import decode_item, item_field, state_of, unknown_state
from durable_jobs.clients.emr.aws_errors import AwsRequestError, endpoint_wide
from durable_jobs.clients.emr.clusters import EmrClient
from durable_jobs.clients.emr.shapes import DescribeStepAnswer, StepStatusView, StepView
from durable_jobs.errors import DurableJobError, MalformedAnswer
from durable_jobs.status import JobState, JobStatus

STEP_IDS_PER_CALL = 10  # ListSteps' StepIds filter takes at most 10 ids
ACTIVE_STEP_STATES = ("PENDING", "CANCEL_PENDING", "RUNNING")
ENDED_STEP_STATES = ("COMPLETED", "CANCELLED", "FAILED", "INTERRUPTED")
LIST_PAGE_SIZE = 50  # ListSteps answers at most 50 steps per page

STEP_STATES = {
    "PENDING": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "CANCEL_PENDING": JobState.RUNNING,  # still running until EMR confirms the cancel
    "COMPLETED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
    "INTERRUPTED": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,
}


def step_status(step: StepView, url: str, alike: dict[tuple[str, str, str, str], JobStatus]) -> JobStatus:
    """The status of a listed or described step; one object per distinct (state, message, logs) in ``alike``."""
    st = step.status
    raw = st.state
    log_file = (st.failure_details.log_file if st.failure_details else None) or ""
    log_uri = step.log_uri or ""
    message = step_message(raw, st)
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


def step_message(raw: str, status: StepStatusView) -> str:
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


def lost_step(loc: Locator, url: str, why: str) -> JobStatus:
    return JobStatus(
        JobState.LOST,
        raw_state="not found",
        message=f"EMR does not know step {loc['step_id']} of cluster {loc['cluster_id']}: {why}",
        tracking_url=url,
    )


class StepReader(EmrClient):
    """What :class:`~durable_jobs.clients.emr.steps.EmrStepClient` reads: one step, or a poll of many."""

    async def _describe_step(self, loc: Locator) -> StepView:
        what = f"describe {self.describe(loc)}"
        resp = await self.call(
            "describe_step", what=what, schema=DescribeStepAnswer, ClusterId=loc["cluster_id"], StepId=loc["step_id"]
        )
        if resp.step.id != loc["step_id"]:
            raise MalformedAnswer(f"{what}: the answer is about step {resp.step.id!r}")
        return resp.step

    async def _history_says(self, loc: Locator, url: str, denied: str) -> JobStatus:
        """The second source, after ``DescribeStep`` denied the step: ``ListSteps`` by id (every state)."""
        found: dict[str, JobStatus] = {}
        try:
            complete = await self._by_ids(loc["cluster_id"], {loc["step_id"]: loc}, url, {}, found)
        except AwsRequestError as exc:
            if exc.denies(loc["cluster_id"]):
                return lost_step(loc, url, f"{denied}; ListSteps: {exc}")
            raise
        if loc["step_id"] in found:
            return found[loc["step_id"]]  # the history lists it (e.g. COMPLETED): that is what became of it
        if not complete:
            raise MalformedAnswer(f"{denied}, and the cluster's step list could not be read whole: cannot confirm")
        return lost_step(loc, url, f"{denied}; the cluster's step history does not list it either")

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
                    seen[sid] = JobStatus.unknown_from(exc)
                    continue
                seen[sid] = step_status(step, url, alike)
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
            ids = list(wanted)
            if len(wanted) > STEP_IDS_PER_CALL:  # at most 10: one request by id is the whole poll
                collect, _ = self._collector(cluster_id, wanted, url, alike, seen)
                ids = await self.list_watched(
                    lambda params, pages: self._list(cluster_id, params, collect, limit_pages=pages),
                    ids,
                    seen,
                    active={"StepStates": list(ACTIVE_STEP_STATES)},
                    ended=lambda _: {"StepStates": list(ENDED_STEP_STATES)},
                    page_size=LIST_PAGE_SIZE,
                    look_back_over=STEP_IDS_PER_CALL,
                )
            missing = {sid: wanted[sid] for sid in ids}
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
                        return lost_step(loc, url, f"the step history does not list it; DescribeStep: {exc}")
                    return JobStatus.unknown_from(exc)
                except DurableJobError as exc:
                    if endpoint_wide(exc):
                        raise
                    return JobStatus.unknown_from(exc)
                return step_status(step, url, alike)  # described but not listed: the listing lagged

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
            return {locator_key(loc): lost_step(loc, url, why) for loc in locators}
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


__all__ = ["STEP_STATES", "StepReader", "lost_step", "step_status"]
