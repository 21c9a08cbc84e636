"""What to run on YARN: the two application specs, and the id and tag rules they are checked against.

A :class:`YarnApplication` is posted to the RM REST API with an id reserved beforehand; a
:class:`SparkSubmitApplication` goes through spark-submit, which asks for its own id. Both carry the
protocol's token as a YARN tag, which is how a crashed try's application is found again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from durable_jobs.errors import RecordError

APP_ID_RE = re.compile(r"^application_\d+_\d+\Z")
TOKEN_TAG_RE = re.compile(r"^dj[0-9a-f]{20}\Z")
MAX_TAGS = 10  # YarnConfiguration: at most 10 tags of at most 100 ASCII characters each
MAX_TAG_LENGTH = 100


def validate_app_id(app_id: Any) -> str:
    if not isinstance(app_id, str) or len(app_id) > 64 or not APP_ID_RE.match(app_id):
        raise RecordError(f"invalid YARN application id {app_id!r} (expected application_<cluster ts>_<n>)")
    return app_id


def app_id_order(app_id: str) -> tuple[int, ...]:
    return tuple(int(x) for x in app_id.split("_")[1:])


def clean_tags(tags: Sequence[str], token: str | None = None) -> list[str]:
    out: list[str] = [token] if token else []
    for tag in tags:
        t = str(tag).strip().lower()
        if not t:
            continue
        if not t.isascii() or "," in t or len(t) > MAX_TAG_LENGTH:
            raise ValueError(f"YARN tag {tag!r} must be ASCII, without commas, at most {MAX_TAG_LENGTH} characters")
        if t not in out:
            out.append(t)
    if len(out) > MAX_TAGS:
        raise ValueError(f"YARN allows at most {MAX_TAGS} tags per application (one is durable_jobs' token)")
    return out


@dataclass(frozen=True)
class YarnApplication:
    """An ApplicationSubmissionContext for ``POST /ws/v1/cluster/apps``; the id and the token tag are added.

    :param command: the AM container's command (may use ``{{JAVA_HOME}}``, ``<LOG_DIR>``, ``<CPS>``).
    :param local_resources: name -> ``{"resource", "type", "visibility", "size", "timestamp"}``.
    :param extra: further ApplicationSubmissionContext keys, sent as given (e.g. ``am-container-spec``
        parts are not merged: give the whole key), except the id and the tags, which are ours.
    """

    name: str
    command: str
    queue: str | None = None
    memory_mb: int = 1024
    vcores: int = 1
    environment: Mapping[str, str] = field(default_factory=dict)
    local_resources: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    application_type: str | None = None
    tags: Sequence[str] = ()
    max_app_attempts: int | None = None
    priority: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a YARN application needs a name")
        if not self.command or not self.command.strip():
            raise ValueError("a YARN application needs an AM command")
        if self.memory_mb <= 0 or self.vcores <= 0:
            raise ValueError("memory_mb and vcores must be positive")
        if self.max_app_attempts is not None and self.max_app_attempts < 1:
            raise ValueError("max_app_attempts must be at least 1")
        for key in ("application-id", "application-tags"):
            if key in self.extra:
                raise ValueError(f"{key!r} is set by durable_jobs; use the tags parameter for extra tags")
        for name, res in self.local_resources.items():
            if not isinstance(res, Mapping) or not res.get("resource"):
                raise ValueError(f"local resource {name!r} needs at least a 'resource' URL")
        clean_tags(self.tags, "dj00000000000000000000")

    def request_body(self, app_id: str, token: str) -> dict[str, Any]:
        am: dict[str, Any] = {"commands": {"command": self.command}}
        if self.local_resources:
            am["local-resources"] = {
                "entry": [
                    {"key": k, "value": {"type": "FILE", "visibility": "APPLICATION", **dict(v)}}
                    for k, v in self.local_resources.items()
                ]
            }
        if self.environment:
            am["environment"] = {"entry": [{"key": k, "value": str(v)} for k, v in self.environment.items()]}
        body: dict[str, Any] = {
            "application-id": validate_app_id(app_id),
            "application-name": self.name,
            "am-container-spec": am,
            "unmanaged-AM": False,
            "resource": {"memory": self.memory_mb, "vCores": self.vcores},
        }
        if self.queue:
            body["queue"] = self.queue
        if self.priority is not None:
            body["priority"] = self.priority
        if self.max_app_attempts is not None:
            body["max-app-attempts"] = self.max_app_attempts
        if self.application_type:
            body["application-type"] = self.application_type
        body.update(dict(self.extra))
        body["application-tags"] = {"tag": clean_tags(self.tags, token)}
        return body


@dataclass(frozen=True)
class SparkSubmitApplication:
    """A Spark application for ``spark-submit --master yarn --deploy-mode cluster``.

    The token travels in ``spark.yarn.tags``; ``spark.yarn.submit.waitAppCompletion=false`` makes
    spark-submit return once the RM accepted the application, and the trigger tracks it over REST.
    """

    application: str
    main_class: str | None = None
    name: str = "durable-job"
    application_args: Sequence[str] = ()
    conf: Mapping[str, Any] = field(default_factory=dict)
    queue: str | None = None
    py_files: Sequence[str] = ()
    jars: Sequence[str] = ()
    files: Sequence[str] = ()
    archives: Sequence[str] = ()
    tags: Sequence[str] = ()

    def __post_init__(self) -> None:
        if not self.application:
            raise ValueError("application (a jar, .py or .R file, or a URI the cluster can read) is required")
        if not self.is_script and not self.main_class:
            raise ValueError(f"main_class is required for the jar application {self.application!r}")
        fixed = {
            "spark.master": "yarn",
            "spark.submit.deployMode": "cluster",
            "spark.yarn.submit.waitAppCompletion": "false",
        }
        for key, allowed in fixed.items():
            if key in self.conf and str(self.conf[key]).lower() != allowed:
                raise ValueError(
                    f"{key} must be {allowed!r}: durable_jobs submits in YARN cluster mode and tracks over REST"
                )
        clean_tags([*self.tags, *self._conf_tags()], "dj00000000000000000000")

    @property
    def is_script(self) -> bool:
        return self.application.endswith((".py", ".R", ".r"))

    def _conf_tags(self) -> list[str]:
        return [t for t in str(self.conf.get("spark.yarn.tags", "")).split(",") if t.strip()]

    def command(
        self,
        token: str,
        *,
        spark_submit: str = "spark-submit",
        principal: str | None = None,
        keytab: str | None = None,
    ) -> list[str]:
        """The exact argv: fixed options first, then the user's conf (sorted), then ours, which win."""
        argv = [spark_submit, "--master", "yarn", "--deploy-mode", "cluster", "--name", self.name]
        if self.queue:
            argv += ["--queue", self.queue]
        if self.main_class:
            argv += ["--class", self.main_class]
        if principal and keytab:
            argv += ["--principal", principal, "--keytab", keytab]
        for flag, items in (("--py-files", self.py_files), ("--jars", self.jars), ("--files", self.files)):
            if items:
                argv += [flag, ",".join(items)]
        if self.archives:
            argv += ["--archives", ",".join(self.archives)]
        skip = {"spark.master", "spark.submit.deployMode", "spark.yarn.submit.waitAppCompletion", "spark.yarn.tags"}
        for key in sorted(self.conf):
            if key not in skip:
                value = self.conf[key]
                argv += ["--conf", f"{key}={str(value).lower() if isinstance(value, bool) else value}"]
        tags = ",".join(clean_tags([*self._conf_tags(), *self.tags], token))
        argv += ["--conf", "spark.yarn.submit.waitAppCompletion=false", "--conf", f"spark.yarn.tags={tags}"]
        return [*argv, self.application, *(str(a) for a in self.application_args)]


YarnSpec = YarnApplication | SparkSubmitApplication


__all__ = [
    "APP_ID_RE",
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "TOKEN_TAG_RE",
    "SparkSubmitApplication",
    "YarnApplication",
    "YarnSpec",
    "app_id_order",
    "clean_tags",
    "validate_app_id",
]
