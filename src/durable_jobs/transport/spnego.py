"""SPNEGO (HTTP ``Negotiate``, RFC 4559) as an ``Auth`` of the one transport seam, on pyspnego: Kerberos that
works on the triggerer.

aiohttp has BasicAuth only, and Airflow's Kerberos helpers are sync (``requests-kerberos``), so deferred
tasks used to drop Kerberos on the triggerer. This module negotiates with pyspnego/gssapi (no GSSAPI by
hand) and keeps every call that may block (a KDC round trip, a ccache file) in a thread:

* credentials: :mod:`durable_jobs.transport.kerberos` keeps a usable ticket (a keytab login, or an
  existing ccache renewed when it runs low), its blocking calls in a thread too;
* one negotiation serves many requests: Hadoop's ``AuthenticationFilter`` answers a negotiation with a
  signed session cookie (``hadoop.auth``) that the policy layer's cookie jar keeps (one jar per endpoint
  and :attr:`Endpoint.identity`, so principals never share one). It is sent instead of renegotiating until
  it expires or the server answers 401, which drops it and negotiates once more;
* a fresh token for every negotiation: an acceptor's replay cache rejects a reused one;
* mutual authentication: the server's final ``WWW-Authenticate: Negotiate`` token is checked, so a
  server that cannot prove it holds the service key is refused.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yarl import URL

from durable_jobs.errors import AuthError
from durable_jobs.loop_local import LoopLocal
from durable_jobs.transport.base import Auth, Request, Response, Send
from durable_jobs.transport.http import Endpoint, cookie_jar
from durable_jobs.transport.kerberos import (
    EXPIRED_MARKERS,
    Clock,
    KerberosCredentials,
    TicketSource,
    classify_failure,
)

log = logging.getLogger(__name__)


class _NoTokens(logging.Filter):
    """pyspnego logs every token it makes or reads at DEBUG ("SPNEGO step output: <base64>"): a credential
    in the log. Keep the line, drop the token."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        if "step input" in msg or "step output" in msg or "TSRequest" in msg:
            record.msg = msg.split(":", 1)[0] + ": *** (token not logged)"
            record.args = ()
        return True


for _name in ("spnego._negotiate", "spnego._gss", "spnego._ntlm", "spnego._sspi", "spnego._credssp"):
    logging.getLogger(_name).addFilter(_NoTokens())


def negotiate_token(headers: Mapping[str, str]) -> bytes | None:
    """The token of a ``WWW-Authenticate: Negotiate <base64>`` header; None when absent or bare."""
    for key, value in headers.items():
        if key.lower() != "www-authenticate":
            continue
        for challenge in str(value).split(","):
            scheme, _, data = challenge.strip().partition(" ")
            if scheme.lower() == "negotiate" and data.strip():
                try:
                    return base64.b64decode(data.strip(), validate=True)
                except (binascii.Error, ValueError):
                    return b""  # present but garbage: mutual authentication fails on it
    return None


def negotiate_challenge(headers: Mapping[str, str]) -> bool:
    """True when the server asks for ``Negotiate`` (a 401 from a SPNEGO-protected server)."""
    return any(
        key.lower() == "www-authenticate"
        and any(c.strip().lower().startswith("negotiate") for c in str(value).split(","))
        for key, value in headers.items()
    )


def cookie_expiry(value: str) -> float | None:
    """Epoch seconds from a Hadoop auth token (``u=..&p=..&t=..&e=<ms>&s=..``), or None."""
    for part in value.strip('"').split("&"):
        key, _, raw = part.partition("=")
        if key == "e":
            try:
                return int(raw) / 1000.0
            except ValueError:
                return None
    return None


@dataclass
class _Negotiation:
    context: Any
    token: bytes


class SpnegoAuth(Auth):
    """SPNEGO as an :class:`~durable_jobs.transport.base.Auth`: a session cookie, a fresh negotiation when
    there is none, and mutual authentication.

    The policy layer (:func:`durable_jobs.transport.http.request`) keeps the server's cookies per endpoint and
    :attr:`identity` (:func:`~durable_jobs.transport.http.cookie_jar`), and calls :meth:`flow` once per host:
    an HA redirect to another RM of the connection reaches this flow again with that RM's endpoint, which
    negotiates for itself (the token of one host is never sent to another).

    :param credentials: where the Kerberos identity comes from.
    :param service: the service part of the SPN (``HTTP``).
    :param hostname: the SPN's host, when it is not the URL's host (an IP address, a load balancer).
    :param mutual: require the server to prove itself with the final ``Negotiate`` token (default on).
    :param cookie_name: the server's session cookie (Hadoop: ``hadoop.auth``); None to negotiate every time.
    :param clock: epoch seconds; injectable so tests can move time toward a ticket's expiry.
    """

    def __init__(
        self,
        credentials: KerberosCredentials,
        service: str = "HTTP",
        hostname: str | None = None,
        mutual: bool = True,
        cookie_name: str | None = "hadoop.auth",
        clock: Clock = time.time,
    ) -> None:
        self.credentials = credentials
        self.service = service
        self.hostname = hostname
        self.mutual = mutual
        self.cookie_name = cookie_name
        self.clock = clock
        self.negotiations = 0
        self.tickets = TicketSource(credentials, clock)
        # secret-free: principal and keytab path, or the ccache name (separates pools and cookie jars)
        self.identity = f"spnego:{service}:{credentials.identity}"
        self._locks: LoopLocal[dict[tuple[Any, ...], asyncio.Lock]] = LoopLocal(dict, name="SPNEGO locks")

    def __repr__(self) -> str:
        return f"SpnegoAuth({self.identity!r}, hostname={self.hostname!r}, mutual={self.mutual})"

    def spn_host(self, endpoint: Endpoint) -> str:
        return self.hostname or URL(endpoint.base_url).host or "localhost"

    async def flow(self, request: Request, send: Send) -> Response:
        """Send ``request`` with the session cookie if there is one, else negotiate. A 401 after a fresh
        negotiation raises :class:`AuthError`; other statuses (403 included) are returned for the caller."""
        endpoint = request.endpoint
        if self._has_cookie(request):
            resp = await send(request)
            if resp.status != 401:
                return resp
            await resp.aclose()
            log.info("%s no longer accepts its session cookie: negotiating again", endpoint.base_url)
            self._drop_cookie(endpoint)
        if self.cookie_name is None:
            return await self._negotiate(request, send)
        async with self._lock(endpoint):
            if self._has_cookie(request):  # another request negotiated while this one waited
                resp = await send(request)
                if resp.status != 401:
                    return resp
                await resp.aclose()
                self._drop_cookie(endpoint)
            return await self._negotiate(request, send)

    async def _negotiate(self, request: Request, send: Send) -> Response:
        endpoint, what = request.endpoint, request.what
        host = self.spn_host(endpoint)
        nego = await asyncio.to_thread(self._initiate, host)  # a fresh token: replay caches refuse reused ones
        self.negotiations += 1
        resp = await send(request.with_headers({"Authorization": "Negotiate " + base64.b64encode(nego.token).decode()}))
        if resp.status == 401:
            self._drop_cookie(endpoint)
            raise AuthError(
                f"{what}: {endpoint.base_url} refused the Kerberos token for {self.service}/{host} (HTTP 401): "
                f"{resp.snippet(200)}",
                status=401,
            )
        server_token = negotiate_token(resp.headers)
        if server_token is not None:
            if not await asyncio.to_thread(_finish, nego.context, server_token):
                self._drop_cookie(endpoint)
                raise AuthError(
                    f"{what}: mutual authentication failed: {endpoint.base_url} could not prove it is "
                    f"{self.service}/{host} (its Negotiate token does not verify)"
                )
        elif 300 <= resp.status < 400:
            # a redirect: the policy decides where (if anywhere) to go; a cookie from a server that did not
            # prove itself is not kept, so it can never stand in for a negotiation later
            self._drop_cookie(endpoint)
        elif self.mutual and resp.status < 500 and resp.status != 403:
            self._drop_cookie(endpoint)
            raise AuthError(
                f"{what}: {endpoint.base_url} answered HTTP {resp.status} without a Negotiate token, so it did not "
                "prove its identity (mutual authentication). Set mutual_auth to false only if a proxy strips it."
            )
        return resp

    def _initiate(self, host: str) -> _Negotiation:
        """Blocking: make sure a ticket is usable, then create the first SPNEGO token (may ask the KDC)."""
        import spnego

        ccache = self.tickets.ccache()
        req = spnego.ContextReq.default if self.mutual else spnego.ContextReq.default & ~spnego.ContextReq.mutual_auth
        try:
            ctx = spnego.client(
                username=spnego.KerberosCCache(ccache=ccache, principal=None),
                hostname=host,
                service=self.service,
                protocol="negotiate",
                context_req=req,
            )
            token = ctx.step()
        except Exception as exc:  # pyspnego raises several types (SpnegoError, gssapi errors, AttributeError)
            err = classify_failure(f"creating a Kerberos token for {self.service}/{host}", exc)
            if any(m in str(exc) for m in EXPIRED_MARKERS):
                self.tickets.invalidate()
            raise err from exc
        if not token:
            raise AuthError(f"no Kerberos token was produced for {self.service}/{host}")
        return _Negotiation(ctx, token)

    # --- session cookie (kept by the policy layer, per endpoint and identity) ----------------------------

    def _has_cookie(self, request: Request) -> bool:
        """Whether the policy layer will send a usable session cookie with this request."""
        if self.cookie_name is None:
            return False
        jar = cookie_jar(request.endpoint)
        morsel = jar.filter_cookies(URL(request.url)).get(self.cookie_name)
        if morsel is None or not morsel.value.strip('"'):
            return False
        expires = cookie_expiry(morsel.value)
        if expires is not None and expires <= time.time() + 5:
            self._drop_cookie(request.endpoint)
            return False
        return True

    def _drop_cookie(self, endpoint: Endpoint) -> None:
        if self.cookie_name is not None:
            name = self.cookie_name
            cookie_jar(endpoint).clear(lambda morsel: morsel.key == name)

    def _lock(self, endpoint: Endpoint) -> asyncio.Lock:
        locks = self._locks.get()
        return locks.setdefault(endpoint.pool_key, asyncio.Lock())


def _finish(context: Any, server_token: bytes) -> bool:
    """Blocking: verify the server's final token (mutual authentication)."""
    if not server_token:
        return False
    try:
        context.step(server_token)
    except Exception:  # pyspnego raises several types for a token that does not verify
        log.debug("the server's Negotiate token did not verify", exc_info=True)
        return False
    return bool(context.complete)


__all__ = [
    "KerberosCredentials",  # re-exported: it was defined here before the Kerberos side moved out
    "SpnegoAuth",
    "cookie_expiry",
    "negotiate_challenge",
    "negotiate_token",
]
