"""Trigger for Spark standalone drivers: the generic trigger with the Spark REST hook."""

from __future__ import annotations

from typing import ClassVar

from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.spark_standalone import SparkStandaloneHook
from durable_jobs.triggers.base import DurableJobTrigger


class SparkStandaloneTrigger(DurableJobTrigger):
    """Waits for a Spark standalone driver (``job={"driver_id": ...}``)."""

    hook_class: ClassVar[type[DurableJobHook]] = SparkStandaloneHook
