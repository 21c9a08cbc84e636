"""Connection -> client, resolved once per process and connection, shared by every task and trigger.

The triggerer runs many triggers of the same connection: each would otherwise fetch the connection and
build its own client. A short TTL lets rotated credentials take effect without a restart.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from typing import Any, ClassVar

from airflow.sdk import BaseHook

from durable_jobs.clients.base import JobClient

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
