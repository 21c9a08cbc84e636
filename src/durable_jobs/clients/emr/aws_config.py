"""Where and as whom an EMR client calls AWS: :class:`AwsConfig`, read from an ``aws`` connection.

Keys: a client's :attr:`~durable_jobs.clients.emr.aws.AwsJobClient.key` (its poller's identity) is the
endpoint's identity (connection, service, region, endpoint URL, profile and role *names*), never a
credential or a hash of one: two clients built from the same connection before and after a key rotation
share one poller, which picks up the new client (after an ``AuthError`` it refetches the connection
once). Credentials only select the pooled aiobotocore client, by an HMAC under a per-process random key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from durable_jobs.errors import ConnectionConfigError
from durable_jobs.transport.backoff import Backoff
from durable_jobs.transport.http import DEFAULT_MAX_BODY

# credentials select pooled clients by an HMAC under this key: nothing derived from a secret outlives the process
_PROCESS_KEY = os.urandom(32)


@dataclass(frozen=True)
class AwsConfig:
    """Where and as whom to call AWS. Secrets are kept out of ``repr`` and of every key and log line.

    Field names follow the amazon provider's ``aws`` connection (login/password = key id/secret,
    extra ``region_name``, ``endpoint_url``, ``service_config``, ``aws_session_token``, ``role_arn``,
    ``assume_role_kwargs``, ``profile_name``, ``verify``, ``config_kwargs``, and ``max_response_bytes``).
    """

    region_name: str | None = None
    endpoint_url: str | None = None
    service_endpoints: Mapping[str, str] = field(default_factory=dict)  # service name -> endpoint URL
    aws_access_key_id: str | None = field(default=None, repr=False)
    aws_secret_access_key: str | None = field(default=None, repr=False)
    aws_session_token: str | None = field(default=None, repr=False)
    profile_name: str | None = None
    role_arn: str | None = None
    assume_role_kwargs: Mapping[str, Any] = field(default_factory=dict)
    verify: bool | str = True  # False, or a CA bundle path; TLS is verified by default
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_pool_connections: int = 32
    max_body: int = DEFAULT_MAX_BODY  # largest answer read, in bytes (extra ``max_response_bytes``)
    botocore_config: Mapping[str, Any] = field(default_factory=dict)
    retry_budget: float = 300.0  # seconds a worker-side call keeps retrying transient errors
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    label: str = "aws"  # names the connection in messages and tells connections apart

    def __post_init__(self) -> None:
        where = f"connection {self.label!r}"
        if bool(self.aws_access_key_id) != bool(self.aws_secret_access_key):
            raise ConnectionConfigError(
                f"{where}: give both the access key id and the secret access key (login and password), or neither "
                "(then botocore's default chain: environment, profile, instance or pod role)"
            )
        for url in (self.endpoint_url, *self.service_endpoints.values()):
            if url and not url.startswith(("http://", "https://")):
                raise ConnectionConfigError(
                    f"{where}: endpoint URL {url!r} must start with http:// or https:// "
                    f"(e.g. 'https://{url.split('://')[-1]}')"
                )
        if self.retry_budget < 0 or self.backoff_base <= 0:
            raise ConnectionConfigError(f"{where}: durable_jobs.retry_budget must be >= 0 and backoff_base > 0")
        if self.max_body <= 0:
            raise ConnectionConfigError(f"{where}: max_response_bytes must be positive")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ConnectionConfigError(f"{where}: timeouts must be positive")

    def endpoint_for(self, service: str) -> str | None:
        return self.service_endpoints.get(service) or self.endpoint_url

    def secrets(self) -> tuple[str, ...]:
        """What no message may quote: the access key id, the secret access key, the session token."""
        return tuple(s for s in (self.aws_access_key_id, self.aws_secret_access_key, self.aws_session_token) if s)

    def client_key(self, service: str) -> str:
        """The endpoint's identity: the poller key. No credential, nor anything derived from one.

        Equal before and after a rotation of the connection's keys, different for another connection.
        """
        return _stable_json({"conn": self.label, "endpoint": self.endpoint_key(service)})

    def endpoint_key(self, service: str) -> str:
        """Where the calls go, whoever makes them (no connection name, no credential)."""
        return _stable_json(
            {
                "service": service,
                "region": self.region_name,
                "endpoint": self.endpoint_for(service),
                "profile": self.profile_name,
                "role": self.role_arn,
                "verify": self.verify,
            }
        )

    def credentials_key(self) -> str:
        """Selects the pooled session of these credentials (an HMAC under a per-process key, in memory only)."""
        mac = hmac.new(_PROCESS_KEY, digestmod=hashlib.sha256)
        for part in (self.aws_access_key_id, self.aws_secret_access_key, self.aws_session_token):
            mac.update((part or "").encode() + b"\x1f")
        return _stable_json(
            {
                "credentials": mac.hexdigest()[:32],
                "profile": self.profile_name,
                "role": self.role_arn,
                "assume": dict(self.assume_role_kwargs),
                "sts": self.endpoint_for("sts"),
                "region": self.region_name,
                "verify": self.verify,
            }
        )

    def pool_key(self, service: str) -> str:
        """Selects the pooled aiobotocore client: the endpoint, the credentials and the client options.

        Connections with the same endpoint, credentials and options share one client.
        """
        return _stable_json(
            {
                "endpoint": self.endpoint_key(service),
                "credentials": self.credentials_key(),
                "options": [self.connect_timeout, self.read_timeout, self.max_pool_connections, self.max_body],
                "botocore": dict(self.botocore_config),
            }
        )

    @property
    def call_timeout(self) -> float:
        """The longest one call may take, whatever the server trickles (aiohttp's read timeout is per read)."""
        return self.connect_timeout + 2 * self.read_timeout

    @property
    def backoff(self) -> Backoff:
        return Backoff(base=self.backoff_base, cap=max(self.backoff_cap, self.backoff_base))

    def console_domain(self) -> str:
        region = self.region_name or ""
        if region.startswith("cn-"):
            return "console.amazonaws.cn"
        if region.startswith("us-gov-"):
            return "console.amazonaws-us-gov.com"
        return "console.aws.amazon.com"


def _stable_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


__all__ = ["AwsConfig"]
