"""A Jobs API 2.2 endpoint for the contract tests, spoken to with plain aiohttp: the fake, or a real workspace.

The tests do not use the library's client (they check the wire protocol the client is written against).
A real workspace is used when ``DURABLE_JOBS_DATABRICKS_HOST`` and ``DURABLE_JOBS_DATABRICKS_TOKEN`` are set;
its runs execute ``DURABLE_JOBS_DATABRICKS_PYTHON_FILE`` (a copy of ``tests/databricks/workspace_job.py``, which
follows the fake's ``durable-fake:<s>s:<RESULT>`` convention for SUCCESS and FAILED) on the cluster
``DURABLE_JOBS_DATABRICKS_CLUSTER_ID``. Every run a test starts is cancelled when the test ends.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from durable_jobs_harness.fake_databricks import FakeDatabricks

API = "/api/2.2/jobs"
TERMINAL = ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")
# the order a run's life-cycle states may be seen in (a poll may skip any of them)
ORDER = ("QUEUED", "PENDING", "RUNNING", "TERMINATING", "TERMINATED", "SKIPPED", "INTERNAL_ERROR")
REAL_ENV = ("DURABLE_JOBS_DATABRICKS_HOST", "DURABLE_JOBS_DATABRICKS_TOKEN")


def real_workspace_configured() -> bool:
    return all(os.environ.get(name) for name in REAL_ENV)


def new_token() -> str:
    """A protocol-shaped idempotency token: ``dj`` and 20 hex digits."""
    return "dj" + secrets.token_hex(10)


@dataclass
class Answer:
    status: int
    body: Any
    headers: Mapping[str, str]


@dataclass
class Workspace:
    host: str
    token: str
    session: aiohttp.ClientSession
    fake: FakeDatabricks | None
    python_file: str
    compute: dict[str, Any]
    patience: float  # how long a run may take to end
    poll: float
    started: list[int] = field(default_factory=list)
    jobs: list[int] = field(default_factory=list)

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        bearer: str | None = "",
    ) -> Answer:
        """One request; ``bearer`` "" means the workspace's token, None sends no Authorization header."""
        token = self.token if bearer == "" else bearer
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        async with self.session.request(method, self.host + path, json=body, params=params, headers=headers) as resp:
            raw = await resp.read()
            try:
                data: Any = await resp.json(content_type=None) if raw else None
            except ValueError:
                data = raw
            return Answer(resp.status, data, resp.headers)

    def task(self, key: str, script: str | None = None, depends_on: Sequence[str] = ()) -> dict[str, Any]:
        task: dict[str, Any] = {
            "task_key": key,
            "spark_python_task": {"python_file": self.python_file, "parameters": [script] if script else []},
            **self.compute,
        }
        if depends_on:
            task["depends_on"] = [{"task_key": k} for k in depends_on]
        return task

    def submit_body(
        self,
        name: str,
        script: str | None = None,
        *,
        token: str | None = None,
        tasks: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"run_name": name, "tasks": tasks or [self.task("main", script)], **extra}
        if token is not None:
            body["idempotency_token"] = token
        return body

    async def submit(self, name: str, script: str | None = None, **kwargs: Any) -> int:
        answer = await self.call("POST", f"{API}/runs/submit", body=self.submit_body(name, script, **kwargs))
        assert answer.status == 200, answer
        run_id = answer.body["run_id"]
        assert isinstance(run_id, int)
        self.started.append(run_id)
        return run_id

    async def get(self, run_id: int) -> dict[str, Any]:
        answer = await self.call("GET", f"{API}/runs/get", params={"run_id": str(run_id)})
        assert answer.status == 200, answer
        assert isinstance(answer.body, dict)
        return answer.body

    async def cancel(self, run_id: int) -> Answer:
        return await self.call("POST", f"{API}/runs/cancel", body={"run_id": run_id})

    async def until_terminal(self, run_id: int) -> tuple[dict[str, Any], list[str]]:
        """The run once it ended, and the life-cycle states seen on the way (each once, in order)."""
        seen: list[str] = []
        deadline = time.monotonic() + self.patience
        while True:
            run = await self.get(run_id)
            state = run["state"]["life_cycle_state"]
            if not seen or seen[-1] != state:
                seen.append(state)
            if state in TERMINAL:
                return run, seen
            assert time.monotonic() < deadline, f"run {run_id} still {state} after {self.patience}s"
            await asyncio.sleep(self.poll)

    async def until_state(self, run_id: int, states: Sequence[str]) -> dict[str, Any]:
        deadline = time.monotonic() + self.patience
        while True:
            run = await self.get(run_id)
            if run["state"]["life_cycle_state"] in states:
                return run
            assert time.monotonic() < deadline, f"run {run_id} never reached {states}"
            await asyncio.sleep(self.poll)

    async def list_runs(self, **params: str) -> Answer:
        return await self.call("GET", f"{API}/runs/list", params=params)

    async def create_job(self, name: str, script: str | None = None) -> int:
        answer = await self.call("POST", f"{API}/create", body={"name": name, "tasks": [self.task("main", script)]})
        assert answer.status == 200, answer
        job_id = int(answer.body["job_id"])
        self.jobs.append(job_id)
        return job_id

    async def cleanup(self) -> None:
        """Leave nothing running (a real workspace bills for it) and no job behind."""
        for run_id in self.started:
            await self.cancel(run_id)
        for job_id in self.jobs:
            await self.call("POST", f"{API}/delete", body={"job_id": job_id})


def assert_in_order(seen: Sequence[str]) -> None:
    """Life-cycle states only move forward."""
    positions = [ORDER.index(s) for s in seen]
    assert positions == sorted(positions), seen


@asynccontextmanager
async def fake_workspace(**kwargs: Any) -> AsyncIterator[Workspace]:
    async with FakeDatabricks(**kwargs) as fake, aiohttp.ClientSession() as session:
        yield Workspace(
            host=fake.url,
            token=fake.pat,
            session=session,
            fake=fake,
            python_file="dbfs:/durable-fake/workspace_job.py",
            compute={"existing_cluster_id": "0000-000000-fakecluster"},
            patience=30.0,
            poll=0.05,
        )


@asynccontextmanager
async def real_workspace() -> AsyncIterator[Workspace]:
    env = os.environ
    missing = [
        n for n in ("DURABLE_JOBS_DATABRICKS_PYTHON_FILE", "DURABLE_JOBS_DATABRICKS_CLUSTER_ID") if not env.get(n)
    ]
    if missing:  # fail loudly: a half-configured workspace must not pass as tested
        raise RuntimeError(f"a real workspace also needs {', '.join(missing)} (see tests/databricks/workspace.py)")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        ws = Workspace(
            host=env["DURABLE_JOBS_DATABRICKS_HOST"].rstrip("/"),
            token=env["DURABLE_JOBS_DATABRICKS_TOKEN"],
            session=session,
            fake=None,
            python_file=env["DURABLE_JOBS_DATABRICKS_PYTHON_FILE"],
            compute={"existing_cluster_id": env["DURABLE_JOBS_DATABRICKS_CLUSTER_ID"]},
            patience=1800.0,
            poll=5.0,
        )
        try:
            yield ws
        finally:
            await ws.cleanup()
