"""OAuth machine-to-machine (client credentials) for a Databricks workspace, as an :class:`Auth`.

A service principal's client id and secret buy an access token at ``POST <host>/oidc/v1/token``
(``grant_type=client_credentials&scope=all-apis``, HTTP basic auth of the id and secret); the token is sent
as a bearer and lasts about an hour. The token is cached and fetched again ``refresh_margin`` seconds before
it expires; concurrent requests that find no valid token wait for one fetch (single flight, per event loop);
a 401 with a token makes one fresh fetch and one more attempt. Every request for the token goes through
:func:`durable_jobs.transport.http.request` (no redirect followed, bounded body, redacted snippets); the
secret and the current token are never in an error, a log line, a repr or the identity.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable
from dataclasses import replace

from durable_jobs.clients.databricks.answers import TokenAnswer, oauth_error_of
from durable_jobs.errors import AuthError, MalformedAnswer, TransientError
from durable_jobs.loop_local import LoopLocal
from durable_jobs.messages import cut, snippet
from durable_jobs.transport.base import NO_AUTH, Auth, Request, Response, Send
from durable_jobs.transport.http import Endpoint, request

log = logging.getLogger(__name__)

TOKEN_PATH = "/oidc/v1/token"


class OAuthM2MAuth(Auth):
    """Bearer tokens from the workspace's OAuth endpoint for a service principal.

    :param host: the workspace URL (``https://<workspace>``); the token endpoint is ``<host>/oidc/v1/token``.
    :param client_id: the service principal's application (client) id.
    :param client_secret: its OAuth secret.
    :param scope: the token's scope (``all-apis``).
    :param refresh_margin: fetch a new token this many seconds before the current one expires (at most
        half of its lifetime, for short-lived tokens).
    :param clock: monotonic seconds; injectable for tests.
    """

    def __init__(
        self,
        host: str,
        client_id: str,
        client_secret: str,
        scope: str = "all-apis",
        refresh_margin: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not client_id or not client_secret:
            raise ValueError("OAuth M2M needs a client id and a client secret")
        if refresh_margin < 0:
            raise ValueError("refresh_margin cannot be negative")
        endpoint = Endpoint(host)  # checks the scheme
        self.host = endpoint.base_url
        self.client_id = client_id
        self._secret = client_secret
        self.scope = scope
        self.refresh_margin = refresh_margin
        self.clock = clock
        self.identity = f"oauth-m2m:{endpoint.origin}:{client_id}"
        self.fetches = 0  # tokens fetched (tests, diagnostics)
        self._access: str | None = None
        self._renew_at = 0.0
        self._locks: LoopLocal[asyncio.Lock] = LoopLocal(asyncio.Lock, name="Databricks OAuth token fetch")

    def __repr__(self) -> str:
        return f"OAuthM2MAuth(host={self.host!r}, client_id={self.client_id!r}, scope={self.scope!r})"

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self._secret, self._access) if s)

    async def flow(self, request: Request, send: Send) -> Response:
        token = await self.token(request.endpoint)
        resp = await send(request.with_headers({"Authorization": f"Bearer {token}"}))
        if resp.status != 401:
            return resp
        await resp.aclose()
        log.info("%s refused the OAuth token of %s (HTTP 401): fetching a new one", self.host, self.client_id)
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
        # the workspace's TLS settings and limits, at the token endpoint of this host
        ep = replace(endpoint, base_url=self.host) if endpoint is not None else Endpoint(self.host)
        basic = base64.b64encode(f"{self.client_id}:{self._secret}".encode()).decode()
        what = f"OAuth token for {self.client_id}"
        started = self.clock()
        resp = await request(
            ep,
            "POST",
            TOKEN_PATH,
            body=f"grant_type=client_credentials&scope={self.scope}".encode(),
            headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
            what=what,
            auth=NO_AUTH,
        )
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
            return AuthError(f"{what}: {self.host} refused the client credentials (HTTP {resp.status}): {said}")
        if resp.status in (401, 403):
            return AuthError(f"{what}: HTTP {resp.status} from {resp.url}: {resp.snippet()}", status=resp.status)
        # a proxy's page or an unexpected status: nothing was said about our credentials
        return TransientError(f"{what}: HTTP {resp.status} from {resp.url}: {resp.snippet()}", status=resp.status)


__all__ = ["TOKEN_PATH", "OAuthM2MAuth"]
