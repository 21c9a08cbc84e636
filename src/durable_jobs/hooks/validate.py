"""A connection checked when its hook builds a client: its type, URL schemes and ports, and what it names.

A connection that cannot work used to fail late and vaguely: ``spark://host:7077`` as a bare "endpoint URL
must start with http://" from the transport, the master's UI port as a raw HTML 405, a ``generic``
connection silently read as if it were the right type, and every one of them retried. Here each problem is
found before any request and raised as one :class:`~durable_jobs.errors.ConnectionConfigError` naming the
connection, the field, what is wrong and the likely fix (never a credential); the task fails without retry.

The checks are written once, here. What a system knows of its own service (which ports belong to something
else, which URL schemes mean another protocol, where the right port is) it states in an :class:`Expect`
on its hook; its accepted connection types come from its declaration
(:attr:`durable_jobs.hooks.fields.Connection.accepted_types`). No I/O here: the hook checks the files a
connection names itself (see :meth:`durable_jobs.hooks.base.DurableJobHook.check_files`).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from durable_jobs.errors import ConnectionConfigError
from durable_jobs.hooks.convert import split_list

HTTP_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class Expect:
    """What a hook's connection must point at, for its scheme and port checks and their messages.

    :param service: what the connection must reach, e.g. "the Spark master's REST submission server".
    :param fix: how to point it right; ``{host}`` is replaced by the connection's (first) host.
    :param wrong_ports: ports that belong to another service of the system -> what listens there.
    :param wrong_schemes: URL schemes of the system's other protocols -> what such a URL addresses.
    :param reads_schema: whether the hook reads the connection's ``schema`` field as the URL scheme.
    """

    service: str
    fix: str
    wrong_ports: Mapping[int, str] = field(default_factory=dict)
    wrong_schemes: Mapping[str, str] = field(default_factory=dict)
    reads_schema: bool = True


def conn_label(conn: Any) -> str:
    return str(getattr(conn, "conn_id", None) or "?")


def host_name() -> str:
    """This machine's name, for messages about files that must exist on every worker and triggerer."""
    try:
        return socket.gethostname() or "?"
    except OSError:
        return "?"


def normalized_type(conn_type: Any) -> str:
    """A connection type as Airflow stores it from a URI (``spark-standalone-rest://`` -> ``spark_standalone_rest``)."""
    return str(conn_type or "").strip().lower().replace("-", "_")


def type_problem(conn: Any, accepted: tuple[str, ...], hook_name: str) -> str | None:
    """Why ``conn``'s type is not one of ``accepted``, with how to recreate it; None when it is."""
    if not accepted:
        return None
    found = normalized_type(getattr(conn, "conn_type", None))
    if found in accepted:
        return None
    wanted = accepted[0]
    uri_scheme = wanted.replace("_", "-")
    env = "AIRFLOW_CONN_" + conn_label(conn).upper()
    others = f" (or {', '.join(repr(t) for t in accepted[1:])})" if len(accepted) > 1 else ""
    has = f"has type {found!r}" if found else "has no connection type"
    return (
        f"{has}; the {hook_name} hook needs type {wanted!r}{others}: recreate it with "
        f"`airflow connections add {conn_label(conn)} --conn-type {wanted} ...` or {env}='{uri_scheme}://...' "
        f"(the type is offered in the connection form wherever airflow-durable-jobs is installed)"
    )


def _port_of(url: str) -> int | None:
    with contextlib.suppress(ValueError):
        return urlsplit(url).port
    return None


def url_problems(conn: Any, expect: Expect) -> list[str]:
    """The connection's scheme and ports against ``expect``: each problem with its fix."""
    problems: list[str] = []
    hosts = split_list(getattr(conn, "host", None))
    conn_port = getattr(conn, "port", None)
    first_host = bare_host(hosts[0]) if hosts else "HOST"
    fix = expect.fix.format(host=first_host)
    schema = str(getattr(conn, "schema", None) or "").strip().lower()
    if expect.reads_schema and schema and schema not in HTTP_SCHEMES:
        what = expect.wrong_schemes.get(schema)
        problems.append(
            f"has schema {schema!r}" + (f", {what}" if what else "") + f"; the schema field is the URL scheme of "
            f"{expect.service}, http or https: {fix}"
        )
    for host in hosts:
        if "://" in host:
            scheme = host.split("://", 1)[0].strip().lower()
            shown = host if _port_of(host) is not None or not conn_port else f"{host}:{conn_port}"
            if scheme not in HTTP_SCHEMES:
                what = expect.wrong_schemes.get(scheme, f"a {scheme}:// address")
                problems.append(f"names {shown}, {what}; durable_jobs talks to {expect.service} over HTTP: {fix}")
                continue
            port = _port_of(host)
        else:
            port = _port_of(f"http://{host}")
        if port is None and conn_port:
            with contextlib.suppress(TypeError, ValueError):  # not a number: the hook's own reading says so
                port = int(conn_port)
        if port is not None and port in expect.wrong_ports:
            problems.append(
                f"names port {port} ({host}), {expect.wrong_ports[port]}; durable_jobs talks to {expect.service}: {fix}"
            )
    return problems


def bare_host(host: str) -> str:
    """The host name in a host field: ``https://m1:6066/x``, ``m1:6066``, ``k8s://https://m1`` -> ``m1``."""
    with contextlib.suppress(ValueError):
        parsed = urlsplit("http://" + host.rsplit("://", 1)[-1])
        if parsed.hostname:
            return parsed.hostname
    return host


def raise_problems(conn: Any, problems: list[str]) -> None:
    """One :class:`ConnectionConfigError` naming the connection and every problem, when there are any."""
    if not problems:
        return
    name = conn_label(conn)
    if len(problems) == 1:
        raise ConnectionConfigError(f"connection {name!r} {problems[0]}")
    listed = "; ".join(f"({i}) it {p}" for i, p in enumerate(problems, 1))
    raise ConnectionConfigError(f"connection {name!r} has {len(problems)} problems: {listed}")


@contextlib.contextmanager
def naming(conn: Any) -> Iterator[None]:
    """A ValueError raised while a client is built from ``conn`` -> a ConnectionConfigError naming it."""
    try:
        yield
    except ConnectionConfigError:
        raise
    except ValueError as exc:
        text = str(exc)
        prefix = f"connection {conn_label(conn)!r}"
        raise ConnectionConfigError(text if text.startswith(prefix) else f"{prefix}: {text}") from None


__all__ = [
    "HTTP_SCHEMES",
    "Expect",
    "bare_host",
    "conn_label",
    "host_name",
    "naming",
    "normalized_type",
    "raise_problems",
    "type_problem",
    "url_problems",
]
