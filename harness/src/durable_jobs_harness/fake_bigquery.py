"""A strict contract fake of BigQuery's REST v2 ``jobs`` API and of Google's OAuth token endpoint.

No BigQuery is reachable here, so this fake follows the documented wire protocol (what the client is written
against, independently):

* ``POST /token``: the JWT bearer grant (``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``); the RS256
  assertion is verified against the public key of the service-account key the fake generated
  (:meth:`FakeBigQuery.service_account_info`): issuer, audience (the token URI), ``iat``/``exp`` and the
  ``kid``. Also the ``refresh_token`` grant (:meth:`~FakeBigQuery.authorized_user_info`), and the metadata
  server's ``GET /computeMetadata/v1/instance/service-accounts/default/token`` (``Metadata-Flavor: Google``);
* ``jobs.insert`` (strict body: ``jobReference`` {projectId, jobId, location}, ``configuration`` with exactly
  one of query/load/extract/copy, label rules; the same id again: 409 ``duplicate``), ``jobs.get``
  (``?location=``: another location is 404 ``notFound``), ``jobs.list`` (``stateFilter`` repeated,
  ``projection`` full/minimal, ``allUsers``, ``maxResults``, ``minCreationTime``/``maxCreationTime``, opaque
  ``pageToken``, newest first, ``jobs`` absent when empty), ``jobs.cancel``;
* errors ``{"error": {"code", "message", "errors": [{"message", "domain", "reason"}], "status"}}``; a bearer
  token on every ``/bigquery/`` call (else 401); an unknown URL: Google's HTML 404 page.

Life cycles are scripted from the configuration: a string ``durable-fake:<seconds>s:<DONE|FAILED>`` anywhere
in it (default 3 s, DONE), times ``time_scale``. Test hooks: :meth:`~FakeBigQuery.fail_next`,
:meth:`~FakeBigQuery.raw_next`, :meth:`~FakeBigQuery.finish`, :meth:`~FakeBigQuery.forget`,
:meth:`~FakeBigQuery.expire_tokens`, :attr:`~FakeBigQuery.requests`, :meth:`~FakeBigQuery.count`.

``python -m durable_jobs_harness.fake_bigquery serve --port-file F --admin-port-file F2 --key-file K``: the fake
as its own process (the key JSON written to K), with an unauthenticated admin listener (``GET /jobs``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import re
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from durable_jobs_harness.served_process import ServedApp, serve_main, serve_until_stopped

__all__ = ["FakeBigQuery", "FakeJob", "main", "serve"]

log = logging.getLogger("durable_jobs_harness.fake_bigquery")
API = "/bigquery/v2/projects/{project}/jobs"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCRIPT_RE = re.compile(r"durable-fake:(\d+(?:\.\d+)?)s:(DONE|FAILED)")
DEFAULT_SCRIPT = (3.0, "DONE")
PENDING_SECONDS = 0.2
CANCEL_SECONDS = 0.2
JOB_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,1024}\Z")
LABEL_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}\Z")
LABEL_VALUE_RE = re.compile(r"^[a-z0-9_-]{0,63}\Z")
KINDS = ("query", "load", "extract", "copy")
QUERY_FIELDS = {
    "query", "destinationTable", "tableDefinitions", "userDefinedFunctionResources", "createDisposition",
    "writeDisposition", "defaultDataset", "priority", "preserveNulls", "allowLargeResults", "useQueryCache",
    "flattenResults", "maximumBillingTier", "maximumBytesBilled", "useLegacySql", "parameterMode",
    "queryParameters", "systemVariables", "schemaUpdateOptions", "timePartitioning", "rangePartitioning",
    "clustering", "destinationEncryptionConfiguration", "scriptOptions", "connectionProperties",
    "createSession", "continuous", "writeIncrementalResults",
}  # fmt: skip
CONFIG_FIELDS = {*KINDS, "labels", "dryRun", "jobTimeoutMs", "jobType", "reservation"}
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}  # fmt: skip
HTML_404 = (
    "<!DOCTYPE html><html lang=en><meta charset=utf-8><title>Error 404 (Not Found)!!1</title>"
    "<p><b>404.</b> <ins>That's an error.</ins><p>The requested URL was not found on this server.</html>"
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def error(status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": STATUS_NAMES.get(status, "UNKNOWN"),
        }
    }
    return web.json_response(body, status=status, headers=headers)


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid", message)


def find_script(configuration: Any) -> tuple[float, str]:
    match = SCRIPT_RE.search(json.dumps(configuration))
    return (float(match.group(1)), match.group(2)) if match else DEFAULT_SCRIPT


@dataclass
class FakeJob:
    """One job: its reference, configuration and scripted timeline (monotonic seconds)."""

    project: str
    job_id: str
    location: str
    configuration: dict[str, Any]
    created: float  # monotonic
    created_epoch_ms: int
    run_at: float
    end_at: float
    result: str  # DONE or FAILED
    cancelled: bool = False
    forgotten: bool = False
    error_result: dict[str, Any] | None = None
    user_email: str = "fake@fake-project.iam.gserviceaccount.com"
    statistics: dict[str, str] = field(default_factory=dict)

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.configuration.get("labels") or {})

    def state(self, now: float) -> str:
        if now >= self.end_at:
            return "DONE"
        return "RUNNING" if now >= self.run_at else "PENDING"

    def end(self, now: float, result: str, error_result: dict[str, Any] | None, delay: float = 0.0) -> None:
        if self.state(now) != "DONE":
            self.end_at = now + delay
            self.run_at = min(self.run_at, self.end_at)
            self.result, self.error_result = result, error_result

    def _epoch_ms(self, t: float) -> str:
        return str(int(self.created_epoch_ms + (t - self.created) * 1000))

    def to_json(self, base: str, now: float, *, minimal: bool = False) -> dict[str, Any]:
        state = self.state(now)
        ref = {"projectId": self.project, "jobId": self.job_id, "location": self.location}
        status: dict[str, Any] = {"state": state}
        stats: dict[str, Any] = {"creationTime": self._epoch_ms(self.created)}
        if state != "PENDING":
            stats["startTime"] = self._epoch_ms(self.run_at)
        config = json.loads(json.dumps(self.configuration))
        config.setdefault("jobType", next(k for k in KINDS if k in config).upper())
        if state == "DONE":
            stats["endTime"] = self._epoch_ms(self.end_at)
            if self.error_result is not None:
                status["errorResult"] = self.error_result
                status["errors"] = [self.error_result]
            else:
                stats.update(totalBytesProcessed="10485760", totalSlotMs="4321")
                stats["query"] = {"totalBytesProcessed": "10485760", "totalSlotMs": "4321"} if "query" in config else {}
                if "query" in config and "destinationTable" not in config["query"]:
                    anon = {
                        "projectId": self.project,
                        "datasetId": "_fake_anon",
                        "tableId": "anon_" + self.job_id[-20:],
                    }
                    config["query"]["destinationTable"] = anon
        out: dict[str, Any] = {
            "kind": "bigquery#job",
            "etag": base64.b64encode(f"{self.job_id}:{state}".encode()).decode(),
            "id": f"{self.project}:{self.location}.{self.job_id}",
            "jobReference": ref,
            "statistics": stats,
            "status": status,
            "user_email": self.user_email,
        }
        if not minimal:
            out["selfLink"] = f"{base}{API.format(project=self.project)}/{self.job_id}?location={self.location}"
            out["configuration"] = config
        return out

    def summary(self, now: float) -> dict[str, Any]:
        state = self.state(now)
        return {
            "project": self.project,
            "job_id": self.job_id,
            "location": self.location,
            "labels": self.labels,
            "state": state,
            "error": self.error_result if state == "DONE" else None,
            "cancelled": self.cancelled,
            "forgotten": self.forgotten,
        }


@dataclass
class _Fault:
    path_prefix: str | None
    answer: Callable[[], web.Response]
    path: str | None = None  # exactly this path

    def applies(self, path: str) -> bool:
        if self.path is not None:
            return path == self.path
        return self.path_prefix is None or path.startswith(self.path_prefix)


def _pem_private(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


class FakeBigQuery(ServedApp):
    """One project's BigQuery ``jobs`` API, token endpoint and metadata server on 127.0.0.1 (``port`` 0: free)."""

    def __init__(
        self, project: str = "fake-project", time_scale: float = 1.0, *, port: int = 0, token_ttl: float = 3600.0
    ) -> None:
        self.project, self.time_scale, self.port, self.token_ttl = project, time_scale, port, token_ttl
        self.jobs: dict[str, FakeJob] = {}
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_id = secrets.token_hex(20)
        self.client_email = f"durable-jobs@{project}.iam.gserviceaccount.com"
        self.user_client_id, self.user_secret, self.refresh_token = (
            "fake-user.apps",
            "fake-user-secret",
            "1//fake-refresh",
        )
        self._tokens: dict[str, float] = {}  # access token -> monotonic expiry
        self.tokens_issued: list[str] = []
        self.assertions_verified = 0
        self._faults: list[_Fault] = []
        self._requests: list[tuple[str, str, list[tuple[str, str]]]] = []

    # --- the Python API -----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    @property
    def token_audiences(self) -> list[str]:
        """The audiences a signed token request may name: this fake's token URI."""
        return [self.token_uri]

    def service_account_info(self) -> dict[str, Any]:
        """A full service-account key JSON whose ``token_uri`` is this fake's."""
        return {
            "type": "service_account",
            "project_id": self.project,
            "private_key_id": self.key_id,
            "private_key": _pem_private(self._key),
            "client_email": self.client_email,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
        }

    def authorized_user_info(self) -> dict[str, Any]:
        """Application-default user credentials (``gcloud auth application-default login``) for this fake."""
        return {
            "type": "authorized_user",
            "client_id": self.user_client_id,
            "client_secret": self.user_secret,
            "refresh_token": self.refresh_token,
            "token_uri": self.token_uri,
        }

    def issue_token(self) -> str:
        """An access token, as the token endpoint would issue it (for a BearerAuth)."""
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        self._tokens[token] = time.monotonic() + self.token_ttl
        self.tokens_issued.append(token)
        return token

    def expire_tokens(self) -> None:
        """Every access token issued so far expires now (the API answers 401 to them)."""
        self._tokens = dict.fromkeys(self._tokens, 0.0)

    @property
    def requests(self) -> list[tuple[str, str, list[tuple[str, str]]]]:
        """(method, path, query items) of every request received, refused and faulted ones included."""
        return list(self._requests)

    def count(self, path: str, method: str | None = None) -> int:
        return sum(1 for m, p, _ in self._requests if p == path and method in (None, m))

    def jobs_path(self, job_id: str = "") -> str:
        return API.format(project=self.project) + (f"/{job_id}" if job_id else "")

    def job(self, job_id: str) -> FakeJob:
        return self.jobs[job_id]

    def finish(self, job_id: str, result: str = "DONE", reason: str = "invalidQuery") -> None:
        """End the job now: ``DONE`` (a success) or ``FAILED`` (``errorResult`` with ``reason``)."""
        if result not in ("DONE", "FAILED"):
            raise ValueError(f"result is DONE or FAILED, not {result!r}")
        err = None if result == "DONE" else {"reason": reason, "location": "query", "message": "Syntax error: boom"}
        self.jobs[job_id].end(time.monotonic(), result, err)

    def forget(self, job_id: str) -> None:
        """BigQuery no longer knows the job: 404 on get and cancel, absent from lists."""
        self.jobs[job_id].forgotten = True

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        reason: str = "backendError",
        retry_after: float | None = None,
        path_prefix: str | None = None,
    ) -> None:
        """The next ``n`` requests (under ``path_prefix``) answer the API's error with ``status`` and ``reason``
        (and ``Retry-After``), before authentication and without effect."""
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
        for _ in range(n):
            self._faults.append(
                _Fault(path_prefix, lambda: error(status, reason, f"injected failure ({reason})", headers))
            )

    def raw_next(
        self,
        n: int,
        status: int,
        body: bytes,
        path_prefix: str | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        *,
        path: str | None = None,
    ) -> None:
        """The next ``n`` requests (under ``path_prefix``, or to exactly ``path``) answer these bytes."""
        for _ in range(n):
            answer = lambda: web.Response(status=status, body=body, content_type=content_type, headers=headers)  # noqa: E731
            self._faults.append(_Fault(path_prefix, answer, path))

    # --- middleware: request log, faults, auth, errors ------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self._requests.append((request.method, request.path, list(request.query.items())))
        for i, fault in enumerate(self._faults):
            if fault.applies(request.path):
                del self._faults[i]
                return fault.answer()
        if request.path.startswith("/bigquery/") and not self._authorized(request):
            return error(401, "unauthorized", "Request had invalid authentication credentials.")
        try:
            return await handler(request)
        except ApiError as exc:
            return error(exc.status, exc.reason, exc.message)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
            return web.Response(status=404, text=HTML_404, content_type="text/html")

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        expiry = self._tokens.get(token) if scheme.lower() == "bearer" else None
        return expiry is not None and time.monotonic() < expiry

    def _token_answer(self) -> web.Response:
        return web.json_response(
            {"access_token": self.issue_token(), "expires_in": int(self.token_ttl), "token_type": "Bearer"}
        )

    @staticmethod
    def _oauth_error(status: int, code: str, description: str) -> web.Response:
        return web.json_response({"error": code, "error_description": description}, status=status)

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant = form.get("grant_type")
        if grant == "refresh_token":
            ok = (form.get("client_id"), form.get("client_secret"), form.get("refresh_token")) == (
                self.user_client_id, self.user_secret, self.refresh_token)  # fmt: skip
            return self._token_answer() if ok else self._oauth_error(400, "invalid_grant", "Bad Request")
        if grant != JWT_BEARER:
            return self._oauth_error(400, "unsupported_grant_type", "Invalid grant_type: " + str(grant)[:40])
        assertion = str(form.get("assertion", ""))
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(
                assertion,
                self._key.public_key(),
                algorithms=["RS256"],
                audience=self.token_audiences,
                issuer=self.client_email,
                options={"require": ["iss", "aud", "iat", "exp", "scope"]},
                leeway=30,
            )
        except jwt.PyJWTError as exc:
            return self._oauth_error(400, "invalid_grant", f"Invalid JWT Signature or claims: {type(exc).__name__}")
        if header.get("kid") != self.key_id or claims["exp"] - claims["iat"] > 3600:
            return self._oauth_error(400, "invalid_grant", "Invalid JWT: kid or lifetime")
        if not str(claims["scope"]).strip():
            return self._oauth_error(400, "invalid_scope", "Empty or missing scope not allowed.")
        self.assertions_verified += 1
        return self._token_answer()

    async def _metadata_token(self, request: web.Request) -> web.Response:
        if request.headers.get("Metadata-Flavor") != "Google":
            return web.Response(status=403, text="Missing Metadata-Flavor:Google header.", content_type="text/html")
        return self._token_answer()

    # --- jobs ---------------------------------------------------------------------------------------------

    def _project(self, request: web.Request) -> str:
        project = request.match_info["project"]
        if project != self.project:
            raise ApiError(404, "notFound", f"Not found: Project {project[:100]}")
        return project

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "parseError", "Parse Error") from None
        if not isinstance(body, dict):
            raise ApiError(400, "parseError", "Invalid JSON payload received. Expected an object.")
        return body

    @staticmethod
    def _check_configuration(config: Any) -> dict[str, Any]:
        if not isinstance(config, dict):
            raise invalid("Required parameter is missing: configuration")
        unknown = set(config) - CONFIG_FIELDS
        if unknown:
            raise invalid(
                f"Invalid JSON payload received. Unknown name \"{sorted(unknown)[0]}\" at 'job.configuration'"
            )
        kinds = [k for k in KINDS if k in config]
        if len(kinds) != 1 or not isinstance(config[kinds[0]], dict):
            raise invalid("The job configuration must contain exactly one job-specific configuration object")
        if kinds[0] == "query":
            if not isinstance(config["query"].get("query"), str):
                raise invalid("Required parameter is missing: query")
            unknown = set(config["query"]) - QUERY_FIELDS
            if unknown:
                name = sorted(unknown)[0][:60]
                raise invalid(f"Invalid JSON payload received. Unknown name \"{name}\" at 'job.configuration.query'")
        labels = config.get("labels", {})
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and LABEL_KEY_RE.match(k) and isinstance(v, str) and LABEL_VALUE_RE.match(v)
            for k, v in labels.items()
        ):
            raise invalid("Label keys and values must be lower case, at most 63 characters")
        return config

    async def _insert(self, request: web.Request) -> web.Response:
        project = self._project(request)
        body = await self._body(request)
        unknown = set(body) - {"jobReference", "configuration", "kind"}
        if unknown:
            raise invalid(f"Invalid JSON payload received. Unknown name \"{sorted(unknown)[0]}\" at 'job'")
        config = self._check_configuration(body.get("configuration"))
        ref = body.get("jobReference") or {}
        if not isinstance(ref, dict) or set(ref) - {"projectId", "jobId", "location"}:
            raise invalid("Invalid jobReference")
        job_id = ref.get("jobId") or "job_" + secrets.token_urlsafe(18).replace("-", "_")
        if not isinstance(job_id, str) or not JOB_ID_RE.match(job_id):
            raise invalid(
                f'Invalid job ID "{str(job_id)[:100]}". Job IDs must be alphanumeric (plus underscores and '
                "dashes) and must be at most 1024 characters long."
            )
        if ref.get("projectId", project) != project:
            raise invalid("The project in the job reference does not match the project of the request")
        location = ref.get("location") or "US"
        if not isinstance(location, str):
            raise invalid("Invalid location")
        if job_id in self.jobs:
            existing = self.jobs[job_id]
            raise ApiError(409, "duplicate", f"Already Exists: Job {project}:{existing.location}.{job_id}")
        seconds, result = find_script(config)
        now = time.monotonic()
        duration = seconds * self.time_scale
        err = None
        if result == "FAILED":
            err = {"reason": "invalidQuery", "location": "query", "message": "Syntax error: scripted failure"}
        job = FakeJob(
            project=project,
            job_id=job_id,
            location=location,
            configuration=config,
            created=now,
            created_epoch_ms=int(time.time() * 1000),
            run_at=now + min(PENDING_SECONDS * self.time_scale, duration),
            end_at=now + duration,
            result=result,
            error_result=err,
        )
        self.jobs[job_id] = job
        log.info("job %s (%s): %s in %ss", job_id, location, result, seconds)
        return web.json_response(job.to_json(self.url, now))

    def _visible(self, request: web.Request) -> FakeJob:
        project = self._project(request)
        job_id = request.match_info["job_id"]
        job = self.jobs.get(job_id)
        location = request.query.get("location")
        if job is None or job.forgotten or (location is not None and location.lower() != job.location.lower()):
            raise ApiError(404, "notFound", f"Not found: Job {project}:{location or 'US'}.{job_id[:200]}")
        return job

    async def _get(self, request: web.Request) -> web.Response:
        return web.json_response(self._visible(request).to_json(self.url, time.monotonic()))

    async def _cancel(self, request: web.Request) -> web.Response:
        job = self._visible(request)
        now = time.monotonic()
        if job.state(now) != "DONE":
            stopped = {"reason": "stopped", "message": "Job execution was cancelled: User requested cancellation"}
            job.end(now, "FAILED", stopped, CANCEL_SECONDS * self.time_scale)
            job.cancelled = True
        return web.json_response({"kind": "bigquery#jobCancelResponse", "job": job.to_json(self.url, now)})

    async def _list(self, request: web.Request) -> web.Response:
        self._project(request)
        q = request.query
        states = {s.upper() for s in q.getall("stateFilter", [])}
        if states - {"DONE", "PENDING", "RUNNING"}:
            raise invalid(f"Invalid value for stateFilter: {sorted(states)[0][:40]}")
        projection = q.get("projection", "minimal").lower()
        if projection not in ("full", "minimal"):
            raise invalid("Invalid value for projection")
        if q.get("allUsers", "false") not in ("true", "false"):
            raise invalid("Invalid value for allUsers")
        try:
            limit = int(q.get("maxResults", "1000"))
            offset = int(base64.urlsafe_b64decode(q["pageToken"]).decode().split(":")[1]) if "pageToken" in q else 0
            since = int(q.get("minCreationTime", "0"))
            until = int(q["maxCreationTime"]) if "maxCreationTime" in q else None
        except (ValueError, IndexError, UnicodeDecodeError):
            raise invalid("Invalid value for maxResults, pageToken or a creation time") from None
        if limit < 0:
            raise invalid("Invalid value for maxResults")
        limit = min(limit or 1000, 1000)
        now = time.monotonic()
        picked = [
            j
            for j in sorted(self.jobs.values(), key=lambda j: j.created, reverse=True)  # newest first
            if not j.forgotten
            and (not states or j.state(now) in states)
            and j.created_epoch_ms >= since
            and (until is None or j.created_epoch_ms <= until)
        ]
        page = picked[offset : offset + limit]
        out: dict[str, Any] = {"kind": "bigquery#jobList", "etag": secrets.token_hex(8)}
        if page:
            out["jobs"] = [self._entry(j, now, projection == "minimal") for j in page]
        if offset + limit < len(picked):
            out["nextPageToken"] = base64.urlsafe_b64encode(
                f"{secrets.token_hex(4)}:{offset + limit}".encode()
            ).decode()
        return web.json_response(out)

    def _entry(self, job: FakeJob, now: float, minimal: bool) -> dict[str, Any]:
        entry = job.to_json(self.url, now, minimal=minimal)
        entry.pop("etag", None)
        entry["state"] = entry["status"]["state"]
        if "errorResult" in entry["status"]:
            entry["errorResult"] = entry["status"]["errorResult"]
        return entry

    # --- lifecycle ----------------------------------------------------------------------------------------

    async def start(self) -> FakeBigQuery:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/token", self._token)
        app.router.add_get("/computeMetadata/v1/instance/service-accounts/default/token", self._metadata_token)
        jobs = "/bigquery/v2/projects/{project}/jobs"
        app.router.add_post(jobs, self._insert)
        app.router.add_get(jobs, self._list)
        app.router.add_get(jobs + "/{job_id}", self._get)
        app.router.add_post(jobs + "/{job_id}/cancel", self._cancel)
        await self._serve(app)
        return self

    async def start_admin(self, port: int = 0) -> str:
        """An unauthenticated listener on 127.0.0.1: ``GET /jobs`` (every job with its labels, state, error,
        forgotten ones included), ``POST /jobs/<id>/finish`` (``{"result"}``) and ``/forget``. Its URL."""

        async def jobs(request: web.Request) -> web.Response:
            now = time.monotonic()
            return web.json_response({"jobs": [j.summary(now) for j in self.jobs.values()]})

        async def act(request: web.Request) -> web.Response:
            job_id, action = request.match_info["job_id"], request.match_info["action"]
            if job_id not in self.jobs:
                return error(404, "notFound", f"Not found: Job {job_id}")
            if action == "finish":
                self.finish(job_id, str((await request.json()).get("result", "DONE")))
            else:
                self.forget(job_id)
            return web.json_response(self.jobs[job_id].summary(time.monotonic()))

        admin = web.Application()
        admin.router.add_get("/jobs", jobs)
        admin.router.add_post(r"/jobs/{job_id}/{action:finish|forget}", act)
        return await self._serve_admin(admin, port)


# --- the fake as its own process ----------------------------------------------------------------------------


def serve(
    *,
    port: int = 0,
    admin_port: int = 0,
    port_file: Path | None = None,
    admin_port_file: Path | None = None,
    key_file: Path | None = None,
    project: str = "fake-project",
    time_scale: float = 1.0,
) -> None:
    """Run the fake and its admin listener until stdin closes or SIGTERM; the key JSON goes to ``key_file``
    (written before the port files). One JSON line ``{"pid", "url", "admin_url", "project"}`` is published."""

    async def run() -> None:
        fake = FakeBigQuery(project, time_scale, port=port)
        await fake.start()
        try:
            admin_url = await fake.start_admin(admin_port)
            if key_file is not None:
                tmp = key_file.with_name(key_file.name + ".tmp")
                tmp.write_text(json.dumps(fake.service_account_info()))
                tmp.chmod(0o600)
                tmp.replace(key_file)
            log.info("fake BigQuery at %s, admin at %s", fake.url, admin_url)
            info = {"url": fake.url, "admin_url": admin_url, "project": project}
            await serve_until_stopped(info, (port_file, admin_port_file))
        finally:
            await fake.stop()
        log.info("fake BigQuery stopped")

    asyncio.run(run())


def _arguments(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--admin-port-file", type=Path, help="the same JSON, for whoever reads the admin URL")
    cmd.add_argument("--key-file", type=Path, help="write the service-account key JSON there")
    cmd.add_argument("--project", default="fake-project", help="the project id")
    cmd.add_argument("--time-scale", type=float, default=1.0, help="multiplies every scripted duration")


def main(argv: Sequence[str] | None = None) -> int:
    return serve_main("python -m durable_jobs_harness.fake_bigquery", "the fake BigQuery", serve, _arguments, argv)


if __name__ == "__main__":
    sys.exit(main())
