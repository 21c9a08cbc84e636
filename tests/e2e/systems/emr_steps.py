"""EMR steps: the same moto server process as ``emr`` (its own instance), steps on one cluster living by the clock.

A step has no client token on AWS: its name (``"<name> [<token>]"``) is the only place for it, and ``ListSteps``
is how a retry finds it. Steps are counted from the server's own ``ListSteps`` and attributed by that name.
The cluster runs its steps side by side (as with a high ``StepConcurrencyLevel``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from durable_jobs_harness.moto_emr_server import MotoEmrProcess

from .emr import EmrSystem, after_crash

KIND = "EMR step"


class EmrStepsSystem(EmrSystem):
    name = "emr_steps"
    conn_id = "aws_e2e_steps"
    job_noun = KIND
    failure_detail = "ExitCode: 3."  # the step's FailureDetails
    service: ClassVar[str] = "emr"
    container_env: ClassVar[str] = "DURABLE_JOBS_E2E_EMR_CLUSTER"
    active_states: ClassVar[frozenset[str]] = frozenset({"PENDING", "RUNNING", "CANCEL_PENDING"})
    cancelled_states: ClassVar[frozenset[str]] = frozenset({"CANCEL_PENDING", "CANCELLED"})
    after_crash: ClassVar[dict[str, str]] = after_crash(KIND)

    def create_container(self, server: MotoEmrProcess) -> str:
        return server.create_cluster("durable-jobs-e2e", log_uri=None)

    def listed(self) -> Iterator[tuple[str, str, str]]:
        for page in self._boto.get_paginator("list_steps").paginate(ClusterId=self.container):
            for step in page.get("Steps") or ():
                yield str(step["Id"]), str(step.get("Name") or ""), str(step["Status"]["State"])


SYSTEM = EmrStepsSystem
