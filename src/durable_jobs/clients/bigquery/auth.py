"""Google OAuth access tokens for BigQuery, as :class:`~durable_jobs.transport.base.Auth` classes (no Airflow).

* :class:`ServiceAccountAuth`: a service-account key (its JSON as a mapping). A JWT naming the account, the
  scopes and the token endpoint is signed RS256 with the key (PyJWT) and traded at ``info["token_uri"]``
  (``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``);
* :class:`AuthorizedUserAuth`: a user's application-default credentials (``gcloud auth application-default
  login``): the ``refresh_token`` grant;
* :class:`MetadataServerAuth`: the token of the VM's (or GKE workload's) service account, from the metadata server;
* :func:`application_default`: what Google's ADC picks: ``GOOGLE_APPLICATION_CREDENTIALS``, else gcloud's
  ``application_default_credentials.json``, else the metadata server.

Each caches its token and fetches the next one ``refresh_margin`` seconds before it expires (at most half its
lifetime); concurrent requests that find no valid token wait for one fetch (single flight, per event loop); a 401
with a token makes one fresh fetch and one more attempt. Every token request goes through
:func:`durable_jobs.transport.http.request` (no redirect followed, bounded body, redacted snippets), with the TLS
settings of the endpoint it serves. The key, the secrets and the current token are never in an error, a log
line, a repr or the identity.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import urllib.parse
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from yarl import URL

from durable_jobs.clients.databricks.answers import TokenAnswer, oauth_error_of
from durable_jobs.errors import AuthError, MalformedAnswer, TransientError
from durable_jobs.loop_local import LoopLocal
from durable_jobs.messages import cut, snippet
from durable_jobs.transport.base import NO_AUTH, Auth, Request, Response, Send
from durable_jobs.transport.http import Endpoint, request

log = logging.getLogger(__name__)

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
METADATA_BASE = "http://metadata.google.internal"
METADATA_TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"
#: seconds a signed assertion is valid (Google's maximum)
ASSERTION_LIFETIME = 3600


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
        self._locks: LoopLocal[asyncio.Lock] = LoopLocal(asyncio.Lock, name="Google OAuth token fetch")

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
        origin = f"{target.scheme}://{target.host}:{target.port}"
        ep = replace(endpoint, base_url=origin) if endpoint is not None else Endpoint(origin)
        return ep, target.path or "/"

    async def _post_form(self, url: str, form: Mapping[str, str], endpoint: Endpoint | None) -> Response:
        ep, path = self._at(url, endpoint)
        return await request(
            ep,
            "POST",
            path,
            body=urllib.parse.urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            what=f"OAuth token for {self.identity}",
            auth=NO_AUTH,
        )


def _field(info: Mapping[str, Any], key: str, what: str) -> str:
    value = info.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} has no {key}")
    return value


class ServiceAccountAuth(TokenAuth):
    """Tokens for a service account, from its key (the key file's JSON, as a mapping).

    :param info: ``client_email``, ``private_key`` (PEM), ``private_key_id`` and ``token_uri``.
    :param scopes: the token's scopes.
    :param refresh_margin: fetch a new token this many seconds before the current one expires.
    :param clock: monotonic seconds (the cache); ``wall``: epoch seconds (the assertion's ``iat``/``exp``).
    """

    def __init__(
        self,
        info: Mapping[str, Any],
        scopes: Sequence[str] = (CLOUD_PLATFORM,),
        refresh_margin: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(refresh_margin=refresh_margin, clock=clock)
        if not isinstance(info, Mapping):
            raise ValueError("a service-account key must be a mapping (the key file's JSON)")
        what = "the service-account key"
        if info.get("type", "service_account") != "service_account":
            raise ValueError(f"{what} is of type {cut(str(info.get('type')), 40)!r}, not service_account")
        self.client_email = _field(info, "client_email", what)
        self._key = _field(info, "private_key", what)
        self.private_key_id = info.get("private_key_id") if isinstance(info.get("private_key_id"), str) else None
        self.token_uri = info.get("token_uri") or GOOGLE_TOKEN_URI
        if not isinstance(self.token_uri, str):
            raise ValueError(f"{what}: token_uri must be a string")
        Endpoint(self.token_uri)  # checks the scheme
        if isinstance(scopes, str) or not scopes:
            raise ValueError("scopes must be a non-empty sequence of scope URLs")
        self.scopes = tuple(scopes)
        self.wall = wall
        self._signing_key = self._load_key()
        self._assertion: str | None = None
        self.identity = f"google-sa:{self.client_email}"

    def _load_key(self) -> Any:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            return load_pem_private_key(self._key.encode(), password=None)
        except (ValueError, TypeError):
            raise ValueError(f"the private_key of {self.client_email} is not a PEM private key") from None

    def __repr__(self) -> str:
        return f"ServiceAccountAuth(client_email={self.client_email!r}, token_uri={self.token_uri!r})"

    def _credentials(self) -> tuple[str, ...]:
        return tuple(s for s in (self._key, self._assertion) if s)

    def assertion(self) -> str:
        """A signed JWT bearer assertion (RS256) for the token endpoint."""
        import jwt

        now = int(self.wall())
        claims = {
            "iss": self.client_email,
            "scope": " ".join(self.scopes),
            "aud": self.token_uri,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        }
        headers = {"kid": self.private_key_id} if self.private_key_id else None
        return jwt.encode(claims, self._signing_key, algorithm="RS256", headers=headers)

    async def _grant(self, endpoint: Endpoint | None) -> Response:
        self._assertion = self.assertion()
        return await self._post_form(self.token_uri, {"grant_type": JWT_BEARER, "assertion": self._assertion}, endpoint)


class AuthorizedUserAuth(TokenAuth):
    """Tokens for a user's application-default credentials (``type: authorized_user``): the refresh_token grant."""

    def __init__(
        self, info: Mapping[str, Any], refresh_margin: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(refresh_margin=refresh_margin, clock=clock)
        what = "the authorized-user credentials"
        if not isinstance(info, Mapping):
            raise ValueError(f"{what} must be a mapping")
        self.client_id = _field(info, "client_id", what)
        self._secret = _field(info, "client_secret", what)
        self._refresh = _field(info, "refresh_token", what)
        self.token_uri = info.get("token_uri") or GOOGLE_TOKEN_URI
        if not isinstance(self.token_uri, str):
            raise ValueError(f"{what}: token_uri must be a string")
        Endpoint(self.token_uri)
        self.identity = f"google-user:{self.client_id}"

    def __repr__(self) -> str:
        return f"AuthorizedUserAuth(client_id={self.client_id!r}, token_uri={self.token_uri!r})"

    def _credentials(self) -> tuple[str, ...]:
        return (self._secret, self._refresh)

    async def _grant(self, endpoint: Endpoint | None) -> Response:
        form = {
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "client_secret": self._secret,
            "refresh_token": self._refresh,
        }
        return await self._post_form(self.token_uri, form, endpoint)


class MetadataServerAuth(TokenAuth):
    """The token of the machine's service account, from the metadata server (GCE, GKE, Cloud Run...)."""

    def __init__(
        self,
        base: str = METADATA_BASE,
        scopes: Sequence[str] | None = None,
        refresh_margin: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(refresh_margin=refresh_margin, clock=clock)
        self.base = Endpoint(base).base_url
        self.scopes = tuple(scopes) if scopes else None
        self.identity = f"google-metadata:{self.base}"

    def __repr__(self) -> str:
        return f"MetadataServerAuth(base={self.base!r})"

    def _credentials(self) -> tuple[str, ...]:
        return ()

    async def _grant(self, endpoint: Endpoint | None) -> Response:
        # its own endpoint: plain HTTP inside the machine, none of the API's TLS settings apply
        params = {"scopes": ",".join(self.scopes)} if self.scopes else None
        return await request(
            Endpoint(self.base, timeout=10.0),
            "GET",
            METADATA_TOKEN_PATH,
            params=params,
            headers={"Metadata-Flavor": "Google"},
            what=f"OAuth token for {self.identity}",
            auth=NO_AUTH,
        )


def from_info(info: Mapping[str, Any]) -> TokenAuth:
    """The auth of a credentials JSON: ``service_account`` or ``authorized_user``."""
    kind = info.get("type") if isinstance(info, Mapping) else None
    if kind == "service_account":
        return ServiceAccountAuth(info)
    if kind == "authorized_user":
        return AuthorizedUserAuth(info)
    raise ValueError(
        f"credentials of type {cut(str(kind), 40)!r} are not supported (service_account or authorized_user)"
    )


def _read(path: Path, what: str) -> Mapping[str, Any]:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{what} {path} cannot be read as JSON: {type(exc).__name__}") from None
    if not isinstance(info, dict):
        raise ValueError(f"{what} {path} is not a JSON object")
    return info


def gcloud_adc_path(environ: Mapping[str, str]) -> Path | None:
    """gcloud's ``application_default_credentials.json`` (``$CLOUDSDK_CONFIG`` or ``~/.config/gcloud``)."""
    config = environ.get("CLOUDSDK_CONFIG")
    if config:
        return Path(config) / "application_default_credentials.json"
    home = environ.get("HOME")
    return Path(home) / ".config" / "gcloud" / "application_default_credentials.json" if home else None


def application_default(environ: Mapping[str, str] | None = None) -> TokenAuth:
    """Google's application-default credentials: ``GOOGLE_APPLICATION_CREDENTIALS`` (a key or user
    credentials file), else gcloud's ``application_default_credentials.json``, else the metadata server
    (``GCE_METADATA_HOST`` when set). Reads a file: call it off the event loop."""
    env = os.environ if environ is None else environ
    named = env.get("GOOGLE_APPLICATION_CREDENTIALS")
    if named:
        return from_info(_read(Path(named), "GOOGLE_APPLICATION_CREDENTIALS"))
    gcloud = gcloud_adc_path(env)
    if gcloud is not None and gcloud.is_file():
        return from_info(_read(gcloud, "gcloud's application-default credentials"))
    host = env.get("GCE_METADATA_HOST")
    return MetadataServerAuth(f"http://{host}" if host else METADATA_BASE)


__all__ = [
    "CLOUD_PLATFORM",
    "GOOGLE_TOKEN_URI",
    "METADATA_TOKEN_PATH",
    "AuthorizedUserAuth",
    "MetadataServerAuth",
    "ServiceAccountAuth",
    "TokenAuth",
    "application_default",
    "from_info",
    "gcloud_adc_path",
]
