"""A transport that calls a function instead of the network (httpx's ``MockTransport``), for client tests.

    def handler(request: Request) -> Response:
        return json_response({"success": True, "driverState": "RUNNING"})

    with use_transport(MockTransport(handler)):
        status = await client.status({"driver_id": "driver-1"})

The handler may be a coroutine function, and may raise the library's errors to simulate a network
failure (``TransientError(..., connect_failed=True)`` for a refused connection). Every request is kept
in :attr:`MockTransport.requests`. The policy of :func:`durable_jobs.transport.http.request` (redirects,
size limits, redaction, cookies) applies exactly as with the real transport.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from durable_jobs.errors import AnswerTooLarge
from durable_jobs.transport.base import Request, Response, Transport, make_headers
from durable_jobs.transport.http import use_transport

Handler = Callable[[Request], Response | Awaitable[Response]]


class MockTransport(Transport):
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Request] = []

    async def handle(self, request: Request) -> Response:
        self.requests.append(request)
        result = self.handler(request)
        resp = await result if inspect.isawaitable(result) else result
        assert isinstance(resp, Response)
        if len(resp.body) > request.endpoint.max_body:
            raise AnswerTooLarge(f"{request.what}: the answer is larger than {request.endpoint.max_body} bytes")
        resp.request = request
        if not resp.url:
            resp.url = request.url
        return resp


def response(
    status: int = 200,
    body: bytes | str = b"",
    *,
    headers: Mapping[str, str] | None = None,
    content_type: str | None = None,
) -> Response:
    """A response for a :class:`MockTransport` handler."""
    hdrs = make_headers(headers)
    if content_type is not None:
        hdrs["Content-Type"] = content_type
    data = body.encode() if isinstance(body, str) else body
    return Response(status, hdrs, data, "")


def json_response(data: Any, status: int = 200, *, headers: Mapping[str, str] | None = None) -> Response:
    return response(status, json.dumps(data), headers=headers, content_type="application/json")


__all__ = ["MockTransport", "json_response", "response", "use_transport"]
