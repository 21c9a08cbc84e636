"""Trigger for Kubernetes Jobs, Pods and SparkApplications: the generic trigger with the Kubernetes hook.

Every trigger of a connection shares one connection (one pooled HTTP session) and, through the shared poller,
one watch per namespace and kind; its kwargs hold the locator (kind, namespace, name, uid) and the ``conn_id``,
never a kubeconfig or a token. ``on_kill`` deletes the object (the connection's ``delete_propagation_policy``),
unless a newer try re-attached to it.
"""

from __future__ import annotations

from typing import ClassVar

from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.kubernetes import KubernetesHook
from durable_jobs.triggers.base import DurableJobTrigger


class KubernetesTrigger(DurableJobTrigger):
    """Waits for a Kubernetes object (``job={"kind", "namespace", "name", "uid"}``)."""

    hook_class: ClassVar[type[DurableJobHook]] = KubernetesHook
