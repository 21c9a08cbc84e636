"""OAuth bearer tokens as an :class:`~durable_jobs.transport.base.Auth`: fetched, cached, refreshed, once.

:class:`TokenAuth` is what every token-based auth shares (Databricks OAuth M2M, Google's service account,
authorized user and metadata server): a subclass says how to ask for a token (:meth:`TokenAuth._grant`) and
which values are its credentials. The token is cached and fetched again ``refresh_margin`` seconds before it
expires (at most half its lifetime); concurrent requests that find no valid token wait for one fetch (single
flight, per event loop); a 401 with a token makes one fresh fetch and one more attempt. Every token request goes
through :func:`durable_jobs.transport.http.request` (no redirect followed, bounded body, redacted snippets),
with the TLS settings of the endpoint it serves. The credentials and the current token are never in an error,
a log line, a repr or the identity.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from abc import abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Annotated

import msgspec
from yarl import URL

from durable_jobs.errors import AuthError, MalformedAnswer, TransientError
from durable_jobs.loop_local import LoopLocal
from durable_jobs.messages import cut, snippet
from durable_jobs.transport.base import NO_AUTH, Auth, Request, Response, Send
from durable_jobs.transport.http import Endpoint, request

log = logging.getLogger(__name__)


class TokenAnswer(msgspec.Struct, gc=False):
    """A token endpoint's answer (RFC 6749 5.1): an access token and its lifetime."""

    access_token: Annotated[str, msgspec.Meta(min_length=1, max_length=65536)]
    expires_in: Annotated[float, msgspec.Meta(gt=0)]
    token_type: str = "Bearer"
    scope: str | None = None


class OAuthError(msgspec.Struct, gc=False):
    """A token endpoint's error (RFC 6749 5.2): ``{"error": "invalid_client", "error_description": "..."}``."""

    error: str
    error_description: str = ""


def oauth_error_of(body: bytes) -> OAuthError | None:
    try:
        return msgspec.json.decode(body, type=OAuthError)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None


class TokenAuth(Auth):
    """A bearer token fetched by :meth:`_grant`, cached, refreshed before it expires, once for many requests."""

    def __init__(self, *, refresh_margin: float, clock: Callable[[], float]) -> None:
        if refresh_margin < 0:
            raise ValueError("refresh_margin cannot be negative")
        self.refresh_margin = refresh_margin
        self.clock = clock
        self.fetches = 0  # tokens fetched (tests, diagnostics)
        self._access: str | None = None
        self._renew_at = 0.0
        self._locks: LoopLocal[asyncio.Lock] = LoopLocal(asyncio.Lock, name="OAuth token fetch")

    @abstractmethod
    async def _grant(self, endpoint: Endpoint | None) -> Response:
        """Ask for a token (the raw answer)."""

    @abstractmethod
    def _credentials(self) -> tuple[str, ...]:
        """The values of the credentials themselves (redacted wherever they could appear)."""

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (*self._credentials(), self._access) if s)

    async def flow(self, request: Request, send: Send) -> Response:
        token = await self.token(request.endpoint)
        resp = await send(request.with_headers({"Authorization": f"Bearer {token}"}))
        if resp.status != 401:
            return resp
        await resp.aclose()
        log.info("%s refused the token of %s (HTTP 401): fetching a new one", request.endpoint.base_url, self.identity)
        token = await self.token(request.endpoint, refused=token)
        return await send(request.with_headers({"Authorization": f"Bearer {token}"}))

    def _usable(self, refused: str | None) -> str | None:
        if self._access is not None and self._access != refused and self.clock() < self._renew_at:
            return self._access
        return None

    async def token(self, endpoint: Endpoint | None = None, *, refused: str | None = None) -> str:
        """A valid access token: the cached one, or one fetched now (once for every request waiting)."""
        usable = self._usable(refused)
        if usable is not None:
            return usable
        async with self._locks.get():
            usable = self._usable(refused)  # another request fetched one while this one waited
            if usable is not None:
                return usable
            return await self._fetch(endpoint)

    async def _fetch(self, endpoint: Endpoint | None) -> str:
        what = f"OAuth token for {self.identity}"
        started = self.clock()
        resp = await self._grant(endpoint)
        resp.secrets = (*resp.secrets, *self.secrets())
        self.fetches += 1
        if resp.status != 200:
            raise self._refusal(resp, what)
        answer = resp.decode(TokenAnswer, what=what)
        if answer.token_type.lower() != "bearer":
            raise MalformedAnswer(f"{what}: token_type {cut(answer.token_type, 40)!r} is not Bearer")
        margin = min(self.refresh_margin, answer.expires_in / 2)
        self._access = answer.access_token
        self._renew_at = started + answer.expires_in - margin
        log.debug("%s: a token valid %.0fs (renewed %.0fs before)", what, answer.expires_in, margin)
        return answer.access_token

    def _refusal(self, resp: Response, what: str) -> Exception:
        resp.raise_for_transient(what)  # 5xx, 429 (Retry-After kept), redirects: unknown, not refused
        err = oauth_error_of(resp.body)
        if resp.status in (400, 401, 403) and err is not None:
            said = snippet(f"{err.error}: {err.error_description}", 300, self.secrets())
            return AuthError(f"{what}: the token endpoint refused the credentials (HTTP {resp.status}): {said}")
        if resp.status in (401, 403):
            return AuthError(f"{what}: HTTP {resp.status} from {resp.url}: {resp.snippet()}", status=resp.status)
        # a proxy's page or an unexpected status: nothing was said about our credentials
        return TransientError(f"{what}: HTTP {resp.status} from {resp.url}: {resp.snippet()}", status=resp.status)

    @staticmethod
    def _at(url: str, endpoint: Endpoint | None) -> tuple[Endpoint, str]:
        """The endpoint (the served endpoint's TLS settings and limits) and path of a token URL."""
        target = URL(url)
        origin = str(target.origin())
        ep = replace(endpoint, base_url=origin) if endpoint is not None else Endpoint(origin)
        return ep, target.path or "/"

    async def _post_form(
        self, url: str, form: Mapping[str, str], endpoint: Endpoint | None, headers: Mapping[str, str] | None = None
    ) -> Response:
        ep, path = self._at(url, endpoint)
        return await request(
            ep,
            "POST",
            path,
            body=urllib.parse.urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})},
            what=f"OAuth token for {self.identity}",
            auth=NO_AUTH,
        )


__all__ = ["OAuthError", "TokenAnswer", "TokenAuth", "oauth_error_of"]
