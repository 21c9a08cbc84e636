"""Request checks of the Databricks Jobs API 2.2 contract fake: strict bodies, query parameters, page tokens.

Kept apart from the server (:mod:`durable_jobs_harness.fake_databricks`) and the run model
(:mod:`durable_jobs_harness.fake_databricks_runs`) so that each stays small. Every refusal is an
:class:`ApiError`, which the server answers as ``{"error_code", "message"}`` with its status.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")
RUN_TYPES = ("JOB_RUN", "WORKFLOW_RUN", "SUBMIT_RUN")
TASK_TYPES = (
    "notebook_task",
    "spark_python_task",
    "spark_jar_task",
    "spark_submit_task",
    "python_wheel_task",
    "pipeline_task",
    "sql_task",
    "dbt_task",
    "run_job_task",
    "condition_task",
    "for_each_task",
    "clean_rooms_notebook_task",
    "dashboard_task",
    "power_bi_task",
    "gen_ai_compute_task",
)
MAX_TOKEN_CHARS = 64


class ApiError(Exception):
    """An error answer of the Jobs API: ``{"error_code", "message"}`` with its HTTP status."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_code, self.message = status, error_code, message


def invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)


# --- strict request bodies ----------------------------------------------------------------------------------

_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "bool": (bool,),
    "object": (dict,),
    "array": (list,),
}
_COMMON = {
    "access_control_list": "array",
    "budget_policy_id": "str",
    "email_notifications": "object",
    "environments": "array",
    "git_source": "object",
    "health": "object",
    "notification_settings": "object",
    "queue": "object",
    "run_as": "object",
    "timeout_seconds": "int",
    "usage_policy_id": "str",
    "webhook_notifications": "object",
}
SUBMIT_FIELDS = {
    **_COMMON,
    "idempotency_token": "str",
    "run_name": "str",
    "tasks": "array",
    "job_clusters": "array",
    # legacy single-task bodies (what Airflow's provider still sends)
    **dict.fromkeys(TASK_TYPES, "object"),
    "new_cluster": "object",
    "existing_cluster_id": "str",
    "libraries": "array",
}
RUN_NOW_FIELDS = {
    "job_id": "int",
    "idempotency_token": "str",
    "job_parameters": "object",
    "jar_params": "array",
    "notebook_params": "object",
    "python_params": "array",
    "python_named_params": "object",
    "spark_submit_params": "array",
    "sql_params": "object",
    "dbt_commands": "array",
    "pipeline_params": "object",
    "queue": "object",
    "performance_target": "str",
    "only": "array",
}
JOB_CREATE_FIELDS = {
    **_COMMON,
    "name": "str",
    "tasks": "array",
    "job_clusters": "array",
    "parameters": "array",
    "max_concurrent_runs": "int",
    "tags": "object",
    "description": "str",
    "format": "str",
    "schedule": "object",
    "trigger": "object",
    "continuous": "object",
    "performance_target": "str",
    "edit_mode": "str",
    "deployment": "object",
}


def check_fields(body: Mapping[str, Any], spec: Mapping[str, str], required: tuple[str, ...] = ()) -> None:
    """Refuse unknown or wrong-typed top-level fields, and missing required ones (400 INVALID_PARAMETER_VALUE)."""
    for name, value in body.items():
        kind = spec.get(name)
        if kind is None:
            raise invalid(f"Unknown field '{name}' in the request body.")
        if not isinstance(value, _TYPES[kind]) or (kind == "int" and isinstance(value, bool)):
            raise invalid(f"Invalid value for field '{name}': expected {kind}, got {type(value).__name__}.")
    for name in required:
        if name not in body:
            raise invalid(f"Missing required field: {name}")
    token = body.get("idempotency_token")
    if token is not None and len(token) > MAX_TOKEN_CHARS:
        raise invalid(f"The idempotency token must have at most {MAX_TOKEN_CHARS} characters.")
    timeout = body.get("timeout_seconds")
    if timeout is not None and timeout < 0:
        raise invalid("timeout_seconds must be non-negative.")


def check_tasks(tasks: Any) -> list[dict[str, Any]]:
    """The tasks of a submit or a job: at least one, each with a unique ``task_key`` and exactly one task type."""
    if not isinstance(tasks, list) or not tasks:
        raise invalid("At least one task is required.")
    keys: set[str] = set()
    for task in tasks:
        if not isinstance(task, dict):
            raise invalid("Each task must be an object.")
        key = task.get("task_key")
        if not isinstance(key, str) or not key:
            raise invalid("Each task must have a task_key.")
        if key in keys:
            raise invalid(f"Task key {key} is not unique.")
        keys.add(key)
        types = [t for t in TASK_TYPES if t in task]
        if len(types) != 1:
            raise invalid(f"Task {key} must have exactly one task type ({', '.join(TASK_TYPES[:5])}, ...).")
        if not isinstance(task[types[0]], dict):
            raise invalid(f"Invalid value for field '{types[0]}' of task {key}: expected object.")
        depends = task.get("depends_on", [])
        if not isinstance(depends, list) or not all(isinstance(d, dict) and "task_key" in d for d in depends):
            raise invalid(f"Invalid depends_on of task {key}.")
    return tasks


def submit_tasks(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The checked tasks of a submit body: its ``tasks``, or the one task of a legacy single-task body (a
    top-level task type and cluster)."""
    if "tasks" in body or not any(t in body for t in TASK_TYPES):
        return check_tasks(body.get("tasks"))
    task: dict[str, Any] = {"task_key": "task"}
    for name in (*TASK_TYPES, "new_cluster", "existing_cluster_id", "libraries"):
        if name in body:
            task[name] = body[name]
    return check_tasks([task])


# --- queries ----------------------------------------------------------------------------------------------------


def page_token(direction: str, key: tuple[int, int]) -> str:
    return base64.urlsafe_b64encode(f"{direction}:{key[0]}:{key[1]}".encode()).decode().rstrip("=")


def read_page_token(token: str) -> tuple[str, tuple[int, int]]:
    try:
        direction, start, run_id = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().split(":")
        if direction not in ("next", "prev"):
            raise ValueError(direction)
        return direction, (int(start), int(run_id))
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise invalid(f"Invalid page token: {token}") from None


def int_param(query: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise invalid(f"Could not parse request object: invalid value for '{name}': {raw}") from None


def bool_param(query: Mapping[str, str], name: str) -> bool:
    raw = query.get(name, "false").lower()
    if raw not in ("true", "false"):
        raise invalid(f"Could not parse request object: invalid value for '{name}': {raw}")
    return raw == "true"


def keyset_page(
    picked: list[tuple[tuple[int, int], T]], token: str | None, limit: int
) -> tuple[list[tuple[tuple[int, int], T]], bool, bool]:
    """(the page, whether older runs follow, whether newer runs precede): keyset paging, stable while runs
    are added."""
    if not token:
        return picked[:limit], len(picked) > limit, False
    direction, key = read_page_token(token)
    if direction == "next":
        rest = [kr for kr in picked if kr[0] < key]
        return rest[:limit], len(rest) > limit, len(rest) < len(picked)
    newer = [kr for kr in picked if kr[0] > key]
    page = newer[-limit:]
    return page, True, len(newer) > limit


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(user, password) of an HTTP basic ``Authorization`` header, or None."""
    scheme, _, data = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(data.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, password) if sep else None
