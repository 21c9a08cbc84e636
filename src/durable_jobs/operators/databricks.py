"""Run Databricks jobs, each started once: a one-time run (``runs/submit``) or a run of a job (``run-now``).

Both operators take the databricks provider's arguments (``json`` merged with the named ones, the named
ones winning; ``databricks_conn_id``, ``polling_period_seconds``), so a DAG moves over by renaming its
imports (``docs/databricks.md`` has the table). What differs:

* deferrable by default, with the run recorded in the task state store before the task defers;
* ``idempotency_token`` is refused: the client sends the protocol's token, one per generation, as
  ``idempotency_token`` (and, for a one-time run, at the end of ``run_name``), so a retry after a crash
  gets the crashed try's run back and a retry after a failed run starts a new one;
* ``databricks_retry_limit``/``_delay``/``_args`` and ``wait_for_termination=False`` are accepted and
  ignored with a warning: requests are retried under the library's one policy, and the task always waits
  for its run;
* ``run_name`` defaults to ``airflow-durable-<dag_id>.<task_id>``.

Both defer to :class:`~durable_jobs.triggers.databricks.DatabricksTrigger`. They push ``run_id`` and
``run_page_url`` to XCom before deferring (the provider's keys) and return them with the protocol's result.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from durable_jobs.clients.databricks import RunNowSpec, SubmitRunSpec
from durable_jobs.hooks.databricks import DatabricksHook
from durable_jobs.links import system_links
from durable_jobs.operators.base import DurableJobOperator
from durable_jobs.operators.databricks_payload import (
    TOKEN_REFUSED,
    BodyCheck,
    check_run_now,
    check_submit,
    merged,
    rendered_body,
)
from durable_jobs.record import JobRecord
from durable_jobs.systems.databricks import SYSTEM
from durable_jobs.triggers.base import DurableJobTrigger
from durable_jobs.triggers.databricks import DatabricksTrigger

DEFAULT_CONN_ID = DatabricksHook.default_conn_name
RUN_NAME_PREFIX = "airflow-durable-"


def default_run_name(dag_id: str, task_id: str) -> str:
    return f"{RUN_NAME_PREFIX}{dag_id}.{task_id}"


def _conn_id(databricks_conn_id: str | None, conn_id: str | None) -> str:
    if databricks_conn_id is not None and conn_id is not None and databricks_conn_id != conn_id:
        raise ValueError(f"databricks_conn_id {databricks_conn_id!r} and conn_id {conn_id!r} differ: give one")
    return databricks_conn_id or conn_id or DEFAULT_CONN_ID


class _DatabricksOperator(DurableJobOperator):
    """What both operators share: the provider's common arguments, the body, the result."""

    trigger_class: ClassVar[type[DurableJobTrigger]] = DatabricksTrigger
    operator_extra_links = system_links(SYSTEM)
    template_fields: Sequence[str] = ("conn_id", "json")
    template_ext: Sequence[str] = (".json-tpl",)
    template_fields_renderers: ClassVar[dict[str, str]] = {"json": "json"}

    def __init__(
        self,
        *,
        json: Any = None,
        named: Mapping[str, Any] | None = None,
        idempotency_token: str | None = None,
        databricks_conn_id: str | None = None,
        conn_id: str | None = None,
        polling_period_seconds: float | None = None,
        databricks_retry_limit: int | None = None,
        databricks_retry_delay: float | None = None,
        databricks_retry_args: Mapping[str, Any] | None = None,
        wait_for_termination: bool = True,
        **kwargs: Any,
    ) -> None:
        # checked before the task joins its DAG
        if idempotency_token is not None:
            raise ValueError(TOKEN_REFUSED)
        if polling_period_seconds is not None:
            if kwargs.get("poll_interval", polling_period_seconds) != polling_period_seconds:
                raise ValueError("polling_period_seconds and poll_interval differ: give one")
            kwargs["poll_interval"] = polling_period_seconds
        body = merged(json, named or {})
        if isinstance(body, Mapping):  # what can be checked before rendering, checked now
            self.check_body(BodyCheck(body, lenient=True, template_ext=self.template_ext))
        super().__init__(conn_id=_conn_id(databricks_conn_id, conn_id), **kwargs)
        self.json = body
        retry = {
            "databricks_retry_limit": databricks_retry_limit,
            "databricks_retry_delay": databricks_retry_delay,
            "databricks_retry_args": databricks_retry_args,
        }
        ignored = [name for name, value in retry.items() if value is not None]
        if ignored:
            warnings.warn(
                f"{self.task_id}: {', '.join(ignored)} ignored: durable_jobs retries every Databricks request "
                "under its own policy, and the trigger waits out an unreachable workspace (unknown_budget)",
                UserWarning,
                stacklevel=2,
            )
        if not wait_for_termination:
            warnings.warn(
                f"{self.task_id}: wait_for_termination=False ignored: a durable task waits for its run (deferred, "
                "without holding a worker slot); its result is the run's",
                UserWarning,
                stacklevel=2,
            )

    def check_body(self, check: BodyCheck) -> dict[str, Any]:
        """Check the body (raise ValueError); the normalised values to put in it."""
        raise NotImplementedError

    def _body(self) -> dict[str, Any]:
        body = rendered_body(self.json)
        body.update(self.check_body(BodyCheck(body, lenient=False)))
        return body

    def result(self, record: JobRecord) -> dict[str, Any]:
        """The protocol's result, with the run's id and page (the provider's XCom keys ``run_id``, ``run_page_url``)."""
        job = record.job or {}
        return {**super().result(record), "run_id": job.get("run_id"), "run_page_url": self._run_page_url(job)}

    def _run_page_url(self, job: Mapping[str, Any]) -> str | None:
        if not job:
            return None
        try:
            client = self.get_client()
            links = DatabricksHook.probe(lambda: client.links(dict(job)))
        except Exception:  # the run's result does not depend on its link
            self.log.warning("Could not read the run page URL of %s", dict(job), exc_info=True)
            return None
        url = links.get("run_page_url")
        return url if isinstance(url, str) else None


class DatabricksSubmitRunOperator(_DatabricksOperator):
    """Submit a one-time run (``runs/submit``), started once whatever crashes, and wait for it.

    The databricks provider's arguments: ``json`` (the request body; the named arguments are merged over
    its top-level keys), ``tasks``, or one of ``notebook_task``, ``spark_jar_task``, ``spark_python_task``,
    ``spark_submit_task``, ``pipeline_task``, ``dbt_task`` (with ``new_cluster`` or ``existing_cluster_id``,
    and ``libraries``), ``run_name`` (default ``airflow-durable-<dag_id>.<task_id>``; the token is appended),
    ``timeout_seconds`` (Databricks' own limit for the run), ``git_source``, ``access_control_list``,
    ``databricks_conn_id`` (default ``databricks_default``) and ``polling_period_seconds``.
    ``idempotency_token`` is refused (see the module). ``json`` and the connection id are templated; a
    ``json`` ending in ``.json-tpl`` is a template file holding the body.
    """

    def __init__(
        self,
        *,
        json: Any = None,
        tasks: Sequence[Any] | None = None,
        spark_jar_task: Mapping[str, Any] | None = None,
        notebook_task: Mapping[str, Any] | None = None,
        spark_python_task: Mapping[str, Any] | None = None,
        spark_submit_task: Mapping[str, Any] | None = None,
        pipeline_task: Mapping[str, Any] | None = None,
        dbt_task: Mapping[str, Any] | None = None,
        new_cluster: Mapping[str, Any] | None = None,
        existing_cluster_id: str | None = None,
        libraries: Sequence[Mapping[str, Any]] | None = None,
        run_name: str | None = None,
        timeout_seconds: int | None = None,
        access_control_list: Sequence[Mapping[str, Any]] | None = None,
        git_source: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        named = {
            "tasks": tasks,
            "spark_jar_task": spark_jar_task,
            "notebook_task": notebook_task,
            "spark_python_task": spark_python_task,
            "spark_submit_task": spark_submit_task,
            "pipeline_task": pipeline_task,
            "dbt_task": dbt_task,
            "new_cluster": new_cluster,
            "existing_cluster_id": existing_cluster_id,
            "libraries": libraries,
            "run_name": run_name,
            "timeout_seconds": timeout_seconds,
            "access_control_list": access_control_list,
            "git_source": git_source,
        }
        super().__init__(json=json, named=named, **kwargs)

    def check_body(self, check: BodyCheck) -> dict[str, Any]:
        return check_submit(check)

    def build_spec(self, context: Any, record: JobRecord | None = None) -> SubmitRunSpec:
        body = self._body()
        if not body.get("run_name"):
            dag_id = context["ti"].dag_id if context is not None else self.dag_id
            body["run_name"] = default_run_name(dag_id, self.task_id)
        return SubmitRunSpec(body)


class DatabricksRunNowOperator(_DatabricksOperator):
    """Run an existing job (``run-now``), started once whatever crashes, and wait for the run.

    The databricks provider's arguments: ``job_id`` or ``job_name`` (its exact name, looked up when the task
    runs; one job must have it), ``job_parameters``, or the task parameters ``notebook_params``,
    ``python_params``, ``python_named_params``, ``jar_params``, ``spark_submit_params``, ``sql_params``,
    ``dbt_commands``; ``json`` (the request body; the named arguments are merged over its top-level keys),
    ``databricks_conn_id`` (default ``databricks_default``) and ``polling_period_seconds``.
    ``idempotency_token`` is refused (see the module), and so are ``repair_run`` and
    ``cancel_previous_runs``. ``json`` and the connection id are templated.
    """

    def __init__(
        self,
        *,
        job_id: int | str | None = None,
        job_name: str | None = None,
        job_parameters: Mapping[str, Any] | None = None,
        json: Any = None,
        dbt_commands: Sequence[str] | None = None,
        notebook_params: Mapping[str, Any] | None = None,
        python_params: Sequence[Any] | None = None,
        jar_params: Sequence[Any] | None = None,
        spark_submit_params: Sequence[Any] | None = None,
        python_named_params: Mapping[str, Any] | None = None,
        sql_params: Mapping[str, Any] | None = None,
        repair_run: bool = False,
        databricks_repair_reason_new_settings: Mapping[str, Any] | None = None,
        cancel_previous_runs: bool = False,
        **kwargs: Any,
    ) -> None:
        if repair_run or databricks_repair_reason_new_settings:
            raise ValueError(
                "repair_run is not supported: a failed run fails the try, and the task's next try (retries) "
                "starts a new run of the job, once"
            )
        if cancel_previous_runs:
            raise ValueError(
                "cancel_previous_runs is not supported: it would cancel the run a crashed try started, which "
                "the next try adopts"
            )
        named = {
            "job_id": job_id,
            "job_name": job_name,
            "job_parameters": job_parameters,
            "dbt_commands": dbt_commands,
            "notebook_params": notebook_params,
            "python_params": python_params,
            "jar_params": jar_params,
            "spark_submit_params": spark_submit_params,
            "python_named_params": python_named_params,
            "sql_params": sql_params,
        }
        super().__init__(json=json, named=named, **kwargs)

    def check_body(self, check: BodyCheck) -> dict[str, Any]:
        return check_run_now(check)

    def build_spec(self, context: Any, record: JobRecord | None = None) -> RunNowSpec:
        body = self._body()
        job_name = body.pop("job_name", None)
        return RunNowSpec(body, job_name=job_name)


__all__ = ["DatabricksRunNowOperator", "DatabricksSubmitRunOperator", "default_run_name"]
