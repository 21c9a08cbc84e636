"""Typed decoding of every answer: a declared schema, or the answer counts as unknown.

Each system declares the shape of what it reads as :class:`msgspec.Struct` types (msgspec ships with
Airflow; it validates exact types while it parses, skips unread fields without building them, and is
several times faster than ``json.loads`` followed by a walk, which keeps a 100,000-driver listing
within the event loop's budget). A wrong type, a truncated body, invalid JSON or nesting deep enough to
exhaust the recursion limit all raise :class:`~durable_jobs.errors.MalformedAnswer`, a transient error:
malformed means unknown, never lost, never permanent, never a crash.

``"success": "true"`` is malformed, not false: a bool field accepts only JSON ``true``/``false``.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from durable_jobs.errors import MalformedAnswer
from durable_jobs.messages import snippet

T = TypeVar("T")


def decode_json(body: bytes | str, schema: type[T], *, what: str) -> T:
    """``body`` parsed as JSON and checked against ``schema``, or :class:`MalformedAnswer`."""
    try:
        return msgspec.json.decode(body, type=schema)
    except msgspec.ValidationError as exc:
        raise MalformedAnswer(f"{what}: the answer does not match its schema ({exc})") from None
    except msgspec.DecodeError as exc:
        head = body[:200].decode("utf-8", "replace") if isinstance(body, bytes) else body[:200]
        raise MalformedAnswer(f"{what}: the answer is not valid JSON ({exc}): {snippet(head)}") from None
    except RecursionError:
        raise MalformedAnswer(f"{what}: the answer nests deeper than the decoder allows") from None


def convert(data: Any, schema: type[T], *, what: str, strict: bool = True) -> T:
    """Already-parsed data (a botocore answer, a stored record) checked against ``schema``."""
    try:
        return msgspec.convert(data, type=schema, strict=strict)
    except msgspec.ValidationError as exc:
        raise MalformedAnswer(f"{what}: the answer does not match its schema ({exc})") from None
    except RecursionError:
        raise MalformedAnswer(f"{what}: the answer nests deeper than the decoder allows") from None
