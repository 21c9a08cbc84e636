"""What to run on Databricks (Jobs API 2.2), the run id rule, and how the protocol's token rides on a run.

Two specs, both the request body as Databricks documents it, without ``idempotency_token`` (the client
adds the protocol's token there):

* :class:`SubmitRunSpec`: a one-time run (``POST /api/2.2/jobs/runs/submit``). The token also goes at the
  end of ``run_name`` (``"<run_name> [<token>]"``), so a ``runs/list`` shows it;
* :class:`RunNowSpec`: a run of an existing job (``POST /api/2.2/jobs/run-now``), by ``job_id`` or by
  the job's exact name (resolved with ``jobs/list?name=``). Run-now has no run name: only the
  idempotency token carries the token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from durable_jobs.errors import RecordError

SYSTEM = "databricks"
API = "/api/2.2/jobs"
#: the largest run id accepted (a signed 64-bit id, as Databricks stores it)
MAX_RUN_ID = 2**63
#: the protocol's token: ``dj`` and 20 lower-case hex digits
TOKEN_RE = re.compile(r"^dj[0-9a-f]{20}\Z")
#: the token at the end of a one-time run's name
RUN_NAME_TOKEN_RE = re.compile(r" \[(dj[0-9a-f]{20})\]\Z")
DEFAULT_RUN_NAME = "airflow-durable"
# the legacy single-task bodies Airflow's provider sends (accepted by runs/submit too)
_LEGACY_TASKS = (
    "notebook_task",
    "spark_python_task",
    "spark_jar_task",
    "spark_submit_task",
    "python_wheel_task",
    "pipeline_task",
    "sql_task",
    "dbt_task",
)


def validate_run_id(run_id: Any) -> int:
    """A run id read from a record or an answer: an int (not a bool), 0 < id < 2**63."""
    if type(run_id) is not int or not 0 < run_id < MAX_RUN_ID:
        raise RecordError(f"invalid Databricks run id {run_id!r} (expected a positive 64-bit integer)")
    return run_id


def run_name_with_token(run_name: str | None, token: str) -> str:
    """``"<run_name> [<token>]"``; a name that already ends with this token is kept as it is."""
    name = run_name if run_name else DEFAULT_RUN_NAME
    if name.endswith(f" [{token}]"):
        return name
    return f"{name} [{token}]"


def token_of_run_name(run_name: str | None) -> str | None:
    """The token a one-time run's name carries, or None."""
    match = RUN_NAME_TOKEN_RE.search(run_name or "")
    return match.group(1) if match else None


def _json_object(payload: Any, what: str) -> dict[str, Any]:
    if not isinstance(payload, Mapping):
        raise ValueError(f"{what} must be a mapping (the request body), not {type(payload).__name__}")
    try:
        json.dumps(payload)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must hold JSON values only: {exc}") from None
    if "idempotency_token" in payload:
        raise ValueError(f"{what}: idempotency_token is set by durable_jobs (one per generation of the task)")
    return dict(payload)


@dataclass(frozen=True)
class SubmitRunSpec:
    """The ``runs/submit`` body without ``idempotency_token`` (``run_name``, ``tasks``, ``timeout_seconds``...)."""

    payload: Mapping[str, Any]

    def __post_init__(self) -> None:
        body = _json_object(self.payload, "a runs/submit payload")
        name = body.get("run_name")
        if name is not None and not isinstance(name, str):
            raise ValueError("run_name must be a string")
        tasks = body.get("tasks")
        if tasks is not None and (not isinstance(tasks, list) or not tasks):
            raise ValueError("tasks must be a non-empty list of task objects")
        if tasks is None and not any(k in body for k in _LEGACY_TASKS):
            raise ValueError(f"a runs/submit payload needs tasks (or a legacy {', '.join(_LEGACY_TASKS[:3])}...)")

    def request_body(self, token: str) -> dict[str, Any]:
        body = dict(self.payload)
        body["run_name"] = run_name_with_token(body.get("run_name"), token)
        body["idempotency_token"] = token
        return body


@dataclass(frozen=True)
class RunNowSpec:
    """The ``run-now`` body without ``idempotency_token``; ``job_name`` when the payload has no ``job_id``.

    With both, ``job_id`` is used and ``job_name`` is not looked up.
    """

    payload: Mapping[str, Any]
    job_name: str | None = None

    def __post_init__(self) -> None:
        body = _json_object(self.payload, "a run-now payload")
        job_id = body.get("job_id")
        if job_id is None and not self.job_name:
            raise ValueError("run-now needs a job_id in the payload, or a job_name")
        if job_id is not None and (type(job_id) is not int or not 0 < job_id < MAX_RUN_ID):
            raise ValueError(f"job_id must be a positive integer, not {job_id!r}")
        if self.job_name is not None and (not isinstance(self.job_name, str) or not self.job_name.strip()):
            raise ValueError("job_name must be a non-empty string")

    @property
    def job_id(self) -> int | None:
        job_id = self.payload.get("job_id")
        return job_id if type(job_id) is int else None

    def request_body(self, token: str, job_id: int) -> dict[str, Any]:
        return {**self.payload, "job_id": job_id, "idempotency_token": token}


DatabricksSpec = SubmitRunSpec | RunNowSpec


__all__ = [
    "API",
    "DEFAULT_RUN_NAME",
    "MAX_RUN_ID",
    "SYSTEM",
    "TOKEN_RE",
    "DatabricksSpec",
    "RunNowSpec",
    "SubmitRunSpec",
    "run_name_with_token",
    "token_of_run_name",
    "validate_run_id",
]
