"""Triggers for EMR steps, clusters, EMR Serverless and EMR on EKS runs: the generic trigger with each EMR hook.

Their kwargs carry the locator and the ``aws`` connection id; the credentials are read from the
connection inside the triggerer. Every trigger of a connection shares one aiobotocore client and one
poller, which lists each cluster's steps (or each application's runs) once per interval for all of them.
"""

from __future__ import annotations

from typing import ClassVar

from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.emr import EmrClusterHook, EmrEksHook, EmrServerlessHook, EmrStepHook
from durable_jobs.triggers.base import DurableJobTrigger


class EmrStepTrigger(DurableJobTrigger):
    """Waits for an EMR step (``job={"cluster_id": ..., "step_id": ...}``)."""

    hook_class: ClassVar[type[DurableJobHook]] = EmrStepHook


class EmrClusterTrigger(DurableJobTrigger):
    """Waits until an EMR cluster is ready, or ends (``job={"cluster_id": ...}``)."""

    hook_class: ClassVar[type[DurableJobHook]] = EmrClusterHook


class EmrServerlessTrigger(DurableJobTrigger):
    """Waits for an EMR Serverless job run (``job={"application_id": ..., "job_run_id": ...}``)."""

    hook_class: ClassVar[type[DurableJobHook]] = EmrServerlessHook


class EmrEksTrigger(DurableJobTrigger):
    """Waits for an EMR on EKS job run (``job={"virtual_cluster_id": ..., "job_run_id": ...}``)."""

    hook_class: ClassVar[type[DurableJobHook]] = EmrEksHook


__all__ = ["EmrClusterTrigger", "EmrEksTrigger", "EmrServerlessTrigger", "EmrStepTrigger"]
