"""The HTTP transport shared by every client: one seam (:class:`Transport`), the policy in one place
(:func:`request`: redirects, size limits, redaction), pooled aiohttp sessions, auth, and backoff."""

from durable_jobs.transport.auth import BearerAuth, SimpleAuth
from durable_jobs.transport.backoff import Backoff, retrying
from durable_jobs.transport.base import NO_AUTH, Auth, Request, Response, Transport
from durable_jobs.transport.http import (
    DEFAULT_MAX_BODY,
    Endpoint,
    HttpResponse,
    close_sessions,
    cookie_jar,
    request,
    use_transport,
)

__all__ = [
    "DEFAULT_MAX_BODY",
    "NO_AUTH",
    "Auth",
    "Backoff",
    "BearerAuth",
    "Endpoint",
    "HttpResponse",
    "Request",
    "Response",
    "SimpleAuth",
    "Transport",
    "close_sessions",
    "cookie_jar",
    "request",
    "retrying",
    "use_transport",
]
