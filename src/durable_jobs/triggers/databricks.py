"""Trigger for Databricks runs, whichever operator started them (``runs/submit`` or ``run-now``).

Both record ``{"run_id": <int>}``, so one trigger serves them: the generic trigger with the Databricks hook.
Its kwargs carry the ``conn_id``, never the PAT or the OAuth secret. Its ``on_kill`` cancels the run
(``runs/cancel``) unless a newer try has re-attached to it.
"""

from __future__ import annotations

from typing import ClassVar

from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.databricks import DatabricksHook
from durable_jobs.triggers.base import DurableJobTrigger


class DatabricksTrigger(DurableJobTrigger):
    """Waits for a Databricks run (``job={"run_id": ...}``)."""

    hook_class: ClassVar[type[DurableJobHook]] = DatabricksHook
