"""A strict contract fake of the YARN ResourceManager REST API (``/ws/v1/cluster``), with real SPNEGO.

No ResourceManager can run here (no Hadoop package, no Maven Central, no Docker), so this fake follows
Hadoop's ``ResourceManagerRest.md``, ``RMWebServices``, ``GenericExceptionHandler``, ``RMWebAppFilter``
and ``AuthenticationFilter`` (Hadoop's documentation and source), quirks included:

* ``new-application`` returns an id before anything exists; submit answers **202 with a Location and no
  body**; submitting an id the RM already holds is a no-op (``ClientRMService`` returns early);
* lists answer ``{"apps": null}`` when nothing matches; tags are **lower-cased** at submission and come
  back comma-joined; ``applicationTags=a,b`` matches any; ``states`` is validated;
* kill: ``PUT .../state {"state":"KILLED"}`` answers 202 with the *current* state until the kill
  completes, then 200; an application that already finished answers 200; any other target is a 400;
* errors are ``{"RemoteException": {"exception", "message", "javaClassName"}}`` with the statuses of
  ``GenericExceptionHandler`` (404, 400, 403, 401, else 503);
* HA: a standby RM authenticates the request, then redirects it (307 + ``Location``) to the active RM,
  or answers 503 with a ``Refresh`` header when it knows none; ``/ws/v1/cluster/info`` is never
  redirected and tells ``haState``;
* auth like Hadoop's ``AuthenticationFilter``: ``simple`` (``?user.name=``; anonymous reads allowed,
  anonymous writes 401) or ``kerberos``: no token -> 401 ``WWW-Authenticate: Negotiate`` (Jetty's HTML
  error page, and an emptied cookie); a token the acceptor rejects (tampered, replayed) -> 403; a good
  one -> the answer carries the mutual-auth token and a signed ``hadoop.auth`` cookie, which
  authenticates later requests until it expires (an invalid or expired cookie is ignored, so 401 again).
  The acceptor is pyspnego's, with the KDC's ``HTTP/<host>`` key from ``KRB5_KTNAME``; its replay cache
  is in ``KRB5RCACHEDIR``.

Two lifecycles. Scripted (the default, for in-process tests): every observation of an application (a GET,
a list that returns it) moves it one step along its script (``script_for_new``, or :meth:`FakeYarnRM.script`);
:meth:`advance` sets a state. Timed (``YarnClusterState(lifecycle="timed")``, what ``serve`` runs): an
application whose AM command is ``sleep N; exit C`` is ACCEPTED for ``accept_seconds``, RUNNING for N
seconds, then FINISHED/SUCCEEDED (C == 0) or FAILED/FAILED with the AM's exit code in its diagnostics (as
the RM reports an AM container that exited non-zero on its last attempt); any other command runs until
it is killed. A kill the RM accepted (202) completes ``kill_seconds`` later by itself, as the RM's
asynchronous kill does. Time is read from the clock when a request arrives, so a paused process catches up.

``python -m durable_jobs_harness.fake_yarn serve``: the fake as its own process (see :func:`serve`), with
an unauthenticated admin listener that answers ``GET /ws/v1/cluster/apps`` from the RM's own state, for
tests that count applications without going through the client under test.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import logging
import os
import re
import secrets
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from durable_jobs.clients.yarn import CommandResult
from durable_jobs_harness.ports import free_port as free_port

STATES = ("NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED", "RUNNING", "FINISHED", "FAILED", "KILLED")
TERMINAL = ("FINISHED", "FAILED", "KILLED")
APP_ID_RE = re.compile(r"^application_(\d+)_(\d+)$")
# the AM command the timed lifecycle understands: sleep N seconds, then exit with code C
TIMED_COMMAND_RE = re.compile(r"^\s*sleep\s+(\d+(?:\.\d+)?)\s*;\s*exit\s+(\d{1,3})\s*;?\s*$")
LIFECYCLES = ("scripted", "timed")
log = logging.getLogger("durable_jobs_harness.fake_yarn")  # the same name when run with -m
Step = tuple[str, str, str]  # state, finalStatus, diagnostics
Handler = Callable[[web.Request], Any]
Failure = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]

_EXCEPTION_CLASSES = {
    "NotFoundException": "org.apache.hadoop.yarn.webapp.NotFoundException",
    "BadRequestException": "org.apache.hadoop.yarn.webapp.BadRequestException",
    "ForbiddenException": "org.apache.hadoop.yarn.webapp.ForbiddenException",
    "AuthorizationException": "org.apache.hadoop.security.authorize.AuthorizationException",
    "WebApplicationException": "javax.ws.rs.WebApplicationException",
    "YarnRuntimeException": "org.apache.hadoop.yarn.exceptions.YarnRuntimeException",
}
USER = web.RequestKey("user", str)
_STATUS_OF = {
    "NotFoundException": 404,
    "BadRequestException": 400,
    "ForbiddenException": 403,
    "AuthorizationException": 401,
}


def remote_exception(exception: str, message: str, status: int | None = None) -> web.Response:
    """An error exactly as ``GenericExceptionHandler`` writes it (unknown exceptions are 503)."""
    body = {
        "RemoteException": {
            "exception": exception,
            "message": message,
            "javaClassName": _EXCEPTION_CLASSES.get(exception, f"org.apache.hadoop.yarn.{exception}"),
        }
    }
    return web.json_response(body, status=status or _STATUS_OF.get(exception, 503))


def jetty_error(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    """Jetty's HTML error page, which is what the auth filter's ``sendError`` produces."""
    html = (
        f'<html>\n<head>\n<meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>\n'
        f"<title>Error {status} {reason}</title>\n</head>\n<body><h2>HTTP ERROR {status} {reason}</h2>\n"
        f"<table>\n<tr><th>URI:</th><td>/ws/v1/cluster</td></tr>\n<tr><th>STATUS:</th><td>{status}</td></tr>\n"
        f"<tr><th>MESSAGE:</th><td>{reason}</td></tr>\n</table>\n</body>\n</html>\n"
    )
    return web.Response(status=status, text=html, content_type="text/html", headers=headers)


_AUTHTIME_OID = "1.2.840.113554.1.2.2.5.12"  # GSS_KRB5_EXTRACT_AUTHTIME_FROM_SEC_CONTEXT_OID (MIT)


def _authtime(ctx: Any) -> int:
    """When the client's ticket-granting ticket was obtained (the KDC's ``authtime``), from an accepted context."""
    import struct

    import gssapi
    import gssapi.raw

    inner = getattr(ctx, "_context", ctx)  # pyspnego's Negotiate proxy -> its Kerberos proxy -> gssapi
    gss = getattr(inner, "_context", inner)
    data = gssapi.raw.inquire_sec_context_by_oid(gss, gssapi.OID.from_int_seq(_AUTHTIME_OID))
    return int(struct.unpack("=i", data[0][:4])[0])


@dataclass
class FakeApp:
    id: str
    user: str
    name: str
    queue: str
    app_type: str
    tags: list[str]
    started: int
    body: dict[str, Any]
    state: str = "ACCEPTED"
    final_status: str = "UNDEFINED"
    diagnostics: str = ""
    finished: int = 0
    script: list[Step] = field(default_factory=list)
    kill_countdown: int | None = None
    observations: int = 0
    run: tuple[float, int] | None = None  # timed lifecycle: (seconds, exit code) of a ``sleep N; exit C`` AM
    kill_accepted: int | None = None  # timed lifecycle: when the RM accepted a kill (epoch ms)

    def observe(self, kill_steps: int) -> None:
        self.observations += 1
        if self.kill_countdown is not None and self.state not in TERMINAL:
            self.kill_countdown -= 1
            if self.kill_countdown <= 0:
                self.set("KILLED", "KILLED", "Application killed by user.")
            return
        if self.script and self.state not in TERMINAL:
            self.set(*self.script.pop(0))

    def tick(self, now_ms: int, accept_ms: int, kill_ms: int) -> None:
        """Timed lifecycle: the state the clock says, ACCEPTED -> RUNNING -> FINISHED or FAILED; an accepted kill
        completes by itself (the RM processes it asynchronously), whether or not anyone asks again."""
        if self.state in TERMINAL:
            return
        if self.kill_countdown is not None:
            if self.kill_accepted is not None and now_ms >= self.kill_accepted + kill_ms:
                self.set("KILLED", "KILLED", "Application killed by user.")
            return
        running_at = self.started + accept_ms
        if self.run is None:  # a command the timed lifecycle does not read: it runs until killed
            if now_ms >= running_at and self.state != "RUNNING":
                self.set("RUNNING")
            return
        seconds, code = self.run
        ends_at = running_at + int(seconds * 1000)
        if now_ms >= ends_at:
            if code == 0:
                self.set("FINISHED", "SUCCEEDED", at=ends_at)
            else:
                attempt = f"appattempt_{self.id[len('application_') :]}_000001"
                self.set(
                    "FAILED",
                    "FAILED",
                    f"Application {self.id} failed 1 times (global limit =2; local limit is =1) due to AM "
                    f"Container for {attempt} exited with  exitCode: {code}\nFailing this attempt. "
                    "Failing the application.",
                    at=ends_at,
                )
        elif now_ms >= running_at and self.state != "RUNNING":
            self.set("RUNNING")

    def set(self, state: str, final_status: str = "UNDEFINED", diagnostics: str = "", at: int | None = None) -> None:
        if state not in STATES:
            raise ValueError(f"not a YARN application state: {state}")
        if state != self.state:
            log.info("%s (tags %s): %s -> %s %s", self.id, ",".join(self.tags), self.state, state, final_status)
        self.state, self.final_status = state, final_status
        if diagnostics:
            self.diagnostics = diagnostics
        if state in TERMINAL and not self.finished:
            self.finished = at if at is not None else int(time.time() * 1000)

    def to_json(self, rm_url: str) -> dict[str, Any]:
        running = self.state == "RUNNING"
        return {
            "id": self.id,
            "user": self.user,
            "name": self.name,
            "queue": self.queue,
            "state": self.state,
            "finalStatus": self.final_status,
            "progress": 100.0 if self.state in TERMINAL else (10.0 if running else 0.0),
            "trackingUI": "History" if self.state in TERMINAL else ("ApplicationMaster" if running else "UNASSIGNED"),
            "trackingUrl": f"{rm_url}/proxy/{self.id}/" if self.state != "ACCEPTED" else None,
            "diagnostics": self.diagnostics,
            "clusterId": int(self.id.split("_")[1]),
            "applicationType": self.app_type,
            "applicationTags": ",".join(sorted(self.tags)),
            "priority": 0,
            "startedTime": self.started,
            "launchTime": self.started + 5,
            "finishedTime": self.finished,
            "elapsedTime": (self.finished or int(time.time() * 1000)) - self.started,
            "amContainerLogs": f"http://127.0.0.1:8042/node/containerlogs/container_{self.id[12:]}_01_000001/{self.user}",
            "amHostHttpAddress": "127.0.0.1:8042",
            "allocatedMB": 1024 if running else -1,
            "allocatedVCores": 1 if running else -1,
            "runningContainers": 1 if running else -1,
            "memorySeconds": 0,
            "vcoreSeconds": 0,
            "queueUsagePercentage": 0.0,
            "clusterUsagePercentage": 0.0,
            "preemptedResourceMB": 0,
            "preemptedResourceVCores": 0,
            "numNonAMContainerPreempted": 0,
            "numAMContainerPreempted": 0,
            "logAggregationStatus": "DISABLED",
            "unmanagedApplication": False,
            "appNodeLabelExpression": "",
            "amNodeLabelExpression": "",
            "resourceRequests": [],
        }


@dataclass
class YarnClusterState:
    """What the RMs of one cluster share (HA peers see the same applications)."""

    cluster_ts: int = field(default_factory=lambda: int(time.time() * 1000))
    apps: dict[str, FakeApp] = field(default_factory=dict)
    queues: set[str] = field(default_factory=lambda: {"default"})
    script_for_new: list[Step] = field(default_factory=list)
    kill_steps: int = 1  # PUT KILLED answers 202 this many times (or observations) before the app is KILLED
    # yarn.resourcemanager.max-completed-applications: the RM forgets the oldest finished applications past it
    max_completed: int | None = None
    evicted: list[str] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    issued: list[str] = field(default_factory=list)
    lifecycle: str = "scripted"  # or "timed": applications follow their ``sleep N; exit C`` command
    accept_seconds: float = 0.5  # timed: how long an application stays ACCEPTED before it runs
    kill_seconds: float = 1.0  # timed: how long an accepted kill takes to complete

    def __post_init__(self) -> None:
        if self.lifecycle not in LIFECYCLES:
            raise ValueError(f"lifecycle is one of {', '.join(LIFECYCLES)}; got {self.lifecycle!r}")

    def tick(self) -> None:
        """Timed lifecycle: bring every application to the state the clock says (a no-op when scripted)."""
        if self.lifecycle != "timed":
            return
        now, accept, kill = int(time.time() * 1000), int(self.accept_seconds * 1000), int(self.kill_seconds * 1000)
        for app in list(self.apps.values()):
            app.tick(now, accept, kill)
        self.enforce_retention()

    def enforce_retention(self) -> None:
        """Forget the oldest finished applications beyond ``max_completed`` (``RMAppManager``'s limit)."""
        if self.max_completed is None:
            return
        done = sorted((a for a in self.apps.values() if a.state in TERMINAL), key=lambda a: (a.finished, a.id))
        for app in done[: max(0, len(done) - self.max_completed)]:
            del self.apps[app.id]
            self.evicted.append(app.id)

    def new_id(self) -> str:
        app_id = f"application_{self.cluster_ts}_{next(self._ids):04d}"
        self.issued.append(app_id)
        return app_id

    def register(self, body: dict[str, Any], user: str) -> FakeApp | None:
        """Create the application of a submission body; None when the id is already known (a no-op)."""
        app_id = body["application-id"]
        if app_id in self.apps:
            return None
        raw_tags = (body.get("application-tags") or {}).get("tag") or []
        if isinstance(raw_tags, str):
            raw_tags = [raw_tags]
        queue = str(body.get("queue") or "default")
        app = FakeApp(
            id=app_id,
            user=user,
            name=str(body.get("application-name") or "N/A"),
            queue=queue,
            app_type=str(body.get("application-type") or "YARN"),
            tags=sorted({str(t).lower() for t in raw_tags}),
            started=int(time.time() * 1000),
            body=body,
            script=list(self.script_for_new),
            run=self._timed_run(body) if self.lifecycle == "timed" else None,
        )
        log.info("%s submitted by %s to %s, tags %s", app_id, user, queue, ",".join(app.tags))
        if queue not in self.queues:
            app.set(
                "FAILED",
                "FAILED",
                f"Application {app_id} submitted by user {user} to unknown queue: {queue}",
            )
        self.apps[app_id] = app
        return app

    @staticmethod
    def _timed_run(body: dict[str, Any]) -> tuple[float, int] | None:
        command = ((body.get("am-container-spec") or {}).get("commands") or {}).get("command")
        match = TIMED_COMMAND_RE.match(command) if isinstance(command, str) else None
        return (float(match[1]), int(match[2])) if match else None

    def advance(self, app_id: str, state: str, final_status: str = "UNDEFINED", diagnostics: str = "") -> None:
        self.apps[app_id].set(state, final_status, diagnostics)
        self.enforce_retention()

    def script(self, app_id: str, steps: Sequence[Step]) -> None:
        self.apps[app_id].script = list(steps)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    user: str | None
    via: str  # anonymous | simple | cookie | negotiate


class FakeYarnRM:
    """One ResourceManager web endpoint. Share a :class:`YarnClusterState` between HA peers."""

    def __init__(
        self,
        *,
        auth: str = "simple",
        cluster: YarnClusterState | None = None,
        port: int | None = None,
        ha_state: str = "ACTIVE",
        spn_host: str = "localhost",
        cookie_ttl: float = 36000.0,
        cookies: bool = True,
    ) -> None:
        if auth not in ("none", "simple", "kerberos"):
            raise ValueError(auth)
        self.auth = auth
        self.cluster = cluster or YarnClusterState()
        self.port = free_port() if port is None else port  # 0: the system picks one, read back by start()
        self.ha_state = ha_state
        self.active_url: str | None = None  # where a standby redirects
        self.spn_host = spn_host
        self.cookie_ttl = cookie_ttl
        self.cookies = cookies
        self.secret = secrets.token_bytes(32)
        self.seen: list[Seen] = []
        self.negotiations = 0
        self.rejected_tokens = 0
        self.mutual_token: bytes | None = None  # test hook: send this instead of the real mutual-auth token
        self.failures: list[tuple[Callable[[web.Request], bool], Failure]] = []  # one-shot
        self.overrides: list[tuple[Callable[[web.Request], bool], Failure]] = []  # every matching request
        # test hook: app id -> what its JSON becomes (in GETs and in lists), e.g. a field of a wrong type
        self.mangle: dict[str, Callable[[dict[str, Any]], Any]] = {}
        # credential rotation: users refused (simple auth), and principal -> epoch seconds before which its
        # Kerberos logins (the ticket's authtime) and session cookies are refused
        self.refused_users: set[str] = set()
        self.not_before: dict[str, float] = {}
        self._runner: web.AppRunner | None = None
        self._admin_runner: web.AppRunner | None = None

    # --- test hooks ------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def apps(self) -> dict[str, FakeApp]:
        return self.cluster.apps

    def advance(self, app_id: str, state: str, final_status: str = "UNDEFINED", diagnostics: str = "") -> None:
        self.cluster.advance(app_id, state, final_status, diagnostics)

    def script(self, app_id: str, steps: Sequence[Step]) -> None:
        self.cluster.script(app_id, steps)

    def fail_next(
        self,
        times: int = 1,
        *,
        status: int = 503,
        path: str | None = None,
        method: str | None = None,
        drop: bool = False,
        drop_after: bool = False,
    ) -> None:
        """The next ``times`` matching requests fail: a RemoteException with ``status`` (503 by default), a
        connection dropped before handling (``drop``), or handled and *then* dropped (``drop_after``: the
        request took effect but its answer is lost)."""
        for _ in range(times):

            def match(req: web.Request, path: str | None = path, method: str | None = method) -> bool:
                return (path is None or req.path == path) and (method is None or req.method == method)

            async def act(req: web.Request, handler: Handler, status: int = status) -> web.StreamResponse:
                if drop or drop_after:
                    if drop_after:
                        await self._route(req, handler)
                    assert req.transport is not None
                    req.transport.abort()
                    return web.Response(status=500)
                return remote_exception("YarnRuntimeException", "java.io.IOException: injected failure", status=status)

            self.failures.append((match, act))

    def override(self, match: Callable[[web.Request], bool], act: Failure) -> None:
        """Answer every request ``match`` accepts with ``act`` (after authentication), until cleared."""
        self.overrides.append((match, act))

    def revoke(self, principal: str, at: float | None = None) -> None:
        """The principal's key changed: refuse its tickets obtained before ``at`` (default now), and its cookies."""
        self.not_before[principal] = time.time() if at is None else at

    def app_json(self, app: FakeApp) -> Any:
        data = app.to_json(self.url)
        fn = self.mangle.get(app.id)
        return data if fn is None else fn(data)

    def requests(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        return [s for s in self.seen if (method is None or s.method == method) and (path is None or s.path == path)]

    # --- auth ------------------------------------------------------------------------------------------

    def _sign(self, payload: str) -> str:
        return base64.b64encode(hmac.new(self.secret, payload.encode(), hashlib.sha256).digest()).decode()

    def _cookie_value(self, user: str, principal: str, kind: str) -> str:
        expires = int((time.time() + self.cookie_ttl) * 1000)
        payload = f"u={user}&p={principal}&t={kind}&e={expires}"
        return f"{payload}&s={self._sign(payload)}"

    def _cookie_user(self, request: web.Request) -> str | None:
        raw = request.cookies.get("hadoop.auth", "").strip('"')
        if not raw or "&s=" not in raw:
            return None
        payload, _, sig = raw.rpartition("&s=")
        if not hmac.compare_digest(sig, self._sign(payload)):
            return None  # SignerException: ignored, the request must authenticate again
        fields = dict(p.partition("=")[::2] for p in payload.split("&"))
        if fields.get("t") != ("kerberos" if self.auth == "kerberos" else "simple"):
            return None
        try:
            expires = int(fields.get("e", "0")) / 1000
        except ValueError:
            return None
        if expires <= time.time():
            return None  # expired
        revoked = self.not_before.get(fields.get("p", ""))
        if revoked is not None and expires - self.cookie_ttl < revoked:
            return None  # issued before the principal's key changed
        return fields.get("u") or None

    def _accept(self, token: bytes) -> tuple[str | None, bytes | None]:
        """Blocking: the SPNEGO acceptor (credentials from ``KRB5_KTNAME``)."""
        import spnego

        ctx = spnego.server(hostname=self.spn_host, service="HTTP", protocol="negotiate")
        try:
            out = ctx.step(token)
        except Exception:  # pyspnego raises AttributeError, not SpnegoError, for tampered or replayed tokens
            return None, None
        if not ctx.complete:
            return None, None
        principal = ctx.client_principal
        revoked = self.not_before.get(principal or "")
        if revoked is not None and _authtime(ctx) < int(revoked):
            return None, None  # a ticket from a login before the key changed (kvno bump)
        return principal, out

    async def _authenticate(self, request: web.Request) -> tuple[str | None, str, dict[str, str]] | web.Response:
        """(user, how, headers to add) or the filter's error response."""
        if self.auth == "none":
            return None, "anonymous", {}
        cookie_user = self._cookie_user(request) if self.cookies else None
        if cookie_user is not None:
            return cookie_user, "cookie", {}
        if self.auth == "simple":
            user = request.query.get("user.name")
            return (user, "simple", {}) if user else (None, "anonymous", {})
        header = request.headers.get("Authorization", "")
        scheme, _, data = header.partition(" ")
        if scheme.lower() != "negotiate" or not data.strip():
            resp = jetty_error(401, "Authentication required", {"WWW-Authenticate": "Negotiate"})
            resp.set_cookie("hadoop.auth", "", path="/", httponly=True)
            return resp
        try:
            token = base64.b64decode(data.strip(), validate=True)
        except ValueError:
            token = b""
        principal, out = await asyncio.to_thread(self._accept, token) if token else (None, None)
        if principal is None:
            self.rejected_tokens += 1
            resp = jetty_error(403, "GSSException: Failure unspecified at GSS-API level")
            resp.set_cookie("hadoop.auth", "", path="/", httponly=True)
            return resp
        self.negotiations += 1
        user = principal.split("@", 1)[0].split("/", 1)[0]
        mutual = self.mutual_token if self.mutual_token is not None else (out or b"")
        headers = {"WWW-Authenticate": "Negotiate " + base64.b64encode(mutual).decode()} if mutual else {}
        if self.cookies:
            headers["Set-Cookie"] = f'hadoop.auth="{self._cookie_value(user, principal, "kerberos")}"; Path=/; HttpOnly'
        return user, "negotiate", headers

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        self.cluster.tick()
        outcome = await self._authenticate(request)
        if isinstance(outcome, web.Response):
            self.seen.append(Seen(request.method, request.path, dict(request.query), None, "refused"))
            return outcome
        user, via, headers = outcome
        if user in self.refused_users:
            self.seen.append(Seen(request.method, request.path, dict(request.query), user, "refused"))
            return remote_exception("ForbiddenException", f"user {user} is not allowed")
        self.seen.append(Seen(request.method, request.path, dict(request.query), user, via))
        request[USER] = user or ""
        if via == "simple" and self.cookies and user:
            headers["Set-Cookie"] = f'hadoop.auth="{self._cookie_value(user, user, "simple")}"; Path=/; HttpOnly'
        for i, (match, act) in enumerate(self.failures):
            if match(request):
                del self.failures[i]
                resp: web.StreamResponse = await act(request, handler)
                break
        else:
            for match, act in self.overrides:
                if match(request):
                    resp = await act(request, handler)
                    break
            else:
                resp = await self._route(request, handler)
        self.cluster.enforce_retention()
        if not resp.prepared:
            for key, value in headers.items():
                resp.headers.add(key, value)
        return resp

    async def _route(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        if self.ha_state != "ACTIVE" and request.path != "/ws/v1/cluster/info":
            if self.active_url:
                target = f"{self.active_url}{request.path_qs}"
                return web.Response(
                    status=307,
                    text=f"This is standby RM. The redirect url is: {target}\n",
                    headers={"Location": target},
                )
            return web.Response(
                status=503,
                text="This is standby RM. Redirecting to the current active RM\n",
                headers={"Refresh": f"3;url={request.path_qs}"},
            )
        try:
            result: web.StreamResponse = await handler(request)
        except web.HTTPException:
            raise
        return result

    def _user_or_401(self, request: web.Request) -> str | web.Response:
        user = request.get(USER)
        if not user:
            return remote_exception("AuthorizationException", "Unable to obtain user name, user not authenticated")
        return str(user)

    # --- the RM's web services -------------------------------------------------------------------------

    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "clusterInfo": {
                    "id": self.cluster.cluster_ts,
                    "startedOn": self.cluster.cluster_ts,
                    "state": "STARTED",
                    "haState": self.ha_state,
                    "rmStateStoreName": "org.apache.hadoop.yarn.server.resourcemanager.recovery.NullRMStateStore",
                    "resourceManagerVersion": "3.4.1",
                    "resourceManagerBuildVersion": "3.4.1 from fake",
                    "resourceManagerVersionBuiltOn": "2024-10-09T14:57Z",
                    "hadoopVersion": "3.4.1",
                    "hadoopBuildVersion": "3.4.1 from fake",
                    "hadoopVersionBuiltOn": "2024-10-09T14:57Z",
                    "haZooKeeperConnectionState": "CONNECTED",
                }
            }
        )

    async def _new_application(self, request: web.Request) -> web.Response:
        user = self._user_or_401(request)
        if isinstance(user, web.Response):
            return user
        return web.json_response(
            {
                "application-id": self.cluster.new_id(),
                "maximum-resource-capability": {"memory": 8192, "vCores": 32},
            }
        )

    async def _submit(self, request: web.Request) -> web.Response:
        user = self._user_or_401(request)
        if isinstance(user, web.Response):
            return user
        if request.content_type not in ("application/json", "application/xml"):
            return web.Response(status=415, text="Unsupported Media Type")
        try:
            body = await request.json()
        except (ValueError, json.JSONDecodeError):
            return remote_exception("BadRequestException", "javax.ws.rs.WebApplicationException: bad JSON")
        if not isinstance(body, dict):
            return remote_exception("BadRequestException", "javax.ws.rs.WebApplicationException: bad JSON")
        problem = self._validate_submission(body)
        if problem:
            return remote_exception("BadRequestException", problem)
        self.cluster.register(body, user)
        return web.Response(status=202, headers={"Location": f"{self.url}/ws/v1/cluster/apps/{body['application-id']}"})

    @staticmethod
    def _validate_submission(body: dict[str, Any]) -> str | None:
        app_id = body.get("application-id")
        if not isinstance(app_id, str) or not APP_ID_RE.match(app_id):
            return f"java.lang.IllegalArgumentException: Invalid ApplicationId: {app_id}"
        am = body.get("am-container-spec")
        if not body.get("unmanaged-AM") and not (isinstance(am, dict) and (am.get("commands") or {}).get("command")):
            return "java.lang.Exception: am-container-spec with a command is required"
        res = body.get("resource") or {}
        if int(res.get("memory", 0)) > 8192 or int(res.get("vCores", 0)) > 32:
            return (
                "org.apache.hadoop.yarn.exceptions.InvalidResourceRequestException: Invalid resource request, "
                "requested resource type=[memory-mb] > maximum allowed allocation"
            )
        tags = (body.get("application-tags") or {}).get("tag") or []
        if isinstance(tags, str):
            tags = [tags]
        if len(tags) > 10:
            return "java.lang.IllegalArgumentException: Too many applicationTags, a maximum of only 10 are allowed!"
        for tag in tags:
            if not str(tag).isascii():
                return f"java.lang.IllegalArgumentException: A tag can only have ASCII characters! Invalid tag - {tag}"
            if len(str(tag)) > 100:
                return (
                    f"java.lang.IllegalArgumentException: Tag {tag} is too long, maximum allowed length of a tag is 100"
                )
        return None

    def _app_or_error(self, request: web.Request) -> FakeApp | web.Response:
        app_id = request.match_info["appid"]
        if not APP_ID_RE.match(app_id):
            return remote_exception(
                "BadRequestException",
                f"java.lang.IllegalArgumentException: Invalid ApplicationId prefix: {app_id}. "
                "The valid ApplicationId should start with prefix application",
            )
        app = self.apps.get(app_id)
        if app is None:
            return remote_exception("NotFoundException", f"java.lang.Exception: app with id: {app_id} not found")
        return app

    async def _get_app(self, request: web.Request) -> web.Response:
        app = self._app_or_error(request)
        if isinstance(app, web.Response):
            return app
        app.observe(self.cluster.kill_steps)
        return web.json_response({"app": self.app_json(app)})

    async def _list(self, request: web.Request) -> web.Response:
        q = request.query
        states = [s.strip().upper() for s in q.get("states", q.get("state", "")).split(",") if s.strip()]
        for s in states:
            if s not in STATES:
                return remote_exception(
                    "BadRequestException",
                    f"java.lang.IllegalArgumentException: Invalid application-state {s} specified. "
                    f"It should be one of {', '.join(STATES)}",
                )
        for d in (d.strip() for d in q.get("deSelects", "").split(",") if d.strip()):
            if d not in ("resourceRequests", "timeouts", "appNodeLabelExpression", "amNodeLabelExpression"):
                return remote_exception("BadRequestException", f"java.lang.Exception: Invalid deSelects string {d}")
        tags = {t.strip().lower() for t in q.get("applicationTags", "").split(",") if t.strip()}
        types = {t.strip().lower() for t in q.get("applicationTypes", "").split(",") if t.strip()}
        try:
            limit = int(q["limit"]) if "limit" in q else None
            begin = int(q.get("startedTimeBegin", "0"))
        except ValueError:
            return remote_exception("BadRequestException", "java.lang.NumberFormatException: bad number")
        out = []
        for app in self.apps.values():
            if states and app.state not in states:
                continue
            if tags and not tags & set(app.tags):
                continue
            if types and app.app_type.lower() not in types:
                continue
            if q.get("user") and app.user != q["user"]:
                continue
            if q.get("queue") and app.queue != q["queue"]:
                continue
            if app.started < begin:
                continue
            out.append(app)
        if limit is not None:
            out = out[:limit]
        for app in out:
            app.observe(self.cluster.kill_steps)
        if not out:
            return web.json_response({"apps": None})
        apps = [a.to_json(self.url) for a in out]
        if "resourceRequests" in q.get("deSelects", ""):
            for a in apps:
                a.pop("resourceRequests", None)
        apps = [self.mangle[a["id"]](a) if a["id"] in self.mangle else a for a in apps]
        return web.json_response({"apps": {"app": apps}})

    async def _get_state(self, request: web.Request) -> web.Response:
        app = self._app_or_error(request)
        if isinstance(app, web.Response):
            return app
        app.observe(self.cluster.kill_steps)
        return web.json_response({"state": app.state})

    async def _put_state(self, request: web.Request) -> web.Response:
        user = self._user_or_401(request)
        if isinstance(user, web.Response):
            return user
        app = self._app_or_error(request)
        if isinstance(app, web.Response):
            return app
        try:
            target = str((await request.json()).get("state", ""))
        except (ValueError, AttributeError):
            target = ""
        if target == app.state or (app.state in TERMINAL and target == "KILLED"):
            return web.json_response({"state": app.state})
        if target != "KILLED":
            return remote_exception(
                "BadRequestException", "java.lang.Exception: Only 'KILLED' is allowed as a target state."
            )
        if app.kill_countdown is None:
            app.kill_countdown = self.cluster.kill_steps
            app.kill_accepted = int(time.time() * 1000)
        else:
            app.kill_countdown -= 1
        if app.kill_countdown <= 0:
            app.set("KILLED", "KILLED", f"Application killed by user {user}.")
            return web.json_response({"state": "KILLED"})
        return web.json_response({"state": app.state}, status=202, headers={"Location": f"{self.url}{request.path}"})

    # --- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> FakeYarnRM:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/ws/v1/cluster/info", self._info)
        app.router.add_get("/ws/v1/cluster", self._info)
        app.router.add_post("/ws/v1/cluster/apps/new-application", self._new_application)
        app.router.add_get("/ws/v1/cluster/apps", self._list)
        app.router.add_post("/ws/v1/cluster/apps", self._submit)
        app.router.add_get("/ws/v1/cluster/apps/{appid}", self._get_app)
        app.router.add_get("/ws/v1/cluster/apps/{appid}/state", self._get_state)
        app.router.add_put("/ws/v1/cluster/apps/{appid}/state", self._put_state)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])
        return self

    async def start_admin(self, port: int = 0) -> str:
        """An unauthenticated listener on 127.0.0.1 answering ``GET /ws/v1/cluster/apps`` (every application,
        or those of ``applicationTags``) from the RM's state, without observing anything (no script steps):
        how a test counts applications without the client under test. Returns its URL."""

        async def apps(request: web.Request) -> web.Response:
            self.cluster.tick()
            tags = {t.strip().lower() for t in request.query.get("applicationTags", "").split(",") if t.strip()}
            out = [a.to_json(self.url) for a in self.apps.values() if not tags or tags & set(a.tags)]
            return web.json_response({"apps": {"app": out} if out else None})

        admin = web.Application()
        admin.router.add_get("/ws/v1/cluster/apps", apps)
        admin.router.add_get("/ws/v1/cluster/info", self._info)
        self._admin_runner = web.AppRunner(admin, handle_signals=False, access_log=None)
        await self._admin_runner.setup()
        await web.TCPSite(self._admin_runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{self._admin_runner.addresses[0][1]}"

    async def stop(self) -> None:
        for runner in (self._runner, self._admin_runner):
            if runner is not None:
                await runner.cleanup()
        self._runner = self._admin_runner = None


class ThreadedFakeYarnRM:
    """The fake RM on its own event loop in a thread, for sync code (the operator on a worker)."""

    def __init__(self, rm: FakeYarnRM | None = None) -> None:
        self.rm = rm or FakeYarnRM()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> FakeYarnRM:
        self._thread.start()
        self.call(self.rm.start())
        return self.rm

    def stop_rm(self) -> None:
        self.call(self.rm.stop())

    def start_rm(self) -> None:
        self.call(self.rm.start())

    def __exit__(self, *exc: object) -> None:
        self.call(self.rm.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@dataclass
class FakeSparkSubmit:
    """Stands in for ``spark-submit --master yarn --deploy-mode cluster``: registers the application with
    the tags of ``spark.yarn.tags`` on the fake cluster, the way Spark's YARN ``Client`` does, and prints
    what spark-submit prints. ``register=False`` fails before reaching the RM."""

    cluster: YarnClusterState
    user: str = "alice"
    returncode: int = 0
    register: bool = True
    calls: list[tuple[list[str], dict[str, str]]] = field(default_factory=list)

    async def __call__(self, argv: Sequence[str], env: Any, timeout: float) -> CommandResult:
        argv = list(argv)
        self.calls.append((argv, dict(env)))
        conf = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--conf")
        if not self.register:
            return CommandResult(1, 'Exception in thread "main" java.net.ConnectException: Call to rm:8032 failed')
        app_id = self.cluster.new_id()
        name = argv[argv.index("--name") + 1]
        queue = argv[argv.index("--queue") + 1] if "--queue" in argv else "default"
        self.cluster.register(
            {
                "application-id": app_id,
                "application-name": name,
                "application-type": "SPARK",
                "queue": queue,
                "application-tags": {"tag": [t for t in conf.get("spark.yarn.tags", "").split(",") if t]},
                "am-container-spec": {"commands": {"command": "{{JAVA_HOME}}/bin/java ApplicationMaster"}},
            },
            self.user,
        )
        out = (
            f"INFO Client: Submitting application {app_id} to ResourceManager\n"
            f"INFO YarnClientImpl: Submitted application {app_id}\n"
            f"INFO Client: Application report for {app_id} (state: ACCEPTED)\n"
        )
        return CommandResult(self.returncode, out)


# --- the fake as its own process ----------------------------------------------------------------------------


def _stop_on_stdin_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Set ``stop`` when stdin closes (the launcher died or closed the pipe). Raw reads: no buffer lock for a
    daemon thread to hold at interpreter exit."""
    try:
        while os.read(0, 65536):
            pass
    except OSError:
        pass
    with contextlib.suppress(RuntimeError):  # the loop already closed
        loop.call_soon_threadsafe(stop.set)


def serve(
    *,
    port: int = 0,
    admin_port: int = 0,
    port_file: Path | None = None,
    auth: str = "kerberos",
    lifecycle: str = "timed",
    accept_seconds: float = 0.5,
    spn_host: str = "localhost",
) -> None:
    """Run one fake RM (127.0.0.1, ``port``; 0 picks one) and its admin listener until stdin closes or SIGTERM.

    Once both listen, one JSON line ``{"pid", "url", "admin_url", "auth"}`` is printed and, with
    ``port_file``, written there (atomically). ``auth="kerberos"`` accepts SPNEGO for ``HTTP/<spn_host>``
    with the key of ``KRB5_KTNAME`` (and the realm of ``KRB5_CONFIG``; replay cache in ``KRB5RCACHEDIR``).
    """
    if auth == "kerberos" and not os.environ.get("KRB5_KTNAME"):
        raise SystemExit("auth kerberos needs KRB5_KTNAME (the HTTP/<host> keytab) and KRB5_CONFIG")

    async def run() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        threading.Thread(target=_stop_on_stdin_eof, args=(loop, stop), daemon=True).start()
        cluster = YarnClusterState(lifecycle=lifecycle, accept_seconds=accept_seconds)
        rm = await FakeYarnRM(auth=auth, cluster=cluster, port=port, spn_host=spn_host).start()
        try:
            admin_url = await rm.start_admin(admin_port)
            info = json.dumps({"pid": os.getpid(), "url": rm.url, "admin_url": admin_url, "auth": auth})
            if port_file is not None:
                tmp = port_file.with_name(port_file.name + ".tmp")
                tmp.write_text(info + "\n")
                os.replace(tmp, port_file)
            print(info, flush=True)
            log.info("fake RM (%s auth, %s lifecycle) at %s, admin at %s", auth, lifecycle, rm.url, admin_url)
            await stop.wait()
        finally:
            await rm.stop()
        log.info("fake RM stopped")

    asyncio.run(run())


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m durable_jobs_harness.fake_yarn")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("serve", help="run the fake RM until stdin closes or SIGTERM")
    cmd.add_argument("--port", type=int, default=0, help="the RM's REST port (default: a free one)")
    cmd.add_argument("--admin-port", type=int, default=0, help="the unauthenticated admin listener's port")
    cmd.add_argument("--port-file", type=Path, help="write the URLs there as JSON once listening")
    cmd.add_argument("--auth", choices=("none", "simple", "kerberos"), default="kerberos")
    cmd.add_argument("--lifecycle", choices=LIFECYCLES, default="timed")
    cmd.add_argument("--accept-seconds", type=float, default=0.5, help="timed: seconds ACCEPTED before RUNNING")
    cmd.add_argument("--spn-host", default="localhost", help="the acceptor's HTTP/<host> (default localhost)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    serve(
        port=args.port,
        admin_port=args.admin_port,
        port_file=args.port_file,
        auth=args.auth,
        lifecycle=args.lifecycle,
        accept_seconds=args.accept_seconds,
        spn_host=args.spn_host,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
