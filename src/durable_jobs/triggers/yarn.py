"""Trigger for YARN applications, whichever way they were submitted (RM REST or spark-submit).

Both operators record ``{"application_id", "tag"}`` and track it through the RM REST API, so one trigger
serves them: the generic trigger with the YARN hook. Its ``on_kill`` kills the application
(``PUT .../state {"state": "KILLED"}``) unless a newer try has re-attached to it.
"""

from __future__ import annotations

from typing import ClassVar

from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.yarn import YarnHook
from durable_jobs.triggers.base import DurableJobTrigger


class YarnTrigger(DurableJobTrigger):
    """Waits for a YARN application (``job={"application_id": ..., "tag": ...}``)."""

    hook_class: ClassVar[type[DurableJobHook]] = YarnHook
