"""Pooled aiohttp sessions and one request function with a timeout and error classes.

The triggerer runs thousands of triggers on one event loop. A session per request (what the Livy
trigger does) costs a TCP and TLS handshake per poll; here every client of an endpoint shares one
session per event loop, keyed by everything that changes how requests are made (base URL, TLS
settings, the identity whose cookies the session may hold).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import ssl
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from durable_jobs.errors import PermanentError, TransientError

TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to talk to one HTTP service."""

    base_url: str
    verify_ssl: bool = True
    ca_file: str | None = None
    timeout: float = 30.0
    connect_timeout: float = 10.0
    limit: int = 64
    identity: str = ""  # separates sessions whose cookies must not mix (e.g. two principals)

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"endpoint URL must start with http:// or https://, got {self.base_url!r}")
        if self.timeout <= 0:
            raise ValueError("endpoint timeout must be positive")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    @property
    def pool_key(self) -> tuple[Any, ...]:
        return (self.base_url, self.verify_ssl, self.ca_file, self.limit, self.identity)


@dataclass(slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    text: str
    url: str
    _json: Any = field(default=None, repr=False)
    _parsed: bool = field(default=False, repr=False)

    @property
    def is_json(self) -> bool:
        return "json" in self.headers.get("Content-Type", "").lower()

    def json(self) -> Any:
        """The body as JSON, or None when the server did not send JSON (e.g. an HTML error page)."""
        if not self._parsed:
            self._parsed = True
            if self.is_json or self.text[:1] in ("{", "["):
                try:
                    self._json = json.loads(self.text)
                except ValueError:
                    self._json = None
        return self._json

    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("Retry-After"))

    def snippet(self, limit: int = 300) -> str:
        text = " ".join(self.text.split())
        return text[:limit] + ("..." if len(text) > limit else "")

    def raise_for_transient(self, what: str) -> None:
        """Raise :class:`TransientError` for statuses worth retrying."""
        if self.status in TRANSIENT_STATUSES:
            raise TransientError(
                f"{what}: HTTP {self.status} from {self.url}: {self.snippet()}",
                retry_after=self.retry_after(),
                status=self.status,
            )

    def raise_for_status(self, what: str) -> None:
        self.raise_for_transient(what)
        if self.status >= 400:
            raise PermanentError(f"{what}: HTTP {self.status} from {self.url}: {self.snippet()}", status=self.status)


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _SessionPool:
    """Sessions per (event loop, endpoint pool key). Sessions die with their loop."""

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[Any, ...], aiohttp.ClientSession]
        ]
        self._by_loop = weakref.WeakKeyDictionary()

    def get(self, endpoint: Endpoint) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        sessions = self._by_loop.setdefault(loop, {})
        session = sessions.get(endpoint.pool_key)
        if session is None or session.closed:
            ssl_ctx: ssl.SSLContext | bool
            if endpoint.base_url.startswith("https://"):
                ssl_ctx = ssl.create_default_context(cafile=endpoint.ca_file) if endpoint.verify_ssl else False
            else:
                ssl_ctx = True
            connector = aiohttp.TCPConnector(limit=endpoint.limit, ssl=ssl_ctx, keepalive_timeout=60)
            session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.CookieJar(unsafe=True),
                raise_for_status=False,
            )
            sessions[endpoint.pool_key] = session
        return session

    def count(self) -> int:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return 0
        return len(self._by_loop.get(loop, {}))

    async def close_loop(self) -> None:
        loop = asyncio.get_running_loop()
        sessions = self._by_loop.pop(loop, {})
        for session in sessions.values():
            await session.close()


SESSIONS = _SessionPool()


# Other per-loop pools (e.g. the aiobotocore clients of clients/aws.py) register their closer here, so that
# every place that tears a loop down with close_sessions() closes them too.
_LOOP_CLOSERS: list[Callable[[], Awaitable[None]]] = []


def on_close_sessions(closer: Callable[[], Awaitable[None]]) -> None:
    """Make :func:`close_sessions` also await ``closer()`` (idempotent)."""
    if closer not in _LOOP_CLOSERS:
        _LOOP_CLOSERS.append(closer)


def session_for(endpoint: Endpoint) -> aiohttp.ClientSession:
    """The shared session of this endpoint on the running loop."""
    return SESSIONS.get(endpoint)


async def close_sessions() -> None:
    """Close every session of the running loop, and the other registered pools (worker teardown, tests)."""
    await SESSIONS.close_loop()
    for closer in list(_LOOP_CLOSERS):
        await closer()


async def request(
    endpoint: Endpoint,
    method: str,
    path: str,
    *,
    json_body: Any = None,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    what: str = "request",
) -> HttpResponse:
    """One HTTP request with a total timeout. Any HTTP status is returned; transport failures raise.

    Raises :class:`TransientError` for connection failures and timeouts; its ``connect_failed`` is
    True when the request surely never reached the server (safe to send to another master).
    """
    session = session_for(endpoint)
    url = endpoint.url(path)
    client_timeout = aiohttp.ClientTimeout(total=timeout or endpoint.timeout, sock_connect=endpoint.connect_timeout)
    try:
        async with session.request(
            method, url, json=json_body, params=params, headers=headers, timeout=client_timeout
        ) as resp:
            text = await resp.text(errors="replace")
            return HttpResponse(status=resp.status, headers=dict(resp.headers), text=text, url=str(resp.url))
    except aiohttp.ClientConnectorError as exc:
        raise TransientError(
            f"{what}: cannot connect to {endpoint.base_url}: {exc.os_error or exc}", connect_failed=True
        ) from exc
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise TransientError(f"{what}: {type(exc).__name__} talking to {url}: {exc}") from exc
