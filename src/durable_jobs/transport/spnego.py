"""SPNEGO (HTTP ``Negotiate``, RFC 4559) as an ``Auth`` of the one transport seam, on pyspnego: Kerberos that
works on the triggerer.

aiohttp has BasicAuth only, and Airflow's Kerberos helpers are sync (``requests-kerberos``), so deferred
tasks used to drop Kerberos on the triggerer. This module negotiates with pyspnego/gssapi (no GSSAPI by
hand) and keeps every call that may block (a KDC round trip, a ccache file) in a thread:

* credentials: a keytab and principal, logged in to a private in-memory ccache and logged in again
  before the ticket expires; or an existing ccache (e.g. kept fresh by ``airflow kerberos``), renewed
  into a private copy when it runs low and is renewable. An expired ccache that nobody refreshes is a
  :class:`TransientError` (a renewer may be late), never a failed job;
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
import copy
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from yarl import URL

from durable_jobs.errors import AuthError, TransientError
from durable_jobs.transport.base import Auth, Request, Response, Send
from durable_jobs.transport.http import Endpoint, cookie_jar

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

Clock = Callable[[], float]
# KDC answers that mean "try again later", not "your credentials are wrong"
_KDC_DOWN_MARKERS = ("Cannot contact any KDC", "Cannot find KDC", "Resource temporarily unavailable", "timed out")
_EXPIRED_MARKERS = ("Ticket expired", "credential has expired", "Credentials cache has expired")
_KEEP_CCACHES = 2  # private ccaches kept alive: the current one and the one in-flight contexts may still use


@dataclass(frozen=True)
class KerberosCredentials:
    """Where the client's Kerberos identity comes from: a keytab, or an existing ccache (default: ``KRB5CCNAME``).

    :param principal: the client principal (``user@REALM``); for a keytab, default its first entry.
    :param keytab: path of a client keytab; the ticket is obtained (and re-obtained) from it.
    :param ccache: an existing credential cache (``FILE:/tmp/krb5cc_1000``, ``DIR:...``, ``KCM:``).
    :param renew_margin: obtain a new ticket when less than this many seconds remain (at most half its life).
    :param ticket_lifetime: keytab logins ask for this lifetime in seconds (the KDC may grant less).
    """

    principal: str | None = None
    keytab: str | None = None
    ccache: str | None = None
    renew_margin: float = 600.0
    ticket_lifetime: float | None = None

    def __post_init__(self) -> None:
        if self.keytab and self.ccache:
            raise ValueError("give a Kerberos keytab or a ccache, not both")
        if self.renew_margin < 0:
            raise ValueError("renew_margin must not be negative")
        if self.ticket_lifetime is not None and self.ticket_lifetime <= 0:
            raise ValueError("ticket_lifetime must be positive")

    @property
    def identity(self) -> str:
        """A stable, secret-free string: requests made with different identities never share cookies."""
        if self.keytab:
            return f"keytab:{self.principal or '*'}:{self.keytab}"
        return f"ccache:{self.ccache or 'default'}:{self.principal or '*'}"


@dataclass(frozen=True)
class Ticket:
    """The TGT in use: its ccache and when (by the injected clock, epoch seconds) to obtain a new one."""

    ccache: str
    principal: str
    expires_at: float
    refresh_at: float


def _refresh_at(start: float, end: float, margin: float) -> float:
    return end - min(margin, max(0.0, end - start) / 2)


class TicketSource:
    """Keeps a usable ticket-granting ticket. Its methods block (KDC, files): call them in a thread."""

    def __init__(self, credentials: KerberosCredentials, clock: Clock = time.time) -> None:
        self.credentials = credentials
        self._clock = clock
        self._lock = threading.Lock()
        self._ticket: Ticket | None = None
        self._private: list[Any] = []  # (krb5 context, ccache) pairs we created, newest last
        self.logins = 0
        self.renewals = 0

    @property
    def ticket(self) -> Ticket | None:
        return self._ticket

    def invalidate(self) -> None:
        """Forget the current ticket: the next :meth:`ccache` obtains or re-reads one."""
        with self._lock:
            self._ticket = None

    def ccache(self) -> str:
        """The name of a ccache holding a ticket that is not about to expire (``TYPE:residual``)."""
        with self._lock:
            now = self._clock()
            if self._ticket is None or now >= self._ticket.refresh_at:
                self._ticket = self._login(now) if self.credentials.keytab else self._from_ccache(now)
            return self._ticket.ccache

    # --- keytab ----------------------------------------------------------------------------------------

    def _login(self, now: float) -> Ticket:
        import krb5

        creds = self.credentials
        assert creds.keytab is not None
        ctx = krb5.init_context()
        try:
            kt = krb5.kt_resolve(ctx, creds.keytab.encode())
            if creds.principal:
                princ = krb5.parse_name_flags(ctx, creds.principal.encode())
            else:
                entries = list(kt)
                if not entries:
                    raise AuthError(f"the keytab {creds.keytab} has no entries")
                princ = copy.copy(entries[0].principal)
            opt = krb5.get_init_creds_opt_alloc(ctx)
            krb5.get_init_creds_opt_set_forwardable(opt, False)
            if creds.ticket_lifetime:
                krb5.get_init_creds_opt_set_tkt_life(opt, int(creds.ticket_lifetime))
            cred = krb5.get_init_creds_keytab(ctx, princ, opt, keytab=kt)
        except krb5.Krb5Error as exc:
            raise _classify(
                f"Kerberos login of {creds.principal or 'the first principal'} from {creds.keytab}", exc
            ) from exc
        except OSError as exc:
            raise AuthError(f"cannot read the keytab {creds.keytab}: {exc}") from exc
        name = self._store_private(ctx, cred)
        self.logins += 1
        times = cred.times
        start = float(times.starttime or times.authtime)
        log.info("Kerberos: logged in as %s from a keytab; ticket valid until %s", cred.client, _when(times.endtime))
        return Ticket(name, str(cred.client), float(times.endtime), self._local(now, start, float(times.endtime)))

    def _local(self, now: float, start: float, end: float) -> float:
        # refresh by the KDC's ticket times; our clock and the KDC's agree within Kerberos's allowed skew
        return max(now, _refresh_at(start, end, self.credentials.renew_margin))

    def _store_private(self, ctx: Any, cred: Any) -> str:
        import krb5

        cc = krb5.cc_new_unique(ctx, b"MEMORY")
        krb5.cc_initialize(ctx, cc, cred.client)
        krb5.cc_store_cred(ctx, cc, cred)
        self._private.append((ctx, cc))
        while len(self._private) > _KEEP_CCACHES:
            old_ctx, old = self._private.pop(0)
            try:
                krb5.cc_destroy(old_ctx, old)
            except krb5.Krb5Error:
                log.debug("could not destroy an old private ccache", exc_info=True)
        return f"MEMORY:{(cc.name or b'').decode()}"

    # --- existing ccache -------------------------------------------------------------------------------

    def _from_ccache(self, now: float) -> Ticket:
        import krb5

        creds = self.credentials
        ctx = krb5.init_context()
        try:
            cc = krb5.cc_resolve(ctx, creds.ccache.encode()) if creds.ccache else krb5.cc_default(ctx)
        except krb5.Krb5Error as exc:
            raise AuthError(f"cannot open the Kerberos ccache {creds.ccache or '(default)'}: {exc}") from exc
        name = f"{(cc.cache_type or b'FILE').decode()}:{(cc.name or b'').decode()}"
        candidates = [(name, ctx, cc)] + [(f"MEMORY:{(p.name or b'').decode()}", c, p) for c, p in self._private[-1:]]
        best: tuple[str, Any, Any, Any] | None = None
        for cc_name, cctx, ccache in candidates:
            tgt = _tgt(cctx, ccache)
            if tgt is not None and (best is None or tgt.times.endtime > best[3].times.endtime):
                best = (cc_name, cctx, ccache, tgt)
        if best is None:
            raise AuthError(f"no Kerberos ticket-granting ticket in {name}: run kinit (or `airflow kerberos`) first")
        cc_name, cctx, ccache, tgt = best
        times = tgt.times
        start, end = float(times.starttime or times.authtime), float(times.endtime)
        if now < _refresh_at(start, end, creds.renew_margin):
            return Ticket(cc_name, str(tgt.client), end, _refresh_at(start, end, creds.renew_margin))
        if times.renew_till and now < float(times.renew_till) and now < end:
            try:
                renewed = krb5.get_renewed_creds(cctx, tgt.client, ccache)
            except krb5.Krb5Error as exc:
                log.warning("Kerberos: renewing the ticket in %s failed: %s", cc_name, exc)
            else:
                private = self._store_private(cctx, renewed)
                self.renewals += 1
                rt = renewed.times
                new_start, new_end = float(rt.starttime or rt.authtime), float(rt.endtime)
                log.info("Kerberos: renewed the ticket of %s until %s", renewed.client, _when(rt.endtime))
                return Ticket(private, str(renewed.client), new_end, self._local(now, new_start, new_end))
        if now < end:
            # low but still valid: use it, and look again soon (a renewer may refresh the ccache)
            return Ticket(cc_name, str(tgt.client), end, min(end, now + 30.0))
        raise TransientError(
            f"the Kerberos ticket in {name} expired at {_when(end)} and cannot be renewed; waiting for it to be "
            "refreshed (kinit, or `airflow kerberos`). Configure a keytab to let durable_jobs log in by itself."
        )


def _tgt(ctx: Any, ccache: Any) -> Any:
    """The ccache's ticket-granting ticket for its principal's realm, or None."""
    import krb5

    try:
        principal = str(ccache.principal)
        creds = list(ccache)
    except krb5.Krb5Error:
        return None
    realm = principal.rsplit("@", 1)[-1]
    for cred in creds:
        if str(cred.server) == f"krbtgt/{realm}@{realm}":
            return cred
    return None


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _classify(what: str, exc: BaseException) -> TransientError | AuthError:
    text = str(exc)
    if any(m in text for m in _KDC_DOWN_MARKERS):
        return TransientError(f"{what}: the KDC is unreachable: {text}")
    if any(m in text for m in _EXPIRED_MARKERS):
        return TransientError(f"{what}: the Kerberos ticket expired: {text}")
    return AuthError(f"{what}: {text}")


# --- HTTP -------------------------------------------------------------------------------------------------


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
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], asyncio.Lock]]
        self._locks = weakref.WeakKeyDictionary()

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
            err = _classify(f"creating a Kerberos token for {self.service}/{host}", exc)
            if any(m in str(exc) for m in _EXPIRED_MARKERS):
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
        locks = self._locks.setdefault(asyncio.get_running_loop(), {})
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
    "KerberosCredentials",
    "SpnegoAuth",
    "Ticket",
    "TicketSource",
    "cookie_expiry",
    "negotiate_challenge",
    "negotiate_token",
]
