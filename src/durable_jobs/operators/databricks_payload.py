"""The Databricks operators' request bodies: merged as the databricks provider merges them, then checked.

The provider's operators take a ``json`` body and named arguments, merged with the named ones winning; ours
do the same, so a DAG moves over by renaming its imports. What the provider sends unchecked is checked
here, so that a DAG that cannot work fails when it is parsed instead of in a retry loop: the body's shape
(``tasks`` or one single-task field; ``job_id`` or ``job_name``), the types of the fields, and values a
request body cannot carry. ``idempotency_token`` is refused: the library derives one per generation.

Each check runs twice: *leniently* when the operator is constructed (a field still holding Jinja or an
XComArg is checked later), and *strictly* on the rendered body, before anything is recorded or submitted.
No Airflow here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from durable_jobs.messages import cut
from durable_jobs.operators.templated import is_templated

TOKEN_REFUSED = (
    "idempotency_token is not taken: durable_jobs derives one per generation of the task (the protocol's "
    "token), so that a retry after a crash finds the run the crashed try started, and a retry after a failed "
    "run starts a new one. A fixed token would hand the failed run back to every retry "
    "(apache/airflow#64828). Remove it"
)
#: the single-task fields of a ``runs/submit`` body (the provider's named arguments, and the API's others)
SUBMIT_TASK_FIELDS = (
    "notebook_task",
    "spark_jar_task",
    "spark_python_task",
    "spark_submit_task",
    "pipeline_task",
    "dbt_task",
    "python_wheel_task",
)
#: run-now parameters that are a map of strings, and those that are a list of strings
STRING_MAPS = ("job_parameters", "notebook_params", "python_named_params", "sql_params")
STRING_LISTS = ("python_params", "jar_params", "spark_submit_params", "dbt_commands")
#: what ``job_parameters`` cannot be combined with (Jobs API: they supersede the task parameters)
TASK_PARAMS = (*STRING_MAPS[1:], *STRING_LISTS)
MAX_JOB_ID = 2**63


def merged(body: Any, named: Mapping[str, Any]) -> Any:
    """``body`` with the named arguments given (not None) over its top-level keys, as the provider merges them."""
    given = {key: value for key, value in named.items() if value is not None}
    if body is None:
        return given
    if isinstance(body, Mapping):
        return {**body, **given}
    if isinstance(body, str) or callable(getattr(body, "resolve", None)):
        if given:
            raise ValueError(
                f"json is {'a string' if isinstance(body, str) else 'an XComArg'}, so {', '.join(sorted(given))} "
                "cannot be merged into it before it is rendered: put them in json, or give json as a dict"
            )
        return body
    raise ValueError(
        f"json must be a dict (the request body), a JSON or Jinja string, or an XComArg, not {_kind(body)}"
    )


def rendered_body(body: Any, name: str = "json", what: str = "the request body") -> dict[str, Any]:
    """The rendered ``json`` (or another field, ``name``) as a plain JSON object (a string is parsed);
    ValueError for anything else."""
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            raise ValueError(f"{name} is a string that is not a JSON object: {cut(body, 300)!r}") from None
    if not isinstance(body, Mapping):
        raise ValueError(f"{name} must be a JSON object ({what}), not {_kind(body)}")
    plain: dict[str, Any] = plain_json(body, name)
    return plain


def plain_json(value: Any, where: str) -> Any:
    """``value`` as plain JSON (tuples as lists); ValueError naming the first value a request body cannot carry."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value!r}; JSON has no NaN or infinity")
        return value
    if isinstance(value, Mapping):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise ValueError(f"{where} has the key {bad[0]!r}; a JSON object's keys are strings")
        return {k: plain_json(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise ValueError(
        f"{where} is {_kind(value)}, which a request body cannot carry: give strings, numbers, booleans, None, "
        "or lists and dicts of them"
    )


def _kind(value: Any) -> str:
    return f"a {type(value).__module__}.{type(value).__qualname__}" if value is not None else "None"


class BodyCheck:
    """The checks of one body: ``lenient`` skips a value that rendering may still change."""

    def __init__(self, body: Mapping[str, Any], *, lenient: bool, template_ext: Sequence[str] = ()) -> None:
        self.body = body
        self.lenient = lenient
        self.template_ext = tuple(template_ext)

    def given(self, key: str) -> bool:
        return self.body.get(key) is not None

    def pending(self, value: Any) -> bool:
        return self.lenient and is_templated(value, self.template_ext)

    def typed(self, key: str, kinds: type | tuple[type, ...], what: str) -> None:
        """``key``, when given, is of ``kinds`` (a bool is not a number)."""
        value = self.body.get(key)
        if value is None or self.pending(value):
            return
        if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
            raise ValueError(f"{key} must be {what}, not {value!r}")
        if not isinstance(value, kinds):
            raise ValueError(f"{key} must be {what}, not {_kind(value)}: {cut(repr(value), 200)}")

    def count(self, key: str, *, minimum: int, below: int | None = None) -> int | None:
        """``key`` as an integer (a rendered template gives digits) in ``[minimum, below)``; None when absent."""
        value = self.body.get(key)
        if value is None:
            return None
        if isinstance(value, str) and value.strip().isdigit():
            number = int(value.strip())
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif self.pending(value):
            return None
        else:
            raise ValueError(f"{key} must be an integer, not {_kind(value)}: {cut(repr(value), 200)}")
        if number < minimum or (below is not None and number >= below):
            bound = f"between {minimum} and {below - 1}" if below is not None else f"at least {minimum}"
            raise ValueError(f"{key} must be {bound}, got {number}")
        return number

    def strings(self, key: str, container: type) -> Any:
        """A map or list of parameters as strings (numbers and booleans converted); None when absent."""
        value = self.body.get(key)
        if value is None or self.pending(value):
            return None
        if container is dict:
            if not isinstance(value, Mapping):
                raise ValueError(f"{key} must be a dict of strings, not {_kind(value)}")
            return {str(k): self._string(f"{key}[{k!r}]", v) for k, v in value.items()}
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key} must be a list of strings, not {_kind(value)}")
        return [self._string(f"{key}[{i}]", v) for i, v in enumerate(value)]

    def _string(self, where: str, value: Any) -> Any:
        if self.pending(value):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (str, int, float)):
            return str(value)
        raise ValueError(f"{where} must be a string (or a number), not {_kind(value)}")

    def no_token(self) -> None:
        if "idempotency_token" in self.body:
            raise ValueError(TOKEN_REFUSED)


def check_submit(check: BodyCheck) -> dict[str, Any]:
    """A ``runs/submit`` body: ``tasks``, or exactly one single-task field; the fields' types. Normalised values."""
    check.no_token()
    legacy = [name for name in SUBMIT_TASK_FIELDS if check.given(name)]
    if check.given("tasks"):
        if legacy:
            raise ValueError(f"give tasks, or one single-task field, not both (tasks and {', '.join(legacy)})")
        _check_tasks(check)
    elif not legacy:
        raise ValueError(f"nothing to run: give tasks, or one of {', '.join(SUBMIT_TASK_FIELDS)}")
    elif len(legacy) > 1:
        raise ValueError(f"give one single-task field, not {' and '.join(legacy)} (or several tasks in tasks)")
    for name in (*SUBMIT_TASK_FIELDS, "new_cluster", "git_source"):
        check.typed(name, Mapping, "a dict")
    for name in ("libraries", "access_control_list"):
        check.typed(name, (list, tuple), "a list")
    for name in ("run_name", "existing_cluster_id"):
        check.typed(name, str, "a string")
    if check.given("dbt_task") and not check.given("git_source"):
        raise ValueError("dbt_task needs git_source (the repository of the dbt project)")
    pipeline = check.body.get("pipeline_task")
    if isinstance(pipeline, Mapping) and "pipeline_name" in pipeline:
        raise ValueError(
            "pipeline_task.pipeline_name is not supported: give pipeline_task.pipeline_id (the pipeline's id, "
            "which the provider would look up by name at every try)"
        )
    normalised: dict[str, Any] = {}
    timeout = check.count("timeout_seconds", minimum=0)
    if timeout is not None:
        normalised["timeout_seconds"] = timeout
    return normalised


def _check_tasks(check: BodyCheck) -> None:
    tasks = check.body["tasks"]
    if check.pending(tasks):
        return
    if not isinstance(tasks, (list, tuple)) or not tasks:
        raise ValueError(f"tasks must be a non-empty list of task objects, not {cut(repr(tasks), 200)}")
    keys: list[str] = []
    for i, task in enumerate(tasks):
        if check.pending(task):
            continue
        if not isinstance(task, Mapping):
            raise ValueError(f"tasks[{i}] must be a task object (a dict), not {_kind(task)}")
        key = task.get("task_key")
        if not check.pending(key) and (not isinstance(key, str) or not key):
            raise ValueError(f"tasks[{i}] needs a task_key (a non-empty string)")
        keys.append(str(key))
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"tasks repeat the task_key {', '.join(map(repr, repeated))}")


def check_run_now(check: BodyCheck) -> dict[str, Any]:
    """A ``run-now`` body: ``job_id`` or ``job_name``, the parameters' types. Normalised values."""
    check.no_token()
    if check.given("job_id") and check.given("job_name"):
        raise ValueError("job_id and job_name exclude each other (argument 'job_name' is not allowed with 'job_id')")
    if not check.given("job_id") and not check.given("job_name"):
        raise ValueError("give job_id (the job's id) or job_name (its exact name)")
    check.typed("job_name", str, "a string (the job's exact name)")
    if isinstance(check.body.get("job_name"), str) and not check.body["job_name"].strip():
        raise ValueError("job_name is empty")
    normalised: dict[str, Any] = {}
    job_id = check.count("job_id", minimum=1, below=MAX_JOB_ID)
    if job_id is not None:
        normalised["job_id"] = job_id
    for name in STRING_MAPS:
        if (value := check.strings(name, dict)) is not None:
            normalised[name] = value
    for name in STRING_LISTS:
        if (value := check.strings(name, list)) is not None:
            normalised[name] = value
    combined = [name for name in TASK_PARAMS if check.given(name)]
    if check.given("job_parameters") and combined:
        raise ValueError(
            f"job_parameters cannot be combined with {', '.join(combined)}: job parameters supersede the task "
            "parameters (pass them all as job_parameters)"
        )
    return normalised


__all__ = [
    "SUBMIT_TASK_FIELDS",
    "TOKEN_REFUSED",
    "BodyCheck",
    "check_run_now",
    "check_submit",
    "merged",
    "plain_json",
    "rendered_body",
]
