"""What a Glue job run is started with: :class:`GlueJobRunSpec` -> a ``StartJobRun`` request carrying the token.

``StartJobRun`` has no client token, so the protocol's token travels as the job argument
:data:`TOKEN_ARGUMENT` (Glue passes it to the script like any ``--key value``, and ``GetJobRuns`` shows it
back in each run's ``Arguments``): ``find`` matches it there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from durable_jobs.clients.glue.answers import validate_job_name
from durable_jobs.errors import RecordError

TOKEN_ARGUMENT = "--durable_jobs_token"
EXECUTION_CLASSES = ("STANDARD", "FLEX")


@dataclass(frozen=True)
class GlueJobRunSpec:
    """A run of an existing Glue job; ``timeout`` is in minutes, as Glue's; None leaves the job's setting."""

    job_name: str
    arguments: Mapping[str, str] = field(default_factory=dict)
    worker_type: str | None = None
    number_of_workers: int | None = None
    timeout: int | None = None
    security_configuration: str | None = None
    job_run_queuing_enabled: bool | None = None
    max_capacity: float | None = None
    notification_property: Mapping[str, Any] | None = None
    execution_class: str | None = None

    def __post_init__(self) -> None:
        try:
            validate_job_name(self.job_name)
        except RecordError as exc:
            raise ValueError(str(exc)) from None
        for key, value in self.arguments.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ValueError(f"Glue job arguments are strings; {key!r}: {value!r} is not")
        if TOKEN_ARGUMENT in self.arguments:
            raise ValueError(f"{TOKEN_ARGUMENT} is set by durable_jobs (it finds the run after a crash)")
        for name in ("number_of_workers", "timeout"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if self.max_capacity is not None and (self.worker_type is not None or self.number_of_workers is not None):
            raise ValueError("give max_capacity, or worker_type with number_of_workers, not both (Glue refuses it)")
        if self.execution_class is not None and self.execution_class not in EXECUTION_CLASSES:
            raise ValueError(f"execution_class must be one of {', '.join(EXECUTION_CLASSES)}")

    def request(self, token: str) -> dict[str, Any]:
        """The ``StartJobRun`` parameters: the token among the arguments, then the fields that are set."""
        own: dict[str, Any] = {
            "WorkerType": self.worker_type,
            "NumberOfWorkers": self.number_of_workers,
            "Timeout": self.timeout,
            "SecurityConfiguration": self.security_configuration,
            "JobRunQueuingEnabled": self.job_run_queuing_enabled,
            "MaxCapacity": self.max_capacity,
            "NotificationProperty": dict(self.notification_property) if self.notification_property else None,
            "ExecutionClass": self.execution_class,
        }
        body: dict[str, Any] = {"JobName": self.job_name, "Arguments": {**self.arguments, TOKEN_ARGUMENT: token}}
        body.update({k: v for k, v in own.items() if v is not None})
        return body


__all__ = ["EXECUTION_CLASSES", "TOKEN_ARGUMENT", "GlueJobRunSpec"]
