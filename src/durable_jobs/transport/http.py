"""The HTTP policy, once for every client: what is sent, what is followed, what is read, what is quoted.

Every HTTP client of the library calls :func:`request`. It resolves the URL, lets the
:class:`~durable_jobs.transport.base.Auth` decorate the request, sends it through the current
:class:`~durable_jobs.transport.base.Transport`, keeps cookies per endpoint and identity, and applies
the rules of ``docs/bad-answers.md``:

* **no redirect is followed**, except the HA redirect of a ``GET`` to the same path on another host of
  the same connection (a standby YARN RM pointing at the active one). A ``POST`` is never re-sent on a
  redirect, and a redirect anywhere else raises :class:`~durable_jobs.errors.RedirectRefused`, a
  transient error: the server did not act on the request, and nothing it said is believed;
* **bodies are bounded**: a body larger than the endpoint's ``max_body`` is not read whole and raises
  :class:`~durable_jobs.errors.AnswerTooLarge` (unknown, with a message saying how to raise the limit);
* **quotes are cut and redacted**: errors quote answers through
  :meth:`~durable_jobs.transport.base.Response.snippet`, which drops the request's own credentials, and
  ``Authorization``, cookies and tokens wherever they appear.

Every request has a timeout. Tests replace the transport with :func:`use_transport` (see
:class:`durable_jobs.testing.MockTransport`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import http.cookies
import json
import ssl
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from yarl import URL

from durable_jobs.errors import RedirectRefused
from durable_jobs.loop_local import LoopLocal, close_all
from durable_jobs.transport.base import (
    NO_AUTH,
    TRANSIENT_STATUSES,
    Auth,
    Request,
    Response,
    Transport,
    header_values,
    parse_retry_after,
)
from durable_jobs.transport.limits import DEFAULT_MAX_BODY as DEFAULT_MAX_BODY

if TYPE_CHECKING:
    import aiohttp

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_HOPS = 2

HttpResponse = Response


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to talk to one HTTP service.

    :param redirect_hosts: the other base URLs of the same connection (HA peers): the only places a
        ``GET`` may be redirected to.
    :param max_body: the largest body read whole, in bytes.
    :param ssl_context: a ready TLS context (client certificates); else one is made from ``verify_ssl`` and
        ``ca_file``.
    """

    base_url: str
    verify_ssl: bool = True
    ca_file: str | None = None
    timeout: float = 30.0
    connect_timeout: float = 10.0
    limit: int = 64
    identity: str = ""  # separates sessions and cookies that must not mix (e.g. two principals)
    max_body: int = DEFAULT_MAX_BODY
    redirect_hosts: tuple[str, ...] = ()
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"endpoint URL {self.base_url!r} is not an HTTP address: it must start with http:// or https:// "
                "(durable_jobs talks to the service's HTTP API, not to its other protocols or ports)"
            )
        if self.timeout <= 0:
            raise ValueError("endpoint timeout must be positive")
        if self.max_body <= 0:
            raise ValueError("max_response_bytes must be positive")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        object.__setattr__(self, "redirect_hosts", tuple(_origin(h) for h in self.redirect_hosts))

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    @property
    def origin(self) -> str:
        return _origin(self.base_url)

    @property
    def pool_key(self) -> tuple[Any, ...]:
        ctx = id(self.ssl_context) if self.ssl_context is not None else None
        return (self.base_url, self.verify_ssl, self.ca_file, self.limit, self.identity, ctx)

    def peer(self, origin: str) -> Endpoint:
        """This endpoint's settings for another host of the same connection (an HA redirect's target)."""
        return replace(self, base_url=origin)


def _origin(url: str) -> str:
    u = URL(url)
    return f"{u.scheme}://{u.host}:{u.port}" if u.host else url.rstrip("/")


# --- the current transport ---------------------------------------------------------------------------------


class _Default(Transport):
    """The pooled aiohttp transport, imported on first use in a worker thread.

    aiohttp takes 0.1-0.3 s to import. Airflow imports a trigger's module on the triggerer's event loop when
    the first trigger of its class starts, so an aiohttp import there stalls every trigger of the triggerer.
    The first request imports it in a thread instead; the loop keeps running meanwhile.
    """

    def __init__(self) -> None:
        self._impl: Transport | None = None
        self._loading: asyncio.Future[Transport] | None = None

    async def load(self) -> Transport:
        if self._impl is None:
            if self._loading is None or self._loading.get_loop() is not asyncio.get_running_loop():
                self._loading = asyncio.ensure_future(asyncio.to_thread(_make_default))
            self._impl = await asyncio.shield(self._loading)
        return self._impl

    async def handle(self, request: Request) -> Response:
        impl = self._impl or await self.load()
        return await impl.handle(request)

    async def aclose_loop(self) -> None:
        if self._impl is not None:
            await self._impl.aclose_loop()

    def sessions(self) -> int:
        return self._impl.sessions() if self._impl is not None else 0


def _make_default() -> Transport:
    from durable_jobs.transport.default import AiohttpTransport

    return AiohttpTransport()


DEFAULT_TRANSPORT = _Default()
_TRANSPORT: contextvars.ContextVar[Transport | None] = contextvars.ContextVar("durable_jobs_transport", default=None)


def current_transport() -> Transport:
    return _TRANSPORT.get() or DEFAULT_TRANSPORT


@contextlib.contextmanager
def use_transport(transport: Transport) -> Iterator[Transport]:
    """Send every request made in this context (and the tasks it starts) through ``transport``."""
    token = _TRANSPORT.set(transport)
    try:
        yield transport
    finally:
        _TRANSPORT.reset(token)


# --- cookies: per event loop, endpoint and identity ---------------------------------------------------------

_JARS: LoopLocal[dict[tuple[Any, ...], aiohttp.CookieJar]] = LoopLocal(dict, name="cookie jars")


def cookie_jar(endpoint: Endpoint) -> aiohttp.CookieJar:
    """The cookies kept for ``endpoint`` and its identity on the running loop (e.g. Hadoop's ``hadoop.auth``)."""
    jars = _JARS.get()
    jar = jars.get(endpoint.pool_key)
    if jar is None:
        import aiohttp  # loaded by the first request already (in a thread, see _Default)

        jar = jars[endpoint.pool_key] = aiohttp.CookieJar(unsafe=True)
    return jar


def _with_cookies(req: Request) -> Request:
    jar = (_JARS.peek() or {}).get(req.endpoint.pool_key)
    if not jar:
        return req
    cookies = jar.filter_cookies(URL(req.url))
    if not cookies:
        return req
    return req.with_headers({"Cookie": "; ".join(f"{k}={m.value}" for k, m in cookies.items())})


def _keep_cookies(req: Request, resp: Response) -> None:
    values = header_values(resp.headers, "Set-Cookie")
    if not values:
        return
    parsed: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
    for value in values:
        with contextlib.suppress(http.cookies.CookieError):
            parsed.load(value)
    if parsed:
        cookie_jar(req.endpoint).update_cookies(parsed, URL(resp.url))


async def _send(req: Request) -> Response:
    req = _with_cookies(req)
    resp = await current_transport().handle(req)
    _keep_cookies(req, resp)
    return resp


# --- the one request function -------------------------------------------------------------------------------


async def request(
    endpoint: Endpoint,
    method: str,
    path: str,
    *,
    json_body: Any = None,
    body: bytes | None = None,
    params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    what: str = "request",
    auth: Auth | None = None,
    stream: bool = False,
    read_timeout: float | None = None,
) -> Response:
    """One HTTP request under the policy above. Any HTTP status is returned; transport failures raise.

    Raises :class:`~durable_jobs.errors.TransientError` for connection failures, timeouts and cut
    answers (``connect_failed`` True when the request surely never reached the server, or the server only
    redirected it: safe to send to another host of the connection),
    :class:`~durable_jobs.errors.AnswerTooLarge` past ``max_body`` and
    :class:`~durable_jobs.errors.RedirectRefused` for a redirect the policy does not follow.
    """
    hdrs = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    query = tuple(params.items()) if isinstance(params, Mapping) else tuple(params or ())
    req = Request(
        method=method.upper(),
        url=endpoint.url(path),
        endpoint=endpoint,
        params=query,
        headers=hdrs,
        body=body,
        timeout=timeout or endpoint.timeout,
        read_timeout=read_timeout,
        stream=stream,
        what=what,
    )
    auth = auth or NO_AUTH
    if DEFAULT_TRANSPORT._impl is None:
        await DEFAULT_TRANSPORT.load()  # aiohttp, imported off the loop, before any cookie is touched
    for hop in range(_MAX_HOPS + 1):
        resp = await auth.flow(req, _send)
        resp.secrets = (*req.secrets, *(resp.request.secrets if resp.request else ()), *auth.secrets())
        if resp.status not in _REDIRECTS:
            return resp
        await resp.aclose()
        nxt = _follow(req, resp, hop)
        if nxt is None:
            location = str(resp.headers.get("Location", ""))
            raise RedirectRefused(
                f"{what}: HTTP {resp.status} redirect from {endpoint.base_url} to {location[:200]!r} was not "
                f"followed: {_why_not(req, resp, hop)}",
                status=resp.status,
                location=location,
            )
        req = nxt
    raise AssertionError("unreachable")


def _target(req: Request, resp: Response) -> URL | None:
    location = resp.headers.get("Location")
    if not location:
        return None
    try:
        return URL(req.url).join(URL(str(location)))
    except ValueError:
        return None


def _follow(req: Request, resp: Response, hop: int) -> Request | None:
    """The request to send next, when the redirect is an HA redirect among the connection's own hosts."""
    target = _target(req, resp)
    if target is None or hop >= _MAX_HOPS or req.method not in ("GET", "HEAD"):
        return None
    origin = _origin(str(target))
    if origin not in req.endpoint.redirect_hosts or origin == req.endpoint.origin:
        return None
    if target.path != URL(req.url).path:
        return None
    peer = req.endpoint.peer(origin)
    headers = {k: v for k, v in req.headers.items() if k.lower() not in ("cookie", "authorization")}
    return replace(
        req, url=str(target.with_query(None)), endpoint=peer, params=tuple(target.query.items()), headers=headers
    )


def _why_not(req: Request, resp: Response, hop: int) -> str:
    target = _target(req, resp)
    if target is None:
        return "it names no usable Location"
    if req.method not in ("GET", "HEAD"):
        return f"a {req.method} is never re-sent on a redirect"
    if hop >= _MAX_HOPS:
        return "too many redirects"
    if _origin(str(target)) not in req.endpoint.redirect_hosts:
        return "that host is not one of the connection's hosts"
    return "it changes the path"


# --- pools ----------------------------------------------------------------------------------------------------


async def close_sessions() -> None:
    """Close every resource of the running loop: its sessions, and every other :class:`LoopLocal` (the
    apiserver connections, the AWS clients...). What a worker runs when its loop ends; tests."""
    await close_all()


def open_sessions() -> int:
    """Pooled HTTP sessions of the running loop (tests, benchmarks)."""
    return DEFAULT_TRANSPORT.sessions()


__all__ = [
    "DEFAULT_MAX_BODY",
    "TRANSIENT_STATUSES",
    "Endpoint",
    "HttpResponse",
    "Response",
    "close_sessions",
    "cookie_jar",
    "current_transport",
    "open_sessions",
    "parse_retry_after",
    "request",
    "use_transport",
]
