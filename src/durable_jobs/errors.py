"""Error classes shared by the transport, the clients and the protocol.

The split that matters is *transient* (retry, never fail the task, never resubmit) versus
*permanent* (a request that will not succeed by repeating it). An answer that cannot be read
(malformed, truncated, oversized, a redirect we do not follow) is transient: it proves nothing about
the job, so it can only ever make a status ``unknown``.

Every message is cut and stripped of credentials (:func:`durable_jobs.messages.clean`) when the error
is made, so an error can go to a log, an event or a record as it is.
"""

from __future__ import annotations

from durable_jobs.messages import clean


class DurableJobError(Exception):
    """Base class of every error this library raises on purpose."""

    def __init__(self, message: str = "") -> None:
        super().__init__(clean(str(message)))


class TransientError(DurableJobError):
    """The endpoint could not answer now (connection, timeout, 5xx, throttling, an unreadable answer)."""

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
        # True when the server surely did not act on the request (it never reached it, or the server only
        # redirected it), so it is safe to send it to another host of the same connection.
        self.connect_failed = connect_failed


class MalformedAnswer(TransientError):
    """The answer does not match its declared schema (wrong types, truncated, not JSON, too deep).

    Malformed means unknown: never lost, never failed, never a crash.
    """


class AnswerTooLarge(MalformedAnswer):
    """The answer is larger than the connection's ``max_response_bytes``; it was not read whole."""


class RedirectRefused(TransientError):
    """The endpoint redirected to a place the connection was not configured with, or redirected a POST.

    The server did not act on the request (``connect_failed`` is True), and it is never re-sent there.
    """

    def __init__(self, message: str, *, status: int, location: str) -> None:
        super().__init__(message, status=status, connect_failed=True)
        self.location = location


class UndecidableError(TransientError):
    """``find`` cannot tell yet whether a crashed try submitted a job (e.g. a driver waits for a worker)."""


class PermanentError(DurableJobError):
    """The request is wrong or not allowed; repeating it will not help."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class AuthError(PermanentError):
    """The endpoint refused our credentials (401/403).

    ``endpoint_wide`` (default) means the refusal is about our credentials, so every job on the endpoint
    waits for a credential refresh; False means a denial scoped to one job's resource (a per-resource
    policy), which makes only that job unknown.
    """

    def __init__(self, message: str, *, status: int | None = None, endpoint_wide: bool = True):
        super().__init__(message, status=status)
        self.endpoint_wide = endpoint_wide


class ConnectionConfigError(PermanentError, ValueError):
    """An Airflow connection is set up wrong: its type, scheme, port, or a file it names.

    Nothing works until a person fixes the connection, so the task fails without retry and a trigger ends
    with an ``error`` event. The message names the connection, the field, what is wrong and the likely fix,
    and never a credential. It is also a ``ValueError``, which is what a bad connection raised before.
    """


class RecordError(DurableJobError):
    """The stored record is malformed, tampered with, or belongs to another task or system."""
