"""YARN ResourceManager over its REST API (``/ws/v1/cluster``), and Spark on YARN through spark-submit.

**The id is known before the job exists.** :meth:`YarnClient.reserve` asks ``new-application`` for an
application id; the protocol records it in the intent; only then does :meth:`YarnClient.submit` POST the
ApplicationSubmissionContext with that id. A crash at any point leaves nothing to guess: find is a GET by
id (404 = never submitted), and submitting an id the RM already holds again is a no-op in the RM
(``ClientRMService.submitApplication`` returns early for it). Every application also carries the
protocol's token as a YARN tag: that is how the spark-submit path (which cannot reserve an id) finds what
a crashed try submitted, and how one list request per tick serves every watched application.

What the RM does (Hadoop's ResourceManagerRest.md, ``RMWebServices``, ``GenericExceptionHandler``):

* submit answers 202 with a ``Location`` and no body; kill answers 202 with the current state until the
  kill completes, then 200 (also 200 for an application that had already finished);
* a list that matches nothing is ``{"apps": null}``; tags come back lower-cased and comma-joined;
* errors are ``{"RemoteException": {"exception", "message", "javaClassName"}}``; anything unexpected is
  a 503, so 5xx is transient; a 404 on a stored id is ``LOST`` (confirmed by the poller before acting);
* ``FINISHED`` is not success: only ``FINISHED`` with ``finalStatus`` ``SUCCEEDED`` is;
* HA: a standby RM redirects (307) to the active one, or answers 503 when it knows none;
  ``/ws/v1/cluster/info`` (never redirected) tells ``haState``. The client sticks to the active RM and
  looks for it again after a redirect, a standby 503 or a refused connection.

**Batched polling.** The RM has no "these ids" filter, but ``applicationTags=t1,t2`` matches any of the
tags, in every state (finished ones included), and each watched application carries its own token as a
tag. So :meth:`YarnClient.statuses` lists exactly the watched applications, ``list_batch`` tags per
request (the query stays far below URL limits), and GETs only those the list did not return (a 404
there is what makes an application ``LOST``). Listing by ``states`` or ``startedTimeBegin`` instead
would return every application of the cluster in those states, and would still need a GET per
finished application.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol
from urllib.parse import quote

from durable_jobs.clients.base import JobClient, Locator, locator_key
from durable_jobs.errors import AuthError, PermanentError, RecordError, TransientError
from durable_jobs.status import JobState, JobStatus
from durable_jobs.transport.backoff import Backoff, retrying
from durable_jobs.transport.http import TRANSIENT_STATUSES, Endpoint, HttpResponse, request
from durable_jobs.transport.spnego import KerberosCredentials, SpnegoAuth

log = logging.getLogger(__name__)

SYSTEM = "yarn"
APP_ID_RE = re.compile(r"^application_\d+_\d+$")
TOKEN_TAG_RE = re.compile(r"^dj[0-9a-f]{20}$")
MAX_TAGS = 10  # YarnConfiguration: at most 10 tags of at most 100 ASCII characters each
MAX_TAG_LENGTH = 100
YARN_STATES = ("NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED", "RUNNING", "FINISHED", "FAILED", "KILLED")
ACTIVE_STATES = YARN_STATES[:5]
APPS = "/ws/v1/cluster/apps"
_JSON = {"Accept": "application/json"}
_SUBMITTED_RE = re.compile(r"Submitted application (application_\d+_\d+)")
_SECRET_KEY_RE = re.compile(r"secret|password|token|credential|key", re.IGNORECASE)

_PENDING = {"NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED"}


def normalize(state: str, final_status: str) -> JobState:
    """YARN's (state, finalStatus) as a :class:`JobState`: only FINISHED + SUCCEEDED is success."""
    if state in _PENDING:
        return JobState.PENDING
    if state == "RUNNING":
        return JobState.RUNNING
    if state == "FINISHED":
        if final_status == "SUCCEEDED":
            return JobState.SUCCEEDED
        return JobState.CANCELLED if final_status == "KILLED" else JobState.FAILED
    if state == "FAILED":
        return JobState.FAILED
    if state == "KILLED":
        return JobState.CANCELLED
    return JobState.UNKNOWN


def validate_app_id(app_id: Any) -> str:
    if not isinstance(app_id, str) or len(app_id) > 64 or not APP_ID_RE.match(app_id):
        raise RecordError(f"invalid YARN application id {app_id!r} (expected application_<cluster ts>_<n>)")
    return app_id


def app_tags(app: Mapping[str, Any]) -> set[str]:
    """An application's tags: a comma-joined string in the RM's JSON, compared case-insensitively."""
    raw = app.get("applicationTags") or ""
    items = raw if isinstance(raw, list) else str(raw).split(",")
    return {str(t).strip().lower() for t in items if str(t).strip()}


def status_from_app(app: Mapping[str, Any]) -> JobStatus:
    state = str(app.get("state") or "")
    final = str(app.get("finalStatus") or "")
    extra = {
        k: app[k]
        for k in ("finalStatus", "progress", "user", "queue", "applicationType", "amContainerLogs", "finishedTime")
        if app.get(k) not in (None, "")
    }
    return JobStatus(
        state=normalize(state, final),
        raw_state=f"{state}/{final}" if final else state,
        message=str(app.get("diagnostics") or "").strip()[:4000],
        tracking_url=str(app.get("trackingUrl") or "") or None,
        extra=extra,
    )


def _clean_tags(tags: Sequence[str], token: str | None = None) -> list[str]:
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


# --- what to run -------------------------------------------------------------------------------------------


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
        _clean_tags(self.tags, "dj00000000000000000000")

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
        body["application-tags"] = {"tag": _clean_tags(self.tags, token)}
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
        _clean_tags([*self.tags, *self._conf_tags()], "dj00000000000000000000")

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
        tags = ",".join(_clean_tags([*self._conf_tags(), *self.tags], token))
        argv += ["--conf", "spark.yarn.submit.waitAppCompletion=false", "--conf", f"spark.yarn.tags={tags}"]
        return [*argv, self.application, *(str(a) for a in self.application_args)]


YarnSpec = YarnApplication | SparkSubmitApplication


# --- spark-submit runner ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    output: str  # stdout and stderr together; the tail only


CommandRunner = Callable[[Sequence[str], Mapping[str, str], float], Awaitable[CommandResult]]
_OUTPUT_LIMIT = 64 * 1024


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGKILL the child when the worker dies, so a crashed try leaves no spark-submit running."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


async def run_command(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> CommandResult:
    """Run a command, keep the tail of its output; past ``timeout`` kill it (by its pid) and raise transient."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    tail = bytearray()

    async def drain() -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            tail.extend(chunk)
            del tail[:-_OUTPUT_LIMIT]

    try:
        await asyncio.wait_for(asyncio.gather(drain(), proc.wait()), timeout)
    except asyncio.TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise TransientError(
            f"{argv[0]} did not finish within {timeout:.0f}s and was killed: "
            + bytes(tail[-2000:]).decode(errors="replace")
        ) from None
    return CommandResult(int(proc.returncode or 0), bytes(tail).decode(errors="replace"))


# --- authentication ----------------------------------------------------------------------------------------


class RequestAuth(Protocol):
    """How requests are authenticated: nothing, Hadoop's simple ``user.name``, or SPNEGO."""

    @property
    def identity(self) -> str: ...

    async def request(
        self,
        endpoint: Endpoint,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        what: str = "request",
    ) -> HttpResponse: ...


@dataclass(frozen=True)
class SimpleAuth:
    """Hadoop's pseudo authentication: ``?user.name=<user>`` on every request (None: anonymous)."""

    user: str | None = None

    @property
    def identity(self) -> str:
        return f"simple:{self.user}" if self.user else ""

    async def request(
        self,
        endpoint: Endpoint,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        what: str = "request",
    ) -> HttpResponse:
        query = {**(params or {}), **({"user.name": self.user} if self.user else {})}
        return await request(
            endpoint, method, path, json_body=json_body, params=query, headers=headers, timeout=timeout, what=what
        )


# --- configuration and client ------------------------------------------------------------------------------


@dataclass(frozen=True)
class YarnConfig:
    """How to reach the RMs and run spark-submit. Nothing here is a secret (a keytab is a path)."""

    rm_urls: tuple[str, ...]
    auth: str = "simple"  # none | simple | kerberos
    user: str | None = None  # simple auth
    kerberos: KerberosCredentials | None = None
    kerberos_service: str = "HTTP"
    kerberos_hostname: str | None = None
    mutual_auth: bool = True
    verify_ssl: bool = True
    ca_file: str | None = None
    timeout: float = 30.0
    list_batch: int = 100  # tags per list request in batched polling
    kill_wait: float = 30.0  # seconds to repeat the kill PUT until the RM answers 200
    spark_submit: str = "spark-submit"
    spark_env: Mapping[str, str] = field(default_factory=dict)  # HADOOP_CONF_DIR, YARN_CONF_DIR, SPARK_HOME
    spark_submit_timeout: float = 900.0

    def __post_init__(self) -> None:
        if not self.rm_urls:
            raise ValueError("at least one ResourceManager URL is required")
        if self.auth not in ("none", "simple", "kerberos"):
            raise ValueError(f"auth must be none, simple or kerberos, not {self.auth!r}")
        if self.auth == "kerberos" and self.kerberos is None:
            object.__setattr__(self, "kerberos", KerberosCredentials())
        if not 1 <= self.list_batch <= 200:
            raise ValueError("list_batch must be between 1 and 200")


def make_auth(config: YarnConfig) -> RequestAuth:
    if config.auth == "kerberos":
        assert config.kerberos is not None
        return SpnegoAuth(
            config.kerberos,
            service=config.kerberos_service,
            hostname=config.kerberos_hostname,
            mutual=config.mutual_auth,
        )
    return SimpleAuth(config.user if config.auth == "simple" else None)


class YarnClient(JobClient[YarnSpec]):
    """One YARN cluster (one or several RMs). Locator: ``{"application_id": ..., "tag": <token>}``."""

    system: ClassVar[str] = SYSTEM

    def __init__(
        self,
        config: YarnConfig,
        *,
        auth: RequestAuth | None = None,
        runner: CommandRunner | None = None,
    ) -> None:
        self.config = config
        self.auth = auth or make_auth(config)
        self.runner: CommandRunner = runner or run_command
        self._rms = [
            Endpoint(
                u,
                verify_ssl=config.verify_ssl,
                ca_file=config.ca_file,
                timeout=config.timeout,
                identity=self.auth.identity,
            )
            for u in config.rm_urls
        ]
        self._active = 0
        self._stale = len(self._rms) > 1  # which RM is active is not known yet
        self._kill_backoff = Backoff(base=0.2, cap=2.0)

    @property
    def key(self) -> Hashable:
        return (self.config.rm_urls, self.auth.identity, self.config.verify_ssl, self.config.ca_file)

    def validate_locator(self, locator: Mapping[str, Any]) -> Locator:
        if not isinstance(locator, Mapping) or not set(locator) <= {"application_id", "tag"}:
            raise RecordError(f"a YARN locator has the fields application_id and tag; got {locator!r}")
        out: Locator = {"application_id": validate_app_id(locator.get("application_id"))}
        tag = locator.get("tag")
        if tag is not None:
            if not isinstance(tag, str) or not TOKEN_TAG_RE.match(tag):
                raise RecordError(f"invalid durable_jobs tag {tag!r} in a YARN locator")
            out["tag"] = tag
        return out

    def describe(self, locator: Locator) -> str:
        return f"YARN application {locator.get('application_id')}"

    @property
    def active_rm(self) -> str:
        return self._rms[self._active].base_url

    # --- HTTP plumbing with HA ------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> HttpResponse:
        """Send to the active RM; on a standby or a refused connection, find the active one and go there."""
        if self._stale:
            await self.discover_active()
        order = [self._active, *(i for i in range(len(self._rms)) if i != self._active)]
        last: TransientError | None = None
        for i in order:
            ep = self._rms[i]
            try:
                resp = await self.auth.request(
                    ep, method, path, json_body=body, params=params, headers=_JSON, what=what
                )
            except TransientError as exc:
                if not exc.connect_failed:
                    raise  # it may have reached the RM: never resend it elsewhere
                last, self._stale = exc, True
                continue
            standby = self._standby(ep, resp)
            if standby is not None:
                log.info("%s: %s", what, standby)
                last = TransientError(f"{what}: {standby}", status=resp.status, retry_after=resp.retry_after())
                self._stale = True
                continue
            self._active = self._index_of(resp.url, default=i)
            self._stale = False
            return resp
        assert last is not None
        raise last

    def _index_of(self, url: str, default: int) -> int:
        for i, ep in enumerate(self._rms):
            if url.startswith(ep.base_url + "/") or url == ep.base_url:
                return i
        return default

    def _standby(self, ep: Endpoint, resp: HttpResponse) -> str | None:
        """Why this answer comes from (or through) a standby RM, or None when it is the active RM's."""
        redirected = not resp.url.startswith(ep.base_url + "/")
        if resp.status in (307, 302, 303):
            return f"{ep.base_url} is a standby RM (redirects to {resp.headers.get('Location', '?')})"
        if redirected and (resp.status in (401, 403) or resp.status >= 500):
            return f"{ep.base_url} is a standby RM; the redirect to {resp.url} was not usable (HTTP {resp.status})"
        if resp.status == 503 and (
            any(k.lower() == "refresh" for k in resp.headers) or "standby" in resp.text[:2000].lower()
        ):
            return f"{ep.base_url} is a standby RM and knows no active one yet (HTTP 503)"
        return None

    async def _ha_state(self, ep: Endpoint) -> str:
        resp = await self.auth.request(ep, "GET", "/ws/v1/cluster/info", headers=_JSON, what="cluster info")
        data = resp.json()
        if resp.status != 200 or not isinstance(data, dict) or not isinstance(data.get("clusterInfo"), dict):
            return f"HTTP {resp.status}"
        return str(data["clusterInfo"].get("haState") or "ACTIVE")  # a non-HA RM reports ACTIVE

    async def discover_active(self) -> str | None:
        """Ask every RM's ``/ws/v1/cluster/info`` for its ``haState``; remember and return the active one."""
        results = await asyncio.gather(*(self._ha_state(ep) for ep in self._rms), return_exceptions=True)
        for i, state in enumerate(results):
            if state == "ACTIVE":
                self._active, self._stale = i, False
                return self._rms[i].base_url
        log.warning(
            "no active ResourceManager among %s: %s",
            [ep.base_url for ep in self._rms],
            ", ".join(str(r) for r in results),
        )
        return None

    # --- RM calls --------------------------------------------------------------------------------------------

    async def cluster_info(self) -> dict[str, Any]:
        resp = await self._call("GET", "/ws/v1/cluster/info", what="cluster info")
        return _json_field(resp, "clusterInfo", "cluster info")

    async def new_application(self) -> str:
        resp = await self._call("POST", f"{APPS}/new-application", what="new-application")
        _check(resp, "new-application", ok=(200,))
        data = resp.json()
        app_id = data.get("application-id") if isinstance(data, dict) else None
        try:
            return validate_app_id(app_id)
        except RecordError as exc:
            raise TransientError(f"new-application: unexpected answer from {resp.url}: {resp.snippet()}") from exc

    async def submit_application(self, body: Mapping[str, Any]) -> str:
        app_id = validate_app_id(body.get("application-id"))
        resp = await self._call("POST", APPS, body=dict(body), what=f"submit {app_id}")
        _check(resp, f"submit {app_id}", ok=(202, 200, 201))
        return app_id

    async def get_app(self, app_id: str) -> dict[str, Any] | None:
        """The application's JSON, or None when the RM answers 404 (it does not know the id)."""
        app_id = validate_app_id(app_id)
        resp = await self._call("GET", f"{APPS}/{quote(app_id)}", what=f"status of {app_id}")
        if resp.status == 404:
            return None
        return _json_field(resp, "app", f"status of {app_id}")

    async def list_apps(
        self,
        *,
        states: Sequence[str] = (),
        tags: Sequence[str] = (),
        types: Sequence[str] = (),
        user: str | None = None,
        queue: str | None = None,
        limit: int | None = None,
        started_time_begin_ms: int | None = None,
    ) -> list[dict[str, Any]]:
        """``GET /ws/v1/cluster/apps`` with filters; ``{"apps": null}`` is an empty list."""
        params: dict[str, str] = {}
        for name, values in (("states", states), ("applicationTags", tags), ("applicationTypes", types)):
            if values:
                params[name] = ",".join(str(v).strip().lower() if name == "applicationTags" else v for v in values)
        for name, value in (("user", user), ("queue", queue), ("limit", limit)):
            if value is not None:
                params[name] = str(value)
        if started_time_begin_ms is not None:
            params["startedTimeBegin"] = str(int(started_time_begin_ms))
        params["deSelects"] = "resourceRequests"
        resp = await self._call("GET", APPS, params=params, what="list applications")
        _check(resp, "list applications", ok=(200,))
        data = resp.json()
        if not isinstance(data, dict) or "apps" not in data:
            raise TransientError(f"list applications: unexpected answer from {resp.url}: {resp.snippet()}")
        apps = data["apps"]
        if apps is None:
            return []
        items = apps.get("app") if isinstance(apps, dict) else None
        if items is None:
            return []
        if not isinstance(items, list):
            items = [items]
        return [a for a in items if isinstance(a, dict)]

    async def kill_app(self, app_id: str) -> tuple[int, str]:
        """One ``PUT .../state {"state":"KILLED"}``: (HTTP status, the state it reports)."""
        app_id = validate_app_id(app_id)
        what = f"kill {app_id}"
        resp = await self._call("PUT", f"{APPS}/{quote(app_id)}/state", body={"state": "KILLED"}, what=what)
        if resp.status == 404:
            return 404, ""
        _check(resp, what, ok=(200, 202))
        data = resp.json()
        return resp.status, str(data.get("state", "")) if isinstance(data, dict) else ""

    # --- the JobClient contract -----------------------------------------------------------------------------

    async def reserve(self, spec: YarnSpec, token: str) -> Locator | None:
        if isinstance(spec, SparkSubmitApplication):
            return None  # spark-submit asks for its own id; the tag finds it
        return {"application_id": await self.new_application(), "tag": token}

    async def submit(self, spec: YarnSpec, token: str, *, reserved: Locator | None = None) -> Locator:
        if isinstance(spec, SparkSubmitApplication):
            return await self._spark_submit(spec, token)
        app_id = validate_app_id(reserved["application_id"]) if reserved else await self.new_application()
        await self.submit_application(spec.request_body(app_id, token))
        return {"application_id": app_id, "tag": token}

    async def status(self, locator: Locator) -> JobStatus:
        app_id = validate_app_id(locator["application_id"])
        app = await retrying(lambda: self.get_app(app_id), attempts=2, what=f"status of {app_id}")
        if app is None:
            return JobStatus(
                state=JobState.LOST,
                raw_state="404",
                message=(
                    f"the ResourceManager does not know {app_id}: it was never submitted, was evicted "
                    "(yarn.resourcemanager.max-completed-applications), or the RM restarted without recovery"
                ),
            )
        return status_from_app(app)

    async def statuses(self, locators: Sequence[Locator]) -> dict[str, JobStatus]:
        """One list request per ``list_batch`` tagged applications; a GET only for what it did not return."""
        tagged = [loc for loc in locators if loc.get("tag")]
        if len(locators) < 2 or not tagged:
            return await super().statuses(locators)
        out: dict[str, JobStatus] = {}
        tags = sorted({str(loc["tag"]) for loc in tagged})
        by_id: dict[str, dict[str, Any]] = {}
        for start in range(0, len(tags), self.config.list_batch):
            try:
                apps = await self.list_apps(tags=tags[start : start + self.config.list_batch])
            except PermanentError as exc:
                log.warning("listing applications by tag was refused (%s); polling them one by one", exc)
                return await super().statuses(locators)
            for app in apps:
                by_id[str(app.get("id"))] = app
        follow_up: list[Locator] = []
        for loc in locators:
            listed = by_id.get(loc["application_id"])
            if listed is not None and (not loc.get("tag") or loc["tag"] in app_tags(listed)):
                out[locator_key(loc)] = status_from_app(listed)
            else:
                follow_up.append(loc)  # not listed: a GET tells LOST (404) from a missing tag
        if follow_up:
            out.update(await super().statuses(follow_up))
        return out

    async def cancel(self, locator: Locator) -> None:
        """PUT KILLED until the RM answers 200 (idempotent: 200 for a finished app, 404 for a forgotten one)."""
        app_id = validate_app_id(locator["application_id"])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.kill_wait
        attempt = 0
        while True:
            status, state = await retrying(lambda: self.kill_app(app_id), attempts=3, what=f"kill {app_id}")
            if status == 404:
                log.info("%s is unknown to the ResourceManager: nothing to kill", app_id)
                return
            if status == 200:
                log.info("%s is %s", app_id, state or "stopped")
                return
            if loop.time() >= deadline:
                log.warning(
                    "%s: the kill was accepted but it is still %s after %.0fs", app_id, state, self.config.kill_wait
                )
                return
            await asyncio.sleep(self._kill_backoff.delay(attempt))
            attempt += 1

    async def find(
        self, token: str, *, since: float, spec: YarnSpec, reserved: Locator | None = None
    ) -> Locator | None:
        if reserved is not None:
            app_id = validate_app_id(reserved["application_id"])
            app = await self.get_app(app_id)
            if app is None:
                return None  # the id was reserved but never submitted
            if token not in app_tags(app):
                raise PermanentError(
                    f"{app_id} was reserved for token {token} but the application carries tags "
                    f"{sorted(app_tags(app))}; refusing to adopt it"
                )
            return {"application_id": app_id, "tag": token}
        return await self._find_by_tag(token)

    async def _find_by_tag(self, token: str) -> Locator | None:
        apps = [a for a in await self.list_apps(tags=[token]) if token in app_tags(a)]
        ids = []
        for app in apps:
            try:
                ids.append(validate_app_id(app.get("id")))
            except RecordError:
                log.warning("ignoring an application with a malformed id: %r", app.get("id"))
        if not ids:
            return None
        ids.sort(key=lambda a: tuple(int(x) for x in a.split("_")[1:]))
        if len(ids) > 1:
            log.warning("several applications carry tag %s: %s; adopting the first", token, ids)
        return {"application_id": ids[0], "tag": token}

    async def links(self, locator: Locator) -> dict[str, str]:
        app_id = validate_app_id(locator["application_id"])
        out = {"rm_app_url": f"{self.active_rm}/cluster/app/{app_id}"}
        try:
            app = await self.get_app(app_id)
        except (TransientError, PermanentError):
            return out
        if app and app.get("trackingUrl"):
            out["tracking_url"] = str(app["trackingUrl"])
        return out

    # --- spark-submit ----------------------------------------------------------------------------------------

    def spark_submit_command(self, spec: SparkSubmitApplication, token: str) -> list[str]:
        kerberos = self.config.kerberos if self.config.auth == "kerberos" else None
        return spec.command(
            token,
            spark_submit=self.config.spark_submit,
            principal=kerberos.principal if kerberos and kerberos.keytab else None,
            keytab=kerberos.keytab if kerberos else None,
        )

    def spark_submit_env(self) -> dict[str, str]:
        env = {**os.environ, **self.config.spark_env}
        kerberos = self.config.kerberos if self.config.auth == "kerberos" else None
        if kerberos is not None and kerberos.ccache:
            env["KRB5CCNAME"] = kerberos.ccache
        if self.config.auth == "simple" and self.config.user:
            env.setdefault("HADOOP_USER_NAME", self.config.user)
        return env

    async def _spark_submit(self, spec: SparkSubmitApplication, token: str) -> Locator:
        argv = self.spark_submit_command(spec, token)
        log.info("Running %s", " ".join(_redact(argv)))
        try:
            result = await self.runner(argv, self.spark_submit_env(), self.config.spark_submit_timeout)
        except OSError as exc:
            raise PermanentError(f"cannot run {argv[0]}: {exc}") from exc
        except TransientError:
            # killed after a timeout: it may have got as far as the RM
            found = await self._find_by_tag(token)
            if found is not None:
                return found
            raise
        # the RM is the authority: whatever spark-submit printed, the application carrying the tag is ours
        found = await self._find_by_tag(token)
        if found is not None:
            return found
        tail = result.output[-3000:]
        parsed = _SUBMITTED_RE.findall(result.output)
        if result.returncode != 0:
            raise PermanentError(
                f"spark-submit exited with code {result.returncode}; no application carries "
                f"tag {token}. Output:\n{tail}"
            )
        raise PermanentError(
            f"spark-submit exited 0{' and reported ' + parsed[-1] if parsed else ''}, but no application on "
            f"{', '.join(self.config.rm_urls)} carries tag {token}: do spark-submit's HADOOP_CONF_DIR/"
            "YARN_CONF_DIR point at the ResourceManagers of this connection?"
        )


def _redact(argv: Sequence[str]) -> list[str]:
    out = []
    for arg in argv:
        key, sep, _ = arg.partition("=")
        out.append(f"{key}=***" if sep and _SECRET_KEY_RE.search(key) else arg)
    return out


def _remote_error(resp: HttpResponse) -> str:
    data = resp.json()
    remote = data.get("RemoteException") if isinstance(data, dict) else None
    if isinstance(remote, dict):
        name = str(remote.get("exception") or "")
        return f"{name}: {remote.get('message', '')}" if name else str(remote.get("message", ""))
    return resp.snippet()


def _check(resp: HttpResponse, what: str, ok: tuple[int, ...]) -> None:
    """Raise the right error class for an RM answer that is not one of ``ok``."""
    if resp.status in ok:
        return
    detail = f"{what}: HTTP {resp.status} from {resp.url}: {_remote_error(resp)}"
    if resp.status in (401, 403):
        raise AuthError(detail, status=resp.status)
    if resp.status in TRANSIENT_STATUSES or resp.status >= 500:
        raise TransientError(detail, retry_after=resp.retry_after(), status=resp.status)
    raise PermanentError(detail, status=resp.status)


def _json_field(resp: HttpResponse, name: str, what: str) -> dict[str, Any]:
    _check(resp, what, ok=(200,))
    data = resp.json()
    if not isinstance(data, dict) or not isinstance(data.get(name), dict):
        # a 200 that is not the RM's JSON (a proxy's login page, a truncated body): try again later
        raise TransientError(f"{what}: unexpected answer from {resp.url}: {resp.snippet()}")
    return dict(data[name])


__all__ = [
    "SYSTEM",
    "CommandResult",
    "KerberosCredentials",
    "SimpleAuth",
    "SparkSubmitApplication",
    "YarnApplication",
    "YarnClient",
    "YarnConfig",
    "normalize",
    "run_command",
    "status_from_app",
    "validate_app_id",
]
