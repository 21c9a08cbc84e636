"""Trigger for Spark standalone drivers: the generic trigger with the Spark REST hook.

Its classpath, ``durable_jobs.triggers.spark_standalone.SparkStandaloneTrigger``, is stored by Airflow in
the trigger table of every deferred task: it must keep importing (see :mod:`durable_jobs.triggers.base`).
"""

from __future__ import annotations

from typing import ClassVar

from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.spark_standalone import SparkStandaloneHook
from durable_jobs.triggers.base import DurableJobTrigger


class SparkStandaloneTrigger(DurableJobTrigger):
    """Waits for a Spark standalone driver (``job={"driver_id": ...}``)."""

    hook_class: ClassVar[type[DurableJobHook]] = SparkStandaloneHook
