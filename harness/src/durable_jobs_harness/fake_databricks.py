"""A strict contract fake of the Databricks Jobs API 2.2 and its OAuth M2M token endpoint.

No Databricks workspace is reachable here, so this fake follows the documented wire protocol of the Jobs API 2.2
reference (what the client is written against, independently):

* ``runs/submit`` and ``run-now`` with ``idempotency_token``: the same token answers the existing run (forever,
  also after it ended); the token of a deleted run is a 400 ``INVALID_PARAMETER_VALUE``; exactly one run per
  token however many requests race;
* ``runs/get``, ``runs/list`` (``active_only``/``completed_only``, ``run_type``, ``job_id``,
  ``start_time_from``/``_to``, ``expand_tasks``, ``limit`` 1..24 (0: the maximum), opaque ``page_token``
  paging with ``has_more``/``next_page_token``/``prev_page_token``, newest first, ``runs`` absent when empty),
  ``runs/cancel`` (``{}``, also for a finished run), ``runs/delete``, ``jobs/create``, ``jobs/list?name=``;
* strict bodies: unknown or wrong-typed top-level fields, a token over 64 characters, a submit without tasks
  or a task without exactly one task type: 400 ``{"error_code": "INVALID_PARAMETER_VALUE", "message"}``;
* bearer auth on every ``/api/`` call (the PAT, or an unexpired token from ``POST /oidc/v1/token``, client
  credentials in HTTP basic auth); else 401 ``UNAUTHENTICATED``; an unknown endpoint: 404 ``ENDPOINT_NOT_FOUND``.

Life cycles are scripted and timed (see :mod:`durable_jobs_harness.fake_databricks_runs`). Test hooks:
:meth:`FakeDatabricks.fail_next`, :meth:`~FakeDatabricks.raw_next`, :meth:`~FakeDatabricks.delete_run`,
:meth:`~FakeDatabricks.forget_run`, :meth:`~FakeDatabricks.finish`, :meth:`~FakeDatabricks.expire_tokens`, and
the request log :attr:`~FakeDatabricks.requests`.

``python -m durable_jobs_harness.fake_databricks serve``: the fake as its own process, with an unauthenticated
admin listener (``GET /runs``, ``POST /jobs``, ``POST /runs/<id>/delete|forget|finish``; see :meth:`start_admin`).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from durable_jobs_harness.fake_databricks_requests import (
    JOB_CREATE_FIELDS,
    RUN_NOW_FIELDS,
    RUN_TYPES,
    SUBMIT_FIELDS,
    ApiError,
    basic_credentials,
    bool_param,
    check_fields,
    check_tasks,
    int_param,
    invalid,
    keyset_page,
    page_token,
    read_page_token,
    submit_tasks,
)
from durable_jobs_harness.fake_databricks_runs import (
    DEFAULT_SCRIPT,
    RESULTS,
    TERMINATING_SECONDS,
    FakeJob,
    FakeRun,
    Timeline,
    failing_task,
    find_script,
    make_tasks,
)
from durable_jobs_harness.served_process import ServedApp, serve_main, serve_until_stopped

__all__ = ["FakeDatabricks", "FakeJob", "FakeRun", "main", "serve"]

log = logging.getLogger("durable_jobs_harness.fake_databricks")
API = "/api/2.2/jobs"
MAX_RUNS_LIMIT = 24
DEFAULT_RUNS_LIMIT = 20
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, error_code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error_code": error_code, "message": message}, status=status, headers=headers)


@dataclass
class _Fault:
    path_prefix: str | None
    answer: Callable[[], web.Response]


class FakeDatabricks(ServedApp):
    """One workspace's Jobs API and OAuth token endpoint on 127.0.0.1 (``port`` 0: a free one)."""

    def __init__(
        self,
        pat: str = "dapi-fake-token",
        client_id: str = "fake-client",
        client_secret: str = "fake-secret",  # noqa: S107 - the fake's own test credential
        token_ttl: float = 3600.0,
        time_scale: float = 1.0,
        *,
        port: int = 0,
    ) -> None:
        self.pat, self.client_id, self.client_secret = pat, client_id, client_secret
        self.token_ttl, self.time_scale, self.port = token_ttl, time_scale, port
        self.jobs: dict[int, FakeJob] = {}
        self._runs: dict[int, FakeRun] = {}
        self._by_token: dict[str, int] = {}
        self._oauth: dict[str, float] = {}  # access token -> monotonic expiry
        self.oauth_tokens_issued = 0
        self._faults: list[_Fault] = []
        self._requests: list[tuple[str, str, dict[str, str]]] = []
        # ids as large as a workspace's (15 digits): a client that loses precision or truncates shows it
        self._ids = itertools.count(912_345_678_900_001)
        self._job_ids = itertools.count(587_654_321_000_001)

    # --- the Python API -----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def runs(self) -> list[FakeRun]:
        """Every run ever created, deleted and forgotten ones included, oldest first."""
        return list(self._runs.values())

    @property
    def requests(self) -> list[tuple[str, str, dict[str, str]]]:
        """(method, path, query) of every request received, refused and faulted ones included."""
        return list(self._requests)

    def count(self, path: str) -> int:
        return sum(1 for _, p, _ in self._requests if p == path)

    def create_job(self, name: str, tasks: list[dict[str, Any]] | None = None) -> int:
        """A job for run-now (one notebook task unless ``tasks``); its id."""
        job = FakeJob(
            next(self._job_ids), name, tasks or [{"task_key": "main", "notebook_task": {"notebook_path": "/x"}}]
        )
        self.jobs[job.job_id] = job
        return job.job_id

    def run(self, run_id: int) -> FakeRun:
        return self._runs[run_id]

    def delete_run(self, run_id: int) -> None:
        """As ``runs/delete``: gone from get and lists; its token now answers an error."""
        self._runs[run_id].deleted = True

    def forget_run(self, run_id: int) -> None:
        """The workspace aged the run out: 404 on get, absent from lists (its token still answers its id)."""
        self._runs[run_id].forgotten = True

    def finish(self, run_id: int, result: str = "SUCCESS") -> None:
        """End the run now with ``result`` (one of the scripted results)."""
        if result not in RESULTS:
            raise ValueError(f"result is one of {', '.join(RESULTS)}; got {result!r}")
        run = self._runs[run_id]
        now = time.monotonic()
        if run.active(now):
            run.timeline.stop(now, result, 0.0)

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        error_code: str = "TEMPORARILY_UNAVAILABLE",
        retry_after: float | None = None,
        path_prefix: str | None = None,
    ) -> None:
        """The next ``n`` requests (under ``path_prefix``) answer ``{"error_code", "message"}`` with ``status``
        (and ``Retry-After``), before authentication and without effect."""
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
        for _ in range(n):
            self._faults.append(
                _Fault(path_prefix, lambda: error(status, error_code, f"injected failure ({error_code})", headers))
            )

    def raw_next(self, n: int, status: int, body: bytes, path_prefix: str | None = None) -> None:
        """The next ``n`` requests (under ``path_prefix``) answer these bytes as ``application/json``."""
        for _ in range(n):
            self._faults.append(
                _Fault(path_prefix, lambda: web.Response(status=status, body=body, content_type="application/json"))
            )

    def expire_tokens(self) -> None:
        """Every OAuth access token issued so far expires now."""
        self._oauth = dict.fromkeys(self._oauth, 0.0)

    # --- middleware: request log, faults, auth, errors ------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self._requests.append((request.method, request.path, dict(request.query)))
        for i, fault in enumerate(self._faults):
            if fault.path_prefix is None or request.path.startswith(fault.path_prefix):
                del self._faults[i]
                return fault.answer()
        if request.path.startswith("/api/") and not self._authorized(request):
            return error(401, "UNAUTHENTICATED", "Credential was not sent or was of an unsupported type for this API.")
        try:
            return await handler(request)
        except ApiError as exc:
            return error(exc.status, exc.error_code, exc.message)
        except web.HTTPNotFound:
            return error(404, "ENDPOINT_NOT_FOUND", f"No API found for '{request.method} {request.path}'")
        except web.HTTPMethodNotAllowed:
            return error(405, "ENDPOINT_NOT_FOUND", f"No API found for '{request.method} {request.path}'")

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        if secrets.compare_digest(token.encode(), self.pat.encode()):
            return True
        expiry = self._oauth.get(token)
        return expiry is not None and time.monotonic() < expiry

    async def _oidc_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        basic = basic_credentials(request.headers.get("Authorization", ""))
        if basic is not None:
            client_id, client_secret = basic
        else:  # RFC 6749 also allows the credentials in the form
            client_id, client_secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        if form.get("grant_type") != "client_credentials":
            body = {"error": "unsupported_grant_type", "error_description": "grant_type must be client_credentials"}
            return web.json_response(body, status=400)
        if not (
            secrets.compare_digest(client_id.encode(), self.client_id.encode())
            and secrets.compare_digest(client_secret.encode(), self.client_secret.encode())
        ):
            body = {"error": "invalid_client", "error_description": "Client authentication failed"}
            return web.json_response(body, status=401)
        token = "dapi-oauth-" + secrets.token_hex(16)
        self._oauth[token] = time.monotonic() + self.token_ttl
        self.oauth_tokens_issued += 1
        scope = str(form.get("scope") or "all-apis")
        return web.json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": int(self.token_ttl), "scope": scope}
        )

    # --- runs/submit, run-now -----------------------------------------------------------------------------

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "MALFORMED_REQUEST", "Invalid JSON given in the body of the request") from None
        if not isinstance(body, dict):
            raise ApiError(400, "MALFORMED_REQUEST", "Invalid JSON given in the body of the request - expected a map")
        return body

    def _existing(self, token: str | None) -> FakeRun | None:
        if token is None or token not in self._by_token:
            return None
        run = self._runs[self._by_token[token]]
        if run.deleted:
            raise invalid(f"Run with idempotency token {token} was deleted")
        return run

    def _create(
        self, body: dict[str, Any], *, run_type: str, job: FakeJob | None, tasks: list[dict[str, Any]], name: str
    ) -> FakeRun:
        seconds, result = find_script(body) or (find_script(job.tasks) if job else None) or DEFAULT_SCRIPT
        now = time.monotonic()
        timeout = body.get("timeout_seconds") or None
        run_id = next(self._ids)
        fake_tasks = make_tasks(tasks, lambda: next(self._ids))
        run = FakeRun(
            run_id=run_id,
            token=body.get("idempotency_token"),
            run_type=run_type,
            job_id=job.job_id if job else None,
            run_name=name,
            body=body,
            tasks=fake_tasks,
            timeline=Timeline.scripted(now, seconds, result, self.time_scale, timeout),
            failing_task=failing_task(fake_tasks),
        )
        self._runs[run.run_id] = run
        if run.token is not None:
            self._by_token[run.token] = run.run_id
        log.info("run %s (%s, token %s): %s in %ss", run.run_id, run_type, run.token, result, seconds)
        return run

    async def _submit(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        check_fields(body, SUBMIT_FIELDS)
        tasks = submit_tasks(body)
        run = self._existing(body.get("idempotency_token")) or self._create(
            body, run_type="SUBMIT_RUN", job=None, tasks=tasks, name=str(body.get("run_name") or "Untitled")
        )
        return web.json_response({"run_id": run.run_id})

    async def _run_now(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        check_fields(body, RUN_NOW_FIELDS, required=("job_id",))
        job = self.jobs.get(body["job_id"])
        if job is None:
            raise invalid(f"Job {body['job_id']} does not exist.")
        run = self._existing(body.get("idempotency_token")) or self._create(
            body, run_type="JOB_RUN", job=job, tasks=job.tasks, name=job.name
        )
        return web.json_response({"run_id": run.run_id, "number_in_job": run.run_id})

    # --- runs/get, runs/list, runs/cancel, runs/delete ----------------------------------------------------

    def _visible_run(self, run_id: Any) -> FakeRun:
        if not isinstance(run_id, int) or isinstance(run_id, bool):
            raise invalid(f"Invalid value for run_id: {run_id}")
        run = self._runs.get(run_id)
        if run is None or not run.visible():
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Run {run_id} does not exist.")
        return run

    async def _get(self, request: web.Request) -> web.Response:
        run_id = int_param(request.query, "run_id")
        if run_id is None:
            raise invalid("Missing required field: run_id")
        run = self._visible_run(run_id)
        return web.json_response(run.to_json(self.url, time.monotonic()))

    async def _list(self, request: web.Request) -> web.Response:
        q = request.query
        limit = int_param(q, "limit", DEFAULT_RUNS_LIMIT)
        if limit == 0:
            limit = MAX_RUNS_LIMIT  # documented: 0 means the maximum
        if limit is None or not 0 < limit <= MAX_RUNS_LIMIT:
            raise invalid(f"Limit must be between 0 and {MAX_RUNS_LIMIT}, got {q.get('limit')}")
        active_only, completed_only = bool_param(q, "active_only"), bool_param(q, "completed_only")
        if active_only and completed_only:
            raise invalid("active_only and completed_only cannot both be true")
        run_type = q.get("run_type")
        if run_type is not None and run_type not in RUN_TYPES:
            raise invalid(f"Invalid run_type: {run_type}")
        job_id = int_param(q, "job_id")
        since, until = int_param(q, "start_time_from"), int_param(q, "start_time_to")
        now = time.monotonic()
        picked = []
        for run in self._runs.values():
            start = run.epoch_ms(run.timeline.start)
            if not run.visible() or (active_only and not run.active(now)) or (completed_only and run.active(now)):
                continue
            if (run_type and run.run_type != run_type) or (job_id is not None and run.job_id != job_id):
                continue
            if (since and start < since) or (until and start > until):
                continue
            picked.append(((start, run.run_id), run))
        picked.sort(key=lambda kr: kr[0], reverse=True)  # newest first
        page, has_more, has_prev = keyset_page(picked, q.get("page_token"), limit)
        out: dict[str, Any] = {"has_more": has_more}
        if page:
            expand = bool_param(q, "expand_tasks")
            out["runs"] = [run.to_json(self.url, now, expand_tasks=expand) for _, run in page]
            if has_more:
                out["next_page_token"] = page_token("next", page[-1][0])
            if has_prev:
                out["prev_page_token"] = page_token("prev", page[0][0])
        return web.json_response(out)

    async def _cancel(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        check_fields(body, {"run_id": "int"}, required=("run_id",))
        run = self._visible_run(body["run_id"])
        now = time.monotonic()
        if run.active(now):
            run.timeline.stop(now, "CANCELED", TERMINATING_SECONDS * self.time_scale)
            log.info("run %s cancelled", run.run_id)
        return web.json_response({})

    async def _delete(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        check_fields(body, {"run_id": "int"}, required=("run_id",))
        run = self._visible_run(body["run_id"])
        if run.active(time.monotonic()):
            raise invalid(f"Run {run.run_id} is active and cannot be deleted.")
        run.deleted = True
        return web.json_response({})

    # --- jobs/create, jobs/list ---------------------------------------------------------------------------

    async def _jobs_create(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        check_fields(body, JOB_CREATE_FIELDS)
        tasks = check_tasks(body.get("tasks"))
        return web.json_response({"job_id": self.create_job(str(body.get("name") or "Untitled"), tasks)})

    async def _jobs_delete(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        check_fields(body, {"job_id": "int"}, required=("job_id",))
        if self.jobs.pop(body["job_id"], None) is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Job {body['job_id']} does not exist.")
        return web.json_response({})

    async def _jobs_list(self, request: web.Request) -> web.Response:
        q = request.query
        limit = int_param(q, "limit", 20)
        if limit is None or not 0 < limit <= 100:
            raise invalid(f"Limit must be between 1 and 100, got {q.get('limit')}")
        offset = 0
        if q.get("page_token"):
            _, (offset, _) = read_page_token(q["page_token"])
        name = q.get("name")
        jobs = [
            j for j in sorted(self.jobs.values(), key=lambda j: j.job_id) if not name or j.name.lower() == name.lower()
        ]
        page = jobs[offset : offset + limit]
        out: dict[str, Any] = {"has_more": offset + limit < len(jobs)}
        if page:
            out["jobs"] = [j.to_json() for j in page]
        if out["has_more"]:
            out["next_page_token"] = page_token("next", (offset + limit, 0))
        return web.json_response(out)

    # --- lifecycle ----------------------------------------------------------------------------------------

    async def start(self) -> FakeDatabricks:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/oidc/v1/token", self._oidc_token)
        for path, handler in (
            ("/runs/submit", self._submit),
            ("/run-now", self._run_now),
            ("/runs/cancel", self._cancel),
            ("/runs/delete", self._delete),
            ("/create", self._jobs_create),
            ("/delete", self._jobs_delete),
        ):
            app.router.add_post(API + path, handler)
        app.router.add_get(API + "/runs/get", self._get)
        app.router.add_get(API + "/runs/list", self._list)
        app.router.add_get(API + "/list", self._jobs_list)
        await self._serve(app)
        return self

    async def start_admin(self, port: int = 0) -> str:
        """An unauthenticated listener on 127.0.0.1: ``GET /runs`` (every run, deleted and forgotten included,
        with its token), ``POST /jobs`` ``{"name"}`` -> ``{"job_id"}``, and ``POST /runs/<id>/delete``,
        ``/forget``, ``/finish`` (``{"result"}``) as :meth:`delete_run`, :meth:`forget_run`, :meth:`finish`.
        Returns its URL."""

        async def runs(request: web.Request) -> web.Response:
            return web.json_response({"runs": [r.summary(self.url) for r in self._runs.values()]})

        async def jobs(request: web.Request) -> web.Response:
            body = await request.json()
            return web.json_response({"job_id": self.create_job(str(body["name"]), body.get("tasks"))})

        async def act(request: web.Request) -> web.Response:
            run_id, action = int(request.match_info["run_id"]), request.match_info["action"]
            if run_id not in self._runs:
                return error(404, "RESOURCE_DOES_NOT_EXIST", f"Run {run_id} does not exist.")
            if action == "finish":
                try:
                    self.finish(run_id, str((await request.json()).get("result", "SUCCESS")))
                except ValueError as exc:
                    return error(400, "INVALID_PARAMETER_VALUE", str(exc))
            else:
                (self.delete_run if action == "delete" else self.forget_run)(run_id)
            return web.json_response(self._runs[run_id].summary(self.url))

        admin = web.Application()
        admin.router.add_get("/runs", runs)
        admin.router.add_post("/jobs", jobs)
        admin.router.add_post(r"/runs/{run_id:\d+}/{action:delete|forget|finish}", act)
        return await self._serve_admin(admin, port)


# --- the fake as its own process ----------------------------------------------------------------------------


def serve(
    *,
    port: int = 0,
    admin_port: int = 0,
    port_file: Path | None = None,
    admin_port_file: Path | None = None,
    pat: str = "dapi-fake-token",
    client_id: str = "fake-client",
    client_secret: str = "fake-secret",  # noqa: S107 - the fake's own test credential
    time_scale: float = 1.0,
) -> None:
    """Run the fake (127.0.0.1, ``port``; 0 picks one) and its admin listener until stdin closes or SIGTERM.

    Once both listen, one JSON line ``{"pid", "url", "admin_url"}`` is printed and written (atomically) to
    ``port_file`` and ``admin_port_file`` when given.
    """

    async def run() -> None:
        fake = FakeDatabricks(pat, client_id, client_secret, time_scale=time_scale, port=port)
        await fake.start()
        try:
            admin_url = await fake.start_admin(admin_port)
            log.info("fake Databricks at %s, admin at %s", fake.url, admin_url)
            await serve_until_stopped({"url": fake.url, "admin_url": admin_url}, (port_file, admin_port_file))
        finally:
            await fake.stop()
        log.info("fake Databricks stopped")

    asyncio.run(run())


def _arguments(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--admin-port-file", type=Path, help="the same JSON, for whoever reads the admin URL")
    cmd.add_argument("--pat", default="dapi-fake-token", help="the personal access token accepted as a bearer")
    cmd.add_argument("--client-id", default="fake-client", help="the OAuth M2M client id")
    cmd.add_argument("--client-secret", default="fake-secret", help="the OAuth M2M client secret")
    cmd.add_argument("--time-scale", type=float, default=1.0, help="multiplies every scripted duration")


def main(argv: Sequence[str] | None = None) -> int:
    return serve_main("python -m durable_jobs_harness.fake_databricks", "the fake workspace", serve, _arguments, argv)


if __name__ == "__main__":
    sys.exit(main())
