"""A listing read entry by entry, the same way for every system that lists jobs (YARN's apps, Databricks'
``runs/list``, BigQuery's ``jobs.list``).

One entry that cannot be read touches its own job only: when its id can still be read, that job is malformed
(unknown: never lost, never ended); when not even the id can be read, the listing is incomplete, so a job
missing from it is not taken as gone. An entry the system's own rule rejects (listed twice in different
states, no state at all) is malformed the same way. Each system says how to read an entry and its id in an
:class:`EntryReader`; :class:`Listing` applies the rules.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import msgspec

from durable_jobs.messages import cut

#: what msgspec raises for a body or an entry that cannot be read
UNREADABLE = (msgspec.ValidationError, msgspec.DecodeError, RecursionError)

K = TypeVar("K", bound=Hashable)
E = TypeVar("E")
T = TypeVar("T")


def decode_or_none(body: bytes, schema: type[T]) -> T | None:
    """``body`` as ``schema``, or None when it is not one (an error body of some other shape)."""
    try:
        return msgspec.json.decode(body, type=schema)
    except UNREADABLE:
        return None


@dataclass(frozen=True, slots=True)
class EntryReader(Generic[K, E]):
    """How one system reads a listing's entries."""

    entry: msgspec.json.Decoder[E]  # a whole entry
    key: Callable[[E], K]  # the id of a read entry
    key_of_raw: Callable[[msgspec.Raw], K]  # the id of an entry that could not be read (raises UNREADABLE)
    name: Callable[[K], str]  # how messages name the job: "run 12", "job abc"
    # what is wrong with an entry, given the entry read earlier with the same id (None: nothing); said after its
    # name ("run 12 is listed twice, ..."), which is built only then: this runs for every entry of a listing
    problem: Callable[[E, E | None], str | None] = lambda entry, earlier: None


def listed_twice(same: Callable[[Any, Any], bool]) -> Callable[[Any, Any], str | None]:
    """The rule "an entry listed twice in different states is malformed", with ``same`` comparing states."""

    def problem(entry: Any, earlier: Any) -> str | None:
        if earlier is not None and not same(earlier, entry):
            return "is listed twice, in different states"
        return None

    return problem


@dataclass(slots=True)
class Listing(Generic[K, E]):
    """Listing pages, entry by entry (:data:`READER` says how a system's entries are read)."""

    READER: ClassVar[EntryReader[Any, Any]]

    found: dict[K, E] = field(default_factory=dict)  # id -> entry
    malformed: dict[K, str] = field(default_factory=dict)  # id -> why its entry is unreadable
    unreadable: int = 0  # entries whose id could not be read either
    capped: bool = False  # more pages were left unread

    @property
    def complete(self) -> bool:
        """Every entry of every page was read: a job missing from it is really not listed."""
        return self.unreadable == 0 and not self.capped

    def seen(self, key: K) -> bool:
        return key in self.found or key in self.malformed

    def add(self, raw: msgspec.Raw, what: str) -> None:
        reader = self.READER
        try:
            entry = reader.entry.decode(raw)
        except UNREADABLE as exc:
            try:
                key = reader.key_of_raw(raw)
            except UNREADABLE:
                self.unreadable += 1
            else:
                self.found.pop(key, None)
                self.malformed[key] = f"{what}: the entry of {reader.name(key)} is malformed ({cut(str(exc), 300)})"
            return
        key = reader.key(entry)
        if key in self.malformed:
            return
        why = reader.problem(entry, self.found.get(key))
        if why is None:
            self.found[key] = entry
        else:
            self.found.pop(key, None)
            self.malformed[key] = f"{what}: {reader.name(key)} {why}"

    def add_page(self, entries: list[msgspec.Raw], what: str) -> None:
        for raw in entries:
            self.add(raw, what)


__all__ = ["UNREADABLE", "EntryReader", "Listing", "decode_or_none", "listed_twice"]
