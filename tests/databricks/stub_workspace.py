"""A small in-memory Databricks workspace behind :class:`MockTransport`, for the client's tests.

Not the contract fake (``durable_jobs_harness.fake_databricks``): just the Jobs API 2.2 calls the client
makes, answered as documented (idempotency tokens, ``RESOURCE_DOES_NOT_EXIST``, paginated ``runs/list``,
OAuth M2M tokens), whose runs the tests move by hand, plus hooks to answer anything at all instead.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from durable_jobs.errors import TransientError
from durable_jobs.testing.transport import MockTransport, json_response
from durable_jobs.transport.base import Request, Response

HOST = "https://dbx.example.com"
PAT = "dapi-stub-pat-0123456789"
API = "/api/2.2/jobs/"
ACTIVE = ("QUEUED", "PENDING", "RUNNING", "TERMINATING", "BLOCKED", "WAITING_FOR_RETRY")
Answer = Response | Callable[[Request], Response | Awaitable[Response]]


def error(status: int, code: str, message: str = "", headers: dict[str, str] | None = None) -> Response:
    return json_response({"error_code": code, "message": message}, status, headers=headers)


@dataclass
class StubRun:
    run_id: int
    token: str
    run_type: str
    run_name: str | None = None
    job_id: int | None = None
    life: str = "PENDING"
    result: str | None = None
    message: str = ""
    start_time: int = 1_700_000_000_000
    tasks: list[dict[str, Any]] | None = None
    status: dict[str, Any] | None = None
    deleted: bool = False
    forgotten: bool = False

    def to_json(self, host: str) -> dict[str, Any]:
        state: dict[str, Any] = {"life_cycle_state": self.life, "state_message": self.message}
        if self.result:
            state["result_state"] = self.result
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "run_type": self.run_type,
            "state": state,
            "start_time": self.start_time,
            "run_page_url": f"{host}/?o=1#job/{self.job_id or 0}/run/{self.run_id}",
        }
        for key, value in (("run_name", self.run_name), ("job_id", self.job_id), ("tasks", self.tasks)):
            if value is not None:
                out[key] = value
        if self.status is not None:
            out["status"] = self.status
        return out


@dataclass
class Override:
    match: Callable[[Request], bool]
    answer: Answer
    times: int | None = None  # None: for ever


@dataclass
class StubWorkspace:
    host: str = HOST
    pat: str | None = PAT
    client_id: str = "stub-client"
    client_secret: str = "stub-secret-value"
    token_ttl: int = 3600
    runs: dict[int, StubRun] = field(default_factory=dict)
    jobs: dict[int, str] = field(default_factory=dict)
    down: bool = False
    overrides: list[Override] = field(default_factory=list)
    tokens_issued: list[str] = field(default_factory=list)
    valid_tokens: set[str] = field(default_factory=set)
    _ids: Any = field(default_factory=lambda: itertools.count(1001))

    def __post_init__(self) -> None:
        self.transport = MockTransport(self.handle)

    @property
    def requests(self) -> list[Request]:
        return self.transport.requests

    def paths(self, method: str | None = None) -> list[str]:
        return [r.url.removeprefix(self.host) for r in self.requests if method is None or r.method == method]

    def count(self, suffix: str) -> int:
        return sum(1 for r in self.requests if r.url.endswith(suffix))

    # --- driving it ------------------------------------------------------------------------------------

    def override(self, match: Callable[[Request], bool], answer: Answer, times: int | None = None) -> None:
        self.overrides.append(Override(match, answer, times))

    def create_job(self, name: str) -> int:
        job_id = 500 + len(self.jobs)
        self.jobs[job_id] = name
        return job_id

    def add_run(self, **kw: Any) -> StubRun:
        run_id = kw.pop("run_id", None) or next(self._ids)
        kw.setdefault("token", f"dj{run_id:020x}")
        kw.setdefault("run_type", "SUBMIT_RUN")
        run = self.runs[run_id] = StubRun(run_id=run_id, **kw)
        return run

    def set(self, run_id: int, life: str, result: str | None = None, message: str = "") -> None:
        run = self.runs[run_id]
        run.life, run.result, run.message = life, result, message

    def by_token(self, token: str) -> list[StubRun]:
        return [r for r in self.runs.values() if r.token == token]

    # --- answering ---------------------------------------------------------------------------------------

    def handle(self, req: Request) -> Response | Awaitable[Response]:
        if self.down:
            raise TransientError(f"{req.what}: connection refused", connect_failed=True)
        for o in list(self.overrides):
            if o.match(req):
                if o.times is not None:
                    o.times -= 1
                    if o.times <= 0:
                        self.overrides.remove(o)
                return o.answer(req) if callable(o.answer) else o.answer
        path = req.url.removeprefix(self.host)
        if path == "/oidc/v1/token":
            return self.token(req)
        bearer = req.headers.get("Authorization", "").removeprefix("Bearer ")
        if bearer != self.pat and bearer not in self.valid_tokens:
            return error(401, "UNAUTHENTICATED", "Invalid access token.")
        q = {k: v for k, v in req.params}
        body = json.loads(req.body) if req.body else {}
        route = (req.method, path.removeprefix(API))
        if route == ("POST", "runs/submit"):
            return self._submit(body, "SUBMIT_RUN")
        if route == ("POST", "run-now"):
            if body.get("job_id") not in self.jobs:
                return error(400, "INVALID_PARAMETER_VALUE", f"Job {body.get('job_id')} does not exist.")
            return self._submit(body, "JOB_RUN")
        if route == ("GET", "runs/get"):
            run = self.runs.get(int(q["run_id"]))
            if run is None or run.deleted or run.forgotten:
                return error(404, "RESOURCE_DOES_NOT_EXIST", f"Run {q['run_id']} does not exist.")
            return json_response(run.to_json(self.host))
        if route == ("GET", "runs/list"):
            return self._list(q)
        if route == ("POST", "runs/cancel"):
            run = self.runs.get(body["run_id"])
            if run is None or run.deleted or run.forgotten:
                return error(404, "RESOURCE_DOES_NOT_EXIST", f"Run {body['run_id']} does not exist.")
            if run.life in ACTIVE:
                self.set(run.run_id, "TERMINATED", "CANCELED", "Run cancelled.")
            return json_response({})
        if route == ("GET", "list"):
            jobs = [{"job_id": i, "settings": {"name": n}} for i, n in self.jobs.items() if n == q.get("name")]
            return json_response({"jobs": jobs, "has_more": False} if jobs else {"has_more": False})
        return error(404, "ENDPOINT_NOT_FOUND", f"No API found for {req.method} {path}")

    def _submit(self, body: dict[str, Any], run_type: str) -> Response:
        token = body.get("idempotency_token")
        for run in self.by_token(token) if token else []:
            if run.deleted:
                return error(400, "INVALID_PARAMETER_VALUE", f"Run with idempotency token {token} was deleted")
            return json_response({"run_id": run.run_id})
        run = self.add_run(token=token, run_type=run_type, run_name=body.get("run_name"), job_id=body.get("job_id"))
        return json_response({"run_id": run.run_id, "number_in_job": run.run_id})

    def _list(self, q: dict[str, str]) -> Response:
        limit = int(q.get("limit", "20"))
        if not 1 <= limit <= 24:
            return error(400, "INVALID_PARAMETER_VALUE", "limit must be between 1 and 24")
        runs = [r for r in sorted(self.runs.values(), key=lambda r: -r.run_id) if not (r.deleted or r.forgotten)]
        if q.get("active_only") == "true":
            runs = [r for r in runs if r.life in ACTIVE]
        if "run_type" in q:
            runs = [r for r in runs if r.run_type == q["run_type"]]
        if "start_time_from" in q:
            runs = [r for r in runs if r.start_time >= int(q["start_time_from"])]
        offset = int(q.get("page_token", "0"))
        page = runs[offset : offset + limit]
        out: dict[str, Any] = {"has_more": offset + limit < len(runs)}
        if page:
            out["runs"] = [r.to_json(self.host) for r in page]
        if out["has_more"]:
            out["next_page_token"] = str(offset + limit)
        return json_response(out)

    def token(self, req: Request) -> Response:
        """``POST /oidc/v1/token``."""
        basic = req.headers.get("Authorization", "").removeprefix("Basic ")
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        form = parse_qs((req.body or b"").decode())
        if basic != expected:
            return json_response({"error": "invalid_client", "error_description": "Client authentication failed"}, 401)
        if form.get("grant_type") != ["client_credentials"] or form.get("scope") != ["all-apis"]:
            return json_response({"error": "invalid_request", "error_description": "bad form"}, 400)
        token = f"eyJstub.{len(self.tokens_issued):04d}.sig"
        self.tokens_issued.append(token)
        self.valid_tokens.add(token)
        return json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl, "scope": "all-apis"}
        )


def is_route(method: str, route: str) -> Callable[[Request], bool]:
    """Requests to ``/api/2.2/jobs/<route>`` (a regex) with ``method``."""
    pattern = re.compile(route)
    return lambda req: req.method == method and bool(pattern.fullmatch(req.url.split(API, 1)[-1]))


__all__ = ["HOST", "PAT", "StubRun", "StubWorkspace", "error", "is_route"]
