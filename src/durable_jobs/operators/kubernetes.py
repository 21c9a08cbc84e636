"""Run a Kubernetes Job, Pod or SparkApplication once per task and generation, deferrable by default.

The object's name is ``<name or task_id>-<token>``, so a retry after a crash finds what the crashed try
created (one GET) and a create that races one answers 409 and is adopted: never two objects for one try.
Before deferring, ``kind``, ``namespace``, ``name`` and ``uid`` go to XCom. A failure's message carries the
failed pod's reason (OOMKilled, Evicted, exit code...) and its last log lines. Killing the task (mark
failed/success) deletes the object with the connection's ``delete_propagation_policy``.

Objects carry the labels ``durable-jobs.io/managed``, ``token``, ``dag-id``, ``task-id``, ``run-id``,
``map-index`` and ``generation`` (sanitized to label rules, hashed when too long) and the exact values as
annotations. A Job removed by ``ttlSecondsAfterFinished`` before a try read its outcome is judged by what the
cluster still remembers (its Events for about an hour, its pods): success or failure when they say so, otherwise
lost, which by default (``on_lost="fail"``) fails the task without running the Job again. Prefer a TTL of a day.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from durable_jobs.clients.kubernetes import KubeObject, identity_metadata, to_wire
from durable_jobs.hooks.kubernetes import KubernetesHook
from durable_jobs.links import system_links
from durable_jobs.operators.base import DurableJobOperator
from durable_jobs.record import JobRecord, TaskIdentity
from durable_jobs.systems.kubernetes import SYSTEM
from durable_jobs.triggers.base import DurableJobTrigger
from durable_jobs.triggers.kubernetes import KubernetesTrigger


def _container(
    name: str, image: str, cmds: Sequence[str] | None, arguments: Sequence[Any] | None, env: Mapping[str, Any] | None
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": image}
    if cmds:
        container["command"] = [str(c) for c in cmds]
    if arguments:
        container["args"] = [str(a) for a in arguments]
    if env:
        container["env"] = [{"name": str(k), "value": str(v)} for k, v in env.items()]
    return container


class KubernetesObjectOperator(DurableJobOperator):
    """Base of the Kubernetes operators: a subclass says which kind it creates and builds the manifest.

    :param namespace: where to create it (default: the connection's namespace).
    :param name: prefix of the object's name (default: the task id); the token is appended.
    :param labels: extra labels (the task's identity labels are added).
    :param annotations: extra annotations.
    """

    kind: ClassVar[str]
    trigger_class: ClassVar[type[DurableJobTrigger]] = KubernetesTrigger
    operator_extra_links = system_links(SYSTEM)
    template_fields: Sequence[str] = ("conn_id", "namespace", "name", "labels", "annotations")

    def __init__(
        self,
        *,
        namespace: str | None = None,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        conn_id: str = KubernetesHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(conn_id=conn_id, **kwargs)
        self.namespace = namespace
        self.name = name
        self.labels = dict(labels or {})
        self.annotations = dict(annotations or {})

    @abstractmethod
    def build_manifest(self, context: Any) -> Any:
        """The object (dict or kubernetes model), with or without apiVersion/kind, or only its spec."""

    def build_spec(self, context: Any, record: JobRecord | None = None) -> KubeObject:
        manifest = to_wire(self.build_manifest(context))
        if not isinstance(manifest, dict):
            raise ValueError(f"{type(self).__name__}: the manifest must be a mapping or a kubernetes model")
        if "spec" not in manifest:
            manifest = {"spec": manifest}  # only the spec was given
        labels, annotations = dict(self.labels), dict(self.annotations)
        if context is not None:
            who = TaskIdentity.from_context(context)
            own_labels, own_annotations = identity_metadata(
                dag_id=who.dag_id,
                task_id=who.task_id,
                run_id=who.run_id,
                map_index=who.map_index,
                generation=None if record is None else record.generation,
            )
            labels.update(own_labels)
            annotations.update(own_annotations)
        return KubeObject(
            kind=self.kind,
            manifest=manifest,
            namespace=self.namespace,
            name=self.name or self.task_id,
            labels=labels,
            annotations=annotations,
        )


class KubernetesJobOperator(KubernetesObjectOperator):
    """Run a batch/v1 Job.

    :param job: the Job (dict or ``V1Job``), or only its spec; without ``metadata.name``. Or, instead:
    :param image: the container image, run as a Job with one container (``restartPolicy: Never``).
    :param cmds: the container's command.
    :param arguments: the container's arguments.
    :param env_vars: the container's environment.
    :param container_name: the container's name (default ``main``).
    :param backoff_limit: pod retries inside the Job (Kubernetes' default is 6).
    :param active_deadline_seconds: the Job's own deadline (reported as ``DeadlineExceeded``).
    """

    kind: ClassVar[str] = "Job"
    template_fields: Sequence[str] = (
        *KubernetesObjectOperator.template_fields,
        "job",
        "image",
        "cmds",
        "arguments",
        "env_vars",
    )

    def __init__(
        self,
        *,
        job: Any = None,
        image: str | None = None,
        cmds: Sequence[str] | None = None,
        arguments: Sequence[Any] | None = None,
        env_vars: Mapping[str, Any] | None = None,
        container_name: str = "main",
        backoff_limit: int | None = None,
        active_deadline_seconds: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (job is None) == (image is None):
            raise ValueError("give either job= (a Job manifest, its spec, or a V1Job) or image=")
        self.job = job
        self.image = image
        self.cmds = list(cmds) if cmds else None
        self.arguments = list(arguments) if arguments else None
        self.env_vars = dict(env_vars) if env_vars else None
        self.container_name = container_name
        self.backoff_limit = backoff_limit
        self.active_deadline_seconds = active_deadline_seconds

    def build_manifest(self, context: Any) -> Any:
        if self.job is not None:
            return self.job
        assert self.image is not None
        spec: dict[str, Any] = {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        _container(self.container_name, self.image, self.cmds, self.arguments, self.env_vars)
                    ],
                }
            }
        }
        if self.backoff_limit is not None:
            spec["backoffLimit"] = int(self.backoff_limit)
        if self.active_deadline_seconds is not None:
            spec["activeDeadlineSeconds"] = int(self.active_deadline_seconds)
        return {"spec": spec}


class KubernetesPodOperator(KubernetesObjectOperator):
    """Run a bare Pod (``restartPolicy: Never``: the task's retries, not the kubelet, run it again).

    :param pod: the Pod (dict or ``V1Pod``), or only its spec; without ``metadata.name``. Or, instead:
    :param image: the container image of a one-container pod.
    :param cmds: the container's command.
    :param arguments: the container's arguments.
    :param env_vars: the container's environment.
    :param container_name: the container's name (default ``main``).
    """

    kind: ClassVar[str] = "Pod"
    template_fields: Sequence[str] = (
        *KubernetesObjectOperator.template_fields,
        "pod",
        "image",
        "cmds",
        "arguments",
        "env_vars",
    )

    def __init__(
        self,
        *,
        pod: Any = None,
        image: str | None = None,
        cmds: Sequence[str] | None = None,
        arguments: Sequence[Any] | None = None,
        env_vars: Mapping[str, Any] | None = None,
        container_name: str = "main",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (pod is None) == (image is None):
            raise ValueError("give either pod= (a Pod manifest, its spec, or a V1Pod) or image=")
        self.pod = pod
        self.image = image
        self.cmds = list(cmds) if cmds else None
        self.arguments = list(arguments) if arguments else None
        self.env_vars = dict(env_vars) if env_vars else None
        self.container_name = container_name

    def build_manifest(self, context: Any) -> Any:
        if self.pod is not None:
            return self.pod
        assert self.image is not None
        container = _container(self.container_name, self.image, self.cmds, self.arguments, self.env_vars)
        return {"spec": {"restartPolicy": "Never", "containers": [container]}}


class SparkApplicationOperator(KubernetesObjectOperator):
    """Run a SparkApplication (``sparkoperator.k8s.io/v1beta2``) through the spark-operator.

    The application is watched as a whole (``status.applicationState``), so a crash between creating it and
    its driver pod starting cannot duplicate it, and cancelling deletes the application (the operator then
    removes its pods), not only the driver pod.

    :param application: the SparkApplication (dict), or only its spec; without ``metadata.name``.
    """

    kind: ClassVar[str] = "SparkApplication"
    template_fields: Sequence[str] = (*KubernetesObjectOperator.template_fields, "application")

    def __init__(self, *, application: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.application = application

    def build_manifest(self, context: Any) -> Any:
        return self.application
