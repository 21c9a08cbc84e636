"""Text that leaves the library: cut to a sane length and stripped of credentials, in one place.

Whatever an endpoint answers may end up in a trigger event (stored by Airflow as JSON), XCom, the record
in the task state store, or a log line. A 50 MB status message, or a 401 page that echoes our
``Authorization`` header back, must reach none of them whole. Everything that builds such text from an
answer goes through :func:`cut` and :func:`redact`; :class:`~durable_jobs.status.JobStatus` and
:class:`~durable_jobs.errors.DurableJobError` apply them to every message they carry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: longest message kept in a status, an event, a record or an error
MESSAGE_LIMIT = 2000
#: longest piece of a foreign answer quoted in an error
SNIPPET_LIMIT = 300
REDACTED = "***"

_SECRET_PATTERNS = (
    # header lines a proxy or error page may echo back: keep the name, drop the value
    re.compile(r"(?im)\b(authorization|proxy-authorization|cookie|set-cookie|x-amz-security-token)\s*[:=]\s*[^\r\n]*"),
    # credentials in a scheme form anywhere in the text
    re.compile(r"(?i)\b(bearer|negotiate|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
    # JWTs (header.payload.signature, base64url)
    re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
    # key=value pairs whose key names a secret (query strings, Hadoop's auth cookie, JSON-ish text)
    re.compile(
        r"(?i)(\b[\w.-]*(?:token|secret|password|passwd|credential|signature|hadoop\.auth|session)[\w.-]*"
        r"[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;}]+"
    ),
    # AWS access key ids
    re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),
    # a password in a URL's user info: scheme://user:password@host
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s/@]+@"),
)


def cut(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` no longer than ``limit`` characters, marked when it was cut."""
    if len(text) <= limit:
        return text
    suffix = f"... [{len(text)} characters, cut]"
    if len(suffix) >= limit:
        return text[:limit]
    return text[: limit - len(suffix)] + suffix


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the given secret values and anything that looks like a credential replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(_keep_name, text)
    return text


def _keep_name(match: re.Match[str]) -> str:
    whole = match.group(0)
    if match.re is _SECRET_PATTERNS[0]:
        name = match.group(1)
        sep = whole[len(name) :].lstrip()[:1]
        return f"{name}{sep} {REDACTED}"
    if match.re is _SECRET_PATTERNS[1]:
        return f"{match.group(1)} {REDACTED}"
    if match.re is _SECRET_PATTERNS[3]:
        return f"{match.group(1)}{REDACTED}"
    if match.re is _SECRET_PATTERNS[5]:
        return f"{match.group(1)}{REDACTED}@"
    return REDACTED


def snippet(text: str, limit: int = SNIPPET_LIMIT, secrets: Iterable[str] = ()) -> str:
    """A one-line, redacted, cut quote of a foreign answer for an error message."""
    # cut generously before the regexes run: a 50 MB page must not cost 50 MB of regex work
    head = text[: limit * 8]
    flat = " ".join(redact(head, secrets).split())
    return flat[:limit] + ("..." if len(flat) > limit or len(text) > len(head) else "")


def clean(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """:func:`redact` then :func:`cut`: what every message carried out of the library goes through."""
    if len(text) > limit * 4:
        text = text[: limit * 4]
    return cut(redact(text), limit)
