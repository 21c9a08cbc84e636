"""Spark standalone over the master's REST submission server (no spark-submit, no JVM on the worker).

What the endpoint really does (measured against Spark 4.3.0; see the project's notes):

* ``success:false`` on status means the master does not know the id: never submitted, cleared, evicted
  by ``spark.deploy.retainedDrivers``, or issued before a master restart. It maps to ``LOST``, which the
  poller and the protocol confirm several times before acting on it.
* Errors come as JSON (400, 413, 468) or as HTML pages (500, 405, 403 from ``JWSFilter``); a body is
  parsed only when it is JSON, and ``success`` is always checked.
* ``FAILED`` carries no exit code; only ``ERROR`` carries a message.
* ``spark.driver.supervise=true`` makes a failing driver relaunch forever while its state stays
  RUNNING, so it is forced off.
* HA: several masters; a request goes to each in turn. A standby answers ``success:false`` with
  "Current state is not alive"; a connection failure means the request never left, so the next master
  may be tried even for create. A timeout after sending is not retried elsewhere (it may have landed).

Find by token: every submission carries ``spark.durable_jobs.submission_tag=<token>`` and the token
in ``spark.app.name`` (``"<name> [<token>]"``). The master's ``/json/`` lists drivers without names or
properties, so find takes the drivers started since the intent with the same main class and reads each
one's launch command from its worker's log page. Spark redacts launch-command values whose key or value
matches ``spark.redaction.regex``; when ours is redacted and the app name does not settle it either,
the driver counts as undecidable, never as "not ours". **The window that stays open**:
a driver still ``SUBMITTED`` (waiting for a worker) has no launch command yet; find then raises
:class:`UndecidableError` and the try is retried later instead of submitting a possible duplicate.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import quote

from durable_jobs.clients.base import JobClient, Locator, locator_key
from durable_jobs.errors import (
    AuthError,
    PermanentError,
    RecordError,
    TransientError,
    UndecidableError,
)
from durable_jobs.status import JobState, JobStatus
from durable_jobs.transport.backoff import retrying
from durable_jobs.transport.http import Endpoint, HttpResponse, request

log = logging.getLogger(__name__)

SYSTEM = "spark-standalone"
# Not named "...token": Spark redacts properties matching spark.redaction.regex (secret|password|token|...)
# in the driver's launch command, which is where find reads it back.
TOKEN_PROPERTY = "spark.durable_jobs.submission_tag"
_APP_NAME_TOKEN_RE = re.compile(r"\[(dj[0-9a-f]{20})\]")
_REDACTED = "*********(redacted)"
PYTHON_RUNNER = "org.apache.spark.deploy.PythonRunner"
CLIENT_SPARK_VERSION = "4.3.0"
# Spark's default is driver-<yyyyMMddHHmmss>-<counter>; spark.deploy.driverIdPattern may change it,
# so accept any id made of URL-safe characters and nothing else.
DRIVER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_STANDBY_MARKERS = ("Current state is not alive", "ALIVE state")
_FIND_CLOCK_SKEW_MS = 120_000

_STATE_MAP = {
    "SUBMITTED": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "RELAUNCHING": JobState.RUNNING,
    "FINISHED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
    "ERROR": JobState.FAILED,
    "KILLED": JobState.CANCELLED,
    "UNKNOWN": JobState.UNKNOWN,  # reported during master recovery: never a failure
}


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


@dataclass(frozen=True)
class SparkStandaloneConfig:
    """How to reach the masters. ``bearer_token`` is never logged nor put in trigger kwargs."""

    rest_urls: tuple[str, ...]
    ui_urls: tuple[str, ...] = ()
    bearer_token: str | None = field(default=None, repr=False)
    verify_ssl: bool = True
    ca_file: str | None = None
    timeout: float = 30.0
    batch_status: bool = True  # one /json/ call per poll for all drivers of this master

    def __post_init__(self) -> None:
        if not self.rest_urls:
            raise ValueError("at least one Spark master REST URL is required")


class SparkStandaloneClient(JobClient[SparkApplication]):
    system: ClassVar[str] = SYSTEM

    def __init__(self, config: SparkStandaloneConfig) -> None:
        self.config = config
        self._rest = [
            Endpoint(u, verify_ssl=config.verify_ssl, ca_file=config.ca_file, timeout=config.timeout)
            for u in config.rest_urls
        ]
        self._ui = [
            Endpoint(u, verify_ssl=config.verify_ssl, ca_file=config.ca_file, timeout=config.timeout)
            for u in config.ui_urls
        ]
        self._headers = {"Authorization": f"Bearer {config.bearer_token}"} if config.bearer_token else {}

    @property
    def key(self) -> Hashable:
        return (self.config.rest_urls, self.config.ui_urls, self.config.verify_ssl, self.config.ca_file)

    def validate_locator(self, locator: Mapping[str, Any]) -> Locator:
        if set(locator) != {"driver_id"}:
            raise RecordError(f"a Spark standalone locator has exactly one field, driver_id; got {dict(locator)!r}")
        return {"driver_id": validate_driver_id(locator["driver_id"])}

    def describe(self, locator: Locator) -> str:
        return f"Spark driver {locator.get('driver_id')}"

    @property
    def master_url(self) -> str:
        hosts = ",".join(u.split("://", 1)[1].split("/", 1)[0] for u in self.config.rest_urls)
        return f"spark://{hosts}"

    # --- REST plumbing ---------------------------------------------------------------------------------

    async def _rest_call(self, method: str, path: str, *, what: str, body: Any = None) -> dict[str, Any]:
        """Send to each master in turn; return the first answer from an ALIVE master."""
        last: Exception | None = None
        for ep in self._rest:
            try:
                resp = await request(ep, method, path, json_body=body, headers=self._headers, what=what)
            except TransientError as exc:
                last = exc
                if exc.connect_failed:
                    continue
                raise
            data = _rest_json(resp, what)
            if data.get("success") is False and any(m in str(data.get("message", "")) for m in _STANDBY_MARKERS):
                last = TransientError(f"{what}: master {ep.base_url} is not the active master")
                continue
            return data
        assert last is not None
        raise last if isinstance(last, TransientError) else TransientError(str(last))

    # --- the JobClient contract ------------------------------------------------------------------------

    async def submit(self, spec: SparkApplication, token: str, *, reserved: Locator | None = None) -> Locator:
        body = spec.request_body(token, self.master_url)
        data = await self._rest_call("POST", "/v1/submissions/create", what="create Spark submission", body=body)
        driver_id = data.get("submissionId")
        if data.get("success") is not True or not driver_id:
            raise PermanentError(f"the Spark master refused the submission: {data.get('message') or data}")
        return {"driver_id": validate_driver_id(driver_id)}

    async def status(self, locator: Locator) -> JobStatus:
        driver_id = validate_driver_id(locator["driver_id"])
        data = await retrying(
            lambda: self._rest_call(
                "GET", f"/v1/submissions/status/{quote(driver_id, safe='')}", what=f"status of {driver_id}"
            ),
            attempts=2,
            what=f"status of {driver_id}",
        )
        return self._status_from_rest(driver_id, data)

    def _status_from_rest(self, driver_id: str, data: Mapping[str, Any]) -> JobStatus:
        url = self.master_ui_url
        if data.get("success") is not True:
            return JobStatus(
                state=JobState.LOST,
                raw_state="success:false",
                message=(
                    f"the master does not know {driver_id}: it never existed, was cleared, was evicted by "
                    "spark.deploy.retainedDrivers, or was lost in a master restart"
                ),
                tracking_url=url,
            )
        raw = str(data.get("driverState", ""))
        state = _STATE_MAP.get(raw, JobState.UNKNOWN)
        message = str(data.get("message") or "")
        if raw == "FAILED" and not message:
            message = "the driver exited with a non-zero code or an exception (Spark does not report the code)"
        extra = {k: data[k] for k in ("workerId", "workerHostPort") if data.get(k)}
        return JobStatus(state=state, raw_state=raw, message=message, tracking_url=url, extra=extra)

    async def cancel(self, locator: Locator) -> None:
        driver_id = validate_driver_id(locator["driver_id"])
        data = await retrying(
            lambda: self._rest_call(
                "POST", f"/v1/submissions/kill/{quote(driver_id, safe='')}", what=f"kill {driver_id}"
            ),
            attempts=3,
            what=f"kill {driver_id}",
        )
        # success:false = "already finished or does not exist": nothing left to stop
        if data.get("success") is not True and "does not exist" not in str(data.get("message", "")):
            raise PermanentError(f"the master refused to kill {driver_id}: {data.get('message')}")

    async def readyz(self) -> bool:
        data = await self._rest_call("GET", "/v1/submissions/readyz", what="readyz")
        return data.get("success") is True

    async def master_state(self, *, lean: bool = False) -> dict[str, Any]:
        """The active master's ``/json/`` document.

        ``lean``: each object carrying an ``id`` and a ``state`` (drivers, apps, workers) comes back as the
        pair ``(id, state)`` instead of a dict, which is all a status poll reads; with thousands of drivers
        the parsed document is a fraction of the memory and allocations.
        """
        if not self._ui:
            raise PermanentError("no Spark master UI URL configured (connection extra master_ui_urls)")
        last: TransientError | None = None
        for ep in self._ui:
            try:
                resp = await request(ep, "GET", "/json/", what="master state")
            except TransientError as exc:
                last = exc
                continue
            resp.raise_for_status("master state")
            data = _lean_json(resp) if lean else resp.json()
            if not isinstance(data, dict):
                raise TransientError(f"master state: {ep.base_url}/json/ did not answer JSON")
            if data.get("status") == "ALIVE":
                return data
            last = TransientError(f"master {ep.base_url} is {data.get('status')}, not ALIVE")
        assert last is not None
        raise last

    async def statuses(self, locators: Sequence[Locator]) -> dict[str, JobStatus]:
        """One ``/json/`` request for every driver; REST only for what it does not settle."""
        if not (self.config.batch_status and self._ui) or len(locators) < 2:
            return await super().statuses(locators)
        try:
            state = await self.master_state(lean=True)
        except (TransientError, PermanentError) as exc:
            log.warning("master /json/ unavailable (%s); polling drivers one by one over REST", exc)
            return await super().statuses(locators)
        seen: dict[str, str] = {}
        for key in ("activedrivers", "completeddrivers"):
            for d in state.get(key, ()):
                if isinstance(d, tuple):
                    seen[d[0]] = d[1]
                else:
                    seen[str(d.get("id"))] = str(d.get("state", ""))
        out: dict[str, JobStatus] = {}
        follow_up: list[Locator] = []
        active: dict[str, JobStatus] = {}  # one (immutable) status per raw state, shared by the jobs in it
        for loc in locators:
            raw = seen.get(loc["driver_id"])
            st = active.get(raw) if raw is not None else None
            if st is None:
                mapped = _STATE_MAP.get(raw or "", JobState.UNKNOWN)
                if raw is None or mapped.is_terminal:
                    follow_up.append(loc)  # confirm lost, and fetch ERROR's message, through REST
                    continue
                st = active[raw] = JobStatus(state=mapped, raw_state=raw, tracking_url=self.master_ui_url)
            out[locator_key(loc)] = st
        if follow_up:
            out.update(await super().statuses(follow_up))
        return out

    async def find(
        self, token: str, *, since: float, spec: SparkApplication, reserved: Locator | None = None
    ) -> Locator | None:
        state = await self.master_state()
        workers = {str(w.get("id")): str(w.get("webuiaddress", "")) for w in state.get("workers", ())}
        since_ms = since * 1000 - _FIND_CLOCK_SKEW_MS
        undecided: list[str] = []
        needle = f"-D{TOKEN_PROPERTY}={token}"
        for d in (*state.get("activedrivers", ()), *state.get("completeddrivers", ())):
            driver_id = str(d.get("id"))
            if str(d.get("mainclass")) != spec.effective_main_class or _start_ms(d) < since_ms:
                continue
            if not DRIVER_ID_RE.match(driver_id):
                continue
            raw = str(d.get("state", ""))
            worker_ui = workers.get(str(d.get("worker")), "")
            if not worker_ui:
                if raw in ("SUBMITTED", "RUNNING", "RELAUNCHING", "UNKNOWN"):
                    undecided.append(f"{driver_id} ({raw}, no worker yet)")
                continue
            try:
                launch = await self._driver_stderr_head(worker_ui, driver_id)
            except TransientError as exc:
                if _STATE_MAP.get(raw, JobState.UNKNOWN).is_terminal:
                    continue
                undecided.append(f"{driver_id} (worker log unreadable: {exc})")
                continue
            verdict = _launch_carries(launch, token, needle)
            if verdict is True:
                return {"driver_id": driver_id}
            if verdict is None and launch:
                undecided.append(f"{driver_id} ({raw}, its launch command is redacted)")
            elif not launch and not _STATE_MAP.get(raw, JobState.UNKNOWN).is_terminal:
                undecided.append(f"{driver_id} ({raw}, launch command not written yet)")
        if undecided:
            raise UndecidableError(
                "drivers started since the intent cannot be checked for the token yet: " + "; ".join(undecided)
            )
        return None

    async def _driver_stderr_head(self, worker_ui: str, driver_id: str) -> str:
        ep = Endpoint(
            worker_ui,
            verify_ssl=self.config.verify_ssl,
            ca_file=self.config.ca_file,
            timeout=self.config.timeout,
        )
        resp = await request(
            ep,
            "GET",
            "/log/",
            params={"driverId": driver_id, "logType": "stderr", "offset": "0", "byteLength": "65536"},
            what=f"launch command of {driver_id}",
        )
        if resp.status == 404:
            return ""
        resp.raise_for_status(f"launch command of {driver_id}")
        # Until the worker writes it, the page answers 200 with "==== Bytes 0-0 of 0 ..." or "invalid log
        # directory": that is "not written yet" (undecidable), never "not ours".
        return resp.text if "Launch Command:" in resp.text else ""

    @property
    def master_ui_url(self) -> str | None:
        return self.config.ui_urls[0] if self.config.ui_urls else None

    async def links(self, locator: Locator) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.master_ui_url:
            out["master_ui_url"] = self.master_ui_url
        driver_id = validate_driver_id(locator["driver_id"])
        try:
            state = await self.master_state()
        except (TransientError, PermanentError):
            return out
        workers = {str(w.get("id")): str(w.get("webuiaddress", "")) for w in state.get("workers", ())}
        for d in (*state.get("activedrivers", ()), *state.get("completeddrivers", ())):
            if d.get("id") == driver_id and workers.get(str(d.get("worker"))):
                worker_ui = workers[str(d.get("worker"))]
                out["driver_ui_url"] = f"{worker_ui}/logPage/?driverId={quote(driver_id)}&logType=stderr"
        return out


def _launch_carries(launch: str, token: str, needle: str) -> bool | None:
    """Does this launch command carry ``token``? None when redaction hides the answer."""
    if needle in launch or f"[{token}]" in launch:
        return True
    if f"-D{TOKEN_PROPERTY}=" not in launch:
        return False  # not submitted by durable_jobs at all
    if f"-D{TOKEN_PROPERTY}={_REDACTED}" not in launch:
        return False  # our property, another token
    other = _APP_NAME_TOKEN_RE.search(launch)
    return False if other and other.group(1) != token else None


def _start_ms(driver: Mapping[str, Any]) -> float:
    try:
        return float(driver.get("starttime", 0))
    except (TypeError, ValueError):
        return 0.0


def _lean_json(resp: HttpResponse) -> Any:
    """:meth:`HttpResponse.json` with every object that has an ``id`` and a ``state`` as ``(id, state)``."""
    if not (resp.is_json or resp.text[:1] in ("{", "[")):
        return None
    try:
        return json.loads(resp.text, object_pairs_hook=_id_and_state)
    except ValueError:
        return None


def _id_and_state(pairs: list[tuple[str, Any]]) -> Any:
    ident = state = None
    for k, v in pairs:
        if k == "id":
            ident = v
        elif k == "state":
            state = v
    if ident is None or state is None:
        return dict(pairs)
    return (str(ident), str(state))


def _rest_json(resp: HttpResponse, what: str) -> dict[str, Any]:
    """The JSON body of a REST answer, or the right error for the Spark error zoo."""
    if resp.status in (401, 403):
        raise AuthError(
            f"{what}: HTTP {resp.status} from {resp.url}: the master's REST filter refused the request "
            f"(missing, invalid or expired JWT): {resp.snippet(120)}",
            status=resp.status,
        )
    resp.raise_for_transient(what)
    data = resp.json()
    if resp.status >= 400 or not isinstance(data, dict):
        detail = data.get("message", "") if isinstance(data, dict) else resp.snippet()
        detail = str(detail).split("\n\t", 1)[0]  # drop the server's stack trace
        raise PermanentError(f"{what}: HTTP {resp.status} from {resp.url}: {detail}", status=resp.status)
    return data


__all__ = [
    "SYSTEM",
    "TOKEN_PROPERTY",
    "SparkApplication",
    "SparkStandaloneClient",
    "SparkStandaloneConfig",
    "validate_driver_id",
]
