"""Glue answers scripted per action, handed to the real aiobotocore client (no network), for the hostile and
fuzz suites: botocore's own parse, the library's classification and decoding all run as in production."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from aiobotocore.awsrequest import AioAWSResponse

from durable_jobs.clients.emr.aws_config import AwsConfig
from durable_jobs.clients.glue import GlueClient

CONFIG = AwsConfig(
    region_name="us-east-1",
    endpoint_url="http://127.0.0.1:9",
    aws_access_key_id="AKIASCRIPTED00000001",
    aws_secret_access_key="scripted-secret-key",
    retry_budget=0.0,
    backoff_base=0.001,
    backoff_cap=0.002,
    label="aws_scripted",
)
JOB = "scripted-job"
Answer = tuple[int, Any]  # status and a JSON-able body (bytes are sent as they are)
Handler = Callable[[dict[str, Any]], Answer]


def run_id(n: int) -> str:
    return f"jr_{n:064x}"


def run(n: int, state: str = "RUNNING", *, token: str | None = None, started: float | None = None, **more: Any) -> Any:
    out: dict[str, Any] = {
        "Id": run_id(n),
        "JobName": JOB,
        "JobRunState": state,
        "StartedOn": time.time() - n if started is None else started,
        "Arguments": {"--durable_jobs_token": token} if token else {},
        "LogGroupName": "/aws-glue/jobs",
    }
    out.update(more)
    return out


def error(code: str, message: str = "", status: int = 400) -> Answer:
    return status, {"__type": code, "message": message}


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    async def read(self) -> bytes:
        return self.body


class Script:
    """Answers by action (``GetJobRun``...): a handler of the request's parameters; every call is recorded."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def on(self, action: str, handler: Handler | Answer) -> None:
        if callable(handler):
            self.handlers[action] = handler
        else:
            answer: Answer = handler
            self.handlers[action] = lambda _params: answer

    def count(self, action: str) -> int:
        return sum(1 for a, _ in self.calls if a == action)

    def __call__(self, request: Any, **kwargs: Any) -> AioAWSResponse:
        target = dict(request.headers)["X-Amz-Target"]
        action = (target.decode() if isinstance(target, bytes) else str(target)).split(".")[-1]
        params = json.loads(request.body or b"{}")
        self.calls.append((action, params))
        handler = self.handlers.get(action)
        status, body = handler(params) if handler else error("InternalServiceException", "unscripted", 500)
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/x-amz-json-1.1"}
        return AioAWSResponse(request.url, status, headers, _Raw(raw))


async def scripted_client(script: Script, **kwargs: Any) -> GlueClient:
    client = GlueClient(CONFIG, **kwargs)
    (await client.client()).meta.events.register_first("before-send", script)
    return client


def listing(*runs: Any, next_token: str | None = None) -> Answer:
    body: dict[str, Any] = {"JobRuns": list(runs)}
    if next_token:
        body["NextToken"] = next_token
    return 200, body


def got(r: Any) -> Answer:
    return 200, {"JobRun": r}


__all__ = ["CONFIG", "JOB", "Script", "error", "got", "listing", "run", "run_id", "scripted_client"]
