"""Google OAuth access tokens for BigQuery, as :class:`~durable_jobs.transport.base.Auth` classes (no Airflow).

* :class:`ServiceAccountAuth`: a service-account key (its JSON as a mapping). A JWT naming the account, the
  scopes and the token endpoint is signed RS256 with the key (PyJWT) and traded at ``info["token_uri"]``
  (``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``);
* :class:`AuthorizedUserAuth`: a user's application-default credentials (``gcloud auth application-default
  login``): the ``refresh_token`` grant;
* :class:`MetadataServerAuth`: the token of the VM's (or GKE workload's) service account, from the metadata server;
* :func:`application_default`: what Google's ADC picks: ``GOOGLE_APPLICATION_CREDENTIALS``, else gcloud's
  ``application_default_credentials.json``, else the metadata server.

Each is a :class:`~durable_jobs.transport.oauth.TokenAuth`: the token cached, refreshed before it expires, fetched
once for many requests and once after a 401, through the shared transport. The key, the secrets and the current
token are never in an error, a log line, a repr or the identity.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from durable_jobs.messages import cut
from durable_jobs.transport.base import NO_AUTH, Response
from durable_jobs.transport.http import Endpoint, request
from durable_jobs.transport.oauth import TokenAuth

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
METADATA_BASE = "http://metadata.google.internal"
METADATA_TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"
#: seconds a signed assertion is valid (Google's maximum)
ASSERTION_LIFETIME = 3600


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
