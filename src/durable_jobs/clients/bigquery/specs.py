"""What to run on BigQuery (a ``jobs.insert`` configuration), the id rules, and how the token rides on a job.

BigQuery lets the client choose the job id, and answers a second ``jobs.insert`` of the same id with 409
``duplicate``: that is the idempotency. The job id is ``<job_id_prefix><token>`` (the prefix sanitised to
``[A-Za-z0-9_-]``), and the label ``durable_jobs_token`` carries the token too, so a job that only shares the
id (someone else's, or a prefix collision) is never adopted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from durable_jobs.errors import RecordError

SYSTEM = "bigquery"
API = "/bigquery/v2"
TOKEN_LABEL = "durable_jobs_token"
DEFAULT_PREFIX = "airflow_durable_"
#: letters, digits, ``_`` and ``-``, at most 1,024 characters (jobs.insert's jobReference.jobId)
JOB_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,1024}\Z")
#: a project id (6-30 characters), optionally behind a domain (``example.com:my-project``)
PROJECT_RE = re.compile(r"^(?:[a-z][a-z0-9.-]{0,61}[a-z0-9]:)?[a-z][a-z0-9-]{4,61}[a-z0-9]\Z")
#: a location: ``US``, ``EU``, ``europe-west1``...
LOCATION_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,62}\Z")
#: label keys and values (BigQuery's rules: lower case, at most 63 characters)
LABEL_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}\Z")
LABEL_VALUE_RE = re.compile(r"^[a-z0-9_-]{0,63}\Z")
#: the kinds of job a configuration holds (exactly one)
JOB_KINDS = ("query", "load", "extract", "copy")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def sanitise_prefix(prefix: str) -> str:
    """``prefix`` with every character BigQuery refuses in a job id replaced by ``_``."""
    return _UNSAFE.sub("_", prefix)


def _checked(value: Any, pattern: re.Pattern[str], what: str) -> str:
    if type(value) is not str or not pattern.match(value):
        raise RecordError(f"invalid BigQuery {what} {value!r}")
    return value


def validate_project(project: Any) -> str:
    return _checked(project, PROJECT_RE, "project id")


def validate_job_id(job_id: Any) -> str:
    return _checked(job_id, JOB_ID_RE, "job id (letters, digits, _ and -, at most 1,024)")


def validate_location(location: Any) -> str | None:
    return None if location is None else _checked(location, LOCATION_RE, "location")


def _labels(labels: Any, what: str) -> dict[str, str]:
    if not isinstance(labels, Mapping):
        raise ValueError(f"{what} must be a mapping of strings")
    for key, value in labels.items():
        if not (isinstance(key, str) and LABEL_KEY_RE.match(key)):
            raise ValueError(f"{what}: label key {key!r} is not a BigQuery label key (lower case, at most 63)")
        if not (isinstance(value, str) and LABEL_VALUE_RE.match(value)):
            raise ValueError(f"{what}: label {key}={value!r} is not a BigQuery label value (lower case, at most 63)")
        if key == TOKEN_LABEL:
            raise ValueError(f"{what}: the label {TOKEN_LABEL} is set by durable_jobs (one per generation)")
    return dict(labels)


@dataclass(frozen=True)
class BigQueryJobSpec:
    """``jobs.insert``'s ``configuration`` (one of query, load, extract, copy), where, labels and the id's prefix.

    ``labels`` are added to ``configuration.labels``; the job id and the token label are set per generation.
    """

    configuration: Mapping[str, Any]
    location: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    job_id_prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        config = self.configuration
        if not isinstance(config, Mapping):
            raise ValueError(f"configuration must be a mapping (jobs.insert's), not {type(config).__name__}")
        try:
            json.dumps(config)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"configuration must hold JSON values only: {exc}") from None
        kinds = [k for k in JOB_KINDS if k in config]
        if len(kinds) != 1:
            raise ValueError(f"configuration needs exactly one of {', '.join(JOB_KINDS)}; it has {kinds or 'none'}")
        if "jobReference" in config or "jobId" in config:
            raise ValueError("the job id is set by durable_jobs (<job_id_prefix><token>, one per generation)")
        _labels(config.get("labels") or {}, "configuration.labels")
        _labels(self.labels, "labels")
        if self.location is not None and not (isinstance(self.location, str) and LOCATION_RE.match(self.location)):
            raise ValueError(f"location {self.location!r} is not a BigQuery location (US, EU, europe-west1...)")
        if not isinstance(self.job_id_prefix, str) or len(self.job_id_prefix) > 900:
            raise ValueError("job_id_prefix must be a string of at most 900 characters")

    def job_id(self, token: str) -> str:
        return sanitise_prefix(self.job_id_prefix) + token

    def request_body(self, project: str, token: str) -> dict[str, Any]:
        """The ``jobs.insert`` body: the job reference and the configuration with the token's label."""
        config = dict(self.configuration)
        config["labels"] = {**(config.get("labels") or {}), **self.labels, TOKEN_LABEL: token}
        ref: dict[str, Any] = {"projectId": project, "jobId": self.job_id(token)}
        if self.location is not None:
            ref["location"] = self.location
        return {"jobReference": ref, "configuration": config}


def job_url(project: str, location: str | None, job_id: str) -> str:
    """The console's page of a job."""
    return (
        f"https://console.cloud.google.com/bigquery?project={project}"
        f"&j=bq:{location or 'US'}:{job_id}&page=queryresults"
    )


__all__ = [
    "API",
    "DEFAULT_PREFIX",
    "JOB_ID_RE",
    "JOB_KINDS",
    "LOCATION_RE",
    "PROJECT_RE",
    "SYSTEM",
    "TOKEN_LABEL",
    "BigQueryJobSpec",
    "job_url",
    "sanitise_prefix",
    "validate_job_id",
    "validate_location",
    "validate_project",
]
