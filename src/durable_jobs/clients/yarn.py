"""YARN ResourceManager over its REST API (``/ws/v1/cluster``), and Spark on YARN through spark-submit.

**The id is known before the job exists.** :meth:`YarnClient.reserve` asks ``new-application`` for an
application id; the protocol records it in the intent; only then does :meth:`YarnClient.submit` POST the
ApplicationSubmissionContext with that id. A crash at any point leaves nothing to guess: find is a GET by
id (404 = never submitted, confirmed by the list by tag), and submitting an id the RM already holds again
is a no-op in the RM (``ClientRMService.submitApplication`` returns early for it). Every application also
carries the protocol's token as a YARN tag: that is how the spark-submit path (which cannot reserve an id)
finds what a crashed try submitted, and how one list request per tick serves every watched application.

What the RM does (Hadoop's ResourceManagerRest.md, ``RMWebServices``, ``GenericExceptionHandler``):

* submit answers 202 with a ``Location`` and no body; kill answers 202 with the current state until the
  kill completes, then 200 (also 200 for an application that had already finished);
* a list that matches nothing is ``{"apps": null}``; tags come back lower-cased and comma-joined; some
  versions give a single application as an object instead of a one-element array;
* errors are ``{"RemoteException": {"exception", "message", "javaClassName"}}``; anything unexpected is
  a 503, so 5xx is transient;
* ``FINISHED`` is not success: only ``FINISHED`` with ``finalStatus`` ``SUCCEEDED`` is;
* HA: a standby RM redirects (307) to the active one, or answers 503 when it knows none;
  ``/ws/v1/cluster/info`` (never redirected) tells ``haState``. The transport follows a standby's
  redirect of a ``GET`` to the same path on another RM of the connection (``redirect_hosts``) and
  nothing else; a write (new-application, submit, kill) is never re-sent on a redirect: the client moves
  to the next RM itself, and looks for the active one again.

**Bad answers** (the design's §4). Every answer is decoded against the :mod:`msgspec` schemas below,
which declare only the fields read. A wrong type, a truncated, empty, HTML or oversized body is
*malformed*: unknown for the job it concerns, never lost, failed or permanent. **Lost** needs the RM's
documented not-found answer to the GET (404 + ``RemoteException`` ``NotFoundException``) *and* the list
by the application's tag not returning it (an application without a tag is looked up among the
finished applications the RM still holds); an application the list still shows is reported as the list
shows it (FINISHED/SUCCEEDED is success), and a list that cannot be read leaves it unknown.

**Batched polling.** The RM has no "these ids" filter, but ``applicationTags=t1,t2`` matches any of the
tags, in every state (finished ones included), and each watched application carries its own token as a
tag. So :meth:`YarnClient.statuses` lists exactly the watched applications, ``list_batch`` tags per
request (the query stays far below URL limits), and GETs only those the list did not return (at most
``status_concurrency`` per poll). An entry of the list that cannot be read makes that application
unknown, nothing else; a list that fails makes the poll ask at most ``status_concurrency`` applications
one by one (:meth:`~durable_jobs.clients.base.JobClient.fallback_statuses`), never one request per job.
Big lists are decoded in slices, giving the event loop a turn between them.
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
from collections.abc import Awaitable, Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import quote

import msgspec

from durable_jobs.clients.base import JobClient, Locator, locator_key
from durable_jobs.decoding import convert, decode_json
from durable_jobs.errors import (
    AuthError,
    DurableJobError,
    MalformedAnswer,
    PermanentError,
    RecordError,
    RedirectRefused,
    TransientError,
)
from durable_jobs.messages import MESSAGE_LIMIT, cut
from durable_jobs.status import URL_LIMIT, JobState, JobStatus
from durable_jobs.transport.auth import SimpleAuth
from durable_jobs.transport.backoff import Backoff, retrying
from durable_jobs.transport.base import TRANSIENT_STATUSES, Auth, Response
from durable_jobs.transport.http import DEFAULT_MAX_BODY, Endpoint, request
from durable_jobs.transport.spnego import KerberosCredentials, SpnegoAuth

log = logging.getLogger(__name__)

SYSTEM = "yarn"
APP_ID_RE = re.compile(r"^application_\d+_\d+$")
TOKEN_TAG_RE = re.compile(r"^dj[0-9a-f]{20}$")
MAX_TAGS = 10  # YarnConfiguration: at most 10 tags of at most 100 ASCII characters each
MAX_TAG_LENGTH = 100
YARN_STATES = ("NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED", "RUNNING", "FINISHED", "FAILED", "KILLED")
ACTIVE_STATES = YARN_STATES[:5]
FINISHED_STATES = ("FINISHED", "FAILED", "KILLED")
APPS = "/ws/v1/cluster/apps"
_JSON = {"Accept": "application/json"}
_SUBMITTED_RE = re.compile(r"Submitted application (application_\d+_\d+)")
_SECRET_KEY_RE = re.compile(r"secret|password|token|credential|key", re.IGNORECASE)
_NOT_FOUND_RE = re.compile(r"not found|doesn't exist|does not exist", re.IGNORECASE)

_PENDING = {"NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED"}
# FinalApplicationStatus values that end a FINISHED application without success
_FINISHED_BADLY = {"FAILED": JobState.FAILED, "UNDEFINED": JobState.FAILED, "ENDED": JobState.FAILED}
# a big list is decoded this many bytes of entries at a time, the loop getting a turn in between (~2 ms each)
_SLICE_BYTES = 1 << 20
# locators handled between two turns of the loop when many are watched
_LOOP_SLICE = 1000


def normalize(state: str, final_status: str) -> JobState:
    """YARN's (state, finalStatus) as a :class:`JobState`: only FINISHED + SUCCEEDED is success.

    A state or a final status YARN does not define is UNKNOWN (never FAILED).
    """
    if state in _PENDING:
        return JobState.PENDING
    if state == "RUNNING":
        return JobState.RUNNING
    if state == "FINISHED":
        if final_status == "SUCCEEDED":
            return JobState.SUCCEEDED
        if final_status == "KILLED":
            return JobState.CANCELLED
        return _FINISHED_BADLY.get(final_status, JobState.UNKNOWN)
    if state == "FAILED":
        return JobState.FAILED
    if state == "KILLED":
        return JobState.CANCELLED
    return JobState.UNKNOWN


def validate_app_id(app_id: Any) -> str:
    if not isinstance(app_id, str) or len(app_id) > 64 or not APP_ID_RE.match(app_id):
        raise RecordError(f"invalid YARN application id {app_id!r} (expected application_<cluster ts>_<n>)")
    return app_id


def _app_id_order(app_id: str) -> tuple[int, ...]:
    return tuple(int(x) for x in app_id.split("_")[1:])


# --- the RM's answers, typed ----------------------------------------------------------------------------------
#
# Only the fields that are read are declared (the others are skipped, not built). A bool is not a string,
# a number is not a string: anything else than what is declared makes the answer malformed.


class AppInfo(msgspec.Struct, gc=False):
    """An application as the RM reports it (``{"app": {...}}``, or an entry of a list)."""

    id: str
    state: str
    finalStatus: str = ""
    diagnostics: str | None = None
    trackingUrl: str | None = None
    applicationTags: str | list[str] | None = None  # a comma-joined string; a list in some builds
    user: str | None = None
    queue: str | None = None
    applicationType: str | None = None
    amContainerLogs: str | None = None
    progress: float | None = None
    finishedTime: int | None = None

    @property
    def tags(self) -> set[str]:
        """The tags, compared case-insensitively (the RM lower-cases them at submission)."""
        raw = self.applicationTags or ""
        items = raw.split(",") if isinstance(raw, str) else raw
        return {t.strip().lower() for t in items if t.strip()}


class _AppAnswer(msgspec.Struct, gc=False):
    app: AppInfo


class _AppsBody(msgspec.Struct, gc=False):
    app: list[msgspec.Raw] | None = None


class _AppsAnswer(msgspec.Struct, gc=False):
    apps: _AppsBody | None  # required: {"apps": null} is an empty list, {} is not an answer


class _OneAppBody(msgspec.Struct, gc=False):
    app: msgspec.Raw


class _OneAppAnswer(msgspec.Struct, gc=False):
    apps: _OneAppBody


class _AppId(msgspec.Struct, gc=False):
    id: str


class RemoteExceptionInfo(msgspec.Struct, gc=False):
    """``GenericExceptionHandler``'s error body."""

    exception: str = ""
    message: str = ""
    javaClassName: str = ""


class _RemoteError(msgspec.Struct, gc=False):
    RemoteException: RemoteExceptionInfo


class _NewApplication(msgspec.Struct, gc=False):
    application_id: str = msgspec.field(name="application-id")


class ClusterInfo(msgspec.Struct, gc=False):
    """``/ws/v1/cluster/info``: a non-HA RM reports ``ACTIVE`` too."""

    haState: str = "ACTIVE"
    state: str | None = None
    id: int | None = None
    startedOn: int | None = None
    resourceManagerVersion: str | None = None
    hadoopVersion: str | None = None


class _ClusterInfoAnswer(msgspec.Struct, gc=False):
    clusterInfo: ClusterInfo


class _AppState(msgspec.Struct, gc=False):
    state: str


_ENTRY = msgspec.json.Decoder(AppInfo)
_ENTRY_ID = msgspec.json.Decoder(_AppId)
_UNREADABLE = (msgspec.ValidationError, msgspec.DecodeError, RecursionError)


def decode_app(body: bytes, app_id: str, *, what: str) -> AppInfo:
    """``{"app": {...}}`` about ``app_id``; an answer about another application is malformed."""
    app = decode_json(body, _AppAnswer, what=what).app
    if app.id != app_id:
        raise MalformedAnswer(f"{what}: the answer is about {cut(app.id, 80)!r}, not {app_id}")
    return app


def remote_exception(body: bytes) -> RemoteExceptionInfo | None:
    """The ``RemoteException`` of an error body, or None when the body is not one."""
    try:
        return msgspec.json.decode(body, type=_RemoteError).RemoteException
    except _UNREADABLE:
        return None


def is_not_found(status: int, body: bytes) -> bool:
    """The RM's documented "no such application": HTTP 404 with a ``RemoteException`` that is a
    ``NotFoundException`` (or says the application "doesn't exist"). A proxy's 404 page, an empty 404 or
    another exception is not: it proves nothing about the application."""
    if status != 404:
        return False
    err = remote_exception(body)
    if err is None:
        return False
    return (
        "NotFoundException" in err.exception
        or err.javaClassName.endswith("NotFoundException")
        or bool(_NOT_FOUND_RE.search(err.message[:1000]))
    )


def decode_new_application(body: bytes, *, what: str) -> str:
    app_id = decode_json(body, _NewApplication, what=what).application_id
    try:
        return validate_app_id(app_id)
    except RecordError as exc:
        raise MalformedAnswer(f"{what}: {exc}") from None


def decode_cluster_info(body: bytes, *, what: str) -> ClusterInfo:
    return decode_json(body, _ClusterInfoAnswer, what=what).clusterInfo


def decode_app_state(body: bytes, *, what: str) -> str:
    return decode_json(body, _AppState, what=what).state


@dataclass(slots=True)
class AppListing:
    """A list answer, entry by entry: one entry that cannot be read touches its own application only."""

    apps: dict[str, AppInfo] = field(default_factory=dict)
    malformed: dict[str, str] = field(default_factory=dict)  # application id -> why its entry is unreadable
    unreadable: int = 0  # entries whose id could not be read either

    @property
    def complete(self) -> bool:
        """Every entry was read: an application missing from it is really not listed."""
        return self.unreadable == 0


def listing_entries(body: bytes, *, what: str) -> list[msgspec.Raw]:
    """The raw entries of ``{"apps": {"app": [...]}}`` (``{"apps": null}``: none; a single object: one)."""
    try:
        apps = msgspec.json.decode(body, type=_AppsAnswer).apps
    except msgspec.ValidationError as exc:
        try:
            return [msgspec.json.decode(body, type=_OneAppAnswer).apps.app]
        except _UNREADABLE:
            raise MalformedAnswer(f"{what}: the answer does not match its schema ({exc})") from None
    except (msgspec.DecodeError, RecursionError):
        decode_json(body, _AppsAnswer, what=what)  # raises MalformedAnswer with the reason
        raise AssertionError("unreachable") from None
    if apps is None or apps.app is None:
        return []
    return apps.app


def _read_entries(entries: list[msgspec.Raw], listing: AppListing, what: str) -> Iterator[None]:
    """Decode the entries into ``listing``, yielding after every ``_SLICE_BYTES`` of them."""
    done = 0
    for raw in entries:
        done += len(raw)
        try:
            app = _ENTRY.decode(raw)
        except _UNREADABLE as exc:
            try:
                app_id = _ENTRY_ID.decode(raw).id
            except _UNREADABLE:
                listing.unreadable += 1
            else:
                listing.apps.pop(app_id, None)
                listing.malformed[app_id] = (
                    f"{what}: the entry of {cut(app_id, 80)} is malformed ({cut(str(exc), 300)})"
                )
        else:
            prev = listing.apps.get(app.id)
            if app.id in listing.malformed:
                pass
            elif prev is not None and (prev.state, prev.finalStatus) != (app.state, app.finalStatus):
                del listing.apps[app.id]
                listing.malformed[app.id] = f"{what}: {cut(app.id, 80)} is listed twice, in different states"
            else:
                listing.apps[app.id] = app
        if done >= _SLICE_BYTES:
            done = 0
            yield


def decode_listing(body: bytes, *, what: str) -> AppListing:
    """A list answer, decoded at once (small answers, tests)."""
    listing = AppListing()
    for _ in _read_entries(listing_entries(body, what=what), listing, what):
        pass
    return listing


async def adecode_listing(body: bytes, *, what: str) -> AppListing:
    """A list answer, decoded in slices: a list of 10,000 applications never holds the loop for long."""
    if len(body) <= _SLICE_BYTES:
        return decode_listing(body, what=what)
    await asyncio.sleep(0)  # the transport just joined the body: a turn for the loop before the first pass
    entries = listing_entries(body, what=what)
    await asyncio.sleep(0)
    listing = AppListing()
    for _ in _read_entries(entries, listing, what):
        await asyncio.sleep(0)
    return listing


def app_tags(app: AppInfo | Mapping[str, Any]) -> set[str]:
    """An application's tags: a comma-joined string in the RM's JSON, compared case-insensitively."""
    if isinstance(app, AppInfo):
        return app.tags
    raw = app.get("applicationTags") or ""
    items = raw if isinstance(raw, list) else str(raw).split(",")
    return {str(t).strip().lower() for t in items if str(t).strip()}


def _safe_url(url: str | None) -> str | None:
    """A tracking URL worth showing: http(s), bounded, no whitespace (else None)."""
    if not url or len(url) > URL_LIMIT or not url.startswith(("http://", "https://")):
        return None
    return None if any(c.isspace() or ord(c) < 32 for c in url) else url


def status_from_app(app: AppInfo | Mapping[str, Any]) -> JobStatus:
    """The status an application's report shows (a mapping is checked against :class:`AppInfo` first)."""
    if not isinstance(app, AppInfo):
        app = convert(dict(app), AppInfo, what="application")
    state, final = app.state, app.finalStatus
    extra = {
        k: v
        for k, v in (
            ("finalStatus", final),
            ("progress", app.progress),
            ("user", app.user),
            ("queue", app.queue),
            ("applicationType", app.applicationType),
            ("amContainerLogs", app.amContainerLogs),
            ("finishedTime", app.finishedTime),
        )
        if v is not None and v != ""
    }
    return JobStatus(
        state=normalize(state, final),
        raw_state=f"{state}/{final}" if final else state,
        message=(app.diagnostics or "")[: 2 * MESSAGE_LIMIT].strip(),
        tracking_url=_safe_url(app.trackingUrl),
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
    max_body: int = DEFAULT_MAX_BODY  # the largest answer read (connection extra max_response_bytes)
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
        if self.max_body <= 0:
            raise ValueError("max_response_bytes must be positive")


def make_auth(config: YarnConfig) -> Auth:
    """SPNEGO for ``kerberos``, Hadoop's ``?user.name=`` for ``simple``, nothing for ``none``."""
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
        auth: Auth | None = None,
        runner: CommandRunner | None = None,
    ) -> None:
        self.config = config
        self.auth: Auth = auth or make_auth(config)
        self.runner: CommandRunner = runner or run_command
        self._rms = [
            Endpoint(
                u,
                verify_ssl=config.verify_ssl,
                ca_file=config.ca_file,
                timeout=config.timeout,
                identity=self.auth.identity,
                max_body=config.max_body,
                redirect_hosts=tuple(h for h in config.rm_urls if h != u),  # HA peers: a standby's GET redirect
            )
            for u in config.rm_urls
        ]
        self._active = 0
        self._stale = len(self._rms) > 1  # which RM is active is not known yet
        self._kill_backoff = Backoff(base=0.2, cap=2.0)
        self._follow_cursor = 0

    @property
    def key(self) -> Hashable:
        """The RMs and who we are, never a credential: a keytab replaced at the same path or a new simple-auth
        user keeps the key, so the running poller takes the new client (refetch) instead of starting another."""
        kerberos = self.config.kerberos if self.config.auth == "kerberos" else None
        who = kerberos.identity if kerberos is not None else self.config.auth
        return (SYSTEM, self.config.rm_urls, self.config.verify_ssl, self.config.ca_file, who)

    @property
    def endpoint_name(self) -> str:
        return "ResourceManager " + ",".join(self.config.rm_urls)

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

    def locator_matches_token(self, locator: Locator, token: str) -> bool:
        """The application's tag is the token it was submitted with."""
        tag = locator.get("tag")
        return tag is None or tag == token

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
    ) -> Response:
        """Send to the active RM; on a standby, a refused redirect or a refused connection, go to the next RM.

        A GET redirected by a standby to the same path on another RM of the connection is followed by the
        transport; a write is never re-sent on a redirect (:class:`RedirectRefused`): the standby did not act
        on it, so it goes to the next RM from here, and an RM that may have received it is never asked again.
        """
        if self._stale and len(self._rms) > 1:
            await self.discover_active()
        order = [self._active, *(i for i in range(len(self._rms)) if i != self._active)]
        last: TransientError | None = None
        for i in order:
            ep = self._rms[i]
            try:
                resp = await request(
                    ep, method, path, json_body=body, params=params, headers=_JSON, what=what, auth=self.auth
                )
            except TransientError as exc:
                if not exc.connect_failed:
                    raise  # it may have reached the RM: never resend it elsewhere
                last, self._stale = exc, True
                continue
            standby = self._standby(ep, resp)
            if standby is not None:
                log.info("%s: %s", what, standby)
                last = TransientError(
                    f"{what}: {standby}", status=resp.status, retry_after=resp.retry_after(), connect_failed=True
                )
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

    def _standby(self, ep: Endpoint, resp: Response) -> str | None:
        """Why this answer comes from (or through) a standby RM, or None when it is the active RM's."""
        redirected = not (resp.url == ep.base_url or resp.url.startswith(ep.base_url + "/"))
        if redirected and (resp.status in (401, 403) or resp.status >= 500):
            return f"{ep.base_url} is a standby RM; the redirect to {resp.url} was not usable (HTTP {resp.status})"
        if resp.status == 503 and (
            any(str(k).lower() == "refresh" for k in resp.headers) or b"standby" in resp.body[:2000].lower()
        ):
            return f"{ep.base_url} is a standby RM and knows no active one yet (HTTP 503)"
        return None

    async def _ha_state(self, ep: Endpoint) -> str:
        resp = await request(ep, "GET", "/ws/v1/cluster/info", headers=_JSON, what="cluster info", auth=self.auth)
        if resp.status != 200:
            return f"HTTP {resp.status}"
        return decode_cluster_info(resp.body, what=f"cluster info of {ep.base_url}").haState

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
            ", ".join(cut(str(r), 300) for r in results),
        )
        return None

    # --- RM calls --------------------------------------------------------------------------------------------

    async def cluster_info(self) -> dict[str, Any]:
        resp = await self._call("GET", "/ws/v1/cluster/info", what="cluster info")
        _check(resp, "cluster info", ok=(200,))
        return msgspec.structs.asdict(decode_cluster_info(resp.body, what="cluster info"))

    async def new_application(self) -> str:
        resp = await self._call("POST", f"{APPS}/new-application", what="new-application")
        _check(resp, "new-application", ok=(200,))
        return decode_new_application(resp.body, what=f"new-application (HTTP {resp.status} from {resp.url})")

    async def submit_application(self, body: Mapping[str, Any]) -> str:
        app_id = validate_app_id(body.get("application-id"))
        what = f"submit {app_id}"
        resp = await self._call("POST", APPS, body=dict(body), what=what)
        _check(resp, what, ok=(202, 200, 201))
        if resp.status != 202 and resp.body.strip() and not resp.looks_like_json():
            # the RM answers 202 without a body: a 200 page (a proxy's login form) is not its acceptance
            raise MalformedAnswer(
                f"{what}: HTTP {resp.status} from {resp.url} is not the RM's answer: {resp.snippet()}"
            )
        return app_id  # the id is ours (reserved); nothing the answer says replaces it

    async def get_app(self, app_id: str) -> AppInfo | None:
        """The application's report, or None on the RM's documented not-found answer (404 NotFoundException).

        Any other failure raises: an unexpected 4xx or 404, a 5xx or a malformed answer is transient (it says
        nothing about the application), 401/403 is an :class:`AuthError`.
        """
        app_id = validate_app_id(app_id)
        what = f"status of {app_id}"
        resp = await self._call("GET", f"{APPS}/{quote(app_id)}", what=what)
        if resp.status == 200:
            return decode_app(resp.body, app_id, what=what)
        if is_not_found(resp.status, resp.body):
            return None
        _check(resp, what, ok=())
        raise AssertionError("unreachable")

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
    ) -> list[AppInfo]:
        """``GET /ws/v1/cluster/apps`` with filters; ``{"apps": null}`` is an empty list. Unreadable entries are
        left out (see :class:`AppListing` for the whole answer)."""
        listing = await self._list(
            states=states,
            tags=tags,
            types=types,
            user=user,
            queue=queue,
            limit=limit,
            started_time_begin_ms=started_time_begin_ms,
        )
        if listing.malformed or listing.unreadable:
            log.warning("list applications: %d entries could not be read", len(listing.malformed) + listing.unreadable)
        return list(listing.apps.values())

    async def _list(
        self,
        *,
        states: Sequence[str] = (),
        tags: Sequence[str] = (),
        types: Sequence[str] = (),
        user: str | None = None,
        queue: str | None = None,
        limit: int | None = None,
        started_time_begin_ms: int | None = None,
        what: str = "list applications",
    ) -> AppListing:
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
        resp = await self._call("GET", APPS, params=params, what=what)
        _check(resp, what, ok=(200,))
        return await adecode_listing(resp.body, what=f"{what} (HTTP {resp.status} from {resp.url})")

    async def kill_app(self, app_id: str) -> tuple[int, str]:
        """One ``PUT .../state {"state":"KILLED"}``: (HTTP status, the state it reports); 404 when unknown."""
        app_id = validate_app_id(app_id)
        what = f"kill {app_id}"
        resp = await self._call("PUT", f"{APPS}/{quote(app_id)}/state", body={"state": "KILLED"}, what=what)
        if is_not_found(resp.status, resp.body):
            return 404, ""
        if resp.status == 404:
            raise TransientError(f"{what}: HTTP 404 from {resp.url} that is not the RM's: {resp.snippet()}", status=404)
        _check(resp, what, ok=(200, 202))
        try:
            state = decode_app_state(resp.body, what=f"{what} (HTTP {resp.status} from {resp.url})")
        except MalformedAnswer:
            if resp.status == 200:
                raise  # "done" is believed only from an answer that reads as the RM's
            state = ""  # accepted (202): the state it reports is only informative
        return resp.status, state

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
        """GET the application; on the RM's not-found answer, ask the second source before saying LOST."""
        app_id = validate_app_id(locator["application_id"])
        tag = locator.get("tag")
        try:
            app = await self.get_app(app_id)
        except AuthError as exc:
            if await self._refused_everything(locator):
                raise  # our credentials: the poller fetches fresh ones, the protocol fails the try
            raise TransientError(f"{exc} (other requests are accepted: this is about {app_id} only)") from None
        if app is not None:
            return _status_with_tag(app, tag)
        return await self._not_found(app_id, tag)

    async def _not_found(self, app_id: str, tag: str | None) -> JobStatus:
        """GET said 404. LOST only if the list by tag (without a tag: the finished applications) agrees."""
        source = f"the applications tagged {tag}" if tag else "the finished applications the RM holds"
        try:
            if tag:
                listing = await self._list(tags=[tag], what=f"applications tagged {tag}")
            else:
                listing = await self._list(states=FINISHED_STATES, what="finished applications")
        except AuthError:
            raise
        except PermanentError as exc:  # the second source cannot be read: unknown, not lost, not a failure
            raise TransientError(f"{app_id}: the RM's GET says it does not exist, and {source}: {exc}") from None
        if app_id in listing.malformed:
            raise MalformedAnswer(listing.malformed[app_id])
        found = listing.apps.get(app_id)
        if found is not None:
            log.info("%s: the RM's GET says it does not exist, but %s include it: using that", app_id, source)
            return _status_with_tag(found, tag)
        if not listing.complete:
            raise MalformedAnswer(
                f"{app_id}: the RM's GET says it does not exist, and {listing.unreadable} entries of {source} "
                "could not be read: cannot tell whether it is among them"
            )
        return _lost(app_id, source)

    async def statuses(self, locators: Sequence[Locator]) -> dict[str, JobStatus]:
        """One list request per ``list_batch`` tags; a bounded number of GETs for what it did not return.

        A list that fails makes this poll ask at most ``status_concurrency`` applications one by one
        (:meth:`fallback_statuses`); an entry that cannot be read makes its application unknown.
        """
        tagged = [loc for loc in locators if loc.get("tag")]
        if len(locators) < 2 or not tagged:
            return await self._each(locators)
        by_tag: dict[str, list[Locator]] = {}
        for loc in tagged:
            by_tag.setdefault(str(loc["tag"]), []).append(loc)
        tags = sorted(by_tag)
        listed: dict[str, AppInfo] = {}
        bad: dict[str, str] = {}
        incomplete: set[str] = set()  # tags of lists with entries that could not be read
        failed: set[str] = set()  # tags of lists that failed
        error: DurableJobError | None = None
        for start in range(0, len(tags), self.config.list_batch):
            chunk = tags[start : start + self.config.list_batch]
            try:
                listing = await self._list(tags=chunk, what=f"list of {len(chunk)} watched applications")
            except AuthError:
                raise  # our credentials, refused for everyone: the poller fetches fresh ones
            except (TransientError, PermanentError) as exc:
                if isinstance(exc, TransientError) and exc.connect_failed and not isinstance(exc, RedirectRefused):
                    raise  # no (active) RM answers: every job is unknown, asking them one by one cannot help
                error = error or exc
                failed.update(chunk)
                continue
            listed.update(listing.apps)
            bad.update(listing.malformed)
            if not listing.complete:
                incomplete.update(chunk)
        out: dict[str, JobStatus] = {}
        follow_up: list[Locator] = []
        fallback: list[Locator] = []
        for n, loc in enumerate(locators):
            if n and n % _LOOP_SLICE == 0:
                await asyncio.sleep(0)
            app_id, tag = loc["application_id"], loc.get("tag")
            if tag in failed:
                fallback.append(loc)
            elif app_id in bad:
                out[locator_key(loc)] = JobStatus.unknown(bad[app_id])
            elif app_id in listed:
                out[locator_key(loc)] = _status_or_unknown(listed[app_id], tag)
            else:
                follow_up.append(loc)  # not listed: a GET tells LOST (404) from a missing tag
        if follow_up:
            out.update(await self._follow_up(follow_up, incomplete))
        if fallback:
            assert error is not None
            log.info("%s; asking at most %d applications one by one", error, self.status_concurrency)
            some = await self.fallback_statuses(fallback)
            if not out and all(st.state is JobState.UNKNOWN for st in some.values()):
                # nothing answered: one failure for the poller to report (with its Retry-After)
                if isinstance(error, TransientError):
                    raise error
                raise TransientError(str(error), status=getattr(error, "status", None))
            out.update(some)
        return out

    async def _each(self, locators: Sequence[Locator]) -> dict[str, JobStatus]:
        """:meth:`status` of each (``status_concurrency`` at a time); an error about one touches that one."""
        gate = asyncio.Semaphore(self.status_concurrency)

        async def one(loc: Locator) -> JobStatus:
            async with gate:
                return await self._isolated(loc)

        results = await asyncio.gather(*(one(loc) for loc in locators))
        if len(results) > 1 and all(r.state is JobState.UNKNOWN for r in results):
            raise TransientError(results[0].message)  # the endpoint is down for everyone: one failure, not N
        return {locator_key(loc): st for loc, st in zip(locators, results, strict=True)}

    async def _isolated(self, locator: Locator) -> JobStatus:
        try:
            return await self.status(locator)
        except AuthError:
            raise  # refused for everything (status() checked): the poller fetches fresh credentials
        except DurableJobError as exc:
            return JobStatus.unknown(str(exc))
        except Exception as exc:  # a bug or an unforeseen answer: unknown for this application only
            log.warning("status of %s failed unexpectedly", self.describe(locator), exc_info=True)
            return JobStatus.unknown(f"{type(exc).__name__}: {exc}")

    async def _refused_everything(self, locator: Locator) -> bool:
        """After a 401/403 about one application: are our credentials refused for other requests too? (One
        more request, on this error path only: an RM may refuse one application to a user and not the rest.)"""
        tag = locator.get("tag")
        try:
            if tag:
                await self._list(tags=[tag], what=f"applications tagged {tag}")
            else:
                await self.cluster_info()
        except AuthError:
            return True
        except DurableJobError:
            return False
        return False

    async def _follow_up(self, locators: list[Locator], incomplete: set[str]) -> dict[str, JobStatus]:
        """GETs for applications a list did not return: at most ``status_concurrency`` per poll, in turn."""
        n = len(locators)
        if n <= self.status_concurrency:
            window = locators
        else:
            start = self._follow_cursor % n
            window = [locators[(start + i) % n] for i in range(self.status_concurrency)]
            self._follow_cursor = start + self.status_concurrency
        results = await asyncio.gather(*(self._unlisted(loc, loc.get("tag") not in incomplete) for loc in window))
        return {locator_key(loc): st for loc, st in zip(window, results, strict=True)}

    async def _unlisted(self, locator: Locator, listed_whole: bool) -> JobStatus:
        """An application the list did not return. The list read fine with our credentials, so any error
        here (an auth refusal included) is about this application only: unknown for it."""
        app_id, tag = locator["application_id"], locator.get("tag")
        try:
            app = await self.get_app(app_id)
            if app is not None:
                return _status_with_tag(app, tag)
            if tag and listed_whole:
                return _lost(app_id, f"the applications tagged {tag}")
            return await self._not_found(app_id, tag)
        except DurableJobError as exc:
            return JobStatus.unknown(str(exc))
        except Exception as exc:  # a bug or an unforeseen answer: unknown for this application only
            log.warning("status of %s failed unexpectedly", app_id, exc_info=True)
            return JobStatus.unknown(f"{type(exc).__name__}: {exc}")

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
                log.info("%s is %s", app_id, cut(state, 100) or "stopped")
                return
            if loop.time() >= deadline:
                log.warning(
                    "%s: the kill was accepted but it is still %s after %.0fs",
                    app_id,
                    cut(state, 100),
                    self.config.kill_wait,
                )
                return
            await asyncio.sleep(self._kill_backoff.delay(attempt))
            attempt += 1

    async def find(
        self, token: str, *, since: float, spec: YarnSpec, reserved: Locator | None = None
    ) -> Locator | None:
        """The application of ``token``. No time window is used (the id was reserved, or the tag is exact),
        so the worker's clock plays no part."""
        if reserved is None:
            return await self._find_by_tag(token)
        app_id = validate_app_id(reserved["application_id"])
        app = await self.get_app(app_id)
        if app is not None:
            if token not in app.tags:
                raise PermanentError(
                    f"{app_id} was reserved for token {token} but the application carries tags "
                    f"{cut(str(sorted(app.tags)), 300)}; refusing to adopt it"
                )
            return {"application_id": app_id, "tag": token}
        # 404: never submitted, or submitted and already forgotten by the GET: the tag list must agree
        found = await self._find_by_tag(token)
        if found is not None and found["application_id"] != app_id:
            raise PermanentError(
                f"{app_id} was reserved for token {token}, but {found['application_id']} carries that token "
                "instead; refusing to adopt or submit anything"
            )
        return found

    async def _find_by_tag(self, token: str) -> Locator | None:
        listing = await self._list(tags=[token], what=f"applications tagged {token}")
        ids = []
        for n, app in enumerate(listing.apps.values()):
            if n and n % _LOOP_SLICE == 0:
                await asyncio.sleep(0)  # a list that ignores its filter may hold the whole cluster
            raw = app.applicationTags
            if (isinstance(raw, str) and token not in raw.lower()) or token not in app.tags:
                continue  # a list that ignores its filter: not ours
            try:
                ids.append(validate_app_id(app.id))
            except RecordError:
                listing.malformed[app.id] = f"an application carries tag {token} but has a malformed id"
        if not ids:
            if listing.malformed or not listing.complete:
                raise MalformedAnswer(
                    f"{len(listing.malformed) + listing.unreadable} entries of the applications tagged {token} "
                    "could not be read: cannot tell whether one of them is ours"
                )
            return None
        ids.sort(key=_app_id_order)
        if len(ids) > 1:
            log.warning("several applications carry tag %s: %s; adopting the first", token, ids[:20])
        return {"application_id": ids[0], "tag": token}

    async def links(self, locator: Locator) -> dict[str, str]:
        app_id = validate_app_id(locator["application_id"])
        out = {"rm_app_url": f"{self.active_rm}/cluster/app/{app_id}"}
        try:
            app = await self.get_app(app_id)
        except DurableJobError:
            return out
        url = _safe_url(app.trackingUrl) if app is not None else None
        if url:
            out["tracking_url"] = url
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


def _status_with_tag(app: AppInfo, tag: str | None) -> JobStatus:
    """The status of our application; one that does not carry our tag is not believed (unknown)."""
    if tag and tag not in app.tags:
        raise MalformedAnswer(
            f"{app.id} does not carry tag {tag} (its tags: {cut(str(sorted(app.tags)), 300)}); not believing it"
        )
    return status_from_app(app)


def _status_or_unknown(app: AppInfo, tag: str | None) -> JobStatus:
    try:
        return _status_with_tag(app, tag)
    except MalformedAnswer as exc:
        return JobStatus.unknown(str(exc))


def _lost(app_id: str, source: str) -> JobStatus:
    return JobStatus(
        state=JobState.LOST,
        raw_state="404",
        message=(
            f"the ResourceManager does not know {app_id} (GET: 404 NotFoundException, and {source} do not include "
            "it): it was never submitted, was evicted (yarn.resourcemanager.max-completed-applications), or the "
            "RM restarted without recovery"
        ),
    )


def _remote_error(resp: Response) -> str:
    remote = remote_exception(resp.body) if resp.looks_like_json() else None
    if remote is not None:
        text = f"{remote.exception}: {remote.message}" if remote.exception else remote.message
        return cut(text, 1000)
    return resp.snippet()


def _check(resp: Response, what: str, ok: tuple[int, ...]) -> None:
    """Raise the right error class for an RM answer that is not one of ``ok``."""
    if resp.status in ok:
        return
    detail = f"{what}: HTTP {resp.status} from {resp.url}: {_remote_error(resp)}"
    if resp.status in (401, 403):
        raise AuthError(detail, status=resp.status)
    if resp.status in TRANSIENT_STATUSES or resp.status >= 500 or resp.status < 400 or not ok:
        # 5xx, throttling, an unexpected 1xx/2xx/3xx; and any failure of a read (ok=()): it says nothing
        raise TransientError(detail, retry_after=resp.retry_after(), status=resp.status)
    raise PermanentError(detail, status=resp.status)


__all__ = [
    "SYSTEM",
    "AppInfo",
    "AppListing",
    "ClusterInfo",
    "CommandResult",
    "KerberosCredentials",
    "SimpleAuth",
    "SparkSubmitApplication",
    "YarnApplication",
    "YarnClient",
    "YarnConfig",
    "adecode_listing",
    "decode_app",
    "decode_app_state",
    "decode_cluster_info",
    "decode_listing",
    "decode_new_application",
    "is_not_found",
    "normalize",
    "remote_exception",
    "run_command",
    "status_from_app",
    "validate_app_id",
]
