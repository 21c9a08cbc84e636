"""The two sides of the watch contract: what the informer needs (:class:`WatchSource`) and its HTTP side.

Why it exists: the informer (:mod:`~durable_jobs.clients.kubernetes.watch`) is a state machine that knows
nothing of HTTP, so it can be tested against a scripted source. :class:`ListWatch` is the real source: list pages
and watch streams of one namespace, kind and selector, through a
:class:`~durable_jobs.clients.kubernetes.api.Connection`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol

from durable_jobs.clients.kubernetes.errors import RelistRequired, api_error
from durable_jobs.clients.kubernetes.objects import Kind
from durable_jobs.errors import AnswerTooLarge, DurableJobError
from durable_jobs.transport.base import Response
from durable_jobs.transport.http import DEFAULT_MAX_BODY

if TYPE_CHECKING:
    from durable_jobs.clients.kubernetes.api import Connection

_ERROR_HEAD = 64 * 1024  # bytes of a refused watch's body read to learn why


class WatchSource(Protocol):
    """What the informer needs of the apiserver, for one namespace, kind and selector.

    Both methods raise :class:`ResourceExpired` for 410, :class:`TransientError` for what may pass, and
    :class:`PermanentError` (403 included) for refusals.
    """

    def describe(self) -> str: ...

    async def list_page(self, *, limit: int, continue_token: str | None) -> bytes:
        """One page of the list, as the apiserver sent it (decoded by the informer)."""
        ...

    def open_stream(
        self, *, resource_version: str, timeout_seconds: int
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """The watch from ``resource_version`` with bookmarks: yields one event line at a time."""
        ...


class ListWatch:
    """The :class:`WatchSource` of one namespace, kind and selector."""

    def __init__(self, conn: Connection, kind: Kind, namespace: str, selector: str) -> None:
        self.conn, self.kind, self.namespace, self.selector = conn, kind, namespace, selector

    def describe(self) -> str:
        return f"{self.kind.plural} in {self.namespace} ({self.selector})"

    async def list_page(self, *, limit: int, continue_token: str | None) -> bytes:
        query = [("labelSelector", self.selector), ("limit", str(limit))]
        if continue_token:
            query.append(("continue", continue_token))
        reply = await self.conn.call(
            "GET", self.kind.collection(self.namespace), query=query, what=f"list {self.describe()}"
        )
        return reply.body

    @contextlib.asynccontextmanager
    async def open_stream(self, *, resource_version: str, timeout_seconds: int) -> AsyncIterator[AsyncIterator[bytes]]:
        what = f"watch {self.describe()}"
        query = [
            ("allowWatchBookmarks", "true"),
            ("labelSelector", self.selector),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", str(timeout_seconds)),
            ("watch", "true"),
        ]
        # no total timeout (it is a long request); a silent half-open connection ends after the read timeout
        resp = await self.conn.open(
            "GET", self.kind.collection(self.namespace), query=query, read_timeout=timeout_seconds + 30, what=what
        )
        try:
            if resp.status != 200:
                raise api_error(resp.status, await _head(resp), resp.headers, what, resp.secrets)
            limit = self.conn.endpoint.max_body if self.conn.endpoint is not None else DEFAULT_MAX_BODY
            yield _event_lines(resp, what, limit)
        finally:
            await resp.aclose()  # a stream not read to its end closes its connection


async def _head(resp: Response) -> bytes:
    """The first bytes of a streamed answer (a refused watch's Status), whatever state the stream is in."""
    out = b""
    with contextlib.suppress(Exception):
        async for line in resp.lines(_ERROR_HEAD):
            out += line
            if len(out) >= _ERROR_HEAD:
                break
    return out


async def _event_lines(resp: Response, what: str, limit: int) -> AsyncIterator[bytes]:
    """The stream's lines; a line that cannot be read (too large, or a reader failure) means: list again."""
    lines = resp.lines(limit)
    while True:
        try:
            line = await anext(lines)
        except StopAsyncIteration:
            return
        except AnswerTooLarge as exc:
            raise RelistRequired(f"{what}: an event was larger than the client reads ({exc})") from exc
        except DurableJobError:
            raise
        except Exception as exc:  # the transport's reader refused a line (aiohttp's LineTooLong...)
            raise RelistRequired(f"{what}: an event the client could not read ({type(exc).__name__}: {exc})") from exc
        yield line
