"""The ResourceManager's answers, typed: the :mod:`msgspec` schemas and the decoders of every answer read.

The schemas declare only the fields read. A wrong type, a truncated, empty, HTML or oversized body is
*malformed*: unknown for the job it concerns, never lost, failed or permanent (docs/bad-answers.md).
A list that matches nothing is ``{"apps": null}``; tags come back lower-cased and comma-joined; some
versions give a single application as an object instead of a one-element array. A list is read entry by
entry, so one entry that cannot be read touches its own application only, and a big list is decoded in
slices, giving the event loop a turn between them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import msgspec

from durable_jobs.clients.listing import UNREADABLE, EntryReader, Listing, decode_or_none, listed_twice
from durable_jobs.clients.yarn.specs import validate_app_id
from durable_jobs.decoding import decode_json
from durable_jobs.errors import MalformedAnswer, RecordError
from durable_jobs.messages import cut

_NOT_FOUND_RE = re.compile(r"not found|doesn't exist|does not exist", re.IGNORECASE)

# a big list is decoded this many bytes of entries at a time, the loop getting a turn in between (~2 ms each)
_SLICE_BYTES = 1 << 20


# --- the RM's answers, typed ----------------------------------------------------------------------------------
#
# Only the fields that are read are declared (the others are skipped, not built). A bool is not a string,
# a number is not a string: anything else than what is declared makes the answer malformed.


class AppInfo(msgspec.Struct, gc=False):
    """An application as the RM reports it (``{"app": {...}}``, or an entry of a list)."""

    id: str
    state: str
    finalStatus: str = ""
    diagnostics: str | None = None
    trackingUrl: str | None = None
    applicationTags: str | list[str] | None = None  # a comma-joined string; a list in some builds
    user: str | None = None
    queue: str | None = None
    applicationType: str | None = None
    amContainerLogs: str | None = None
    progress: float | None = None
    finishedTime: int | None = None

    @property
    def tags(self) -> set[str]:
        """The tags, compared case-insensitively (the RM lower-cases them at submission)."""
        raw = self.applicationTags or ""
        items = raw.split(",") if isinstance(raw, str) else raw
        return {t.strip().lower() for t in items if t.strip()}


class _AppAnswer(msgspec.Struct, gc=False):
    app: AppInfo


class _AppsBody(msgspec.Struct, gc=False):
    app: list[msgspec.Raw] | None = None


class _AppsAnswer(msgspec.Struct, gc=False):
    apps: _AppsBody | None  # required: {"apps": null} is an empty list, {} is not an answer


class _OneAppBody(msgspec.Struct, gc=False):
    app: msgspec.Raw


class _OneAppAnswer(msgspec.Struct, gc=False):
    apps: _OneAppBody


class _AppId(msgspec.Struct, gc=False):
    id: str


class RemoteExceptionInfo(msgspec.Struct, gc=False):
    """``GenericExceptionHandler``'s error body."""

    exception: str = ""
    message: str = ""
    javaClassName: str = ""


class _RemoteError(msgspec.Struct, gc=False):
    RemoteException: RemoteExceptionInfo


class _NewApplication(msgspec.Struct, gc=False):
    application_id: str = msgspec.field(name="application-id")


class ClusterInfo(msgspec.Struct, gc=False):
    """``/ws/v1/cluster/info``: a non-HA RM reports ``ACTIVE`` too."""

    haState: str = "ACTIVE"
    state: str | None = None
    id: int | None = None
    startedOn: int | None = None
    resourceManagerVersion: str | None = None
    hadoopVersion: str | None = None


class _ClusterInfoAnswer(msgspec.Struct, gc=False):
    clusterInfo: ClusterInfo


class _AppState(msgspec.Struct, gc=False):
    state: str


def decode_app(body: bytes, app_id: str, *, what: str) -> AppInfo:
    """``{"app": {...}}`` about ``app_id``; an answer about another application is malformed."""
    app = decode_json(body, _AppAnswer, what=what).app
    if app.id != app_id:
        raise MalformedAnswer(f"{what}: the answer is about {cut(app.id, 80)!r}, not {app_id}")
    return app


def remote_exception(body: bytes) -> RemoteExceptionInfo | None:
    """The ``RemoteException`` of an error body, or None when the body is not one."""
    err = decode_or_none(body, _RemoteError)
    return None if err is None else err.RemoteException


def is_not_found(status: int, body: bytes) -> bool:
    """The RM's documented "no such application": HTTP 404 with a ``RemoteException`` that is a
    ``NotFoundException`` (or says the application "doesn't exist"). A proxy's 404 page, an empty 404 or
    another exception is not: it proves nothing about the application."""
    if status != 404:
        return False
    err = remote_exception(body)
    if err is None:
        return False
    return (
        "NotFoundException" in err.exception
        or err.javaClassName.endswith("NotFoundException")
        or bool(_NOT_FOUND_RE.search(err.message[:1000]))
    )


def decode_new_application(body: bytes, *, what: str) -> str:
    app_id = decode_json(body, _NewApplication, what=what).application_id
    try:
        return validate_app_id(app_id)
    except RecordError as exc:
        raise MalformedAnswer(f"{what}: {exc}") from None


def decode_cluster_info(body: bytes, *, what: str) -> ClusterInfo:
    return decode_json(body, _ClusterInfoAnswer, what=what).clusterInfo


def decode_app_state(body: bytes, *, what: str) -> str:
    return decode_json(body, _AppState, what=what).state


class AppListing(Listing[str, AppInfo]):
    """A list answer, entry by entry (:class:`~durable_jobs.clients.listing.Listing`)."""

    __slots__ = ()
    READER = EntryReader(
        entry=msgspec.json.Decoder(AppInfo),
        key=lambda app: app.id,
        key_of_raw=lambda raw: msgspec.json.decode(raw, type=_AppId).id,
        name=lambda app_id: cut(app_id, 80),
        problem=listed_twice(lambda a, b: (a.state, a.finalStatus) == (b.state, b.finalStatus)),
    )

    @property
    def apps(self) -> dict[str, AppInfo]:
        return self.found


def listing_entries(body: bytes, *, what: str) -> list[msgspec.Raw]:
    """The raw entries of ``{"apps": {"app": [...]}}`` (``{"apps": null}``: none; a single object: one)."""
    try:
        apps = msgspec.json.decode(body, type=_AppsAnswer).apps
    except msgspec.ValidationError as exc:
        try:
            return [msgspec.json.decode(body, type=_OneAppAnswer).apps.app]
        except UNREADABLE:
            raise MalformedAnswer(f"{what}: the answer does not match its schema ({exc})") from None
    except (msgspec.DecodeError, RecursionError):
        decode_json(body, _AppsAnswer, what=what)  # raises MalformedAnswer with the reason
        raise AssertionError("unreachable") from None
    if apps is None or apps.app is None:
        return []
    return apps.app


def _read_entries(entries: list[msgspec.Raw], listing: AppListing, what: str) -> Iterator[None]:
    """Decode the entries into ``listing``, yielding after every ``_SLICE_BYTES`` of them."""
    done = 0
    for raw in entries:
        done += len(raw)
        listing.add(raw, what)
        if done >= _SLICE_BYTES:
            done = 0
            yield


def decode_listing(body: bytes, *, what: str) -> AppListing:
    """A list answer, decoded at once (small answers, tests)."""
    listing = AppListing()
    for _ in _read_entries(listing_entries(body, what=what), listing, what):
        pass
    return listing


async def adecode_listing(body: bytes, *, what: str) -> AppListing:
    """A list answer, decoded in slices: a list of 10,000 applications never holds the loop for long."""
    if len(body) <= _SLICE_BYTES:
        return decode_listing(body, what=what)
    await asyncio.sleep(0)  # the transport just joined the body: a turn for the loop before the first pass
    entries = listing_entries(body, what=what)
    await asyncio.sleep(0)
    listing = AppListing()
    for _ in _read_entries(entries, listing, what):
        await asyncio.sleep(0)
    return listing


__all__ = [
    "AppInfo",
    "AppListing",
    "ClusterInfo",
    "RemoteExceptionInfo",
    "adecode_listing",
    "decode_app",
    "decode_app_state",
    "decode_cluster_info",
    "decode_listing",
    "decode_new_application",
    "is_not_found",
    "listing_entries",
    "remote_exception",
]
