"""Run an existing AWS Glue job, started once whatever crashes: :class:`GlueJobRunOperator`.

It takes the amazon provider's ``GlueJobOperator`` arguments where they mean the same (``job_name``,
``script_args``, ``run_job_kwargs``, ``aws_conn_id``, ``job_poll_interval``, ``deferrable``...), so a DAG
that runs an existing job moves over by renaming its import (``docs/glue.md`` has the table). What differs:

* deferrable by default, with the run recorded in the task state store before the task defers;
* Glue has no idempotency token: the client passes the protocol's token as the argument
  ``--durable_jobs_token`` and, after a crash, finds the run by it (``GetJobRuns``). So ``script_args``
  may not hold that argument itself;
* it runs a job, it does not create or update one: the provider's job-definition arguments
  (``script_location``, ``iam_role_name``, ``create_job_kwargs``...) are refused with the fix;
* ``region_name``, ``verify`` and ``botocore_config`` belong to the ``aws`` connection, so they are refused;
* ``verbose``, ``waiter_max_attempts``, ``sleep_before_return``, ``wait_for_completion=False`` and
  ``stop_job_run_on_kill=False`` are accepted and ignored with a warning.

Everything is checked when the operator is constructed, and again once Airflow rendered the templates.
It defers to :class:`~durable_jobs.triggers.glue.GlueTrigger`, pushes ``job_name``, ``run_id`` and the
run's console URL (``glue_run_url``) to XCom before deferring, and returns them with the protocol's result.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from durable_jobs.clients.glue import GlueJobRunSpec
from durable_jobs.hooks.glue import GlueHook
from durable_jobs.links import system_links
from durable_jobs.operators.base import DurableJobOperator
from durable_jobs.operators.databricks_payload import BodyCheck, plain_json
from durable_jobs.operators.templated import is_templated
from durable_jobs.record import JobRecord
from durable_jobs.systems.glue import SYSTEM
from durable_jobs.triggers.base import DurableJobTrigger
from durable_jobs.triggers.glue import GlueTrigger

DEFAULT_CONN_ID = GlueHook.default_conn_name
#: the argument that carries the protocol's token (the client adds it)
TOKEN_ARGUMENT = "--durable_jobs_token"
TOKEN_REFUSED = (
    f"script_args may not hold {TOKEN_ARGUMENT}: durable_jobs passes the task's token in that argument (one "
    "per generation), so that a retry after a crash finds the run the crashed try started (Glue's StartJobRun "
    "takes no idempotency token) and a retry after a failed run starts a new one. Remove it"
)
#: StartJobRun's fields that ``run_job_kwargs`` may hold -> the spec's field
RUN_FIELDS = {
    "WorkerType": "worker_type",
    "NumberOfWorkers": "number_of_workers",
    "Timeout": "timeout",
    "SecurityConfiguration": "security_configuration",
    "JobRunQueuingEnabled": "job_run_queuing_enabled",
    "MaxCapacity": "max_capacity",
    "NotificationProperty": "notification_property",
    "ExecutionClass": "execution_class",
}
#: StartJobRun's other fields, and where they go instead
RUN_REFUSED = {
    "JobName": "give job_name",
    "Arguments": "give the arguments as script_args",
    "JobRunId": (
        "a run that retries a previous run is not supported: a failed run fails the try, and the task's next try "
        "(retries) starts a new run, once"
    ),
    "AllocatedCapacity": "it is deprecated: give MaxCapacity",
}
EXECUTION_CLASSES = ("FLEX", "STANDARD")
#: the provider's arguments that define, create or update a job
JOB_DEFINITION_ARGS = (
    "script_location",
    "iam_role_name",
    "iam_role_arn",
    "create_job_kwargs",
    "s3_bucket",
    "job_desc",
    "concurrent_run_limit",
    "retry_limit",
    "num_of_dpus",
    "update_config",
    "replace_script_file",
)
#: the provider's per-task AWS settings, which are the connection's here
CONNECTION_ARGS = {"region_name": "region_name", "verify": "verify", "botocore_config": "config_kwargs"}
MAX_JOB_NAME = 255
#: outside Glue's single-line string pattern (tab allowed)
_NOT_SINGLE_LINE = re.compile("[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def check_job_name(value: Any) -> str:
    """A Glue job name: 1 to 255 characters on one line; ValueError."""
    if not isinstance(value, str):
        raise ValueError(f"job_name must be a string (the Glue job's name), not {value!r}")
    if not value.strip():
        raise ValueError("job_name is empty: give the name of an existing Glue job")
    if len(value) > MAX_JOB_NAME:
        raise ValueError(f"job_name has {len(value)} characters; a Glue job name has at most {MAX_JOB_NAME}")
    if _NOT_SINGLE_LINE.search(value):
        raise ValueError(f"job_name {value!r} holds a control character; a Glue job name is one line of text")
    return value


def check_script_args(value: Any, *, lenient: bool) -> dict[str, str] | None:
    """``script_args`` as strings (numbers and booleans converted), without the token argument; ValueError."""
    if value is None:
        return {}
    check = BodyCheck({"script_args": value}, lenient=lenient)
    if isinstance(value, Mapping) and TOKEN_ARGUMENT in value:
        raise ValueError(TOKEN_REFUSED)
    arguments: dict[str, str] | None = check.strings("script_args", dict)
    return arguments


def _number(check: BodyCheck, key: str) -> float | None:
    """A positive number (a rendered template gives its digits); None when absent or still to render."""
    value = check.body.get(key)
    if value is None or check.pending(value):
        return None
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not 0 < number < math.inf:
        raise ValueError(f"{key} must be a positive number (DPUs), not {value!r}")
    return number


def _flag(check: BodyCheck, key: str) -> bool | None:
    """A boolean (a rendered template gives true or false); None when absent or still to render."""
    value = check.body.get(key)
    if value is None or check.pending(value) or isinstance(value, bool):
        return value if isinstance(value, bool) else None
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"{key} must be a boolean, not {value!r}")


def _notification(check: BodyCheck, key: str) -> dict[str, Any] | None:
    value = check.body.get(key)
    if value is None or check.pending(value):
        return None
    if not isinstance(value, Mapping) or set(value) - {"NotifyDelayAfter"}:
        raise ValueError(f"{key} must be {{'NotifyDelayAfter': <minutes>}}, not {value!r}")
    delay = BodyCheck(value, lenient=check.lenient).count("NotifyDelayAfter", minimum=1)
    return {} if delay is None else {"NotifyDelayAfter": delay}


def check_run_job_kwargs(value: Any, *, lenient: bool) -> dict[str, Any]:
    """``run_job_kwargs`` -> the spec's fields (those given); ValueError naming what is refused and why."""
    if value is None or (lenient and not isinstance(value, Mapping) and is_templated(value)):
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"run_job_kwargs must be a dict of StartJobRun fields, not {value!r}")
    for key in value:
        if key in RUN_REFUSED:
            raise ValueError(f"run_job_kwargs may not hold {key}: {RUN_REFUSED[key]}")
        if key not in RUN_FIELDS:
            raise ValueError(
                f"run_job_kwargs holds {key!r}, which is not a StartJobRun field this operator passes; it takes "
                f"{', '.join(RUN_FIELDS)}"
            )
    check = BodyCheck(value, lenient=lenient)
    check.typed("WorkerType", str, "a string (G.1X, G.2X, ...)")
    check.typed("SecurityConfiguration", str, "a string (a security configuration's name)")
    execution_class = value.get("ExecutionClass")
    if execution_class is not None and not check.pending(execution_class) and execution_class not in EXECUTION_CLASSES:
        raise ValueError(f"ExecutionClass must be one of {', '.join(EXECUTION_CLASSES)}, not {execution_class!r}")
    fields: dict[str, Any] = {
        "worker_type": value.get("WorkerType"),
        "number_of_workers": check.count("NumberOfWorkers", minimum=1),
        "timeout": check.count("Timeout", minimum=1),
        "security_configuration": value.get("SecurityConfiguration"),
        "job_run_queuing_enabled": _flag(check, "JobRunQueuingEnabled"),
        "max_capacity": _number(check, "MaxCapacity"),
        "notification_property": _notification(check, "NotificationProperty"),
        "execution_class": execution_class,
    }
    if check.given("MaxCapacity") and (check.given("WorkerType") or check.given("NumberOfWorkers")):
        raise ValueError("give MaxCapacity, or WorkerType and NumberOfWorkers, not both (Glue refuses the two)")
    return {name: given for name, given in fields.items() if given is not None}


def _one_of(ours: str, given: Any, provider: str, theirs: Any) -> Any:
    """The value given under our name or the provider's; ValueError when both are given and differ."""
    if given is not None and theirs is not None and given != theirs:
        raise ValueError(f"{provider} and {ours} differ: give one")
    return theirs if theirs is not None else given


class GlueJobRunOperator(DurableJobOperator):
    """Start a run of an existing Glue job (``StartJobRun``), once whatever crashes, and wait for it.

    :param job_name: the Glue job's name (templated). The job must exist: this operator does not create it.
    :param script_args: the run's arguments (templated), e.g. ``{"--day": "{{ ds }}"}``; numbers and booleans
        are passed as strings. ``--durable_jobs_token`` is added (and refused here).
    :param run_job_kwargs: further ``StartJobRun`` fields (templated): ``WorkerType``, ``NumberOfWorkers``,
        ``Timeout`` (minutes), ``SecurityConfiguration``, ``JobRunQueuingEnabled``, ``MaxCapacity``,
        ``NotificationProperty``, ``ExecutionClass``. The same fields can be given by name (``worker_type``,
        ``number_of_workers``, ``timeout``, ...); a field given both ways must have one value.
    :param aws_conn_id: the ``aws`` connection (default ``aws_default``); ``conn_id`` is the same.
    :param job_poll_interval: seconds between status polls (``waiter_delay`` and ``poll_interval`` too).
    """

    trigger_class: ClassVar[type[DurableJobTrigger]] = GlueTrigger
    operator_extra_links = system_links(SYSTEM)
    template_fields: Sequence[str] = ("conn_id", "job_name", "script_args", "run_job_kwargs")
    template_fields_renderers: ClassVar[dict[str, str]] = {"script_args": "json", "run_job_kwargs": "json"}

    def __init__(
        self,
        *,
        job_name: str,
        script_args: Mapping[str, Any] | None = None,
        run_job_kwargs: Mapping[str, Any] | None = None,
        worker_type: str | None = None,
        number_of_workers: int | None = None,
        timeout: int | None = None,
        security_configuration: str | None = None,
        job_run_queuing_enabled: bool | None = None,
        max_capacity: float | None = None,
        notification_property: Mapping[str, Any] | None = None,
        execution_class: str | None = None,
        aws_conn_id: str | None = None,
        conn_id: str | None = None,
        job_poll_interval: float | None = None,
        waiter_delay: float | None = None,
        waiter_max_attempts: int | None = None,
        verbose: bool = False,
        wait_for_completion: bool = True,
        stop_job_run_on_kill: bool | None = None,
        sleep_before_return: float = 0,
        openlineage_inject_parent_job_info: bool = False,
        **kwargs: Any,
    ) -> None:
        # checked before the task joins its DAG
        _refuse_provider_only(kwargs)
        interval = _one_of("job_poll_interval", job_poll_interval, "waiter_delay", waiter_delay)
        if interval is not None:
            kwargs["poll_interval"] = _one_of(
                "poll_interval", kwargs.get("poll_interval"), "job_poll_interval", interval
            )
        named = {
            "WorkerType": worker_type,
            "NumberOfWorkers": number_of_workers,
            "Timeout": timeout,
            "SecurityConfiguration": security_configuration,
            "JobRunQueuingEnabled": job_run_queuing_enabled,
            "MaxCapacity": max_capacity,
            "NotificationProperty": notification_property,
            "ExecutionClass": execution_class,
        }
        run = _merged_run(run_job_kwargs, named)
        check_script_args(script_args, lenient=True)
        check_run_job_kwargs(run, lenient=True)
        super().__init__(conn_id=_one_of("conn_id", conn_id, "aws_conn_id", aws_conn_id) or DEFAULT_CONN_ID, **kwargs)
        self.job_name = job_name
        self.script_args = script_args
        self.run_job_kwargs = run
        self._warn_ignored(
            {
                "verbose=True": verbose,
                f"waiter_max_attempts={waiter_max_attempts}": waiter_max_attempts is not None,
                f"sleep_before_return={sleep_before_return}": bool(sleep_before_return),
                "wait_for_completion=False": not wait_for_completion,
                "stop_job_run_on_kill=False": stop_job_run_on_kill is False,
                "openlineage_inject_parent_job_info=True": openlineage_inject_parent_job_info,
            }
        )

    def _warn_ignored(self, given: Mapping[str, bool]) -> None:
        ignored = [name for name, flag in given.items() if flag]
        if ignored:
            warnings.warn(
                f"{self.task_id}: {', '.join(ignored)} ignored: a durable task always waits for its run (deferred, "
                "without holding a worker slot; job_timeout is its deadline), stops it when the task is killed, "
                "and reports the run's error message with its CloudWatch log group and stream",
                UserWarning,
                stacklevel=3,
            )

    def build_spec(self, context: Any, record: JobRecord | None = None) -> GlueJobRunSpec:
        arguments = check_script_args(self.script_args, lenient=False)
        assert arguments is not None
        return GlueJobRunSpec(
            job_name=check_job_name(self.job_name),
            arguments=arguments,
            **check_run_job_kwargs(self.run_job_kwargs, lenient=False),
        )

    def result(self, record: JobRecord) -> dict[str, Any]:
        """The protocol's result, with the run's job name and id (the provider returns the run id)."""
        job = record.job or {}
        return {**super().result(record), "job_name": job.get("job_name"), "run_id": job.get("run_id")}


def _merged_run(run_job_kwargs: Any, named: Mapping[str, Any]) -> Any:
    """``run_job_kwargs`` with the named fields given over it; ValueError when one is given both ways and differs."""
    given = {key: value for key, value in named.items() if value is not None}
    if run_job_kwargs is None:
        return given
    if not isinstance(run_job_kwargs, Mapping):
        if given:
            raise ValueError(
                f"run_job_kwargs is not a dict, so {', '.join(sorted(given))} cannot be merged into it before it "
                "is rendered: put them in run_job_kwargs, or give run_job_kwargs as a dict"
            )
        return run_job_kwargs
    run = plain_json(run_job_kwargs, "run_job_kwargs")
    for key, value in given.items():
        run[key] = _one_of(f"the argument {RUN_FIELDS[key]}", value, f"run_job_kwargs[{key!r}]", run.get(key))
    return run


def _refuse_provider_only(kwargs: dict[str, Any]) -> None:
    """The provider's arguments that have no place here: a job's definition, and per-task AWS settings."""
    defining = [name for name in JOB_DEFINITION_ARGS if kwargs.pop(name, None) not in (None, False, 0)]
    if defining:
        raise ValueError(
            f"{', '.join(defining)}: GlueJobRunOperator runs an existing Glue job and does not create or update "
            "one. Define the job outside the DAG (infrastructure as code, the console, or the provider's "
            "GlueJobOperator once), with MaxConcurrentRuns=1 unless runs may overlap, and give its job_name"
        )
    for name, extra in CONNECTION_ARGS.items():
        if kwargs.pop(name, None) is not None:
            raise ValueError(
                f"{name} is a setting of the aws connection here: set extra {extra!r} on the connection (one "
                "connection per region or endpoint), and give its id as aws_conn_id"
            )


__all__ = ["TOKEN_ARGUMENT", "GlueJobRunOperator", "check_job_name"]
