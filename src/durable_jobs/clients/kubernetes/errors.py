"""The apiserver's refusals: which error each non-2xx answer (a ``Status``, or a proxy's page) becomes.

Why it exists: the kind of error decides what the library does (retry, fetch the credentials again, list again,
fail), so only a well-formed ``Status`` counts as the apiserver speaking (``docs/kubernetes.md``, "Bad answers").
"""

from __future__ import annotations

from collections.abc import Mapping

from durable_jobs.clients.kubernetes.schemas import KubeStatus, StatusDetails
from durable_jobs.decoding import decode_json
from durable_jobs.errors import (
    AuthError,
    DurableJobError,
    MalformedAnswer,
    PermanentError,
    TransientError,
)
from durable_jobs.messages import redact, snippet
from durable_jobs.transport.http import TRANSIENT_STATUSES, parse_retry_after

# --- apiserver errors --------------------------------------------------------------------------------------


class KubeApiError(PermanentError):
    """The apiserver refused a request with a ``Status``; ``reason`` is its reason (``AlreadyExists``...)."""

    def __init__(self, message: str, *, status: int, reason: str = "", details: StatusDetails | None = None):
        super().__init__(message, status=status)
        self.reason = reason
        self.details = details or StatusDetails()


class RelistRequired(TransientError):
    """The watch cannot be resumed from the remembered resourceVersion: list again."""


class ResourceExpired(RelistRequired):
    """410 Gone / Expired: the resourceVersion was compacted away (as an HTTP status or an ERROR event)."""


class MalformedStream(RelistRequired):
    """The watch sent something that cannot be read or attributed: list again, the cache is stale meanwhile."""


def parse_status(body: bytes) -> KubeStatus | None:
    """The body as a well-formed ``Status``, or None (a proxy's page, garbage, another shape)."""
    if body.lstrip()[:1] != b"{":
        return None
    try:
        st = decode_json(body, KubeStatus, what="a Status")
    except MalformedAnswer:
        return None
    return st if st.kind == "Status" else None


def api_error(
    status: int, body: bytes, headers: Mapping[str, str], what: str, secrets: tuple[str, ...] = ()
) -> DurableJobError:
    """The error for a non-2xx answer, from its ``Status`` body (or a cut, redacted quote of what a proxy sent).

    Only a well-formed ``Status`` is the apiserver speaking: a 4xx without one (an HTML page, garbage) is an
    answer this client cannot read, hence unknown (:class:`MalformedAnswer`), never a permanent refusal, except
    401/403, which refuse the credentials whoever sends them.
    """
    st = parse_status(body)
    reason = (st.reason or "") if st else ""
    if st is not None:
        detail = redact(st.message or "", secrets)
    else:
        detail = snippet(body[:2400].decode("utf-8", "replace"), secrets=secrets)
    text = f"{what}: HTTP {status}{' ' + reason[:100] if reason else ''}: {detail}"
    if status == 410:
        return ResourceExpired(text, status=status)
    if status in TRANSIENT_STATUSES or 300 <= status < 400:
        return TransientError(text, retry_after=parse_retry_after(headers.get("Retry-After")), status=status)
    if status == 401:
        return AuthError(text + " (the apiserver refused the credentials)", status=status)
    if status == 403:
        return AuthError(text + " (RBAC: the connection's identity may not do this)", status=status)
    if st is None:
        return MalformedAnswer(text + " (not a Kubernetes Status: a proxy or another server answered)", status=status)
    return KubeApiError(text, status=status, reason=reason, details=st.details)


def is_not_found(exc: BaseException, name: str) -> bool:
    """The apiserver's documented "no such object": 404, reason NotFound, naming the object asked for."""
    return (
        isinstance(exc, KubeApiError)
        and exc.status == 404
        and exc.reason == "NotFound"
        and exc.details.name is not None
        and exc.details.name == name
    )
