"""A paged listing read page by page, the same way for every REST system (Databricks ``runs/list``, BigQuery
``jobs.list``): until its end, until the caller has seen what it looks for, or until a cap (then ``capped``: a job
the listing did not show cannot be called lost from it). A page that cannot be read raises, and so does a page
token that repeats (the rest of the listing cannot be trusted)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from durable_jobs.errors import MalformedAnswer

log = logging.getLogger(__name__)


class PagedListing(Protocol):
    capped: bool

    def add_page(self, entries: list[Any], what: str) -> None: ...


L = TypeVar("L", bound=PagedListing)
#: one page: (the page token, None for the first; what to call it) -> (its raw entries, the next token or None)
ReadPage = Callable[[str | None, str], Awaitable[tuple[list[Any], str | None]]]


async def walk_pages(read_page: ReadPage, listing: L, *, what: str, done: Callable[[L], bool], max_pages: int) -> L:
    """Read pages into ``listing`` until the end, ``done(listing)`` or ``max_pages`` (then ``listing.capped``)."""
    seen: set[str] = set()
    page_token: str | None = None
    for n in range(max_pages):
        page_what = f"{what}, page {n + 1}"
        entries, page_token = await read_page(page_token, page_what)
        listing.add_page(entries, page_what)
        if page_token is None or done(listing):
            return listing
        if page_token in seen:
            raise MalformedAnswer(f"{what}: the listing repeats its page token; not reading it further")
        seen.add(page_token)
        await asyncio.sleep(0)  # a fast endpoint must not keep the loop through every page
    listing.capped = True
    log.warning(
        "%s: more than %d pages; the rest is not read (a job it did not show is not called lost)", what, max_pages
    )
    return listing


__all__ = ["PagedListing", "ReadPage", "walk_pages"]
