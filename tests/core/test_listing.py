"""The shared entry-by-entry listing (``durable_jobs.clients.listing``): one bad entry touches its own job only."""

from __future__ import annotations

import msgspec
import pytest

from durable_jobs.clients.listing import EntryReader, Listing, decode_or_none, listed_twice


class Entry(msgspec.Struct):
    id: str
    state: str


class _IdOnly(msgspec.Struct):
    id: str


class Entries(Listing[str, Entry]):
    __slots__ = ()
    READER = EntryReader(
        entry=msgspec.json.Decoder(Entry),
        key=lambda e: e.id,
        key_of_raw=lambda raw: msgspec.json.decode(raw, type=_IdOnly).id,
        name=lambda key: f"job {key}",
        problem=listed_twice(lambda a, b: a.state == b.state),
    )


def raw(text: str) -> msgspec.Raw:
    return msgspec.Raw(text.encode())


def test_readable_entries_are_found_and_the_listing_is_complete() -> None:
    listing = Entries()
    listing.add_page([raw('{"id": "a", "state": "RUNNING"}'), raw('{"id": "b", "state": "DONE"}')], "page 1")
    assert {k: v.state for k, v in listing.found.items()} == {"a": "RUNNING", "b": "DONE"}
    assert listing.complete and listing.seen("a") and not listing.seen("c")


def test_a_malformed_entry_with_a_readable_id_marks_that_job_only() -> None:
    listing = Entries()
    listing.add_page([raw('{"id": "a", "state": "RUNNING"}'), raw('{"id": "b", "state": 7}')], "page 1")
    assert list(listing.found) == ["a"]
    assert listing.malformed["b"].startswith("page 1: the entry of job b is malformed (")
    assert listing.complete and listing.seen("b")
    # a later good entry of the same job does not undo it: the job stays unknown for this listing
    listing.add(raw('{"id": "b", "state": "DONE"}'), "page 2")
    assert "b" not in listing.found


@pytest.mark.parametrize("bad", ['{"state": "RUNNING"}', "[1, 2]", '{"id": 5}', "[" * 10_000])
def test_an_entry_whose_id_cannot_be_read_makes_the_listing_incomplete(bad: str) -> None:
    listing = Entries()
    listing.add_page([raw(bad), raw('{"id": "a", "state": "RUNNING"}')], "page 1")
    assert list(listing.found) == ["a"] and not listing.malformed
    assert listing.unreadable == 1 and not listing.complete


def test_the_systems_own_rule_listed_twice_in_different_states() -> None:
    listing = Entries()
    listing.add_page([raw('{"id": "a", "state": "RUNNING"}'), raw('{"id": "a", "state": "RUNNING"}')], "p")
    assert "a" in listing.found  # the same state twice is no contradiction
    listing.add(raw('{"id": "a", "state": "DONE"}'), "p2")
    assert "a" not in listing.found and listing.malformed["a"] == "p2: job a is listed twice, in different states"


def test_a_capped_listing_is_not_complete() -> None:
    listing = Entries()
    listing.capped = True
    assert not listing.complete


def test_decode_or_none() -> None:
    assert decode_or_none(b'{"id": "x"}', _IdOnly) == _IdOnly("x")
    assert decode_or_none(b"<html>", _IdOnly) is None
    assert decode_or_none(b'{"id": 1}', _IdOnly) is None
