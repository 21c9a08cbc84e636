"""The default transport: pooled aiohttp sessions, bodies read as a bounded stream.

The triggerer runs thousands of triggers on one event loop. A session per request (what the Livy
trigger does) costs a TCP and TLS handshake per poll; here every client of an endpoint shares one
session per event loop, keyed by everything that changes how requests are made (base URL, TLS
settings, the identity of the caller). Cookies are not kept here but by the policy layer
(:mod:`durable_jobs.transport.http`), so that a mock transport behaves the same.

A body is read in chunks and given up as soon as it passes the endpoint's ``max_body``: a 50 MB answer
costs at most the limit, never the whole body, and the connection is closed rather than drained.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import aiohttp
from aiohttp.http_exceptions import LineTooLong

from durable_jobs.errors import AnswerTooLarge, PermanentError, TransientError
from durable_jobs.loop_local import LoopLocal
from durable_jobs.transport.base import Request, Response, Transport

_CHUNK = 1 << 16


class _AiohttpStream:
    def __init__(self, resp: aiohttp.ClientResponse, what: str) -> None:
        self._resp = resp
        self._what = what

    async def readline(self, limit: int) -> bytes:
        try:
            line = await self._resp.content.readuntil(b"\n", max_size=limit)
            if len(line) > limit:
                raise AnswerTooLarge(f"{self._what}: a line of {len(line)} bytes, longer than {limit}")
            return line
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            raise TransientError(f"{self._what}: the stream was cut ({type(exc).__name__}: {exc})") from exc
        except asyncio.TimeoutError as exc:
            raise TransientError(f"{self._what}: nothing received for longer than the read timeout") from exc
        except (ValueError, LineTooLong) as exc:  # aiohttp: "Chunk too big" / a line past max_size
            raise AnswerTooLarge(f"{self._what}: a line larger than the client reads ({exc})") from exc

    async def close(self) -> None:
        # a stream not read to its end cannot go back to the pool: close its connection
        self._resp.close()


class AiohttpTransport(Transport):
    """Sessions per (event loop, endpoint pool key). Sessions die with their loop."""

    def __init__(self) -> None:
        self._sessions: LoopLocal[dict[tuple[Any, ...], aiohttp.ClientSession]] = LoopLocal(
            dict, close=_close_sessions, name="HTTP sessions"
        )

    def session(self, request: Request) -> aiohttp.ClientSession:
        ep = request.endpoint
        sessions = self._sessions.get()
        session = sessions.get(ep.pool_key)
        if session is None or session.closed:
            ssl_ctx: ssl.SSLContext | bool
            if ep.ssl_context is not None:
                ssl_ctx = ep.ssl_context
            elif ep.base_url.startswith("https://"):
                ssl_ctx = ssl.create_default_context(cafile=ep.ca_file) if ep.verify_ssl else False
            else:
                ssl_ctx = True
            connector = aiohttp.TCPConnector(limit=ep.limit, ssl=ssl_ctx, keepalive_timeout=60)
            session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),  # cookies are the policy layer's
                raise_for_status=False,
                auto_decompress=True,
            )
            sessions[ep.pool_key] = session
        return session

    async def handle(self, request: Request) -> Response:
        ep = request.endpoint
        if request.stream:
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=ep.connect_timeout, sock_read=request.read_timeout or request.timeout
            )
        else:
            timeout = aiohttp.ClientTimeout(total=request.timeout, sock_connect=ep.connect_timeout)
        session = self.session(request)
        try:
            resp = await session.request(
                request.method,
                request.url,
                params=list(request.params) or None,
                headers=dict(request.headers),
                data=request.body,
                timeout=timeout,
                allow_redirects=False,
            )
        except aiohttp.ClientConnectorCertificateError as exc:
            raise TransientError(
                f"{request.what}: TLS verification of {ep.base_url} failed ({exc.certificate_error}); check the "
                "connection's CA (ca_file), or the host name",
                connect_failed=True,
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise TransientError(
                f"{request.what}: cannot connect to {ep.base_url}: {exc.os_error or exc}", connect_failed=True
            ) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            # no connection within connect_timeout (a host that is down drops our SYNs): nothing was sent, so an
            # HA client may try the next server, as after a refused connection
            raise TransientError(
                f"{request.what}: cannot connect to {ep.base_url} within {ep.connect_timeout:g}s", connect_failed=True
            ) from exc
        except aiohttp.InvalidURL as exc:
            raise PermanentError(f"{request.what}: invalid URL {request.url!r}") from exc
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise TransientError(f"{request.what}: {type(exc).__name__} talking to {ep.base_url}: {exc}") from exc
        if request.stream:
            return Response(resp.status, resp.headers, b"", str(resp.url), request, _AiohttpStream(resp, request.what))
        try:
            body = await _read_bounded(resp, ep.max_body, request.what)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            resp.close()
            raise TransientError(
                f"{request.what}: {type(exc).__name__} reading the answer of {ep.base_url}: {exc}"
            ) from exc
        except BaseException:
            resp.close()
            raise
        resp.release()
        return Response(resp.status, resp.headers, body, str(resp.url), request)

    async def aclose_loop(self) -> None:
        await self._sessions.close()

    def sessions(self) -> int:
        return len(self._sessions.peek() or ())


async def _close_sessions(sessions: dict[tuple[Any, ...], aiohttp.ClientSession]) -> None:
    for session in sessions.values():
        await session.close()


async def _read_bounded(resp: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
    length = resp.content_length
    if length is not None and length > limit:
        raise AnswerTooLarge(
            f"{what}: the answer is {length} bytes, more than this connection reads ({limit}; raise "
            "max_response_bytes in the connection's extra if the endpoint really sends that much)"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise AnswerTooLarge(
                f"{what}: the answer is larger than this connection reads ({limit} bytes; raise "
                "max_response_bytes in the connection's extra if the endpoint really sends that much)"
            )
        chunks.append(chunk)
    if size > _CHUNK * 16:
        await asyncio.sleep(0)  # a big body: let the loop turn before the join (and the caller's decode)
    return b"".join(chunks)
