"""Run a BigQuery job (query, load, extract or copy), inserted once whatever crashes, and wait for it.

:class:`BigQueryJobOperator` takes the google provider's ``BigQueryInsertJobOperator`` arguments
(``configuration``, ``project_id``, ``location``, ``gcp_conn_id``, ``deferrable``, ``poll_interval``), so a
DAG moves over by renaming its imports (``docs/bigquery.md`` has the table). What differs:

* deferrable by default, with the job recorded in the task state store before the task defers;
* the job id is ``<job_id_prefix><token>``, one per generation of the task: a retry after a crash finds the
  crashed try's job by that id (``jobs.get``), a retry after a failed job inserts a new one. ``job_id`` and
  ``force_rerun`` are therefore refused, and so is ``impersonation_chain`` (the connection's credentials
  run the job); ``cancel_on_kill=False`` is refused (a killed task's job is cancelled);
* ``reattach_states``, ``result_retry`` and ``result_timeout`` are accepted and ignored with a warning;
* ``project_id`` must be the connection's project (the client inserts jobs there).

It defers to :class:`~durable_jobs.triggers.bigquery.BigQueryTrigger`. The job's ``project``, ``location``
and ``job_id`` go to XCom before it defers, with the console link; the result adds the job's
``destination_table``, ``total_bytes_processed`` and ``total_slot_ms``.
"""

from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from durable_jobs.clients.bigquery import BigQueryJobSpec
from durable_jobs.hooks.bigquery import BigQueryHook
from durable_jobs.links import system_links
from durable_jobs.messages import cut
from durable_jobs.operators.base import DurableJobOperator
from durable_jobs.operators.databricks_payload import rendered_body
from durable_jobs.operators.templated import is_templated
from durable_jobs.record import JobRecord
from durable_jobs.systems.bigquery import SYSTEM
from durable_jobs.triggers.base import DurableJobTrigger
from durable_jobs.triggers.bigquery import BigQueryTrigger

DEFAULT_CONN_ID = BigQueryHook.default_conn_name
DEFAULT_JOB_ID_PREFIX = "airflow_durable_"
#: the job types of a JobConfiguration: exactly one is given
JOB_TYPES = ("query", "load", "extract", "copy")
#: what the result adds, from the job's statistics (``client.result``)
RESULT_KEYS = ("destination_table", "total_bytes_processed", "total_slot_ms")
TOKEN_LABEL = "durable_jobs_token"
LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
MAX_LABELS = 64
JOB_ID_PREFIX = re.compile(r"[A-Za-z0-9_-]{0,200}")

JOB_ID_REFUSED = (
    "job_id is not taken: durable_jobs names the job <job_id_prefix><token>, one token per generation of the "
    "task, so that a retry after a crash finds the crashed try's job by its id and a retry after a failed job "
    "inserts a new one. A fixed id would hand the failed job back to every retry. Remove it (job_id_prefix sets "
    "the start of the id)"
)
FORCE_RERUN_REFUSED = (
    "force_rerun is not taken: durable_jobs decides it per try. A try after a crash re-attaches to the job the "
    "crashed try inserted (never a second job), a try after a failed job inserts a new one (force_rerun=True's "
    "effect), and a cleared task whose job succeeded returns its result unless rerun_on_clear=True. Remove it"
)
IMPERSONATION_REFUSED = (
    "impersonation_chain is not supported: the connection's credentials run the job. Give a connection with the "
    "impersonated service account's key, or run as it (Application Default Credentials)"
)
CANCEL_ON_KILL_REFUSED = (
    "cancel_on_kill=False is not supported: a killed task's job is cancelled (unless a newer try re-attached to "
    "it), so no job runs on that nobody waits for"
)


def _conn_id(gcp_conn_id: str | None, conn_id: str | None) -> str:
    if gcp_conn_id is not None and conn_id is not None and gcp_conn_id != conn_id:
        raise ValueError(f"gcp_conn_id {gcp_conn_id!r} and conn_id {conn_id!r} differ: give one")
    return gcp_conn_id or conn_id or DEFAULT_CONN_ID


def airflow_labels(dag_id: str, task_id: str) -> dict[str, str]:
    """``airflow-dag`` and ``airflow-task``, as the provider derives them; none when either is no label value."""
    labels = {"airflow-dag": dag_id.lower(), "airflow-task": task_id.lower().replace(".", "-")}
    return labels if all(LABEL_VALUE.fullmatch(value) for value in labels.values()) else {}


def check_labels(labels: Any, *, lenient: bool) -> dict[str, str]:
    """The labels, checked against BigQuery's rules (and the reserved token label); the checkable ones."""
    if labels is None or (lenient and is_templated(labels)):
        return {}
    if not isinstance(labels, Mapping):
        raise ValueError(f"labels must be a dict of strings, not {cut(repr(labels), 200)}")
    checked: dict[str, str] = {}
    for key, value in labels.items():
        if lenient and (is_templated(key) or is_templated(value)):
            continue
        if key == TOKEN_LABEL:
            raise ValueError(f"label {TOKEN_LABEL!r} is the library's own (it carries the token): use another key")
        if not isinstance(key, str) or not LABEL_KEY.fullmatch(key):
            raise ValueError(
                f"label key {cut(repr(key), 80)} is not one BigQuery takes: 1 to 63 lowercase letters, digits, _ "
                "or -, starting with a letter"
            )
        if not isinstance(value, str) or not LABEL_VALUE.fullmatch(value):
            raise ValueError(
                f"label {key}'s value {cut(repr(value), 80)} is not one BigQuery takes: up to 63 lowercase "
                "letters, digits, _ or -"
            )
        checked[key] = value
    if len(labels) > MAX_LABELS - 1:
        raise ValueError(f"{len(labels)} labels: a job takes {MAX_LABELS}, one of them the library's token label")
    return checked


def check_configuration(configuration: Mapping[str, Any], *, lenient: bool) -> None:
    """A JobConfiguration: exactly one job type (an object), a query's text, no dry run."""
    given = [name for name in JOB_TYPES if configuration.get(name) is not None]
    if not given:
        raise ValueError(f"configuration names no job: give one of {', '.join(JOB_TYPES)} (a JobConfiguration)")
    if len(given) > 1:
        raise ValueError(f"configuration names {' and '.join(given)}: a job is one of {', '.join(JOB_TYPES)}")
    job = configuration[given[0]]
    if lenient and is_templated(job):
        return
    if not isinstance(job, Mapping):
        raise ValueError(f"configuration.{given[0]} must be an object, not {cut(repr(job), 200)}")
    if given[0] == "query":
        query = job.get("query")
        if not (lenient and is_templated(query)) and (not isinstance(query, str) or not query.strip()):
            raise ValueError("configuration.query.query must be the query's text (a non-empty string)")
    dry = configuration.get("dryRun")
    if dry is True or (isinstance(dry, str) and dry.strip().lower() == "true"):
        raise ValueError("configuration.dryRun: a dry run creates no job to wait for; run it outside durable_jobs")
    if configuration.get("labels") is not None:
        check_labels(configuration["labels"], lenient=lenient)


class BigQueryJobOperator(DurableJobOperator):
    """Insert a BigQuery job (``jobs.insert``), once whatever crashes, and wait for it.

    :param configuration: the job's ``JobConfiguration`` (one of ``query``, ``load``, ``extract``, ``copy``),
        as the provider's ``configuration``: a dict, a JSON string, or a ``.json`` template file; templated.
    :param project_id: the project the job runs in; must be the connection's (default: the connection's).
    :param location: where the job runs (default: the connection's extra ``location``, else BigQuery's choice).
    :param labels: more labels of the job (merged over ``configuration.labels``); ``airflow-dag`` and
        ``airflow-task`` are added as the provider adds them (when the DAG and task ids are label values).
    :param job_id_prefix: the start of the job id, before the token (default ``airflow_durable_``).
    :param gcp_conn_id: the connection (default ``google_cloud_default``), or ``conn_id``.

    ``job_id``, ``force_rerun``, ``impersonation_chain`` and ``cancel_on_kill=False`` are refused (see the
    module); ``reattach_states``, ``result_retry`` and ``result_timeout`` are ignored with a warning.
    """

    trigger_class: ClassVar[type[DurableJobTrigger]] = BigQueryTrigger
    operator_extra_links = system_links(SYSTEM)
    template_fields: Sequence[str] = ("conn_id", "configuration", "project_id", "location", "labels")
    template_ext: Sequence[str] = (".json", ".sql")
    template_fields_renderers: ClassVar[dict[str, str]] = {"configuration": "json", "configuration.query.query": "sql"}

    def __init__(
        self,
        *,
        configuration: Any,
        project_id: str | None = None,
        location: str | None = None,
        labels: Mapping[str, str] | None = None,
        job_id_prefix: str = DEFAULT_JOB_ID_PREFIX,
        gcp_conn_id: str | None = None,
        conn_id: str | None = None,
        job_id: str | None = None,
        force_rerun: bool | None = None,
        impersonation_chain: str | Sequence[str] | None = None,
        cancel_on_kill: bool = True,
        reattach_states: Any = None,
        result_retry: Any = None,
        result_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        # checked before the task joins its DAG
        for given, refused in (
            (job_id, JOB_ID_REFUSED),
            (force_rerun, FORCE_RERUN_REFUSED),
            (impersonation_chain, IMPERSONATION_REFUSED),
        ):
            if given is not None:
                raise ValueError(refused)
        if not cancel_on_kill:
            raise ValueError(CANCEL_ON_KILL_REFUSED)
        if not isinstance(job_id_prefix, str) or not JOB_ID_PREFIX.fullmatch(job_id_prefix):
            raise ValueError(
                f"job_id_prefix {cut(repr(job_id_prefix), 80)} is not the start of a BigQuery job id: letters, "
                "digits, _ or -, at most 200"
            )
        if isinstance(configuration, Mapping):
            check_configuration(configuration, lenient=True)
        elif not isinstance(configuration, str) and not callable(getattr(configuration, "resolve", None)):
            raise ValueError(
                "configuration must be a dict (a JobConfiguration), a JSON or Jinja string, a .json template file "
                f"or an XComArg, not {cut(repr(configuration), 120)}"
            )
        check_labels(labels, lenient=True)
        super().__init__(conn_id=_conn_id(gcp_conn_id, conn_id), **kwargs)
        self.configuration = configuration
        self.project_id = project_id
        self.location = location
        self.labels = labels
        self.job_id_prefix = job_id_prefix
        ignored = {"reattach_states": reattach_states, "result_retry": result_retry, "result_timeout": result_timeout}
        named = [name for name, value in ignored.items() if value is not None]
        if named:
            warnings.warn(
                f"{self.task_id}: {', '.join(named)} ignored: a crashed try's job is always re-attached whatever its "
                "state, every BigQuery request is retried under durable_jobs' own policy, and job_timeout bounds the "
                "job",
                UserWarning,
                stacklevel=2,
            )

    def build_spec(self, context: Any, record: JobRecord | None = None) -> BigQueryJobSpec:
        configuration = rendered_body(self.configuration, "configuration", "a JobConfiguration")
        check_configuration(configuration, lenient=False)
        labels = check_labels(configuration.pop("labels", None), lenient=False)
        labels.update(check_labels(self.labels, lenient=False))
        dag_id = context["ti"].dag_id if context is not None else self.dag_id
        for key, value in airflow_labels(dag_id, self.task_id).items():
            if len(labels) < MAX_LABELS - 1:
                labels.setdefault(key, value)
        location = self._text("location")
        project = self._text("project_id")
        if context is not None and (project is not None or location is None):
            settings = BigQueryHook.settings(self.conn_id)
            if project is not None and project != settings.project:
                raise ValueError(
                    f"project_id {project!r} is not the project of connection {self.conn_id!r} "
                    f"({settings.project!r}): jobs run in the connection's project; give a connection whose extra "
                    "project is the one wanted"
                )
            location = location or settings.location
        return BigQueryJobSpec(
            configuration=configuration, location=location, labels=labels, job_id_prefix=self.job_id_prefix
        )

    def _text(self, name: str) -> str | None:
        value = getattr(self, name)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, not {cut(repr(value), 80)}")
        return value.strip()

    def result(self, record: JobRecord) -> dict[str, Any]:
        """The protocol's result, with the job id (the provider's return value) and the job's statistics."""
        job = record.job or {}
        return {**super().result(record), "job_id": job.get("job_id"), **self._statistics(job)}

    def _statistics(self, job: Mapping[str, Any]) -> dict[str, Any]:
        empty = dict.fromkeys(RESULT_KEYS)
        if not job:
            return empty
        try:
            client: Any = self.get_client()
            answer = client.result(dict(job))
            if inspect.isawaitable(answer):
                awaited = answer
                answer = BigQueryHook.probe(lambda: awaited)
        except Exception:  # the job's result does not depend on its statistics
            self.log.warning("Could not read the statistics of %s", dict(job), exc_info=True)
            return empty
        if not isinstance(answer, Mapping):
            return empty
        return {key: answer.get(key) for key in RESULT_KEYS}


__all__ = ["BigQueryJobOperator", "airflow_labels", "check_configuration", "check_labels"]
