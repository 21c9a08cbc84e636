"""SPNEGO for aiohttp against a real MIT KDC: the fake RM accepts with pyspnego and the KDC's HTTP keytab.

Covers the issue's list: unauthenticated -> 401; a valid ticket (ccache); keytab login; tickets renewed
before they expire (an injected clock for hour-long tickets, and a real 4-second ticket); a tampered
token -> 403; a replay rejected; plus mutual authentication, the session cookie, and outages of the KDC.
"""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import aiohttp
import pytest

from durable_jobs.clients.yarn import YarnApplication, YarnClient
from durable_jobs.errors import AuthError, TransientError
from durable_jobs.status import JobState
from durable_jobs.transport.http import close_sessions
from durable_jobs.transport.kerberos import KerberosCredentials
from durable_jobs.transport.spnego import SpnegoAuth, cookie_expiry, negotiate_token
from durable_jobs_harness.fake_yarn import FakeYarnRM
from durable_jobs_harness.kdc import MitKdc
from durable_jobs_harness.yarn_fixtures import (
    SHORT_LIFE,
    KdcSetup,
    kdc,
    kerberos_client,
    kinit_alice,
    krb_env,
    krb_rm,
    simple_client,
)

__all__ = ["kdc", "krb_env", "krb_rm"]

pytestmark = pytest.mark.timeout(120)

APP = YarnApplication(name="kerberized", command="sleep 30")
TOKEN = "dj0123456789abcdef0123"
INFO = "/ws/v1/cluster/info"


class Clock:
    """Epoch seconds, movable forward: drives renewal without waiting an hour."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def spnego(client: YarnClient) -> SpnegoAuth:
    assert isinstance(client.auth, SpnegoAuth)
    return client.auth


def keytab_creds(setup: KdcSetup, who: str = "bob", renew_margin: float = 600.0) -> KerberosCredentials:
    keytab = {"bob": setup.bob_keytab, "alice": setup.alice_keytab, "shorty": setup.shorty_keytab}[who]
    return KerberosCredentials(principal=f"{who}@EXAMPLE.TEST", keytab=str(keytab), renew_margin=renew_margin)


def raw_token(ccache: str, host: str = "localhost") -> bytes:
    import spnego

    ctx = spnego.client(username=spnego.KerberosCCache(ccache=ccache), hostname=host, service="HTTP")
    return ctx.step() or b""


async def raw_get(url: str, token: bytes | None = None) -> tuple[int, dict[str, str], str]:
    headers = {"Authorization": "Negotiate " + base64.b64encode(token).decode()} if token else {}
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.text()


async def flow(client: YarnClient, token: str = TOKEN) -> dict[str, str]:
    """new-application -> submit -> list -> status -> kill: the calls a task makes."""
    loc = await client.submit(APP, token, reserved=await client.reserve(APP, token))
    assert await client.find(token, since=0, spec=APP) == loc
    assert (await client.status(loc)).state is JobState.PENDING
    await client.cancel(loc)
    return loc


# --- the list --------------------------------------------------------------------------------------


async def test_unauthenticated_is_401_with_a_negotiate_challenge(krb_rm):
    status, headers, body = await raw_get(krb_rm.url + "/ws/v1/cluster/apps")
    assert status == 401 and headers["WWW-Authenticate"] == "Negotiate" and "Authentication required" in body
    with pytest.raises(AuthError, match="HTTP 401"):
        await simple_client(krb_rm).new_application()  # user.name means nothing to a Kerberized RM
    assert krb_rm.apps == {}


async def test_a_valid_ticket_serves_a_whole_flow_with_one_negotiation(krb_env, krb_rm, tmp_path):
    ccache = kinit_alice(krb_env, tmp_path)
    client = kerberos_client(krb_rm, credentials=KerberosCredentials(ccache=ccache))
    tgs_before = krb_env.kdc.tgs_requests("alice", "HTTP/localhost")
    loc = await flow(client)
    app = krb_rm.apps[loc["application_id"]]
    assert app.user == "alice" and app.state == "KILLED"
    assert krb_rm.negotiations == 1 and spnego(client).negotiations == 1
    vias = [s.via for s in krb_rm.seen]
    assert vias[0] == "negotiate" and set(vias[1:]) == {"cookie"} and len(vias) >= 6
    assert krb_env.kdc.tgs_requests("alice", "HTTP/localhost") - tgs_before == 1  # one service ticket
    assert spnego(client).tickets.logins == 0  # the ccache's ticket, no login


async def test_keytab_login_without_kinit(krb_env, krb_rm):
    before = krb_env.kdc.as_requests("bob")
    client = kerberos_client(krb_rm, credentials=keytab_creds(krb_env))
    loc = await flow(client)
    assert krb_rm.apps[loc["application_id"]].user == "bob"
    assert spnego(client).tickets.logins == 1
    assert krb_env.kdc.as_requests("bob") - before >= 1
    assert spnego(client).tickets.ticket.ccache.startswith("MEMORY:")  # no file


async def test_keytab_tickets_are_renewed_before_they_expire(krb_env, krb_rm):
    krb_rm.cookies = False  # every request negotiates, so every request needs a valid ticket
    clock = Clock()
    client = kerberos_client(krb_rm, credentials=keytab_creds(krb_env, renew_margin=600), clock=clock)
    await client.cluster_info()
    first = spnego(client).tickets.ticket
    assert spnego(client).tickets.logins == 1 and first.expires_at - time.time() > 3000
    as_before = krb_env.kdc.as_requests("bob")
    await client.cluster_info()
    assert spnego(client).tickets.logins == 1 and krb_env.kdc.as_requests("bob") == as_before
    clock.offset = first.expires_at - time.time() - 300  # 5 minutes left: inside the 10-minute margin
    await client.cluster_info()
    assert spnego(client).tickets.logins == 2
    assert krb_env.kdc.as_requests("bob") > as_before
    assert spnego(client).tickets.ticket.ccache != first.ccache
    assert krb_rm.negotiations == 3


async def test_a_ccache_ticket_is_renewed_into_a_private_copy(krb_env, krb_rm, tmp_path):
    import krb5

    krb_rm.cookies = False
    ccache = kinit_alice(krb_env, tmp_path, lifetime="1h", renewable="2h")
    clock = Clock()
    client = kerberos_client(krb_rm, credentials=KerberosCredentials(ccache=ccache), clock=clock)
    await client.cluster_info()
    end = spnego(client).tickets.ticket.expires_at
    renews_before = krb_env.kdc.tgs_requests("alice", "krbtgt/EXAMPLE.TEST")
    clock.offset = end - time.time() - 120
    await client.cluster_info()
    tickets = spnego(client).tickets
    assert tickets.renewals == 1 and tickets.logins == 0
    assert tickets.ticket.ccache.startswith("MEMORY:") and tickets.ticket.expires_at >= end
    assert krb_env.kdc.tgs_requests("alice", "krbtgt/EXAMPLE.TEST") - renews_before == 1  # a renewal at the KDC
    # the user's ccache is left alone: the renewed ticket lives in a private copy
    ctx = krb5.init_context()
    cc = krb5.cc_resolve(ctx, ccache.encode())
    tgt = next(c for c in cc if str(c.server).startswith("krbtgt/"))
    assert float(tgt.times.endtime) == end
    assert krb_rm.negotiations == 2


async def test_a_real_short_ticket_expires_and_is_replaced_before_use(krb_env, krb_rm):
    krb_rm.cookies = False
    client = kerberos_client(krb_rm, credentials=keytab_creds(krb_env, "shorty"))
    await client.cluster_info()
    tickets = spnego(client).tickets
    first = tickets.ticket
    assert first.expires_at - time.time() <= SHORT_LIFE + 1  # the KDC capped it
    deadline = time.monotonic() + 30
    while time.time() < first.expires_at + 1:  # wait for the real expiry (bounded)
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)

    # it really expired: a context from that ccache cannot be created any more
    def use_expired() -> None:
        raw_token(first.ccache)

    with pytest.raises(Exception, match=r"(?i)expired"):
        await asyncio.to_thread(use_expired)
    await client.cluster_info()  # ... yet the client works: it logged in again before using it
    assert tickets.logins == 2 and krb_rm.negotiations == 2


async def test_an_expired_ccache_nobody_refreshes_is_transient_never_a_failure(krb_env, krb_rm, tmp_path):
    krb_rm.cookies = False
    ccache = kinit_alice(krb_env, tmp_path, lifetime="3s")
    client = kerberos_client(krb_rm, credentials=KerberosCredentials(ccache=ccache))
    await client.cluster_info()
    end = spnego(client).tickets.ticket.expires_at
    deadline = time.monotonic() + 30
    while time.time() < end + 1:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    with pytest.raises(TransientError, match="expired"):
        await client.cluster_info()


async def test_a_tampered_token_is_403(krb_env, krb_rm, tmp_path):
    ccache = kinit_alice(krb_env, tmp_path)
    token = bytearray(await asyncio.to_thread(raw_token, ccache))
    token[len(token) // 2] ^= 0xFF  # inside the encrypted ticket
    status, _, body = await raw_get(krb_rm.url + INFO, bytes(token))
    assert status == 403 and "GSSException" in body
    status, headers, _ = await raw_get(krb_rm.url + INFO, await asyncio.to_thread(raw_token, ccache))
    assert status == 200 and negotiate_token(headers)  # an intact token works, with a mutual-auth answer
    assert krb_rm.rejected_tokens == 1


async def test_a_replayed_token_is_rejected(krb_env, krb_rm, tmp_path):
    ccache = kinit_alice(krb_env, tmp_path)
    token = await asyncio.to_thread(raw_token, ccache)
    first, _, _ = await raw_get(krb_rm.url + INFO, token)
    replay, _, _ = await raw_get(krb_rm.url + INFO, token)
    assert (first, replay) == (200, 403)


# --- more than the list ------------------------------------------------------------------------------------


async def test_a_token_for_a_service_the_rm_has_no_key_for_is_refused(krb_env, krb_rm):
    client = kerberos_client(krb_rm, credentials=keytab_creds(krb_env), hostname="otherhost")
    with pytest.raises(AuthError, match="HTTP 403"):
        await client.new_application()
    assert krb_rm.rejected_tokens == 1 and krb_rm.apps == {}


async def test_mutual_authentication_is_required(krb_env, krb_rm):
    client = kerberos_client(krb_rm, credentials=keytab_creds(krb_env))
    krb_rm.mutual_token = b"\x60\x09not-a-real-token"  # a server that cannot prove it holds HTTP/localhost
    with pytest.raises(AuthError, match="mutual authentication failed"):
        await client.cluster_info()
    with pytest.raises(AuthError, match="mutual authentication failed"):
        await client.cluster_info()
    assert krb_rm.negotiations == 2  # the unproven server's cookie was not kept
    krb_rm.mutual_token = b""  # no token at all
    with pytest.raises(AuthError, match="did not prove its identity"):
        await client.cluster_info()
    krb_rm.mutual_token = None
    assert (await client.cluster_info())["haState"] == "ACTIVE"


async def test_a_refused_session_cookie_is_dropped_and_renegotiated_once(krb_env, krb_rm):
    client = kerberos_client(krb_rm, credentials=keytab_creds(krb_env))
    await client.cluster_info()
    await client.cluster_info()
    assert krb_rm.negotiations == 1
    krb_rm.secret = b"rotated" * 4  # e.g. the RM restarted with a new signing secret
    await client.cluster_info()
    assert krb_rm.negotiations == 2
    assert [s.via for s in krb_rm.seen] == ["negotiate", "cookie", "refused", "negotiate"]


async def test_an_expiring_cookie_is_not_sent(krb_env, krb_rm):
    krb_rm.cookie_ttl = 2.0  # expires within the client's 5-second safety margin
    client = kerberos_client(krb_rm, credentials=keytab_creds(krb_env))
    await client.cluster_info()
    await client.cluster_info()
    assert [s.via for s in krb_rm.seen] == ["negotiate", "negotiate"]
    jar_value = '"u=bob&p=bob@EXAMPLE.TEST&t=kerberos&e=1795264127000&s=abc"'
    assert cookie_expiry(jar_value) == 1795264127.0


async def test_an_unreachable_kdc_is_transient(tmp_path: Path, monkeypatch):
    with MitKdc(tmp_path / "kdc2") as own:
        keytab = own.add_service("HTTP", "localhost")
        own.add_principal("carol")
        carol = own.keytab("carol", tmp_path / "carol.keytab")
        for key, value in own.env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("KRB5_KTNAME", f"FILE:{keytab}")
        (tmp_path / "rc").mkdir()
        monkeypatch.setenv("KRB5RCACHEDIR", str(tmp_path / "rc"))
        rm = await FakeYarnRM(auth="kerberos").start()
    # the KDC is stopped now (by its PID): a login cannot happen, and that is not the user's fault
    try:
        client = kerberos_client(rm, credentials=KerberosCredentials(principal="carol", keytab=str(carol)))
        with pytest.raises(TransientError, match="KDC is unreachable"):
            await client.cluster_info()
        assert rm.seen == []
    finally:
        await close_sessions()
        await rm.stop()


async def test_ha_failover_behind_kerberos_follows_the_active_rm(krb_env):
    from durable_jobs_harness.fake_yarn import YarnClusterState

    cluster = YarnClusterState()
    rm1 = await FakeYarnRM(auth="kerberos", cluster=cluster).start()
    rm2 = await FakeYarnRM(auth="kerberos", cluster=cluster, ha_state="STANDBY").start()
    rm2.active_url = rm1.url
    try:
        client = kerberos_client(rm1, rm2, credentials=keytab_creds(krb_env))
        loc = await client.submit(APP, TOKEN, reserved=await client.reserve(APP, TOKEN))
        assert client.active_rm == rm1.url
        # failover: rm1 turns standby and redirects to rm2, which gets no token through the redirect
        rm1.ha_state, rm1.active_url, rm2.ha_state, rm2.active_url = "STANDBY", rm2.url, "ACTIVE", None
        seen_by_rm1 = len(rm1.seen)
        assert (await client.status(loc)).state is JobState.PENDING
        assert client.active_rm == rm2.url
        assert [s.path for s in rm1.seen[seen_by_rm1:]] == [
            f"/ws/v1/cluster/apps/{loc['application_id']}"
        ]  # redirected
        assert rm1.negotiations == 1 and rm2.negotiations == 1  # each RM negotiated once, with its own SPN
        assert (await client.status(loc)).state is JobState.PENDING
        assert rm2.negotiations == 1
    finally:
        await close_sessions()
        await rm1.stop()
        await rm2.stop()


async def test_a_401_page_echoing_our_negotiate_token_reveals_it_nowhere(krb_env, krb_rm, caplog):
    import logging

    from aiohttp import web

    caplog.set_level(logging.DEBUG)
    sent: list[str] = []

    async def echo(req: web.Request, handler: object) -> web.StreamResponse:
        sent.append(req.headers.get("Authorization", ""))
        lines = "\n".join(f"{k}: {v}" for k, v in req.headers.items())
        token = sent[-1].split(" ", 1)[-1]
        return web.Response(status=401, text=f"<pre>You sent\n{lines}\nyour token was {token}</pre>")

    krb_rm.override(lambda req: True, echo)
    client = kerberos_client(krb_rm, credentials=keytab_creds(krb_env))
    with pytest.raises(AuthError) as exc:
        await client.cluster_info()
    token = sent[-1].split(" ", 1)[1]
    assert sent[-1].startswith("Negotiate ") and len(token) > 100
    assert "HTTP 401" in str(exc.value)
    for text in (str(exc.value), repr(exc.value), caplog.text):
        assert token not in text and token[:40] not in text
