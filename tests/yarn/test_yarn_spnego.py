"""The pieces of the SPNEGO transport that need no KDC: headers, cookies, credentials, identities.

Negotiation itself, tickets and renewal run against a real MIT KDC in tests/yarn/test_yarn_kerberos.py.
"""

from __future__ import annotations

import base64

import pytest

from durable_jobs.clients.yarn import SimpleAuth, YarnClient, YarnConfig
from durable_jobs.errors import AuthError, TransientError
from durable_jobs.transport.kerberos import KerberosCredentials, _refresh_at, classify_failure
from durable_jobs.transport.spnego import SpnegoAuth, cookie_expiry, negotiate_challenge, negotiate_token


def test_negotiate_token_is_read_from_www_authenticate_in_any_case():
    token = b"\xa1\x14mutual-auth-token"
    b64 = base64.b64encode(token).decode()
    assert negotiate_token({"WWW-Authenticate": f"Negotiate {b64}"}) == token
    assert negotiate_token({"www-authenticate": f"Basic realm=x, negotiate {b64}"}) == token
    assert negotiate_token({"WWW-Authenticate": "Negotiate"}) is None  # a bare challenge carries no token
    assert negotiate_token({"Content-Type": "text/html"}) is None
    assert negotiate_token({"WWW-Authenticate": "Negotiate ***not base64***"}) == b""  # present, fails mutual auth


def test_challenge_detection():
    assert negotiate_challenge({"WWW-Authenticate": "Negotiate"})
    assert negotiate_challenge({"www-authenticate": "Basic realm=x, Negotiate"})
    assert not negotiate_challenge({"WWW-Authenticate": 'Basic realm="x"'})
    assert not negotiate_challenge({})


def test_hadoop_cookie_expiry():
    assert cookie_expiry('"u=alice&p=alice@EXAMPLE.TEST&t=kerberos&e=1795264127000&s=c2ln"') == 1795264127.0
    assert cookie_expiry("u=alice&t=simple&s=x") is None
    assert cookie_expiry("u=alice&e=soon&s=x") is None


def test_refresh_happens_a_margin_before_expiry_but_never_before_half_the_life():
    assert _refresh_at(0, 36000, 600) == 35400  # a 10-hour ticket: 10 minutes before the end
    assert _refresh_at(0, 4, 600) == 2  # a 4-second ticket: at half its life, not before it was issued


def test_credentials_are_validated_and_identities_never_mix():
    with pytest.raises(ValueError, match="not both"):
        KerberosCredentials(keytab="/k", ccache="FILE:/c")
    alice = SpnegoAuth(KerberosCredentials(principal="alice@R", keytab="/etc/a.keytab"))
    bob = SpnegoAuth(KerberosCredentials(principal="bob@R", keytab="/etc/b.keytab"))
    ccache = SpnegoAuth(KerberosCredentials(ccache="FILE:/tmp/cc"))
    assert len({alice.identity, bob.identity, ccache.identity, SimpleAuth("alice").identity}) == 4
    # the identity separates pooled sessions (and so cookie jars) per principal
    a = YarnClient(YarnConfig(rm_urls=("http://rm:8088",), auth="kerberos", kerberos=alice.credentials))
    b = YarnClient(YarnConfig(rm_urls=("http://rm:8088",), auth="kerberos", kerberos=bob.credentials))
    assert a._rms[0].pool_key != b._rms[0].pool_key and a.key != b.key


def test_kdc_outages_are_transient_and_refusals_permanent():
    assert isinstance(classify_failure("login", Exception("Cannot contact any KDC for realm 'R'")), TransientError)
    assert isinstance(classify_failure("login", Exception("Ticket expired")), TransientError)
    refused = classify_failure("login", Exception("Client 'eve@R' not found in Kerberos database"))
    assert isinstance(refused, AuthError) and not isinstance(refused, TransientError)


def test_yarn_config_rejects_unknown_auth():
    with pytest.raises(ValueError, match="none, simple or kerberos"):
        YarnConfig(rm_urls=("http://rm:8088",), auth="basic")
    cfg = YarnConfig(rm_urls=("http://rm:8088",), auth="kerberos")
    assert cfg.kerberos == KerberosCredentials()  # the default ccache (KRB5CCNAME)


# --- the flow, with the Kerberos parts stubbed (the real ones run against the KDC in the integration tests) ---


class StubContext:
    complete = False

    def step(self, token: bytes) -> None:
        if token != b"server-proof":
            raise ValueError("does not verify")
        self.complete = True


def stub_auth(monkeypatch: pytest.MonkeyPatch) -> SpnegoAuth:
    import durable_jobs.transport.spnego as sp

    auth = SpnegoAuth(KerberosCredentials(principal="etl@R", keytab="/k"))
    tokens = iter(range(1000))
    monkeypatch.setattr(auth, "_initiate", lambda host: sp._Negotiation(StubContext(), f"tok{next(tokens)}".encode()))
    return auth


async def test_the_flow_negotiates_once_then_uses_the_cookie_and_verifies_the_server(monkeypatch):
    from durable_jobs.testing.transport import MockTransport, json_response
    from durable_jobs.transport.http import Endpoint, request, use_transport

    auth = stub_auth(monkeypatch)
    proof = "Negotiate " + base64.b64encode(b"server-proof").decode()
    seen: list[dict[str, str]] = []

    def handler(req):  # type: ignore[no-untyped-def]
        seen.append(dict(req.headers))
        if "Cookie" in req.headers:
            return json_response({"ok": 1})
        assert req.headers["Authorization"].startswith("Negotiate ")
        return json_response(
            {"ok": 1}, headers={"WWW-Authenticate": proof, "Set-Cookie": 'hadoop.auth="u=etl&e=99999999999999&s=x"'}
        )

    ep = Endpoint("http://rm:8088", identity=auth.identity)
    with use_transport(MockTransport(handler)):
        for _ in range(3):
            assert (await request(ep, "GET", "/ws/v1/cluster/info", auth=auth)).status == 200
    assert auth.negotiations == 1 and [("Cookie" in h) for h in seen] == [False, True, True]
    assert len({h.get("Authorization") for h in seen if "Authorization" in h}) == 1


async def test_a_redirect_without_a_proof_keeps_no_cookie_and_a_bad_proof_is_refused(monkeypatch):
    from durable_jobs.errors import RedirectRefused
    from durable_jobs.testing.transport import MockTransport, response
    from durable_jobs.transport.http import Endpoint, cookie_jar, request, use_transport

    auth = stub_auth(monkeypatch)
    answers = [
        response(307, "", headers={"Location": "http://evil:1/x", "Set-Cookie": 'hadoop.auth="u=etl&s=forged"'}),
        response(200, "{}", headers={"WWW-Authenticate": "Negotiate " + base64.b64encode(b"forged").decode()}),
        response(200, "{}"),
    ]
    ep = Endpoint("http://rm:8088", identity=auth.identity)
    with use_transport(MockTransport(lambda req: answers.pop(0))):
        with pytest.raises(RedirectRefused):
            await request(ep, "GET", "/ws/v1/cluster/info", auth=auth)
        assert not cookie_jar(ep).filter_cookies(__import__("yarl").URL("http://rm:8088/"))  # an unproven cookie
        with pytest.raises(AuthError, match="mutual authentication failed"):
            await request(ep, "GET", "/ws/v1/cluster/info", auth=auth)
        with pytest.raises(AuthError, match="did not prove its identity"):
            await request(ep, "GET", "/ws/v1/cluster/info", auth=auth)
    assert auth.negotiations == 3  # a fresh token every time


def test_pyspnego_debug_lines_never_carry_a_token(caplog):
    import logging

    import durable_jobs.transport.spnego  # noqa: F401  (installs the filter)

    caplog.set_level(logging.DEBUG)
    logging.getLogger("spnego._negotiate").debug("SPNEGO step output: " + "YIIC7AYGKwYBBQUCoIIC4DCCAtygDTAL")
    logging.getLogger("spnego._gss").debug("GSSAPI step input: %s", "YIIC7AYGKwYBBQUCoIIC4DCCAtygDTAL")
    assert "YIIC7AYG" not in caplog.text and caplog.text.count("token not logged") == 2
