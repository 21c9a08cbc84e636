"""A tiny HTTP job service: the external system of the example, small enough to read in a minute.

It stands for any service that runs jobs and answers over HTTP::

    POST /jobs              {"token", "command", "seconds"} -> 201 {"id"}; the same token again -> 200, same id
    GET  /jobs?token=<t>    {"jobs": [job, ...]}  the jobs submitted with that token
    GET  /jobs              {"jobs": [job, ...]}  every job it remembers (one request polls them all)
    GET  /jobs/<id>         job, or 404 {"error": "no such job"}
    POST /jobs/<id>/cancel  job, or 404 {"error": "no such job"}

A job is ``{"id", "token", "command", "state", "message"}``, its state one of queued, running, succeeded,
failed, cancelled. A job of ``seconds`` runs that long and succeeds (fails if its command is ``false``);
without ``seconds`` it runs until cancelled or told to end. With a ``bearer`` every request needs
``Authorization: Bearer <bearer>``. Tests drive it directly: :meth:`JobService.finish`,
:meth:`JobService.forget`, :meth:`JobService.stop` and :meth:`JobService.start` (same port, same jobs).

Run it alone with ``python examples/jobservice/server.py [port]``.
"""

from __future__ import annotations

import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Job:
    id: str
    token: str
    command: str
    ends_at: float | None
    state: str = "running"
    message: str = ""

    def view(self) -> dict[str, Any]:
        if self.state == "running" and self.ends_at is not None and time.time() >= self.ends_at:
            self.state = "failed" if self.command == "false" else "succeeded"
            self.message = "exit code 1" if self.state == "failed" else ""
        return {k: getattr(self, k) for k in ("id", "token", "command", "state", "message")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class JobService:
    port: int = field(default_factory=free_port)
    bearer: str | None = None
    jobs: dict[str, Job] = field(default_factory=dict)
    submissions: list[str] = field(default_factory=list)  # the token of every POST that created a job
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- what tests do to it ----------------------------------------------------------------------------

    def finish(self, job_id: str, state: str, message: str = "") -> None:
        self.jobs[job_id].state, self.jobs[job_id].message = state, message

    def forget(self, job_id: str) -> None:
        del self.jobs[job_id]

    # --- the HTTP API -----------------------------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.bearer is not None and request.headers.get("Authorization") != f"Bearer {self.bearer}":
            return web.json_response({"error": "unauthorized"}, status=401)
        response: web.StreamResponse = await handler(request)
        return response

    def _job(self, request: web.Request) -> Job | None:
        return self.jobs.get(request.match_info["id"])

    async def _submit(self, request: web.Request) -> web.Response:
        body = await request.json()
        token, seconds = body.get("token"), body.get("seconds")
        if not isinstance(token, str) or not token or not isinstance(body.get("command"), str):
            return web.json_response({"error": "token and command are required strings"}, status=400)
        for job in self.jobs.values():
            if job.token == token:  # idempotent per token: the job it already made
                return web.json_response({"id": job.id})
        self.submissions.append(token)
        job_id = f"job-{len(self.submissions)}"
        ends_at = None if seconds is None else time.time() + float(seconds)
        self.jobs[job_id] = Job(job_id, token, body["command"], ends_at)
        return web.json_response({"id": job_id}, status=201)

    async def _list(self, request: web.Request) -> web.Response:
        token = request.query.get("token")
        jobs = [j.view() for j in self.jobs.values() if token is None or j.token == token]
        return web.json_response({"jobs": jobs})

    async def _get(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job is None:
            return web.json_response({"error": "no such job"}, status=404)
        return web.json_response(job.view())

    async def _cancel(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job is None:
            return web.json_response({"error": "no such job"}, status=404)
        if job.view()["state"] in ("queued", "running"):
            job.state, job.message = "cancelled", "cancelled on request"
        return web.json_response(job.view())

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_post("/jobs", self._submit)
        app.router.add_get("/jobs", self._list)
        app.router.add_get("/jobs/{id}", self._get)
        app.router.add_post("/jobs/{id}/cancel", self._cancel)
        return app

    async def start(self) -> JobService:
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


if __name__ == "__main__":
    web.run_app(JobService().app(), host="127.0.0.1", port=int(sys.argv[1]) if len(sys.argv) > 1 else 8080)
