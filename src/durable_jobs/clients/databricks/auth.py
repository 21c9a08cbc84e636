"""OAuth machine-to-machine (client credentials) for a Databricks workspace, as an :class:`Auth`.

A service principal's client id and secret buy an access token at ``POST <host>/oidc/v1/token``
(``grant_type=client_credentials&scope=all-apis``, HTTP basic auth of the id and secret); the token is sent
as a bearer and lasts about an hour. Caching, refresh before expiry, single flight and the one refresh after a
401 are :class:`~durable_jobs.transport.oauth.TokenAuth`'s; the secret and the current token are never in an
error, a log line, a repr or the identity.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

from durable_jobs.transport.base import Response
from durable_jobs.transport.http import Endpoint
from durable_jobs.transport.oauth import TokenAuth

TOKEN_PATH = "/oidc/v1/token"


class OAuthM2MAuth(TokenAuth):
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
        super().__init__(refresh_margin=refresh_margin, clock=clock)
        endpoint = Endpoint(host)  # checks the scheme
        self.host = endpoint.base_url
        self.client_id = client_id
        self._secret = client_secret
        self.scope = scope
        self.identity = f"oauth-m2m:{endpoint.origin}:{client_id}"

    def __repr__(self) -> str:
        return f"OAuthM2MAuth(host={self.host!r}, client_id={self.client_id!r}, scope={self.scope!r})"

    def _credentials(self) -> tuple[str, ...]:
        return (self._secret,)

    async def _grant(self, endpoint: Endpoint | None) -> Response:
        basic = base64.b64encode(f"{self.client_id}:{self._secret}".encode()).decode()
        form = {"grant_type": "client_credentials", "scope": self.scope}
        return await self._post_form(f"{self.host}{TOKEN_PATH}", form, endpoint, {"Authorization": f"Basic {basic}"})


__all__ = ["TOKEN_PATH", "OAuthM2MAuth"]
