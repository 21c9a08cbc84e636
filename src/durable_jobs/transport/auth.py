"""The simple ways to authenticate a request: a bearer token, Hadoop's ``user.name``. SPNEGO is in
:mod:`durable_jobs.transport.spnego`. Each is an :class:`~durable_jobs.transport.base.Auth`: it decorates
the request and names the values that must never appear in an error snippet."""

from __future__ import annotations

import hashlib

from durable_jobs.transport.base import Auth, Request, Response, Send


class BearerAuth(Auth):
    """``Authorization: Bearer <token>`` (a Spark ``JWSFilter`` JWT, a Kubernetes token)."""

    def __init__(self, token: str) -> None:
        self._token = token
        # separates pools of different tokens without keeping the token in a key or a repr
        self.identity = "bearer:" + hashlib.sha256(token.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return "BearerAuth(***)"

    async def flow(self, request: Request, send: Send) -> Response:
        return await send(request.with_headers({"Authorization": f"Bearer {self._token}"}))

    def secrets(self) -> tuple[str, ...]:
        return (self._token,)


class SimpleAuth(Auth):
    """Hadoop's pseudo authentication: ``?user.name=<user>`` on every request (None: anonymous)."""

    def __init__(self, user: str | None = None) -> None:
        self.user = user
        self.identity = f"simple:{user}" if user else ""

    def __repr__(self) -> str:
        return f"SimpleAuth({self.user!r})"

    async def flow(self, request: Request, send: Send) -> Response:
        if self.user:
            request = request.with_params((("user.name", self.user),))
        return await send(request)
