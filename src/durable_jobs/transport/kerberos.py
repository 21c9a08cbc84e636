"""Kerberos tickets for the client: where the identity comes from, and a ticket-granting ticket kept usable.

Separate from the HTTP side (:mod:`durable_jobs.transport.spnego`) because nothing here speaks HTTP: it
is the MIT ``krb5`` calls, all blocking (a KDC round trip, a ccache file), so every method of
:class:`TicketSource` runs in a thread.

* a keytab and principal: logged in to a private in-memory ccache, and logged in again before the ticket
  expires;
* an existing ccache (e.g. kept fresh by ``airflow kerberos``): renewed into a private copy when it runs
  low and is renewable. An expired ccache that nobody refreshes is a :class:`TransientError` (a renewer
  may be late), never a failed job.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from durable_jobs.errors import AuthError, TransientError

log = logging.getLogger(__name__)

Clock = Callable[[], float]
# KDC answers that mean "try again later", not "your credentials are wrong"
_KDC_DOWN_MARKERS = ("Cannot contact any KDC", "Cannot find KDC", "Resource temporarily unavailable", "timed out")
EXPIRED_MARKERS = ("Ticket expired", "credential has expired", "Credentials cache has expired")
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
            raise classify_failure(
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


def classify_failure(what: str, exc: BaseException) -> TransientError | AuthError:
    text = str(exc)
    if any(m in text for m in _KDC_DOWN_MARKERS):
        return TransientError(f"{what}: the KDC is unreachable: {text}")
    if any(m in text for m in EXPIRED_MARKERS):
        return TransientError(f"{what}: the Kerberos ticket expired: {text}")
    return AuthError(f"{what}: {text}")


__all__ = [
    "EXPIRED_MARKERS",
    "Clock",
    "KerberosCredentials",
    "Ticket",
    "TicketSource",
    "classify_failure",
]
