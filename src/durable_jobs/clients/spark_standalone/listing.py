"""Reading the master's ``/json/``: the second source for status, and the driver list find and links read.

Batched polls read ``/json/`` once per poll for every driver of a master. A listing of 100,000 drivers
(26 MB) is decoded in slices (the drivers as raw JSON first, then a few thousand at a time, with the event
loop served in between), so no call blocks the loop for long. The answer's ``Date`` header gives the
master's clock, which find's window is measured in (docs/spark-standalone.md).

The slice sizes are read here at call time: a test or benchmark that changes them patches this module.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from durable_jobs.clients.spark_standalone.answers import (
    DriverState,
    Listing,
    MasterAnswer,
    StateListing,
    Worker,
)
from durable_jobs.decoding import decode_json
from durable_jobs.errors import AuthError, ConnectionConfigError, PermanentError, TransientError
from durable_jobs.messages import cut
from durable_jobs.transport.base import Auth, Response
from durable_jobs.transport.http import Endpoint, request

T = TypeVar("T")
M = TypeVar("M", bound="MasterAnswer")

# drivers decoded per slice of a /json/ listing: a few milliseconds of work between two turns of the loop
LISTING_SLICE = 4096
# a /json/ up to this size (about 125,000 drivers) is decoded for a poll in one go: ~30 ms, within the loop budget
DIRECT_DECODE_MAX = 32 * 1024 * 1024
# drivers mapped to statuses between two turns of the loop (client.statuses imports it: patch both modules)
MAPPING_SLICE = 16384
# the pause between two slices of a listing: long enough to come after everything already due
_BREATH = 1e-4


def as_listing(resp: Response, what: str) -> Listing:
    """Only the top level: the driver lists are decoded in slices by ``_drivers``."""
    return resp.decode(Listing, what=what)


def _as_states(resp: Response, what: str) -> StateListing | Listing:
    """Up to :data:`DIRECT_DECODE_MAX` bytes (about 125,000 drivers, ~30 ms) in one go into ``(id, state)``."""
    if len(resp.body) > DIRECT_DECODE_MAX:
        return as_listing(resp, what)
    return resp.decode(StateListing, what=what)


def _wall_clock() -> float:
    """This host's clock (a function, so tests can skew it)."""
    return time.time()


async def breathe() -> None:
    """Let everything that became due meanwhile (timers, I/O, the tasks they wake) run before we go on.

    ``sleep(0)`` is not enough: it puts this task at the head of the loop's next round, ahead of the tasks
    that the timers and I/O due during our work wake only in the round after. A timer of our own, however
    short, is ordered after every timer already due, so each of their tasks gets its turn first.
    """
    await asyncio.sleep(_BREATH)


def _clock_offset(resp: Response, received: float) -> float | None:
    """The master's clock minus ours, from the answer's ``Date`` header (None when absent or unreadable)."""
    value = resp.headers.get("Date")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    # Date has whole seconds: the master's clock was somewhere in [Date, Date + 1s) when it answered
    return when.timestamp() + 0.5 - received


def _is_http_url(text: str) -> bool:
    return text.startswith(("http://", "https://")) and len(text) <= 2048 and not any(c.isspace() for c in text)


def in_turn(count: int, first: int) -> list[int]:
    """``count`` indexes, starting at ``first`` (the master that last answered as the active one) and wrapping."""
    return [(first + i) % count for i in range(count)]


class MasterListing:
    """The ``/json/`` half of :class:`~durable_jobs.clients.spark_standalone.client.SparkStandaloneClient`."""

    _ui: list[Endpoint]
    _auth: Auth
    _ui_active: int = 0  # the UI that last answered ALIVE: asked first

    async def _fetch_listing(self, what: str, decode: Callable[[Response, str], M]) -> tuple[M, float | None]:
        """The active master's ``/json/`` as ``decode`` reads it, and the master's clock offset (seconds).

        Every master UI is tried in turn (HA), the one that last answered ALIVE first; one that is not ALIVE,
        does not answer, or answers badly is skipped.
        """
        if not self._ui:
            raise PermanentError("no Spark master UI URL configured (connection extra master_ui_urls)")
        last: TransientError | None = None
        for i in in_turn(len(self._ui), self._ui_active):
            ep = self._ui[i]
            try:
                resp = await request(ep, "GET", "/json/", auth=self._auth, what=what)
                received = _wall_clock()
                if resp.status in (401, 403):
                    raise AuthError(
                        f"{what}: HTTP {resp.status} from {resp.url}: {resp.snippet(120)}", status=resp.status
                    )
                if resp.status == 468:  # the REST server's "Unknown protocol version 'json'"
                    raise ConnectionConfigError(
                        f"{what}: HTTP 468 from {resp.url}: extra master_ui_urls names the master's REST server; "
                        "/json/ is read from its web UI (port 8080 by default, spark.master.ui.port)",
                        status=468,
                    )
                resp.raise_for_status(what)
                # reading a big body ended with joining it: let the loop breathe before the decoding starts
                await breathe()
                listing = decode(resp, what)
            except TransientError as exc:
                last = exc
                continue
            if listing.status == "ALIVE":
                self._ui_active = i
                return listing, _clock_offset(resp, received)
            last = TransientError(f"{what}: master {ep.base_url} is {cut(listing.status, 40)!r}, not ALIVE")
        assert last is not None
        raise last

    async def _drivers(self, listing: Listing, schema: type[T], what: str) -> AsyncIterator[list[T]]:
        """The listing's drivers (active first), decoded a slice at a time with the loop served in between."""
        for raws in (listing.activedrivers, listing.completeddrivers):
            for start in range(0, len(raws), LISTING_SLICE):
                chunk = b"[" + b",".join(raws[start : start + LISTING_SLICE]) + b"]"
                batch = decode_json(chunk, list[schema], what=what)  # type: ignore[valid-type]
                del chunk
                yield batch
                await breathe()

    async def _listed_states(self) -> dict[str, str]:
        """Every driver's ``/json/`` state (an active entry wins over a completed one of the same id)."""
        listing, _ = await self._fetch_listing("master state", _as_states)
        listed: dict[str, str] = {}
        if isinstance(listing, StateListing):
            for drivers in (listing.completeddrivers, listing.activedrivers):
                for start in range(0, len(drivers), MAPPING_SLICE):
                    listed.update({d.id: d.state for d in drivers[start : start + MAPPING_SLICE]})
                    await breathe()
        else:
            async for batch in self._drivers(listing, DriverState, "master state"):
                for d in batch:
                    listed.setdefault(d.id, d.state)  # active drivers come first
        return listed

    async def _workers(self, listing: Listing, what: str) -> dict[str, str]:
        """Worker id -> web UI address (only addresses that are http(s) URLs)."""
        if not listing.workers:
            return {}
        workers = decode_json(b"[" + b",".join(listing.workers) + b"]", list[Worker], what=what)
        return {w.id: w.webuiaddress for w in workers if w.webuiaddress and _is_http_url(w.webuiaddress)}


__all__ = [
    "DIRECT_DECODE_MAX",
    "LISTING_SLICE",
    "MAPPING_SLICE",
    "MasterListing",
    "as_listing",
    "breathe",
    "in_turn",
]
