"""Error classes shared by the transport, the clients and the protocol.

The split that matters is *transient* (retry, never fail the task, never resubmit) versus
*permanent* (a request that will not succeed by repeating it).
"""

from __future__ import annotations


class DurableJobError(Exception):
    """Base class of every error this library raises on purpose."""


class TransientError(DurableJobError):
    """The endpoint could not answer now (connection, timeout, 5xx, throttling)."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        connect_failed: bool = False,
    ):
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status
        # True when the request surely never reached the server, so it is safe to send elsewhere.
        self.connect_failed = connect_failed


class UndecidableError(TransientError):
    """``find`` cannot tell yet whether a crashed try submitted a job (e.g. a driver waits for a worker)."""


class PermanentError(DurableJobError):
    """The request is wrong or not allowed; repeating it will not help."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class AuthError(PermanentError):
    """The endpoint refused our credentials (401/403)."""


class RecordError(DurableJobError):
    """The stored record is malformed, tampered with, or belongs to another task or system."""
