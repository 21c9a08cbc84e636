"""The ``bigquery_durable`` connection type (and the google provider's ``google_cloud_platform``): a project and
Google credentials.

Credentials, first found wins (the google provider's order):

* extra ``keyfile_dict``: a key's JSON (a string, or an object in a JSON extra);
* extra ``key_path``: a key JSON file, on every worker and triggerer;
* neither: Application Default Credentials (``$GOOGLE_APPLICATION_CREDENTIALS``, gcloud's
  ``application_default_credentials.json``, else the metadata server), read from this process's environment.

A key of type ``service_account`` signs its own token requests (:class:`ServiceAccountAuth`, with extra
``scope`` as its scopes); one of type ``authorized_user`` (what ``gcloud auth application-default login``
writes) refreshes its token (:class:`AuthorizedUserAuth`). Other key types (workload identity federation,
impersonation) are refused, and so are the provider's ``key_secret_name``, ``credential_config_file`` and
``impersonation_chain``, with the fix.

The project: extra ``project``, else the key's ``project_id``, else ``$GOOGLE_CLOUD_PROJECT`` (or
``$CLOUDSDK_CORE_PROJECT``); none is refused. Also ``location`` (the jobs' default), ``base_url`` (a fake or an
emulator), ``verify_ssl``, ``ca_file``, ``timeout``, ``max_response_bytes``.

A key file is read when the client is built (as Application Default Credentials read theirs): on the
triggerer :meth:`BigQueryHook.check_files` reads and checks it first in a thread, so a missing or broken file
is reported with the fix and the read on the loop is of a small file just read.

No secret leaves the connection: the trigger's kwargs carry the ``conn_id`` only, a message names a key's
fields but never their values, and :class:`BigQuerySettings` does not show the key in a repr.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from durable_jobs.errors import ConnectionConfigError
from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.fields import Connection
from durable_jobs.hooks.validate import HTTP_SCHEMES, conn_label, host_name, naming
from durable_jobs.systems.bigquery import CONNECTION, REFUSED_EXTRAS

if TYPE_CHECKING:
    from durable_jobs.clients.bigquery import BigQueryClient

CONN_TYPE = CONNECTION.conn_type
PROJECT_ENV = ("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT")
#: a project id (6 to 30 characters), optionally domain-scoped (``example.com:my-project``)
PROJECT_ID = re.compile(r"(?:[a-z][a-z0-9.-]{0,62}:)?[a-z][a-z0-9-]{4,28}[a-z0-9]")
#: the fields each accepted key type needs
KEY_FIELDS = {
    "service_account": ("client_email", "private_key", "token_uri"),
    "authorized_user": ("client_id", "client_secret", "refresh_token"),
}
REFUSED_WHY = {
    "key_secret_name": "a key kept in Secret Manager: put the key's JSON in extra keyfile_dict instead",
    "credential_config_file": (
        "workload identity federation: run where Application Default Credentials reach a service account "
        "(the metadata server), or give a service-account key"
    ),
    "impersonation_chain": (
        "impersonation: give the impersonated service account's own key, or run as it (Application Default Credentials)"
    ),
}


@dataclass(frozen=True)
class BigQuerySettings:
    """What a connection says: the project, the key (None: Application Default Credentials), the client's settings."""

    project: str
    key: Mapping[str, Any] | None = field(default=None, repr=False)
    key_source: str = "application default credentials"  # where the key came from, for messages
    scopes: tuple[str, ...] | None = None
    location: str | None = None
    base_url: str = "https://bigquery.googleapis.com"
    verify_ssl: bool = True
    ca_file: str | None = None
    timeout: float = 30.0
    max_response_bytes: int | None = None


def parse_key(raw: Any, where: str) -> dict[str, Any]:
    """A key's JSON (text or mapping), checked for its type and fields; ValueError naming fields, never values."""
    if isinstance(raw, Mapping):
        data: Any = dict(raw)
    else:
        try:
            data = json.loads(str(raw))
        except ValueError:
            raise ValueError(f"{where} is not JSON (a service-account key file's content is)") from None
    if not isinstance(data, dict):
        raise ValueError(f"{where} is not a JSON object (a service-account key is)")
    kind = data.get("type")
    if kind not in KEY_FIELDS:
        shown = repr(kind)[:40] if isinstance(kind, str) else "none"
        raise ValueError(
            f"{where} has type {shown}: durable_jobs takes a service_account key or authorized_user credentials; "
            "for workload identity federation or impersonation run with Application Default Credentials on the "
            "metadata server, or give a service-account key"
        )
    missing = [name for name in KEY_FIELDS[kind] if not isinstance(data.get(name), str) or not data[name]]
    if missing:
        raise ValueError(f"{where} (type {kind}) lacks {', '.join(missing)}: download the key again")
    return data


def read_key_file(path: str, conn: Any) -> dict[str, Any]:
    """The key file ``path`` names, parsed and checked; a ConnectionConfigError with the fix."""
    where = f"extra key_path {path!r}"
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as f:
            text = f.read(1024 * 1024)
    except OSError as exc:
        raise ConnectionConfigError(
            f"connection {conn_label(conn)!r} {where} cannot be read on this host ({host_name()}): "
            f"{exc.strerror or type(exc).__name__}; the file must be on every worker and triggerer, or put its "
            "content in extra keyfile_dict"
        ) from None
    try:
        return parse_key(text, where)
    except ValueError as exc:
        raise ConnectionConfigError(f"connection {conn_label(conn)!r}: {exc}") from None


def api_url(raw: str) -> str:
    """``base_url`` without a trailing slash; ValueError unless it is an http(s) URL with a host."""
    url = raw.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in HTTP_SCHEMES or not parts.hostname:
        raise ValueError(f"extra base_url must be an http(s) URL with a host, not {raw!r}")
    return url


def _project(extra: Mapping[str, Any], key: Mapping[str, Any] | None) -> str:
    found = extra["project"] or (key or {}).get("project_id")
    source = "extra project" if extra["project"] else "the key's project_id"
    if not found:
        for name in PROJECT_ENV:
            if os.environ.get(name):
                found, source = os.environ[name], f"${name}"
                break
    if not found:
        raise ValueError(
            "names no project: set extra project (the key has no project_id, and GOOGLE_CLOUD_PROJECT is not set)"
        )
    project = str(found).strip()
    if not PROJECT_ID.fullmatch(project):
        raise ValueError(f"{source} {project[:64]!r} is not a Google Cloud project id")
    return project


class BigQueryHook(DurableJobHook):
    """A BigQuery connection -> :class:`~durable_jobs.clients.bigquery.BigQueryClient`."""

    client_module: ClassVar[str] = "durable_jobs.clients.bigquery"
    connection: ClassVar[Connection] = CONNECTION
    conn_type: ClassVar[str] = CONNECTION.conn_type
    default_conn_name: ClassVar[str] = CONNECTION.default_conn_name
    hook_name: ClassVar[str] = CONNECTION.hook_name

    @classmethod
    def connection_problems(cls, conn: Any) -> list[str]:
        extra = CONNECTION.read(conn)
        problems = [
            f"sets extra {name}, which durable_jobs does not support ({REFUSED_WHY[name]})"
            for name in REFUSED_EXTRAS
            if extra[name]
        ]
        if extra["keyfile_dict"] is not None:
            try:
                parse_key(extra["keyfile_dict"], "extra keyfile_dict")
            except ValueError as exc:
                problems.append(str(exc))
        return problems

    @classmethod
    def check_files(cls, conn: Any) -> None:
        """The key file, when the connection names one and gives no keyfile_dict (which wins)."""
        extra = CONNECTION.read(conn)
        if extra["keyfile_dict"] is None and extra["key_path"]:
            read_key_file(extra["key_path"], conn)

    @classmethod
    def config_from_connection(cls, conn: Any) -> BigQuerySettings:
        extra = CONNECTION.read(conn)
        key: dict[str, Any] | None = None
        source = "application default credentials"
        if extra["keyfile_dict"] is not None:
            key, source = parse_key(extra["keyfile_dict"], "extra keyfile_dict"), "extra keyfile_dict"
        elif extra["key_path"]:
            key, source = read_key_file(extra["key_path"], conn), f"extra key_path {extra['key_path']!r}"
        return BigQuerySettings(
            project=_project(extra, key),
            key=key,
            key_source=source,
            scopes=extra["scope"] or None,
            location=extra["location"] or None,
            base_url=api_url(extra["base_url"]),
            verify_ssl=extra["verify_ssl"],
            ca_file=extra["ca_file"],
            timeout=extra["timeout"],
            max_response_bytes=extra["max_response_bytes"],
        )

    @classmethod
    def settings(cls, conn_id: str) -> BigQuerySettings:
        """The settings of connection ``conn_id`` (worker side: the operator's project and location checks)."""
        conn = cls.get_connection(conn_id)
        cls.check(conn)
        with naming(conn):
            return cls.config_from_connection(conn)

    @classmethod
    def auth_of(cls, settings: BigQuerySettings) -> Any:
        """The key's auth (a service account signs its token requests; user credentials refresh theirs), else ADC."""
        from durable_jobs.clients.bigquery import AuthorizedUserAuth, ServiceAccountAuth, application_default

        key = settings.key
        if key is None:
            return application_default(os.environ)
        if key["type"] == "authorized_user":
            return AuthorizedUserAuth(key)
        if settings.scopes:
            return ServiceAccountAuth(key, scopes=settings.scopes)
        return ServiceAccountAuth(key)

    @classmethod
    def client_from_connection(cls, conn: Any) -> BigQueryClient:
        from durable_jobs.clients.bigquery import BigQueryClient

        settings = cls.config_from_connection(conn)
        return BigQueryClient(
            settings.project,
            auth=cls.auth_of(settings),
            base_url=settings.base_url,
            timeout=settings.timeout,
            verify_ssl=settings.verify_ssl,
            ca_file=settings.ca_file,
            max_response_bytes=settings.max_response_bytes,
        )


__all__ = ["CONN_TYPE", "BigQueryHook", "BigQuerySettings", "api_url", "parse_key", "read_key_file"]
