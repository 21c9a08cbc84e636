"""The settings of one YARN connection (:class:`YarnConfig`), and the auth they call for.

Nothing here is a secret: a keytab or a ccache is a path, read on the machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from durable_jobs.transport.auth import SimpleAuth
from durable_jobs.transport.base import Auth
from durable_jobs.transport.http import DEFAULT_MAX_BODY
from durable_jobs.transport.kerberos import KerberosCredentials
from durable_jobs.transport.spnego import SpnegoAuth


@dataclass(frozen=True)
class YarnConfig:
    """How to reach the RMs and run spark-submit. Nothing here is a secret (a keytab is a path)."""

    rm_urls: tuple[str, ...]
    auth: str = "simple"  # none | simple | kerberos
    user: str | None = None  # simple auth
    kerberos: KerberosCredentials | None = None
    kerberos_service: str = "HTTP"
    kerberos_hostname: str | None = None
    mutual_auth: bool = True
    verify_ssl: bool = True
    ca_file: str | None = None
    timeout: float = 30.0
    list_batch: int = 100  # tags per list request in batched polling
    kill_wait: float = 30.0  # seconds to repeat the kill PUT until the RM answers 200
    max_body: int = DEFAULT_MAX_BODY  # the largest answer read (connection extra max_response_bytes)
    spark_submit: str = "spark-submit"
    spark_env: Mapping[str, str] = field(default_factory=dict)  # HADOOP_CONF_DIR, YARN_CONF_DIR, SPARK_HOME
    spark_submit_timeout: float = 900.0

    def __post_init__(self) -> None:
        if not self.rm_urls:
            raise ValueError("at least one ResourceManager URL is required")
        if self.auth not in ("none", "simple", "kerberos"):
            raise ValueError(f"auth must be none, simple or kerberos, not {self.auth!r}")
        if self.auth == "kerberos" and self.kerberos is None:
            object.__setattr__(self, "kerberos", KerberosCredentials())
        if not 1 <= self.list_batch <= 200:
            raise ValueError("list_batch must be between 1 and 200")
        if self.max_body <= 0:
            raise ValueError("max_response_bytes must be positive")


def make_auth(config: YarnConfig) -> Auth:
    """SPNEGO for ``kerberos``, Hadoop's ``?user.name=`` for ``simple``, nothing for ``none``."""
    if config.auth == "kerberos":
        assert config.kerberos is not None
        return SpnegoAuth(
            config.kerberos,
            service=config.kerberos_service,
            hostname=config.kerberos_hostname,
            mutual=config.mutual_auth,
        )
    return SimpleAuth(config.user if config.auth == "simple" else None)


__all__ = ["YarnConfig", "make_auth"]
