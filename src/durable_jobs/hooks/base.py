"""Connection -> client, resolved once per process and connection, shared by every task and trigger.

The triggerer runs many triggers of the same connection: each would otherwise fetch the connection and
build its own client. A short TTL lets rotated credentials take effect without a restart.
"""

from __future__ import annotations

import asyncio
import time
from abc import abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

from airflow.sdk import BaseHook

from durable_jobs.clients.base import JobClient
from durable_jobs.transport.http import close_sessions

T = TypeVar("T")

_CACHE: dict[tuple[type[Any], str], tuple[float, JobClient[Any]]] = {}


class DurableJobHook(BaseHook):  # type: ignore[misc]
    """Base of the hooks that build a system's client from an Airflow connection."""

    conn_name_attr: ClassVar[str] = "conn_id"
    default_conn_name: ClassVar[str] = ""
    client_ttl: ClassVar[float] = 300.0

    def __init__(self, conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id or self.default_conn_name

    @classmethod
    @abstractmethod
    def client_from_connection(cls, conn: Any) -> JobClient[Any]:
        """Build the client; pure (no I/O), so it can run on the triggerer's loop."""

    @classmethod
    def _cached(cls, conn_id: str) -> JobClient[Any] | None:
        hit = _CACHE.get((cls, conn_id))
        if hit and hit[0] > time.monotonic():
            return hit[1]
        return None

    @classmethod
    def _store(cls, conn_id: str, client: JobClient[Any]) -> JobClient[Any]:
        _CACHE[(cls, conn_id)] = (time.monotonic() + cls.client_ttl, client)
        return client

    @classmethod
    def get_client(cls, conn_id: str) -> JobClient[Any]:
        """Worker side (sync)."""
        return cls._cached(conn_id) or cls._store(conn_id, cls.client_from_connection(cls.get_connection(conn_id)))

    @classmethod
    async def aget_client(cls, conn_id: str) -> JobClient[Any]:
        """Triggerer side: the connection is fetched without blocking the event loop."""
        client = cls._cached(conn_id)
        if client is None:
            conn = await cls.aget_connection(conn_id)
            client = cls._store(conn_id, cls.client_from_connection(conn))
        return client

    @staticmethod
    def clear_cache() -> None:
        _CACHE.clear()

    @staticmethod
    def probe(call: Callable[[], Awaitable[T]]) -> T:
        """Run one client call from sync code (``test_connection``) on a private loop, closing its sessions."""

        async def run() -> T:
            try:
                return await call()
            finally:
                await close_sessions()

        return asyncio.run(run())


def extra_of(conn: Any) -> dict[str, Any]:
    extra = getattr(conn, "extra_dejson", None)
    return dict(extra) if isinstance(extra, dict) else {}


def as_bool(value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected a boolean, got {value!r}")


def split_list(value: str | None) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def base_urls(conn: Any, default_port: int, what: str) -> tuple[str, ...]:
    """The connection's host list (comma-separated, HA) as base URLs, with its scheme and port.

    A host may be a full URL (``https://m1:6066``) or ``host[:port]``.
    """
    scheme = (conn.schema or "http").lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"connection {conn.conn_id!r}: schema must be http or https, not {scheme!r}")
    hosts = split_list(conn.host)
    if not hosts:
        raise ValueError(f"connection {conn.conn_id!r}: host is empty; give the {what} host(s)")
    port = conn.port or default_port
    return tuple(
        h.rstrip("/") if "://" in h else f"{scheme}://{h}" if ":" in h else f"{scheme}://{h}:{port}" for h in hosts
    )
