"""HTTP transport shared by every client: pooled sessions, timeouts, error classes and backoff."""

from durable_jobs.transport.backoff import Backoff, retrying
from durable_jobs.transport.http import Endpoint, HttpResponse, close_sessions, request, session_for

__all__ = ["Backoff", "Endpoint", "HttpResponse", "close_sessions", "request", "retrying", "session_for"]
