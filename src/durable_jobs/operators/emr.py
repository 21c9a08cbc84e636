"""Durable EMR operators: a step on a cluster, a cluster, an EMR Serverless run, an EMR on EKS run; and terminate.

Each is a :class:`~durable_jobs.operators.base.DurableJobOperator` (deferrable by default): the step or
run is started once with the protocol's token, recorded before the task defers, and adopted by token
after a crash. Credentials come from the Airflow ``aws`` connection (``conn_id``, default ``aws_default``).

The classic pattern, create cluster -> add step -> terminate::

    create = EmrCreateClusterOperator(task_id="create_cluster", job_flow_overrides={...})
    step = EmrStepOperator(task_id="step", cluster_id=create.output["cluster_id"], args=["spark-submit", ...])
    terminate = EmrTerminateClusterOperator(
        task_id="terminate",
        cluster_id=EmrCreateClusterOperator.cluster_id_template("create_cluster"),
        trigger_rule="all_done",
    )
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from durable_jobs.clients.emr import EmrCluster, EmrClusterClient, EmrStep, validate_cluster_id
from durable_jobs.clients.emr.eks import EmrEksJob
from durable_jobs.clients.emr.serverless import EmrServerlessJob
from durable_jobs.errors import DurableJobError, PermanentError, RecordError
from durable_jobs.hooks.emr import DurableAwsHook, EmrClusterHook
from durable_jobs.links import system_links
from durable_jobs.operators.base import DurableJobOperator
from durable_jobs.polling import wait_for_outcome
from durable_jobs.record import JobRecord
from durable_jobs.systems.emr import SYSTEM
from durable_jobs.transport.http import close_sessions
from durable_jobs.triggers.base import DurableJobTrigger
from durable_jobs.triggers.emr import EmrClusterTrigger, EmrEksTrigger, EmrServerlessTrigger, EmrStepTrigger
from durable_jobs.watch import PollSettings

AWS_DEFAULT = DurableAwsHook.default_conn_name


class EmrStepOperator(DurableJobOperator):
    """Run one step on an existing EMR cluster, added once (its name carries the token) and adopted after a crash.

    :param cluster_id: the cluster (``j-...``); templated, or ``create.output["cluster_id"]``.
    :param args: the step's arguments; with the default ``command-runner.jar`` e.g.
        ``["spark-submit", "--deploy-mode", "cluster", "s3://bucket/app.py"]``.
    :param name: step name (default: the task id); `` [<token>]`` is appended.
    :param jar: the step's jar (default ``command-runner.jar``); ``main_class`` and ``properties`` go with it.
    :param action_on_failure: ``CONTINUE`` (default), ``CANCEL_AND_WAIT``, ``TERMINATE_CLUSTER``.
    :param execution_role_arn: runtime role of the step (clusters with runtime roles enabled).
    """

    trigger_class: ClassVar[type[DurableJobTrigger]] = EmrStepTrigger
    operator_extra_links = system_links(SYSTEM)
    template_fields: Sequence[str] = (
        "conn_id",
        "cluster_id",
        "name",
        "args",
        "jar",
        "main_class",
        "properties",
        "execution_role_arn",
    )

    def __init__(
        self,
        *,
        cluster_id: Any,
        args: Sequence[Any] = (),
        name: str | None = None,
        jar: str = "command-runner.jar",
        main_class: str | None = None,
        properties: Mapping[str, Any] | None = None,
        action_on_failure: str = "CONTINUE",
        execution_role_arn: str | None = None,
        conn_id: str = AWS_DEFAULT,
        **kwargs: Any,
    ) -> None:
        super().__init__(conn_id=conn_id, **kwargs)
        self.cluster_id = cluster_id
        self.args = args
        self.name = name
        self.jar = jar
        self.main_class = main_class
        self.properties = dict(properties or {})
        self.action_on_failure = action_on_failure
        self.execution_role_arn = execution_role_arn

    def build_spec(self, context: Any, record: JobRecord | None = None) -> EmrStep:
        if isinstance(self.args, str):
            raise ValueError("args must be a list of arguments, not one string")
        return EmrStep(
            cluster_id=str(self.cluster_id).strip(),
            name=self.name or self.task_id,
            args=[str(a) for a in self.args],
            jar=self.jar,
            main_class=self.main_class or None,
            properties={str(k): str(v) for k, v in self.properties.items()},
            action_on_failure=self.action_on_failure,
            execution_role_arn=self.execution_role_arn or None,
        )


class EmrCreateClusterOperator(DurableJobOperator):
    """Create an EMR cluster once (``RunJobFlow``; name and a tag carry the token) and wait until it is ready.

    Succeeds when the cluster is ``WAITING`` or ``RUNNING``; fails when it terminates first (with the
    reason). Its return value has ``cluster_id``. A retry after a failed cluster creates a new one; a
    deadline (``job_timeout``) terminates the cluster.

    :param job_flow_overrides: ``RunJobFlow`` arguments except ``Name`` (``ReleaseLabel``, ``Instances``,
        ``Applications``, ``JobFlowRole``, ``ServiceRole``, ``LogUri``, ``Tags``...).
        ``Instances.KeepJobFlowAliveWhenNoSteps`` defaults to True.
    :param name: cluster name (default: the task id); `` [<token>]`` is appended.
    :param poll_interval: seconds between status polls: 60 by default here (30 for the other operators), as a
        cluster takes minutes to start.
    """

    trigger_class: ClassVar[type[DurableJobTrigger]] = EmrClusterTrigger
    operator_extra_links = system_links(SYSTEM)
    template_fields: Sequence[str] = ("conn_id", "name", "job_flow_overrides")
    template_fields_renderers: ClassVar[dict[str, str]] = {"job_flow_overrides": "json"}

    def __init__(
        self,
        *,
        job_flow_overrides: Mapping[str, Any],
        name: str | None = None,
        conn_id: str = AWS_DEFAULT,
        poll_interval: float = 60.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(conn_id=conn_id, poll_interval=poll_interval, **kwargs)
        self.job_flow_overrides = job_flow_overrides
        self.name = name

    def build_spec(self, context: Any, record: JobRecord | None = None) -> EmrCluster:
        return EmrCluster(name=self.name or self.task_id, job_flow=dict(self.job_flow_overrides))

    def execute(self, context: Any) -> Any:
        return self._push_cluster_id(context, super().execute(context))

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return self._push_cluster_id(context, super().execute_complete(context, event, **kwargs))

    @staticmethod
    def _push_cluster_id(context: Any, result: Any) -> Any:
        # also under its own key, whichever try finished: create.output["cluster_id"] pulls that key
        if isinstance(result, dict) and result.get("cluster_id"):
            context["ti"].xcom_push(key="cluster_id", value=result["cluster_id"])
        return result

    def result(self, record: JobRecord) -> dict[str, Any]:
        assert record.job is not None
        return {**super().result(record), "cluster_id": record.job["cluster_id"]}

    @staticmethod
    def cluster_id_template(task_id: str) -> str:
        """A template for the cluster id of ``task_id``: the return value, else the id pushed before deferring.

        The second one survives a failed create task, so a terminate task with ``trigger_rule="all_done"``
        still finds the cluster to terminate.
        """
        return (
            f"{{{{ (ti.xcom_pull(task_ids='{task_id}') or {{}}).get('cluster_id') "
            f"or ti.xcom_pull(task_ids='{task_id}', key='cluster_id') or '' }}}}"
        )


class EmrTerminateClusterOperator(BaseOperator):  # type: ignore[misc]
    """Terminate an EMR cluster (``TerminateJobFlows``; idempotent). Meant for ``trigger_rule="all_done"``.

    An empty ``cluster_id`` (the create task never got one) is nothing to terminate. Not deferrable: it
    returns ``{"cluster_id", "state"}`` (``None`` when there was nothing to terminate) once AWS took the
    request, or, with ``wait_for_termination``, once the cluster is terminated.

    :param cluster_id: the cluster (``j-...``); templated, e.g.
        ``EmrCreateClusterOperator.cluster_id_template("create_cluster")``.
    :param conn_id: the ``aws`` connection (default ``aws_default``).
    :param wait_for_termination: poll on the worker until the cluster is terminated (default False).
    :param poll_interval: seconds between those polls (default 30).
    :param wait_timeout: seconds to wait for the termination (default 3600); an unreachable or throttled
        API until then is waited out, not a failure. Past it the task fails (and is retried).
    """

    template_fields: Sequence[str] = ("conn_id", "cluster_id")
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        cluster_id: Any,
        conn_id: str = AWS_DEFAULT,
        wait_for_termination: bool = False,
        poll_interval: float = 30.0,
        wait_timeout: float = 3600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cluster_id = cluster_id
        self.conn_id = conn_id
        self.wait_for_termination = wait_for_termination
        self.poll_interval = float(poll_interval)
        self.wait_timeout = float(wait_timeout)

    def execute(self, context: Any) -> dict[str, Any] | None:
        cluster_id = str(self.cluster_id or "").strip()
        if cluster_id in ("", "None"):
            self.log.info("No cluster id: nothing to terminate")
            return None
        try:
            cluster_id = validate_cluster_id(cluster_id)
        except RecordError as exc:
            raise AirflowFailException(str(exc)) from exc
        try:
            client = EmrClusterHook.get_client(self.conn_id)  # a connection set up wrong: permanent, no retry
            assert isinstance(client, EmrClusterClient)
            state = asyncio.run(self._terminate(client, cluster_id))
        except PermanentError as exc:
            raise AirflowFailException(str(exc)) from exc
        except DurableJobError as exc:
            raise AirflowException(str(exc)) from exc
        return {"cluster_id": cluster_id, "state": state}

    async def _terminate(self, client: EmrClusterClient, cluster_id: str) -> str:
        loc = {"cluster_id": cluster_id}
        try:
            self.log.info("Terminating EMR cluster %s", cluster_id)
            await client.terminate_cluster(cluster_id)
            if not self.wait_for_termination:
                status = await client.status(loc)
                self.log.info("EMR cluster %s is %s", cluster_id, status.raw_state)
                return status.raw_state
            # the one polling loop: a throttled or unreachable API is unknown until the deadline, not a failure
            settings = PollSettings(interval=self.poll_interval, unknown_budget=self.wait_timeout)
            result = await wait_for_outcome(
                client, loc, settings, deadline=time.time() + self.wait_timeout, logger=self.log
            )
            if result.status == "error":
                raise AirflowFailException(f"EMR cluster {cluster_id}: {result.message}")
            if result.last is None or not result.last.state.is_terminal:
                raise AirflowException(f"EMR cluster {cluster_id} is not terminated: {result.message}")
            return result.last.raw_state
        finally:
            await close_sessions()


class EmrServerlessJobOperator(DurableJobOperator):
    """Run a job on an EMR Serverless application, started once (``clientToken`` = the token) and adopted by token.

    :param application_id: the application.
    :param execution_role_arn: the job's runtime role.
    :param job_driver: e.g. ``{"sparkSubmit": {"entryPoint": "s3://.../app.py", "entryPointArguments": [...]}}``.
    :param configuration_overrides: e.g. S3 or CloudWatch monitoring (then the log links are pushed to XCom).
    :param name: run name (default: the task id); `` [<token>]`` is appended.
    :param tags: run tags; ``durable-jobs:token`` is added.
    :param execution_timeout_minutes: AWS's own limit for the run (the task's ``job_timeout`` cancels too).
    :param extra_request: further ``StartJobRun`` fields (``mode``, ``retryPolicy``...).
    """

    trigger_class: ClassVar[type[DurableJobTrigger]] = EmrServerlessTrigger
    operator_extra_links = system_links(SYSTEM)
    template_fields: Sequence[str] = (
        "conn_id",
        "application_id",
        "execution_role_arn",
        "job_driver",
        "configuration_overrides",
        "name",
        "tags",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"job_driver": "json", "configuration_overrides": "json"}

    def __init__(
        self,
        *,
        application_id: str,
        execution_role_arn: str,
        job_driver: Mapping[str, Any],
        configuration_overrides: Mapping[str, Any] | None = None,
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
        execution_timeout_minutes: int | None = None,
        extra_request: Mapping[str, Any] | None = None,
        conn_id: str = AWS_DEFAULT,
        **kwargs: Any,
    ) -> None:
        super().__init__(conn_id=conn_id, **kwargs)
        self.application_id = application_id
        self.execution_role_arn = execution_role_arn
        self.job_driver = job_driver
        self.configuration_overrides = configuration_overrides
        self.name = name
        self.tags = dict(tags or {})
        self.execution_timeout_minutes = execution_timeout_minutes
        self.extra_request = dict(extra_request or {})

    def build_spec(self, context: Any, record: JobRecord | None = None) -> EmrServerlessJob:
        return EmrServerlessJob(
            application_id=str(self.application_id).strip(),
            execution_role_arn=str(self.execution_role_arn).strip(),
            job_driver=dict(self.job_driver),
            configuration_overrides=dict(self.configuration_overrides) if self.configuration_overrides else None,
            name=self.name or self.task_id,
            tags=self.tags,
            execution_timeout_minutes=self.execution_timeout_minutes,
            extra=self.extra_request,
        )


class EmrEksJobOperator(DurableJobOperator):
    """Run a job on an EMR on EKS virtual cluster, started once (``clientToken`` = the token) and adopted by token.

    :param virtual_cluster_id: the virtual cluster.
    :param execution_role_arn: the job's execution role (optional with a job template).
    :param release_label: e.g. ``emr-7.1.0-latest`` (optional with a job template).
    :param job_driver: e.g. ``{"sparkSubmitJobDriver": {"entryPoint": "s3://.../app.py"}}``.
    :param configuration_overrides: e.g. S3 or CloudWatch monitoring.
    :param name: run name (default: the task id); ``-<token>`` is appended (64 characters in all).
    :param tags: run tags; ``durable-jobs:token`` is added.
    :param extra_request: further ``StartJobRun`` fields (``jobTemplateId``, ``jobTemplateParameters``,
        ``retryPolicyConfiguration``).
    """

    trigger_class: ClassVar[type[DurableJobTrigger]] = EmrEksTrigger
    operator_extra_links = system_links(SYSTEM)
    template_fields: Sequence[str] = (
        "conn_id",
        "virtual_cluster_id",
        "execution_role_arn",
        "release_label",
        "job_driver",
        "configuration_overrides",
        "name",
        "tags",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"job_driver": "json", "configuration_overrides": "json"}

    def __init__(
        self,
        *,
        virtual_cluster_id: str,
        execution_role_arn: str | None = None,
        release_label: str | None = None,
        job_driver: Mapping[str, Any] | None = None,
        configuration_overrides: Mapping[str, Any] | None = None,
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
        extra_request: Mapping[str, Any] | None = None,
        conn_id: str = AWS_DEFAULT,
        **kwargs: Any,
    ) -> None:
        super().__init__(conn_id=conn_id, **kwargs)
        self.virtual_cluster_id = virtual_cluster_id
        self.execution_role_arn = execution_role_arn
        self.release_label = release_label
        self.job_driver = job_driver
        self.configuration_overrides = configuration_overrides
        self.name = name
        self.tags = dict(tags or {})
        self.extra_request = dict(extra_request or {})

    def build_spec(self, context: Any, record: JobRecord | None = None) -> EmrEksJob:
        return EmrEksJob(
            virtual_cluster_id=str(self.virtual_cluster_id).strip(),
            name=self.name or self.task_id,
            execution_role_arn=self.execution_role_arn or None,
            release_label=self.release_label or None,
            job_driver=dict(self.job_driver) if self.job_driver else None,
            configuration_overrides=dict(self.configuration_overrides) if self.configuration_overrides else None,
            tags=self.tags,
            extra=self.extra_request,
        )


__all__ = [
    "EmrCreateClusterOperator",
    "EmrEksJobOperator",
    "EmrServerlessJobOperator",
    "EmrStepOperator",
    "EmrTerminateClusterOperator",
]
