"""The HTTP policy of the one transport seam: redirects, size limits, redaction, cookies, the mock transport.

Real sockets on 127.0.0.1 where the network matters (redirects, streamed bodies, resets); the mock transport
where only the policy does.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from durable_jobs.decoding import decode_json
from durable_jobs.errors import AnswerTooLarge, MalformedAnswer, RedirectRefused, TransientError
from durable_jobs.messages import redact, snippet
from durable_jobs.testing.transport import MockTransport, json_response, response
from durable_jobs.transport.auth import BearerAuth, SimpleAuth
from durable_jobs.transport.base import Request
from durable_jobs.transport.http import Endpoint, close_sessions, request, use_transport
from durable_jobs_harness.fake_spark import free_port

SECRET = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJlLXNlY3JldA"


class Server:
    """An aiohttp app on 127.0.0.1 that counts what reaches it."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.hits: list[tuple[str, str]] = []
        self.port = free_port()
        self.runner: web.AppRunner | None = None

        @web.middleware
        async def count(req: web.Request, handler):  # type: ignore[no-untyped-def]
            self.hits.append((req.method, req.path))
            return await handler(req)

        self.app.middlewares.append(count)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Server:
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await close_sessions()
        assert self.runner is not None
        await self.runner.cleanup()


async def test_a_redirect_to_a_host_the_connection_does_not_know_is_not_followed():
    evil, master = Server(), Server()

    async def to_evil(req: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"{evil.url}/v1/submissions/create")

    async def evil_create(req: web.Request) -> web.Response:
        return web.json_response({"success": True, "submissionId": "driver-evil"})

    master.app.router.add_post("/v1/submissions/create", to_evil)
    master.app.router.add_get("/v1/submissions/status/x", to_evil)
    evil.app.router.add_post("/v1/submissions/create", evil_create)
    evil.app.router.add_get("/v1/submissions/create", evil_create)
    await evil.__aenter__()
    await master.__aenter__()
    try:
        ep = Endpoint(master.url)
        with pytest.raises(RedirectRefused, match="never re-sent") as exc:
            await request(ep, "POST", "/v1/submissions/create", json_body={"secret": "x"}, what="create")
        assert exc.value.connect_failed and exc.value.status == 307
        with pytest.raises(RedirectRefused, match="not one of the connection's hosts"):
            await request(ep, "GET", "/v1/submissions/status/x", what="status")
        assert evil.hits == []  # the submission (and its properties) never reached the other host
    finally:
        await master.__aexit__()
        await evil.__aexit__()


async def test_a_post_is_never_resent_on_a_redirect_even_to_an_ha_peer():
    standby, active = Server(), Server()

    async def redirect(req: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"{active.url}{req.path_qs}")

    async def elsewhere(req: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"{active.url}/elsewhere")

    async def ok(req: web.Request) -> web.Response:
        return web.json_response({"ok": True, "user": req.query.get("user.name")})

    standby.app.router.add_route("*", "/ws/v1/cluster/apps", redirect)
    standby.app.router.add_get("/ws/v1/cluster/other", elsewhere)
    active.app.router.add_route("*", "/ws/v1/cluster/apps", ok)
    async with standby, active:
        ep = Endpoint(standby.url, redirect_hosts=(active.url,))
        with pytest.raises(RedirectRefused, match="a POST is never re-sent"):
            await request(ep, "POST", "/ws/v1/cluster/apps", json_body={}, auth=SimpleAuth("alice"))
        assert [m for m, _ in active.hits] == []
        # the documented HA redirect of a GET to the same path on a configured peer is followed
        resp = await request(ep, "GET", "/ws/v1/cluster/apps", params={"states": "RUNNING"}, auth=SimpleAuth("alice"))
        assert resp.status == 200 and resp.json() == {"ok": True, "user": "alice"}
        assert resp.url.startswith(active.url)
        # a redirect that changes the path is not, even to a peer
        with pytest.raises(RedirectRefused, match="changes the path"):
            await request(ep, "GET", "/ws/v1/cluster/other")


async def test_a_body_larger_than_the_limit_is_not_read_whole():
    big = b"x" * (2 * 1024 * 1024)

    srv = Server()

    async def sized(req: web.Request) -> web.Response:
        return web.Response(body=big, content_type="application/json")

    async def chunked(req: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(req)
        for _ in range(64):  # 64 MB if read to the end
            await resp.write(b"y" * (1024 * 1024))
        return resp

    srv.app.router.add_get("/sized", sized)
    srv.app.router.add_get("/chunked", chunked)
    async with srv:
        ep = Endpoint(srv.url, max_body=1024 * 1024)
        with pytest.raises(AnswerTooLarge, match="max_response_bytes"):
            await request(ep, "GET", "/sized")
        with pytest.raises(AnswerTooLarge, match="larger than this connection reads"):
            await request(ep, "GET", "/chunked")
        assert isinstance(AnswerTooLarge("x"), TransientError)  # unknown, never permanent
        ok = await request(Endpoint(srv.url, max_body=4 * 1024 * 1024), "GET", "/sized")
        assert len(ok.body) == len(big)


async def test_a_401_page_that_echoes_our_headers_quotes_no_credential():
    srv = Server()

    async def echo(req: web.Request) -> web.Response:
        headers = "\n".join(f"{k}: {v}" for k, v in req.headers.items())
        return web.Response(status=401, text=f"<html><pre>Unauthorized\n{headers}</pre></html>")

    srv.app.router.add_get("/x", echo)
    async with srv:
        resp = await request(Endpoint(srv.url), "GET", "/x", auth=BearerAuth(SECRET), headers={"Cookie": "a=b"})
        assert resp.status == 401
        text = resp.snippet(2000)
        assert SECRET not in text and "Unauthorized" in text
        with pytest.raises(Exception) as exc:
            resp.raise_for_status("status of driver-1")
        assert SECRET not in str(exc.value)
        assert "Bearer ***" in str(exc.value) or "***" in str(exc.value)


def test_redaction_covers_the_usual_shapes():
    text = (
        f"Authorization: Bearer {SECRET}\nCookie: hadoop.auth=u=alice&t=kerberos&s=abcdef\n"
        "url?token=abc123def456&x=1 password=hunter2 AKIAABCDEFGHIJKLMNOP "
        f"Negotiate YIIGhgYJKoZIhvcSAQICAQBuggZ1 and a bare {SECRET} GET https://alice:pa55-w0rd@rm.example:8088/ws"
    )
    out = redact(text, secrets=("hunter2",))
    for secret in (
        SECRET,
        "abc123def456",
        "hunter2",
        "AKIAABCDEFGHIJKLMNOP",
        "YIIGhgYJKoZIhvcSAQICAQBuggZ1",
        "abcdef",
        "pa55-w0rd",
    ):
        assert secret not in out, secret
    assert "Authorization" in out and "token=" in out and "https://alice:***@rm.example:8088/ws" in out
    assert len(snippet("z" * 10_000_000, 300)) <= 303


async def test_cookies_are_kept_per_endpoint_by_the_policy_layer():
    srv = Server()

    async def login(req: web.Request) -> web.Response:
        resp = web.Response(text="ok")
        resp.set_cookie("hadoop.auth", "u=alice&e=9999999999999&s=sig")
        return resp

    async def whoami(req: web.Request) -> web.Response:
        return web.json_response({"cookie": req.cookies.get("hadoop.auth")})

    srv.app.router.add_get("/login", login)
    srv.app.router.add_get("/whoami", whoami)
    async with srv:
        ep = Endpoint(srv.url, identity="alice")
        await request(ep, "GET", "/login")
        assert (await request(ep, "GET", "/whoami")).json() == {"cookie": "u=alice&e=9999999999999&s=sig"}
        other = Endpoint(srv.url, identity="bob")
        assert (await request(other, "GET", "/whoami")).json() == {"cookie": None}  # identities never share


async def test_a_connection_reset_or_a_cut_body_is_transient():
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"succ')
        await writer.drain()
        writer.transport.abort()

    server = await asyncio.start_server(reset, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(TransientError) as exc:
            await request(Endpoint(f"http://127.0.0.1:{port}"), "GET", "/v1/submissions/status/x")
        assert not isinstance(exc.value, RedirectRefused)
    finally:
        server.close()
        await server.wait_closed()
        await close_sessions()


async def test_the_mock_transport_serves_requests_under_the_same_policy():
    seen: list[Request] = []

    def handler(req: Request) -> object:
        seen.append(req)
        if req.url.endswith("/redirect"):
            return response(302, headers={"Location": "http://elsewhere:1/x"})
        if req.url.endswith("/huge"):
            return response(200, b"{" * 100)
        return json_response({"driverState": "RUNNING", "success": True})

    with use_transport(MockTransport(handler)):  # type: ignore[arg-type]
        ep = Endpoint("http://master:6066", max_body=50)
        resp = await request(ep, "GET", "/v1/submissions/status/d", auth=BearerAuth(SECRET))
        assert resp.json() == {"driverState": "RUNNING", "success": True}
        assert seen[0].headers["Authorization"] == f"Bearer {SECRET}"
        with pytest.raises(RedirectRefused):
            await request(ep, "GET", "/redirect")
        with pytest.raises(AnswerTooLarge):
            await request(ep, "GET", "/huge")


def test_typed_decoding_turns_every_bad_shape_into_malformed():
    import msgspec

    class Status(msgspec.Struct):
        success: bool
        driverState: str | None = None

    assert decode_json(b'{"success": true, "driverState": "RUNNING"}', Status, what="s").success is True
    for bad in (
        b'{"success": "true"}',
        b'{"success": 1}',
        b'{"success": null}',
        b'{"success": true, "driverState": ["RUNNING"]}',
        b'{"success": tru',
        b"",
        b"<html>500</html>",
        b'{"success": true, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        json.dumps([1, 2]).encode(),
    ):
        with pytest.raises(MalformedAnswer):
            decode_json(bad, Status, what="status of d")
