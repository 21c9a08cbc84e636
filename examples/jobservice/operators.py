"""The job service's operator: the job spec from its fields; submit-once, defer and re-attach are the base's."""

from __future__ import annotations

from typing import Any, ClassVar

from durable_jobs.links import XComLink
from durable_jobs.operators.base import DurableJobOperator
from durable_jobs.record import JobRecord
from durable_jobs.triggers.base import DurableJobTrigger

from .client import JobSpec
from .triggers import JobServiceTrigger


class JobServiceOperator(DurableJobOperator):
    """Run ``command`` on the job service, once per try of the task whatever crashes.

    :param command: what the job runs.
    :param seconds: how long it runs (None: until it is told to end).
    """

    trigger_class: ClassVar[type[DurableJobTrigger]] = JobServiceTrigger  # the hook is the trigger's
    operator_extra_links = (XComLink(name="Job service", key="job_url"),)  # a URL the client's links() pushes
    template_fields = ("conn_id", "command")

    def __init__(
        self, *, command: str, seconds: float | None = None, conn_id: str = "jobservice_default", **kwargs: Any
    ) -> None:
        super().__init__(conn_id=conn_id, **kwargs)
        self.command = command
        self.seconds = seconds

    def build_spec(self, context: Any, record: JobRecord | None = None) -> JobSpec:
        return JobSpec(command=self.command, seconds=self.seconds)
