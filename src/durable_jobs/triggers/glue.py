"""Trigger for AWS Glue job runs: the generic trigger with the Glue hook.

Its kwargs carry the locator (``{"job_name": ..., "run_id": "jr_..."}``) and the ``aws`` connection id;
the credentials are read from the connection inside the triggerer. Every trigger of a connection shares
one client and one poller, which lists each job's runs once per interval (``GetJobRuns``) for all of its
watched runs. Its ``on_kill`` stops the run (``BatchStopJobRun``) unless a newer try has re-attached to it.
"""

from __future__ import annotations

from typing import ClassVar

from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.glue import GlueHook
from durable_jobs.triggers.base import DurableJobTrigger


class GlueTrigger(DurableJobTrigger):
    """Waits for a Glue job run (``job={"job_name": ..., "run_id": ...}``)."""

    hook_class: ClassVar[type[DurableJobHook]] = GlueHook


__all__ = ["GlueTrigger"]
