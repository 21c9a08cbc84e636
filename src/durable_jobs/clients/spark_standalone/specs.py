"""What to run on a Spark standalone cluster: :class:`SparkApplication`, its request body, the driver id rule.

A driver is created by one ``CreateSubmissionRequest``; the body carries the protocol's token twice (as
:data:`TOKEN_PROPERTY` and in ``spark.app.name``), which is how find recognises a crashed try's driver.
``spark.driver.supervise=true`` makes a failing driver relaunch forever while its state stays RUNNING, so
it is refused here and forced off in the body.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from durable_jobs.errors import RecordError

#: written into every stored record: permanent (see :attr:`durable_jobs.clients.base.JobClient.system`)
SYSTEM = "spark-standalone"
# Not named "...token": Spark redacts properties matching spark.redaction.regex (secret|password|token|...)
# in the driver's launch command, which is where find reads it back.
TOKEN_PROPERTY = "spark.durable_jobs.submission_tag"
PYTHON_RUNNER = "org.apache.spark.deploy.PythonRunner"
CLIENT_SPARK_VERSION = "4.3.0"
# Spark's default is driver-<yyyyMMddHHmmss>-<counter>; spark.deploy.driverIdPattern may change it,
# so accept any id made of URL-safe characters and nothing else.
DRIVER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")


def validate_driver_id(driver_id: Any) -> str:
    if not isinstance(driver_id, str) or not DRIVER_ID_RE.match(driver_id):
        raise RecordError(f"invalid Spark driver id {driver_id!r}")
    return driver_id


@dataclass(frozen=True)
class SparkApplication:
    """A driver to run in cluster mode: a jar with a main class, or a Python script."""

    app_resource: str
    main_class: str | None = None
    name: str = "durable-job"
    app_args: Sequence[str] = ()
    conf: Mapping[str, Any] = field(default_factory=dict)
    py_files: Sequence[str] = ()
    environment: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.app_resource:
            raise ValueError("app_resource is required (a file: URI or absolute path readable by the workers)")
        if not self.is_python and not self.main_class:
            raise ValueError(f"main_class is required for the jar application {self.app_resource!r}")
        supervise = str(self.conf.get("spark.driver.supervise", "false")).lower()
        if supervise != "false":
            raise ValueError(
                "spark.driver.supervise must be false: a supervised driver that fails is relaunched forever and "
                "its state stays RUNNING, so the job could never be seen to fail. Use task retries instead."
            )
        if TOKEN_PROPERTY in self.conf:
            raise ValueError(f"{TOKEN_PROPERTY} is set by durable_jobs; do not set it yourself")

    @property
    def is_python(self) -> bool:
        return self.app_resource.endswith(".py")

    @property
    def effective_main_class(self) -> str:
        return PYTHON_RUNNER if self.is_python else str(self.main_class)

    def request_body(self, token: str, master_url: str) -> dict[str, Any]:
        props = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in self.conf.items()}
        props.update(
            {
                "spark.master": master_url,
                "spark.app.name": f"{self.name} [{token}]",
                "spark.submit.deployMode": "cluster",
                "spark.driver.supervise": "false",
                TOKEN_PROPERTY: token,
            }
        )
        args = [str(a) for a in self.app_args]
        if self.is_python:
            script = _plain_path(self.app_resource)
            py_files = ",".join(_plain_path(p) for p in self.py_files)
            args = [script, py_files, *args]
            if py_files:
                props["spark.submit.pyFiles"] = py_files
        else:
            props.setdefault("spark.jars", self.app_resource)
        return {
            "action": "CreateSubmissionRequest",
            "appResource": self.app_resource,
            "mainClass": self.effective_main_class,
            "appArgs": args,
            "clientSparkVersion": CLIENT_SPARK_VERSION,
            "environmentVariables": {"SPARK_ENV_LOADED": "1", **dict(self.environment)},
            "sparkProperties": props,
        }


def _plain_path(uri: str) -> str:
    return uri[len("file:") :] if uri.startswith("file:") else uri


__all__ = [
    "CLIENT_SPARK_VERSION",
    "DRIVER_ID_RE",
    "PYTHON_RUNNER",
    "SYSTEM",
    "TOKEN_PROPERTY",
    "SparkApplication",
    "validate_driver_id",
]
