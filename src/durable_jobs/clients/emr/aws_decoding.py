"""Reading AWS's answers: list pages, listed items one by one, states and timestamps.

What the clients read is checked against ``msgspec`` schemas (:func:`durable_jobs.decoding.convert`,
strict: ``"1"`` is not an int, ``null`` is not an object). Malformed means unknown: never lost, never
failed, never a permanent error. A listing's items are decoded one by one, so a malformed item makes its
own job unknown and no other.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Annotated, Any, TypeVar

import msgspec

from durable_jobs.decoding import convert
from durable_jobs.status import JobState

T = TypeVar("T")

#: a list page longer than this is malformed (AWS pages hold at most 50 items)
PAGE_ITEMS_MAX = 1000


class Page(msgspec.Struct, frozen=True, gc=False):
    """One page of a list call: its raw items (each decoded on its own) and the next page's marker."""

    items: list[Any]
    marker: str | None = None


def page_schema(items: str, marker: str) -> type[Page]:
    """A :class:`Page` reading ``items`` and ``marker`` under the service's names."""
    return _page_schema(items, marker)


@functools.lru_cache(maxsize=16)
def _page_schema(items: str, marker: str) -> type[Page]:
    annotated = msgspec.Meta(max_length=PAGE_ITEMS_MAX)
    return msgspec.defstruct(  # type: ignore[return-value]
        f"Page_{items}",
        [("items", Annotated[list[Any], annotated]), ("marker", str | None, None)],
        bases=(Page,),
        rename={"items": items, "marker": marker},
        frozen=True,
        gc=False,
    )


def decode_item(item: Any, schema: type[T], *, what: str) -> T:
    """One listed item against ``schema`` (:class:`MalformedAnswer` when it does not fit)."""
    return convert(item, schema, what=what)


def item_field(item: Any, name: str) -> str | None:
    """A string field of a raw listed item, or None (not a dict, missing, or not a string)."""
    if isinstance(item, dict):
        value = item.get(name)
        if isinstance(value, str):
            return value
    return None


def state_of(mapping: Mapping[str, JobState], raw: str) -> JobState:
    """Unknown raw states never fail a job: they are UNKNOWN."""
    return mapping.get(raw, JobState.UNKNOWN)


def unknown_state(raw: str, message: str) -> str:
    """The message of a state AWS does not document: unknown, never a failure."""
    said = f"state {raw!r} is not one this library knows; the job counts as unknown"
    return f"{said}: {message}" if message else said


def epoch(value: Any) -> float:
    """Seconds since the epoch of an AWS timestamp (botocore parses them to datetimes); 0 when absent."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return 0.0


__all__ = ["Page", "decode_item", "epoch", "item_field", "page_schema", "state_of", "unknown_state"]
