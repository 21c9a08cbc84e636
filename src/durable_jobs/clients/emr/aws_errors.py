"""Every error of an AWS call classified once, with AWS's message redacted.

botocore's own retries are off (``total_max_attempts=1``), because a throttled ``AddJobFlowSteps`` or
``RunJobFlow`` may have been applied anyway (aws/aws-sdk-ruby#825) and must be looked up by token before
it is sent again. Throttling, 5xx, connection failures, timeouts, redirects and unreadable answers are
:class:`~durable_jobs.errors.TransientError`; refused credentials (``ExpiredToken``,
``InvalidClientTokenId``, ``UnrecognizedClientException``, ``InvalidSignatureException``,
``SignatureDoesNotMatch``...) and denials are :class:`AwsAuthError`; an error answer without an AWS error
code (a proxy's page) is malformed; only AWS's own coded refusals are :class:`AwsRequestError`.

Messages quote AWS's (or a proxy's) message through :func:`durable_jobs.messages.redact`, with the
connection's access key id, secret key and session token as known secrets on top of the generic patterns
(``Authorization``, ``Credential=``, ``Signature=``, ``X-Amz-Security-Token``). The botocore exception is
not chained (``from None``), so a traceback cannot print the unredacted original. The rules are in
``docs/bad-answers.md`` and ``docs/emr.md``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

import aiohttp
import botocore.exceptions as bex  # type: ignore[import-untyped]

from durable_jobs.errors import (
    AuthError,
    DurableJobError,
    MalformedAnswer,
    PermanentError,
    RedirectRefused,
    TransientError,
)
from durable_jobs.messages import redact, snippet

# botocore's standard retry mode: the union of the codes AWS services use for throttling
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
UNAVAILABLE_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServerException",
    }
)
#: the credentials themselves were refused: about the endpoint and every job on it (refetch, then "error")
CREDENTIAL_CODES = frozenset(
    {
        "AuthFailure",
        "ExpiredToken",
        "ExpiredTokenException",
        "IncompleteSignature",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "MissingAuthenticationToken",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
    }
)
#: the identity is known but not allowed this call (IAM): fails a worker call fast, isolated in a poll
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "NotAuthorized", "UnauthorizedOperation"})
AUTH_CODES = CREDENTIAL_CODES | DENIED_CODES
NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "NotFoundException"})
#: the codes under which EMR, EMR Serverless and EMR on EKS say an id does not exist
ABSENCE_CODES = frozenset({"InvalidRequestException", "ValidationException", *NOT_FOUND_CODES})
_ABSENCE_WORDS = re.compile(r"(?i)\b(not valid|not found|does not exist|doesn't exist|cannot be found|no such)\b")
_CODE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,99}\Z")


class AwsRequestError(PermanentError):
    """AWS refused the request itself (validation, not found, conflict); ``code`` is AWS's error code."""

    def __init__(self, message: str, *, code: str, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.code = code

    @property
    def not_found(self) -> bool:
        return self.code in NOT_FOUND_CODES

    def denies(self, *ids: str) -> bool:
        """AWS's documented answer that (one of) ``ids`` does not exist: a not-found code naming the id."""
        text = str(self)
        return self.code in ABSENCE_CODES and bool(_ABSENCE_WORDS.search(text)) and any(i and i in text for i in ids)


class Throttled(TransientError):
    """AWS throttled the call: back off; asking job by job instead would only add to the load."""


class AwsAuthError(AuthError):
    """AWS refused the credentials (``code`` in :data:`CREDENTIAL_CODES`) or denied the call (IAM)."""

    def __init__(self, message: str, *, code: str, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.code = code

    @property
    def credentials_refused(self) -> bool:
        """About the credentials (every call of the connection fails), not about one resource."""
        return self.code in CREDENTIAL_CODES or self.code not in DENIED_CODES


def endpoint_wide(exc: BaseException) -> bool:
    """An error about the endpoint or our credentials (every job on it), not about one job or group."""
    if isinstance(exc, AwsAuthError):
        return exc.credentials_refused
    if isinstance(exc, AuthError):
        return True
    return isinstance(exc, TransientError) and exc.connect_failed and not isinstance(exc, RedirectRefused)


def classify(exc: BaseException, *, what: str, label: str, secrets: Sequence[str] = ()) -> Exception:
    """The library's error for an exception raised by an aiobotocore call, redacted."""
    inner = exc.kwargs.get("error") if isinstance(exc, bex.HTTPClientError) else None
    if isinstance(inner, DurableJobError):
        exc = inner  # our own session's refusal (redirect, size), wrapped by aiobotocore
    if isinstance(exc, DurableJobError):
        return _with_context(exc, what, secrets)
    if isinstance(exc, bex.ClientError):
        return _classify_answer(exc, what=what, label=label, secrets=secrets)
    text = redact(f"{exc}", secrets)
    if isinstance(exc, bex.SSLError):
        return PermanentError(f"{what}: TLS verification failed ({text}); check the connection's verify setting")
    if isinstance(exc, (bex.EndpointConnectionError, bex.ConnectTimeoutError, bex.ProxyConnectionError)):
        return TransientError(f"{what}: cannot connect ({text})", connect_failed=True)
    if isinstance(exc, (bex.HTTPClientError, bex.ConnectionError, aiohttp.ClientError, asyncio.TimeoutError)):
        return TransientError(f"{what}: {type(exc).__name__} ({text})")
    if isinstance(exc, (bex.NoCredentialsError, bex.PartialCredentialsError, bex.CredentialRetrievalError)):
        return AwsAuthError(f"{what}: no usable AWS credentials for connection {label!r} ({text})", code="")
    if isinstance(exc, bex.ParamValidationError):
        return PermanentError(f"{what}: invalid request: {text}")
    if isinstance(exc, bex.BotoCoreError):
        return PermanentError(f"{what}: {text}")
    # anything else came out of botocore's handling of the answer: it could not be read
    return MalformedAnswer(f"{what}: the answer could not be read ({type(exc).__name__}: {text})")


def _classify_answer(exc: Any, *, what: str, label: str, secrets: Sequence[str]) -> Exception:
    response: dict[str, Any] = exc.response if isinstance(exc.response, dict) else {}
    err = _dict(response.get("Error"))
    meta = _dict(response.get("ResponseMetadata"))
    raw_code = err.get("Code")
    code = raw_code if isinstance(raw_code, str) else ""
    raw_status = meta.get("HTTPStatusCode")
    status = raw_status if isinstance(raw_status, int) and not isinstance(raw_status, bool) else None
    raw_message = err.get("Message")
    message = snippet(raw_message, 500, secrets) if isinstance(raw_message, str) else ""
    if not _CODE_RE.match(code) or code.isdigit():
        code = ""  # botocore's stand-in (the status) for an answer without an AWS error code
    detail = f"{code}: {message}" if code and message else code or message or "no message"
    if code in THROTTLING_CODES or status == 429:
        headers = meta.get("HTTPHeaders")
        lowered = {str(k).lower(): v for k, v in headers.items()} if isinstance(headers, dict) else {}
        retry_after = _retry_after(lowered.get("retry-after"))
        return Throttled(f"{what}: throttled ({detail})", retry_after=retry_after, status=status)
    if code in UNAVAILABLE_CODES or (status is not None and status >= 500):
        return TransientError(f"{what}: AWS is unavailable (HTTP {status}, {detail})", status=status)
    if code in AUTH_CODES or status in (401, 403):
        return AwsAuthError(
            f"{what}: the credentials of connection {label!r} were refused ({detail}). Check the IAM policy of "
            "the connection's identity (and the execution role's trust policy); retrying will not help.",
            code=code,
            status=status,
        )
    if not code:
        # a proxy's or a broken endpoint's page, not an AWS refusal: proves nothing about the request
        return MalformedAnswer(f"{what}: HTTP {status} without an AWS error code ({message or 'empty body'})")
    return AwsRequestError(f"{what}: {detail}", code=code, status=status)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _with_context(exc: DurableJobError, what: str, secrets: Sequence[str]) -> DurableJobError:
    text = redact(str(exc), secrets)
    message = text if text.startswith(what) else f"{what}: {text}"
    if isinstance(exc, RedirectRefused):
        return RedirectRefused(message, status=exc.status or 0, location=redact(exc.location, secrets))
    if isinstance(exc, TransientError):
        out = type(exc)(message, retry_after=exc.retry_after, status=exc.status, connect_failed=exc.connect_failed)
        return out
    if isinstance(exc, (AwsAuthError, AwsRequestError)):
        return type(exc)(message, code=exc.code, status=exc.status)
    if isinstance(exc, PermanentError):
        return type(exc)(message, status=exc.status)
    return type(exc)(message)


def _retry_after(value: Any) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


__all__ = [
    "ABSENCE_CODES",
    "AUTH_CODES",
    "CREDENTIAL_CODES",
    "DENIED_CODES",
    "NOT_FOUND_CODES",
    "THROTTLING_CODES",
    "UNAVAILABLE_CODES",
    "AwsAuthError",
    "AwsRequestError",
    "Throttled",
    "classify",
    "endpoint_wide",
]
