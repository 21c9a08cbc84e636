"""Trigger for BigQuery jobs: the generic trigger with the BigQuery hook.

Every job is recorded as ``{"project", "location", "job_id"}``. The kwargs carry the ``conn_id``, never a
key or a token: the triggerer reads the connection itself. Its ``on_kill`` cancels the job (``jobs.cancel``)
unless a newer try has re-attached to it.
"""

from __future__ import annotations

from typing import ClassVar

from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.bigquery import BigQueryHook
from durable_jobs.triggers.base import DurableJobTrigger


class BigQueryTrigger(DurableJobTrigger):
    """Waits for a BigQuery job (``job={"project": ..., "location": ..., "job_id": ...}``)."""

    hook_class: ClassVar[type[DurableJobHook]] = BigQueryHook
