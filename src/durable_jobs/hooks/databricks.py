"""The ``databricks_durable`` connection type (and the ``databricks`` provider's): a workspace and its credentials.

Fields:

* host: the workspace URL (``https://adb-1234567890123456.7.azuredatabricks.net``, or the bare host name);
  extra ``host`` (the provider's place for it) wins when given. schema: the scheme when the host has none
  (default ``https``); port: when not the scheme's default;
* credentials, one of:

  - a personal access token (PAT): the password, with the login empty (or ``token``, as the provider
    allows); or extra ``token`` (the provider's older place), which wins when given;
  - OAuth M2M with a service principal: its client id as the login and its OAuth secret as the password,
    with extra ``service_principal_oauth: true`` (the provider's flag) or ``auth: oauth``; the client
    fetches an access token at ``/oidc/v1/token`` and renews it before it expires.

  Without ``auth``, they are read in the provider's order: extra ``token``, a password without a login,
  then ``service_principal_oauth``. ``auth: pat`` takes the token (or the password) whatever the login;

* extra ``verify_ssl``, ``ca_file``, ``timeout``, ``max_response_bytes``, ``list_limit`` (runs per
  ``runs/list`` page, 1 to 24), declared in :mod:`durable_jobs.systems.databricks`.

A connection without credentials, or with a login and a password but no OAuth flag (the provider's
username/password, which Databricks no longer accepts), is refused with the fix before any request.

No secret leaves the connection: the trigger's kwargs carry the ``conn_id`` only, and :class:`DatabricksSettings`
does not show its token or secret in a repr.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.fields import Connection
from durable_jobs.hooks.validate import HTTP_SCHEMES, Expect
from durable_jobs.systems.databricks import CONNECTION

if TYPE_CHECKING:
    from durable_jobs.clients.databricks import DatabricksClient
    from durable_jobs.transport.base import Auth

CONN_TYPE = CONNECTION.conn_type
#: what the provider accepts as the login of a PAT connection
PAT_LOGINS = ("", "token")
CREDENTIALS_FIX = (
    "put a personal access token in the password (login empty), or a service principal's client id and "
    "OAuth secret in the login and the password with extra service_principal_oauth: true"
)


@dataclass(frozen=True)
class DatabricksSettings:
    """What a connection says: the workspace, how to authenticate, and the client's settings."""

    host: str  # the workspace's base URL: scheme, host and port, no path
    auth: str  # "pat" or "oauth"
    token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    verify_ssl: bool = True
    ca_file: str | None = None
    timeout: float = 30.0
    max_response_bytes: int | None = None
    list_limit: int = 24


def workspace_url(raw_host: str | None, schema: str | None, port: Any) -> str:
    """The workspace's base URL from the host (a URL or a host name), the scheme and the port; ValueError."""
    raw = (raw_host or "").strip().rstrip("/")
    if not raw:
        raise ValueError(
            "host is empty; give the workspace URL, e.g. https://adb-1234567890123456.7.azuredatabricks.net"
        )
    if "," in raw:
        raise ValueError(f"host {raw!r} names several hosts; a connection is one workspace")
    scheme = (schema or "https").strip().lower()
    parsed = urlsplit(raw if "://" in raw else f"{scheme}://{raw}")
    if parsed.scheme not in HTTP_SCHEMES:
        raise ValueError(f"the workspace URL must be https (or http), not {parsed.scheme!r}")
    try:
        given_port = parsed.port
    except ValueError:
        raise ValueError(f"host {raw!r} has an invalid port") from None
    if not parsed.hostname:
        raise ValueError(f"host {raw!r} names no host")
    name = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
    port_number = given_port or (int(port) if port else None)
    return f"{parsed.scheme}://{name}" + (f":{port_number}" if port_number else "")


def _auth_kind(login: str, password: str, extra: dict[str, Any]) -> str:
    """``auth`` when given, else the databricks provider's order: extra token, a password without a login,
    then ``service_principal_oauth``."""
    if extra["auth"]:
        return str(extra["auth"])
    if extra["token"] or (password and not login):
        return "pat"
    return "oauth" if extra["service_principal_oauth"] else "pat"


def _credentials(conn: Any, extra: dict[str, Any]) -> dict[str, Any]:
    """The auth kind and its secrets, as the provider reads them; ValueError with the fix when none are given."""
    login = str(conn.login or "").strip()
    password = conn.password or ""
    kind = _auth_kind(login, password, extra)
    if kind == "oauth":
        missing = [
            what
            for what, value in (
                ("login (the service principal's client id)", login),
                ("password (its secret)", password),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"OAuth M2M needs a {' and a '.join(missing)}; {CREDENTIALS_FIX}")
        return {"auth": "oauth", "client_id": login, "client_secret": password}
    token = extra["token"] or (password if extra["auth"] or login.lower() in PAT_LOGINS else None)
    if token:
        return {"auth": "pat", "token": token}
    if login and password:
        raise ValueError(
            "has a login and a password but no OAuth flag: Databricks no longer accepts a username and password. "
            "For a service principal set extra service_principal_oauth: true (or auth: oauth); for a personal "
            "access token leave the login empty"
        )
    raise ValueError(f"has no credentials; {CREDENTIALS_FIX}")


class DatabricksHook(DurableJobHook):
    """A Databricks connection -> :class:`~durable_jobs.clients.databricks.DatabricksClient`."""

    client_module: ClassVar[str] = "durable_jobs.clients.databricks"
    connection: ClassVar[Connection] = CONNECTION
    conn_type: ClassVar[str] = CONNECTION.conn_type
    default_conn_name: ClassVar[str] = CONNECTION.default_conn_name
    hook_name: ClassVar[str] = CONNECTION.hook_name
    expect: ClassVar[Expect] = Expect(
        service="the Databricks workspace's REST API",
        fix="use host=https://{host} (the workspace URL, as the browser shows it)",
        wrong_schemes={
            "jdbc": "a SQL warehouse's JDBC URL",
            "databricks": "a SQL connector URL",
            "sc": "a Databricks Connect URL",
        },
    )

    @classmethod
    def config_from_connection(cls, conn: Any) -> DatabricksSettings:
        extra = CONNECTION.read(conn)
        return DatabricksSettings(
            host=workspace_url(extra["host"] or conn.host, conn.schema, conn.port),
            verify_ssl=extra["verify_ssl"],
            ca_file=extra["ca_file"],
            timeout=extra["timeout"],
            max_response_bytes=extra["max_response_bytes"],
            list_limit=extra["list_limit"],
            **_credentials(conn, extra),
        )

    @classmethod
    def auth_of(cls, settings: DatabricksSettings) -> Auth:
        """A bearer of the PAT, or OAuth M2M (the client fetches and renews its access token)."""
        from durable_jobs.clients.databricks import OAuthM2MAuth
        from durable_jobs.transport.auth import BearerAuth

        if settings.auth == "oauth":
            assert settings.client_id is not None and settings.client_secret is not None
            return OAuthM2MAuth(settings.host, settings.client_id, settings.client_secret)
        assert settings.token is not None
        return BearerAuth(settings.token)

    @classmethod
    def client_from_connection(cls, conn: Any) -> DatabricksClient:
        from durable_jobs.clients.databricks import DatabricksClient

        settings = cls.config_from_connection(conn)
        return DatabricksClient(
            settings.host,
            auth=cls.auth_of(settings),
            timeout=settings.timeout,
            verify_ssl=settings.verify_ssl,
            ca_file=settings.ca_file,
            max_response_bytes=settings.max_response_bytes,
            list_limit=settings.list_limit,
        )


__all__ = ["CONN_TYPE", "DatabricksHook", "DatabricksSettings", "workspace_url"]
