"""Backoff, Retry-After and request timeouts."""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest
from aiohttp import web

from durable_jobs.errors import TransientError
from durable_jobs.transport.backoff import Backoff
from durable_jobs.transport.http import Endpoint, close_sessions, open_sessions, parse_retry_after, request
from durable_jobs_harness.fake_spark import free_port


def test_backoff_is_jittered_capped_and_honours_retry_after():
    b = Backoff(base=0.5, cap=4.0)
    delays = [b.delay(10) for _ in range(200)]
    assert max(delays) <= 4.0 and min(delays) >= 0.5 and len(set(delays)) > 100
    assert b.delay(0, retry_after=7.0) >= 7.0
    assert Backoff(max_retry_after=5).delay(0, retry_after=1000) <= 5.0


def test_retry_after_parses_seconds_and_http_dates():
    assert parse_retry_after("3") == 3.0
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (parse_retry_after(future) or 0) <= 31
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


async def test_every_request_has_a_timeout_and_sessions_are_shared():
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    async def throttled(request: web.Request) -> web.Response:
        return web.Response(status=429, headers={"Retry-After": "2"}, text="slow down")

    app = web.Application()
    app.router.add_get("/slow", slow)
    app.router.add_get("/429", throttled)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        ep = Endpoint(f"http://127.0.0.1:{port}", timeout=0.3)
        t0 = time.monotonic()
        with pytest.raises(TransientError, match="Timeout"):
            await request(ep, "GET", "/slow")
        assert time.monotonic() - t0 < 2
        resp = await request(ep, "GET", "/429")
        with pytest.raises(TransientError) as exc:
            resp.raise_for_transient("probe")
        assert exc.value.retry_after == 2.0
        await request(Endpoint(f"http://127.0.0.1:{port}", timeout=9), "GET", "/429")
        assert open_sessions() == 1  # one pooled session for both endpoints of the same host
    finally:
        await close_sessions()
        await runner.cleanup()


def test_endpoint_rejects_non_http_and_keeps_tls_verification_on():
    with pytest.raises(ValueError):
        Endpoint("ftp://x")
    assert Endpoint("https://x").verify_ssl is True
