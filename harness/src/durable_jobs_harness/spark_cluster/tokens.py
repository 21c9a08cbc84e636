"""JWTs for Spark's ``org.apache.spark.ui.JWSFilter`` (the REST server's optional protection): HS256, by PyJWT."""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt
from jwt.utils import base64url_decode

__all__ = ["make_jwt", "new_jwt_secret"]


def new_jwt_secret() -> str:
    """A fresh ``JWSFilter`` secret: 33 random bytes as base64url without padding."""
    return secrets.token_urlsafe(33)


def make_jwt(secret_b64url: str, *, subject: str = "durable-jobs", ttl_seconds: int | None = 3600) -> str:
    """An HS256 JWT signed with the base64url-decoded ``secret_b64url`` (how ``JWSFilter`` reads its key).

    ``ttl_seconds=None`` omits ``exp`` (the filter accepts that by default); a negative value gives an
    already expired token.
    """
    key = base64url_decode(secret_b64url.strip())
    if len(key) < 32:
        raise ValueError(f"HS256 needs a key of at least 32 bytes, got {len(key)}")
    now = int(time.time())
    claims: dict[str, Any] = {"sub": subject, "iat": now}
    if ttl_seconds is not None:
        claims["exp"] = now + ttl_seconds
    return jwt.encode(claims, key, algorithm="HS256")
