"""Spark standalone over the master's REST submission server (no spark-submit, no JVM on the worker).

What the endpoint really does (measured against Spark 4.3.0; see ``docs/spark-standalone.md``):

* ``success:false`` on status means the REST server does not know the id: never submitted, cleared,
  evicted by ``spark.deploy.retainedDrivers``, or issued before a master restart. It is LOST only when the
  master's ``/json/`` (the second source) agrees: a driver it still lists is reported in the state it shows
  there (a completed ``FINISHED`` driver succeeded), and a ``/json/`` that cannot be read leaves the
  driver UNKNOWN. The poller and the protocol then confirm LOST several times before acting on it.
* Errors come as JSON (400, 413, 468) or as HTML pages (500, 405, 403 from ``JWSFilter``). Every answer is
  decoded against a declared schema (:mod:`msgspec` structs below); a wrong type anywhere (``"success":
  "true"``, ``"activedrivers": null``), a truncated or empty body, or an HTML page where JSON was due is
  malformed: unknown, never lost, never permanent.
* ``FAILED`` carries no exit code; only ``ERROR`` carries a message.
* ``spark.driver.supervise=true`` makes a failing driver relaunch forever while its state stays
  RUNNING, so it is forced off.
* HA: several masters; a request goes to each in turn. A standby answers ``success:false`` with
  "Current state is not alive"; a refused connection, or a redirect the transport does not follow (it never
  re-sends a POST), means the master did not act, so the next master may be tried even for create. A
  timeout after sending is not retried elsewhere (it may have landed).

Batched polls read ``/json/`` once per poll for every driver of a master; only drivers it does not list
(to confirm a loss) and ``ERROR`` drivers (for the message) are asked over REST, at most
:attr:`SparkStandaloneClient.followup_limit` per poll. When ``/json/`` fails, at most
``status_concurrency`` drivers per poll are asked over REST (:meth:`JobClient.fallback_statuses`).
A listing of 100,000 drivers (26 MB) is decoded in slices (the drivers as raw JSON first, then a few
thousand at a time, with the event loop served in between), so no call blocks the loop for long.

Find by token: every submission carries ``spark.durable_jobs.submission_tag=<token>`` and the token
in ``spark.app.name`` (``"<name> [<token>]"``). The master's ``/json/`` lists drivers without names or
properties, so find takes the drivers started since the intent with the same main class and reads each
one's launch command from its worker's log page. The window is in the **master's** clock (its ``Date``
header against ours) and widened by :data:`FIND_WINDOW_MARGIN` for workers whose clocks disagree, and the
launch command confirms the token, so a skewed clock neither hides the crashed try's driver nor adopts
another one. Spark redacts launch-command values whose key or value matches ``spark.redaction.regex``;
when ours is redacted and the app name does not settle it either, the driver counts as undecidable,
never as "not ours". **The window that stays open**: a driver still ``SUBMITTED`` (waiting for a worker)
has no launch command yet; find then raises :class:`UndecidableError` and the try is retried later
instead of submitting a possible duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import email.utils
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

import msgspec

from durable_jobs.clients.base import JobClient, KeyedLocator, Locator, locator_key
from durable_jobs.decoding import decode_json
from durable_jobs.errors import (
    AuthError,
    DurableJobError,
    MalformedAnswer,
    PermanentError,
    RecordError,
    TransientError,
    UndecidableError,
)
from durable_jobs.messages import cut
from durable_jobs.status import JobState, JobStatus
from durable_jobs.transport.auth import BearerAuth
from durable_jobs.transport.backoff import retrying
from durable_jobs.transport.base import NO_AUTH, Auth, Response
from durable_jobs.transport.http import DEFAULT_MAX_BODY, Endpoint, request

log = logging.getLogger(__name__)
T = TypeVar("T")
M = TypeVar("M", bound="_MasterAnswer")

#: written into every stored record: permanent (see :attr:`durable_jobs.clients.base.JobClient.system`)
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
#: find looks this much further back than the intent, in the master's clock: the worker that wrote the intent
#: and the one that looks may disagree by this much (the master's own clock is read from its Date header)
FIND_WINDOW_MARGIN = 15 * 60.0
# drivers decoded per slice of a /json/ listing: a few milliseconds of work between two turns of the loop
LISTING_SLICE = 4096
# a /json/ up to this size (about 125,000 drivers) is decoded for a poll in one go: ~30 ms, within the loop budget
DIRECT_DECODE_MAX = 32 * 1024 * 1024
# drivers mapped to statuses between two turns of the loop
MAPPING_SLICE = 16384
# the pause between two slices of a listing: long enough to come after everything already due
_BREATH = 1e-4
# a worker's log page is asked for 64 KiB; anything much larger is not a log page
_LOG_MAX_BODY = 1 << 20

_ACTIVE_STATES = frozenset({"SUBMITTED", "RUNNING", "RELAUNCHING", "UNKNOWN"})
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
_FAILED_MESSAGE = "the driver exited with a non-zero code or an exception (Spark does not report the code)"

# set while a batched poll falls back to REST because /json/ failed: a driver the REST server does not know
# is then unknown at once (its second source just failed), instead of fetching /json/ again per driver
_LISTING_PROBLEM: contextvars.ContextVar[str | None] = contextvars.ContextVar("spark_listing_problem", default=None)


# --- the answers, as declared schemas ----------------------------------------------------------------------
# Only the fields read are declared (msgspec skips the others without building them). gc=False: these
# objects hold no references to other containers, so the collector never needs to walk 100,000 of them.


class _RestAnswer(msgspec.Struct, gc=False, rename="camel"):
    """What every REST answer of the submission server has in common."""

    success: bool | None = None
    message: str | None = None


class _CreateAnswer(_RestAnswer, gc=False, rename="camel"):
    submission_id: str | None = None


class _StatusAnswer(_RestAnswer, gc=False, rename="camel"):
    driver_state: str | None = None
    worker_id: str | None = None
    worker_host_port: str | None = None


class _ErrorAnswer(msgspec.Struct, gc=False):
    """Spark's ``ErrorResponse`` (400, 413, 468)."""

    message: str | None = None


class _MasterAnswer(msgspec.Struct, gc=False):
    """What every reading of ``/json/`` checks first: only an ALIVE master's lists are read."""

    status: str


class _Listing(_MasterAnswer, gc=False):
    """The master's ``/json/``, its driver lists kept as raw JSON to be decoded in slices."""

    activedrivers: list[msgspec.Raw]
    completeddrivers: list[msgspec.Raw]
    workers: list[msgspec.Raw] = []


class _DriverState(msgspec.Struct, gc=False):
    """A driver entry as a status poll reads it."""

    id: str
    state: str


class _StateListing(_MasterAnswer, gc=False):
    """The master's ``/json/`` as a status poll reads it: every driver's id and state, nothing else."""

    activedrivers: list[_DriverState]
    completeddrivers: list[_DriverState]


def _as_listing(resp: Response, what: str) -> _Listing:
    """Only the top level: the driver lists are decoded in slices by ``_drivers``."""
    return resp.decode(_Listing, what=what)


def _as_states(resp: Response, what: str) -> _StateListing | _Listing:
    """Up to :data:`DIRECT_DECODE_MAX` bytes (about 125,000 drivers, ~30 ms) in one go into ``(id, state)``."""
    if len(resp.body) > DIRECT_DECODE_MAX:
        return _as_listing(resp, what)
    return resp.decode(_StateListing, what=what)


class _Driver(msgspec.Struct, gc=False):
    """A driver entry as find and links read it. ``starttime`` is a string of epoch ms (the master's clock)."""

    id: str
    state: str
    starttime: str | int | float
    mainclass: str
    worker: str | None = None


class _Worker(msgspec.Struct, gc=False):
    id: str
    webuiaddress: str | None = None


# --- specs ----------------------------------------------------------------------------------------------------


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
    """How to reach the masters. ``bearer_token`` is never logged, nor put in trigger kwargs or the key.

    The token goes to the masters' REST servers and UIs (``/json/``, which ``spark.ui.filters`` may protect
    too), never to a worker UI (its address comes from the master's answer).
    """

    rest_urls: tuple[str, ...]
    ui_urls: tuple[str, ...] = ()
    bearer_token: str | None = field(default=None, repr=False)
    verify_ssl: bool = True
    ca_file: str | None = None
    timeout: float = 30.0
    batch_status: bool = True  # one /json/ call per poll for all drivers of this master
    max_response_bytes: int = DEFAULT_MAX_BODY

    def __post_init__(self) -> None:
        if not self.rest_urls:
            raise ValueError("at least one Spark master REST URL is required")
        if self.max_response_bytes <= 0:
            raise ValueError("max_response_bytes must be positive")


def _wall_clock() -> float:
    """This host's clock (a function, so tests can skew it)."""
    return time.time()


class SparkStandaloneClient(JobClient[SparkApplication]):
    system: ClassVar[str] = SYSTEM
    #: REST follow-ups of a batched poll (drivers /json/ does not list, ERROR drivers), at most, in turn
    followup_limit: ClassVar[int] = 256

    def __init__(self, config: SparkStandaloneConfig) -> None:
        self.config = config
        self._rest = [self._endpoint(u, config.rest_urls) for u in config.rest_urls]
        self._ui = [self._endpoint(u, config.ui_urls) for u in config.ui_urls]
        self._auth: Auth = BearerAuth(config.bearer_token) if config.bearer_token else NO_AUTH
        self._followup_cursor = 0
        self._listing_failing = False
        self._shared_states: dict[str, JobStatus] = {}

    def _endpoint(self, url: str, peers: Sequence[str]) -> Endpoint:
        return Endpoint(
            url,
            verify_ssl=self.config.verify_ssl,
            ca_file=self.config.ca_file,
            timeout=self.config.timeout,
            max_body=self.config.max_response_bytes,
            redirect_hosts=tuple(p for p in peers if p != url),  # HA: a GET may be redirected among them
        )

    @property
    def key(self) -> Hashable:
        # the endpoint only: clients built before and after a credential rotation share one poller
        return (self.config.rest_urls, self.config.ui_urls, self.config.verify_ssl, self.config.ca_file)

    @property
    def endpoint_name(self) -> str:
        return "Spark master " + ",".join(self.config.rest_urls)

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

    @property
    def master_ui_url(self) -> str | None:
        return self.config.ui_urls[0] if self.config.ui_urls else None

    # --- REST plumbing ---------------------------------------------------------------------------------

    async def _rest_call(self, method: str, path: str, schema: type[T], *, what: str, body: Any = None) -> T:
        """Send to each master in turn; the first answer from an ALIVE master, decoded against ``schema``."""
        last: TransientError | None = None
        for ep in self._rest:
            try:
                resp = await request(ep, method, path, json_body=body, auth=self._auth, what=what)
            except TransientError as exc:
                last = exc
                if exc.connect_failed:  # refused, or a redirect not followed: this master did not act
                    continue
                raise
            answer = _rest_answer(resp, schema, what)
            assert isinstance(answer, _RestAnswer)
            if answer.success is False and any(m in (answer.message or "") for m in _STANDBY_MARKERS):
                last = TransientError(f"{what}: master {ep.base_url} is not the active master")
                continue
            return answer
        assert last is not None
        raise last

    # --- the JobClient contract ------------------------------------------------------------------------

    async def submit(self, spec: SparkApplication, token: str, *, reserved: Locator | None = None) -> Locator:
        body = spec.request_body(token, self.master_url)
        what = "create Spark submission"
        answer = await self._rest_call("POST", "/v1/submissions/create", _CreateAnswer, what=what, body=body)
        if answer.success is None:
            raise MalformedAnswer(f"{what}: the answer has no 'success' field")
        if answer.success is False:
            raise PermanentError(f"the Spark master refused the submission: {_first_line(answer.message)}")
        try:
            driver_id = validate_driver_id(answer.submission_id)
        except RecordError:
            # the master may have created a driver: never a permanent error, the next try finds it by token
            raise MalformedAnswer(
                f"{what}: success without a usable submissionId ({cut(repr(answer.submission_id), 200)})"
            ) from None
        return {"driver_id": driver_id}

    async def status(self, locator: Locator) -> JobStatus:
        driver_id = validate_driver_id(locator["driver_id"])
        answer = await self._rest_status(driver_id)
        if answer.success:
            return self._from_rest(driver_id, answer)
        # the REST server does not know it: ask the second source before anyone may call it lost
        if not self._ui:
            return self._lost(driver_id, "no master UI is configured to confirm it")
        problem = _LISTING_PROBLEM.get()
        if problem is not None:
            return self._unconfirmed(driver_id, problem)
        try:
            listed = await self._listed_states()
        except DurableJobError as exc:  # an AuthError too: the REST server let us in, this is about the UI
            return self._unconfirmed(driver_id, str(exc))
        return self._from_listing(driver_id, listed.get(driver_id))

    async def _rest_status(self, driver_id: str) -> _StatusAnswer:
        what = f"status of {driver_id}"
        try:
            answer = await self._rest_call(
                "GET", f"/v1/submissions/status/{quote(driver_id, safe='')}", _StatusAnswer, what=what
            )
        except AuthError:
            raise  # about our credentials, so about every driver
        except PermanentError as exc:
            # Spark answers any id with 200 (success:false when unknown): a 4xx here comes from a proxy or a
            # misconfiguration, and says nothing about the driver. Unknown for this driver, never a failure.
            raise _RefusedForThisDriver(str(exc), status=exc.status) from None
        if answer.success is None:
            raise MalformedAnswer(f"{what}: the answer has no 'success' field")
        return answer

    def _from_rest(self, driver_id: str, answer: _StatusAnswer) -> JobStatus:
        raw = answer.driver_state
        if raw is None:
            raise MalformedAnswer(f"status of {driver_id}: success without a driverState")
        state = _STATE_MAP.get(raw, JobState.UNKNOWN)
        message = answer.message or ""
        if raw == "FAILED" and not message:
            message = _FAILED_MESSAGE
        extra = {k: v for k, v in (("workerId", answer.worker_id), ("workerHostPort", answer.worker_host_port)) if v}
        return JobStatus(state=state, raw_state=raw, message=message, tracking_url=self.master_ui_url, extra=extra)

    def _from_listing(self, driver_id: str, listed: str | None) -> JobStatus:
        """The REST server does not know ``driver_id``; ``listed`` is its state in ``/json/`` (None: absent)."""
        if listed is None:
            return self._lost(driver_id, "the master's /json/ does not list it among active or completed drivers")
        state = _STATE_MAP.get(listed, JobState.UNKNOWN)
        if listed == "FAILED":
            message = _FAILED_MESSAGE
        elif listed == "ERROR":
            message = "the driver could not be launched (the REST server no longer has its message)"
        else:
            message = ""
        return JobStatus(state=state, raw_state=listed, message=message, tracking_url=self.master_ui_url)

    def _lost(self, driver_id: str, why: str) -> JobStatus:
        return JobStatus(
            state=JobState.LOST,
            raw_state="success:false",
            message=(
                f"the master does not know {driver_id} ({why}): it never existed, was cleared, was evicted by "
                "spark.deploy.retainedDrivers, or was lost in a master restart"
            ),
            tracking_url=self.master_ui_url,
        )

    @staticmethod
    def _unconfirmed(driver_id: str, problem: str) -> JobStatus:
        return JobStatus.unknown(
            f"the master's REST server does not know {driver_id}, and its /json/ could not be read to confirm "
            f"that it is gone: {problem}"
        )

    async def cancel(self, locator: Locator) -> None:
        driver_id = validate_driver_id(locator["driver_id"])
        what = f"kill {driver_id}"
        answer = await retrying(
            lambda: self._rest_call(
                "POST", f"/v1/submissions/kill/{quote(driver_id, safe='')}", _RestAnswer, what=what
            ),
            attempts=3,
            what=what,
        )
        if answer.success is None:
            raise MalformedAnswer(f"{what}: the answer has no 'success' field")
        # success:false = "already finished or does not exist": nothing left to stop
        message = answer.message or ""
        if answer.success is False and "does not exist" not in message and "already finished" not in message:
            raise PermanentError(f"the master refused to kill {driver_id}: {_first_line(message)}")

    async def readyz(self) -> bool:
        answer = await self._rest_call("GET", "/v1/submissions/readyz", _RestAnswer, what="readyz")
        if answer.success is None:
            raise MalformedAnswer("readyz: the answer has no 'success' field")
        return answer.success

    # --- the master's /json/ ---------------------------------------------------------------------------------

    async def _fetch_listing(self, what: str, decode: Callable[[Response, str], M]) -> tuple[M, float | None]:
        """The active master's ``/json/`` as ``decode`` reads it, and the master's clock offset (seconds).

        Every master UI is tried in turn (HA); one that is not ALIVE, does not answer, or answers badly is
        skipped.
        """
        if not self._ui:
            raise PermanentError("no Spark master UI URL configured (connection extra master_ui_urls)")
        last: TransientError | None = None
        for ep in self._ui:
            try:
                resp = await request(ep, "GET", "/json/", auth=self._auth, what=what)
                received = _wall_clock()
                if resp.status in (401, 403):
                    raise AuthError(
                        f"{what}: HTTP {resp.status} from {resp.url}: {resp.snippet(120)}", status=resp.status
                    )
                resp.raise_for_status(what)
                # reading a big body ended with joining it: let the loop breathe before the decoding starts
                await _breathe()
                listing = decode(resp, what)
            except TransientError as exc:
                last = exc
                continue
            if listing.status == "ALIVE":
                return listing, _clock_offset(resp, received)
            last = TransientError(f"{what}: master {ep.base_url} is {cut(listing.status, 40)!r}, not ALIVE")
        assert last is not None
        raise last

    async def _drivers(self, listing: _Listing, schema: type[T], what: str) -> AsyncIterator[list[T]]:
        """The listing's drivers (active first), decoded a slice at a time with the loop served in between."""
        for raws in (listing.activedrivers, listing.completeddrivers):
            for start in range(0, len(raws), LISTING_SLICE):
                chunk = b"[" + b",".join(raws[start : start + LISTING_SLICE]) + b"]"
                batch = decode_json(chunk, list[schema], what=what)  # type: ignore[valid-type]
                del chunk
                yield batch
                await _breathe()

    async def _listed_states(self) -> dict[str, str]:
        """Every driver's ``/json/`` state (an active entry wins over a completed one of the same id)."""
        listing, _ = await self._fetch_listing("master state", _as_states)
        listed: dict[str, str] = {}
        if isinstance(listing, _StateListing):
            for drivers in (listing.completeddrivers, listing.activedrivers):
                for start in range(0, len(drivers), MAPPING_SLICE):
                    listed.update({d.id: d.state for d in drivers[start : start + MAPPING_SLICE]})
                    await _breathe()
        else:
            async for batch in self._drivers(listing, _DriverState, "master state"):
                for d in batch:
                    listed.setdefault(d.id, d.state)  # active drivers come first
        return listed

    async def _workers(self, listing: _Listing, what: str) -> dict[str, str]:
        """Worker id -> web UI address (only addresses that are http(s) URLs)."""
        if not listing.workers:
            return {}
        workers = decode_json(b"[" + b",".join(listing.workers) + b"]", list[_Worker], what=what)
        return {w.id: w.webuiaddress for w in workers if w.webuiaddress and _is_http_url(w.webuiaddress)}

    # --- batched polls -----------------------------------------------------------------------------------

    async def statuses(self, locators: Sequence[Locator]) -> dict[str, JobStatus]:
        """One ``/json/`` request for every driver; REST only for what it does not settle."""
        if not (self.config.batch_status and self._ui) or len(locators) < 2:
            return await super().statuses(locators)
        try:
            listed = await self._listed_states()
        except DurableJobError as exc:
            return await self._fallback(locators, exc)
        if self._listing_failing:
            self._listing_failing = False
            log.warning("%s: /json/ answers again; polling drivers in one batch", self.endpoint_name)
        out: dict[str, JobStatus] = {}
        follow_up: list[tuple[Locator, str | None]] = []
        # one (immutable) status per raw state, shared by the jobs in it and kept from poll to poll: the poller
        # passes over a job whose status is the very object it already holds
        shared = self._shared_states
        get = listed.get
        for i, loc in enumerate(locators):
            if i and not i % MAPPING_SLICE:
                await _breathe()  # 100,000 jobs are mapped in slices, with the loop served in between
            raw = get(loc["driver_id"])
            if raw is None or raw == "ERROR":
                follow_up.append((loc, raw))  # confirm a loss / fetch ERROR's message, over REST
                continue
            st = shared.get(raw)
            if st is None:
                if len(shared) >= 64:
                    shared.clear()  # raw states are a handful; a hostile master must not grow this table
                st = shared[raw] = self._from_listed_state(raw)
            out[loc.key if type(loc) is KeyedLocator else locator_key(loc)] = st
        if follow_up:
            out.update(await self._follow_up(follow_up))
        return out

    def _from_listed_state(self, raw: str) -> JobStatus:
        state = _STATE_MAP.get(raw, JobState.UNKNOWN)
        message = _FAILED_MESSAGE if raw == "FAILED" else ""
        return JobStatus(state=state, raw_state=raw, message=message, tracking_url=self.master_ui_url)

    async def _fallback(self, locators: Sequence[Locator], exc: DurableJobError) -> dict[str, JobStatus]:
        """``/json/`` failed: at most ``status_concurrency`` drivers over REST this poll, in turn."""
        problem = str(exc)
        if not self._listing_failing:
            self._listing_failing = True
            log.warning(
                "%s: /json/ unavailable (%s); asking at most %d drivers per poll over REST until it answers",
                self.endpoint_name,
                problem,
                self.status_concurrency,
            )
        token = _LISTING_PROBLEM.set(problem)
        try:
            out = await self.fallback_statuses(locators)
        finally:
            _LISTING_PROBLEM.reset(token)
        if out and all(st.state is JobState.UNKNOWN for st in out.values()):
            # REST fails too: the endpoint is down for everyone, one failure for the poller to report
            first = next(iter(out.values()))
            raise TransientError(f"/json/: {problem}; REST: {first.message}")
        return out

    async def _follow_up(self, items: list[tuple[Locator, str | None]]) -> dict[str, JobStatus]:
        """REST answers for drivers /json/ did not settle; at most :attr:`followup_limit` per poll, in turn.

        An error about one driver makes that driver unknown, and touches no other. A refusal of our
        credentials (401/403) is raised, for the poller to fetch fresh ones, when no follow-up of this poll got
        through; while others do, it is about that driver only (a proxy's rule), and unknown for it.
        """
        n = len(items)
        if n > self.followup_limit:
            start = self._followup_cursor % n
            items = [items[(start + i) % n] for i in range(self.followup_limit)]
            self._followup_cursor = start + self.followup_limit
        out: dict[str, JobStatus] = {}
        refused: dict[str, AuthError] = {}
        todo = iter(items)

        async def worker() -> None:
            for loc, listed in todo:
                key = locator_key(loc)
                try:
                    out[key] = await self._follow_up_one(loc["driver_id"], listed)
                except AuthError as exc:
                    refused[key] = exc

        await asyncio.gather(*(worker() for _ in range(min(self.status_concurrency, len(items)))))
        if refused:
            if not out:
                raise next(iter(refused.values()))  # refused for every driver: about our credentials
            for key, exc in refused.items():
                out[key] = JobStatus.unknown(str(exc))
        return out

    async def _follow_up_one(self, driver_id: str, listed: str | None) -> JobStatus:
        try:
            answer = await self._rest_status(driver_id)
            if answer.success:
                return self._from_rest(driver_id, answer)
        except AuthError:
            raise
        except TransientError as exc:
            if listed is not None and isinstance(exc, _RefusedForThisDriver):
                # a 4xx will not go away, and /json/ says how the driver ended: only the REST detail is missing
                st = self._from_listing(driver_id, listed)
                return JobStatus(st.state, st.raw_state, f"{st.message}; REST: {exc}", st.tracking_url)
            return JobStatus.unknown(str(exc))
        except DurableJobError as exc:
            return JobStatus.unknown(str(exc))
        except Exception as exc:  # a bug or an unforeseen answer: unknown for this driver only
            log.warning("status of %s failed unexpectedly", driver_id, exc_info=True)
            return JobStatus.unknown(f"{type(exc).__name__}: {exc}")
        # both sources agree that the master does not know it (or /json/ still shows how it ended)
        return self._from_listing(driver_id, listed)

    # --- find -------------------------------------------------------------------------------------------

    async def find(
        self, token: str, *, since: float, spec: SparkApplication, reserved: Locator | None = None
    ) -> Locator | None:
        what = "find: master state"
        listing, offset = await self._fetch_listing(what, _as_listing)
        workers = await self._workers(listing, what)
        # the intent in the master's clock: ours corrected by the master's Date header (when it sent one),
        # widened for a worker (the one that wrote the intent) whose clock disagrees with ours
        since_ms = (since + (offset or 0.0)) * 1000.0
        lower_ms = since_ms - FIND_WINDOW_MARGIN * 1000.0
        main_class = spec.effective_main_class
        candidates: list[tuple[float, str, str, str]] = []  # (distance from the intent, id, state, worker UI)
        async for batch in self._drivers(listing, _Driver, what):
            for d in batch:
                if d.mainclass != main_class or not DRIVER_ID_RE.match(d.id):
                    continue
                start = _start_ms(d.starttime)
                if start is not None and start < lower_ms:
                    continue
                distance = abs(start - since_ms) if start is not None else math.inf
                candidates.append((distance, d.id, d.state, workers.get(d.worker or "", "")))
        del listing
        candidates.sort(key=lambda c: c[0])  # the crashed try's driver started right after its intent
        needle = f"-D{TOKEN_PROPERTY}={token}"
        undecided: list[str] = []
        for start in range(0, len(candidates), self.status_concurrency):
            wave = candidates[start : start + self.status_concurrency]
            verdicts = await asyncio.gather(*(self._check_candidate(c, token, needle) for c in wave))
            for (_, driver_id, _, _), (verdict, why) in zip(wave, verdicts, strict=True):
                if verdict is True:
                    return {"driver_id": driver_id}
                if verdict is None:
                    undecided.append(f"{driver_id} ({why})")
        if undecided:
            raise UndecidableError(
                "drivers started since the intent cannot be checked for the token yet: " + "; ".join(undecided[:20])
            )
        return None

    async def _check_candidate(
        self, candidate: tuple[float, str, str, str], token: str, needle: str
    ) -> tuple[bool | None, str]:
        """Does this driver carry ``token``? (True / False / None = cannot tell yet, and why)."""
        _, driver_id, raw, worker_ui = candidate
        raw = cut(raw, 40)
        active = raw in _ACTIVE_STATES or raw not in _STATE_MAP
        if not worker_ui:
            return (None, f"{raw}, no worker yet") if active else (False, "")
        try:
            launch = await self._driver_stderr_head(worker_ui, driver_id)
        except TransientError as exc:
            # a driver that ended without success and whose worker is gone is not waited for: if it was ours,
            # one new driver replaces a failed one. One that FINISHED may have been ours: never rerun it blindly.
            return (None, f"worker log unreadable: {exc}") if active or raw == "FINISHED" else (False, "")
        except DurableJobError as exc:  # the worker UI refuses us: nothing can be told, never "not ours"
            return None, f"worker log refused: {exc}"
        verdict = _launch_carries(launch, token, needle)
        if verdict is None and launch:
            return None, f"{raw}, its launch command is redacted"
        if not launch:
            if raw == "FINISHED":
                return None, "FINISHED, but its launch command is gone (worker work dir cleaned)"
            return (None, f"{raw}, launch command not written yet") if active else (False, "")
        return verdict, ""

    async def _driver_stderr_head(self, worker_ui: str, driver_id: str) -> str:
        try:
            ep = Endpoint(
                worker_ui,
                verify_ssl=self.config.verify_ssl,
                ca_file=self.config.ca_file,
                timeout=self.config.timeout,
                max_body=_LOG_MAX_BODY,
            )
        except ValueError as exc:
            raise MalformedAnswer(f"worker UI address {cut(worker_ui, 200)!r} is not usable: {exc}") from None
        what = f"launch command of {driver_id}"
        resp = await request(  # no credentials: the worker's address came from the master's answer
            ep,
            "GET",
            "/log/",
            params={"driverId": driver_id, "logType": "stderr", "offset": "0", "byteLength": "65536"},
            what=what,
        )
        if resp.status == 404:
            return ""
        resp.raise_for_status(what)
        # Until the worker writes it, the page answers 200 with "==== Bytes 0-0 of 0 ..." or "invalid log
        # directory": that is "not written yet" (undecidable), never "not ours".
        text = resp.text
        return text if "Launch Command:" in text else ""

    # --- links ------------------------------------------------------------------------------------------

    async def links(self, locator: Locator) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.master_ui_url:
            out["master_ui_url"] = self.master_ui_url
        driver_id = validate_driver_id(locator["driver_id"])
        what = "links: master state"
        try:
            listing, _ = await self._fetch_listing(what, _as_listing)
            workers = await self._workers(listing, what)
            worker: str | None = None
            async for batch in self._drivers(listing, _Driver, what):
                for d in batch:
                    if d.id == driver_id:
                        worker = d.worker
        except DurableJobError:
            return out
        worker_ui = workers.get(worker or "")
        if worker_ui:
            out["driver_ui_url"] = f"{worker_ui.rstrip('/')}/logPage/?driverId={quote(driver_id)}&logType=stderr"
        return out


async def _breathe() -> None:
    """Let everything that became due meanwhile (timers, I/O, the tasks they wake) run before we go on.

    ``sleep(0)`` is not enough: it puts this task at the head of the loop's next round, ahead of the tasks
    that the timers and I/O due during our work wake only in the round after. A timer of our own, however
    short, is ordered after every timer already due, so each of their tasks gets its turn first.
    """
    await asyncio.sleep(_BREATH)


class _RefusedForThisDriver(TransientError):
    """A 4xx (not 401/403) on one driver's status: unknown for that driver, and it will not go away."""


def _rest_answer(resp: Response, schema: type[T], what: str) -> T:
    """A REST answer decoded against ``schema``, or the right error for the Spark error zoo."""
    if resp.status in (401, 403):
        raise AuthError(
            f"{what}: HTTP {resp.status} from {resp.url}: the master's REST filter refused the request "
            f"(missing, invalid or expired JWT): {resp.snippet(120)}",
            status=resp.status,
        )
    resp.raise_for_transient(what)
    if resp.status >= 400:
        detail = resp.snippet()
        if resp.looks_like_json():
            with contextlib.suppress(MalformedAnswer):  # an unreadable error page: quote it as it is
                detail = _first_line(resp.decode(_ErrorAnswer, what=what).message) or detail
        raise PermanentError(f"{what}: HTTP {resp.status} from {resp.url}: {detail}", status=resp.status)
    if not 200 <= resp.status < 300:
        raise MalformedAnswer(f"{what}: unexpected HTTP {resp.status} from {resp.url}")
    return resp.decode(schema, what=what)


def _first_line(message: str | None) -> str:
    """A Spark message without the server's stack trace."""
    return (message or "").split("\n\t", 1)[0]


def _clock_offset(resp: Response, received: float) -> float | None:
    """The master's clock minus ours, from the answer's ``Date`` header (None when absent or unreadable)."""
    value = resp.headers.get("Date")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    # Date has whole seconds: the master's clock was somewhere in [Date, Date + 1s) when it answered
    return when.timestamp() + 0.5 - received


def _start_ms(value: str | int | float) -> float | None:
    """A driver's ``starttime`` (epoch ms, the master's clock), or None when it cannot be read."""
    try:
        ms = float(value)
    except (TypeError, ValueError):
        return None
    return ms if math.isfinite(ms) else None


def _is_http_url(text: str) -> bool:
    return text.startswith(("http://", "https://")) and len(text) <= 2048 and not any(c.isspace() for c in text)


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


__all__ = [
    "FIND_WINDOW_MARGIN",
    "SYSTEM",
    "TOKEN_PROPERTY",
    "SparkApplication",
    "SparkStandaloneClient",
    "SparkStandaloneConfig",
    "validate_driver_id",
]
