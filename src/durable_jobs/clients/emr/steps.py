"""EMR steps on an existing cluster as jobs (system ``emr-step``): add, find by token, cancel, links.

``AddJobFlowSteps`` takes no client token, so the token travels in the step's name (``"<name> [<token>]"``).
``find`` lists the cluster's steps (``ListSteps``, newest first, stopping
:data:`~durable_jobs.clients.emr.aws.FIND_WINDOW` before the intent's time) and adopts the one carrying
the token; it answers "none" only when every listed step could be read. A submit that fails transiently
is looked up the same way before it is sent again, because a throttled ``AddJobFlowSteps`` may have been
applied (aws/aws-sdk-ruby#825). Reading states (one step, or the batched poll) is
:mod:`~durable_jobs.clients.emr.step_states`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from durable_jobs.clients.base import Locator
from durable_jobs.clients.emr.aws import named
from durable_jobs.clients.emr.aws_config import AwsConfig
from durable_jobs.clients.emr.aws_decoding import decode_item, epoch, item_field
from durable_jobs.clients.emr.aws_errors import AwsRequestError
from durable_jobs.clients.emr.shapes import (
    AddJobFlowStepsAnswer,
    CancelStepsAnswer,
    StepView,
    answered_id,
    raw_created,
    validate_cluster_id,
    validate_step_id,
)
from durable_jobs.clients.emr.step_states import StepReader, step_status
from durable_jobs.errors import MalformedAnswer, RecordError
from durable_jobs.status import JobStatus

log = logging.getLogger(__name__)

STEP_SYSTEM = "emr-step"
ACTIONS_ON_FAILURE = ("TERMINATE_JOB_FLOW", "TERMINATE_CLUSTER", "CANCEL_AND_WAIT", "CONTINUE")
CANCELLATION_OPTIONS = ("SEND_INTERRUPT", "TERMINATE_PROCESS")


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


class EmrStepClient(StepReader):
    """Steps on an existing EMR cluster. Locator: ``{"cluster_id": "j-...", "step_id": "s-..."}``."""

    system: ClassVar[str] = STEP_SYSTEM

    def __init__(self, config: AwsConfig, *, cancellation_option: str = "SEND_INTERRUPT", **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        if cancellation_option not in CANCELLATION_OPTIONS:
            raise ValueError(f"step cancellation option must be one of {', '.join(CANCELLATION_OPTIONS)}")
        self.cancellation_option = cancellation_option

    def validate_locator(self, locator: Mapping[str, Any]) -> Locator:
        if not isinstance(locator, Mapping) or set(locator) != {"cluster_id", "step_id"}:
            raise RecordError(f"an EMR step locator has exactly cluster_id and step_id; got {locator!r}")
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
            return {"cluster_id": spec.cluster_id, "step_id": answered_id(resp.step_ids[0], validate_step_id, what)}

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
                    step_id = answered_id(step.id, validate_step_id, what)
                except MalformedAnswer as exc:
                    doubtful = str(exc)
                    continue
                created = epoch(step.status.timeline.creation_date_time)
                if created and created < cutoff:
                    continue  # an older generation's namesake (e.g. a deleted and re-created DAG run)
                mine.append((created, step_id))
            last = raw_created(items[-1]) if items else None
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
        return step_status(step, url, {})

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


__all__ = ["STEP_SYSTEM", "EmrStep", "EmrStepClient"]
