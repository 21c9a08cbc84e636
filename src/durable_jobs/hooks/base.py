"""Connection -> client, resolved once per process and connection, shared by every task and trigger.

The triggerer runs many triggers of the same connection. In Airflow 3.3 every connection fetch from a
trigger is a round trip through the triggerer's supervisor costing tens of milliseconds of its CPU, one
at a time: 2,000 triggers starting at once used to make 2,000 fetches (137 CPU-seconds). Here one fetch
per connection is in flight at a time (single-flight: every trigger that asks meanwhile awaits the same
fetch), and its client is cached for ``client_ttl`` seconds.

Every client is built through :meth:`DurableJobHook.build_client`, which checks the connection first (its
type, URL schemes and ports, the files it names: :mod:`durable_jobs.hooks.validate`) and raises a
:class:`~durable_jobs.errors.ConnectionConfigError` that names the connection and the fix; the operator fails
without retry on it, and a trigger ends with an ``error`` event.

Rotated credentials reach running pollers two ways: a client fetched after the TTL replaces the
poller's (the newest trigger brings it), and an AuthError makes the poller call :meth:`arefresh_client`,
which fetches the connection again at once (still one fetch for every poller that asks together).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import threading
import time
from abc import abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

from airflow.sdk import BaseHook

from durable_jobs.clients.base import JobClient
from durable_jobs.hooks import validate
from durable_jobs.loop_local import LoopLocal, close_all

T = TypeVar("T")

# (hook class, conn_id) -> (expires at, fetched at, client); monotonic seconds
_CACHE: dict[tuple[type[Any], str], tuple[float, float, JobClient[Any]]] = {}
# the fetches of a connection in flight on each loop: triggers of one connection wait for one fetch
_INFLIGHT: LoopLocal[dict[tuple[type[Any], str], asyncio.Task[JobClient[Any]]]] = LoopLocal(
    dict, name="connection fetches"
)


class DurableJobHook(BaseHook):  # type: ignore[misc]
    """Base of the hooks that build a system's client from an Airflow connection."""

    conn_name_attr: ClassVar[str] = "conn_id"
    default_conn_name: ClassVar[str] = ""
    client_ttl: ClassVar[float] = 300.0

    def __init__(self, conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id or self.default_conn_name

    #: the module of the client: a hook module imports no client at module level, because Airflow imports a
    #: trigger's module (and so its hook's) on the triggerer's event loop, and a client's dependencies
    #: (aiobotocore, kubernetes_asyncio, krb5) take up to half a second to import. On the triggerer the
    #: first fetch of a connection imports it in a worker thread instead.
    client_module: ClassVar[str] = ""

    #: what the connection's URLs must reach: the scheme and port checks of :meth:`check_connection` (None: none)
    expect: ClassVar[validate.Expect | None] = None

    @classmethod
    @abstractmethod
    def client_from_connection(cls, conn: Any) -> JobClient[Any]:
        """Build the client; pure (no I/O), so it can run on the triggerer's loop."""

    @classmethod
    def accepted_conn_types(cls) -> tuple[str, ...]:
        """The connection types this hook reads: its declaration's, else its ``conn_type`` (none: any)."""
        connection = getattr(cls, "connection", None)
        if connection is not None:
            return tuple(connection.accepted_types)
        own = getattr(cls, "conn_type", None)
        return (str(own),) if own else ()

    @classmethod
    def connection_problems(cls, conn: Any) -> list[str]:
        """What is wrong with ``conn`` besides its type and URLs (a hook adds its own checks); no I/O."""
        return []

    @classmethod
    def check_connection(cls, conn: Any) -> None:
        """Type, URL schemes and ports: a :class:`ConnectionConfigError` naming each problem. No I/O."""
        hook_name = str(getattr(cls, "hook_name", None) or cls.__name__)
        problems = [p for p in (validate.type_problem(conn, cls.accepted_conn_types(), hook_name),) if p]
        if cls.expect is not None:
            problems += validate.url_problems(conn, cls.expect)
        with validate.naming(conn):
            problems += cls.connection_problems(conn)
        validate.raise_problems(conn, problems)

    @classmethod
    def check_files(cls, conn: Any) -> None:
        """The files ``conn`` names, on this host (it may read them: on the triggerer it runs in a thread)."""

    @classmethod
    def check(cls, conn: Any) -> None:
        """Every check of ``conn``: :meth:`check_connection`, then :meth:`check_files`."""
        cls.check_connection(conn)
        with validate.naming(conn):
            cls.check_files(conn)

    @classmethod
    def build_client(cls, conn: Any) -> JobClient[Any]:
        """The checked connection's client; every problem a :class:`ConnectionConfigError` naming the connection."""
        cls.check(conn)
        return cls._client_of(conn)

    @classmethod
    def _client_of(cls, conn: Any) -> JobClient[Any]:
        with validate.naming(conn):
            return cls.client_from_connection(conn)

    @classmethod
    def _reads_files(cls) -> bool:
        return getattr(cls.check_files, "__func__", None) is not _NO_FILES

    @classmethod
    def _cached(cls, conn_id: str) -> JobClient[Any] | None:
        hit = _CACHE.get((cls, conn_id))
        if hit and hit[0] > time.monotonic():
            return hit[2]
        return None

    @classmethod
    def _store(cls, conn_id: str, client: JobClient[Any], fetched_at: float | None = None) -> JobClient[Any]:
        client.refetch = functools.partial(cls.arefresh_client, conn_id, client)
        client.conn_id = conn_id
        now = time.monotonic()
        _CACHE[(cls, conn_id)] = (now + cls.client_ttl, now if fetched_at is None else fetched_at, client)
        return client

    @classmethod
    def get_client(cls, conn_id: str) -> JobClient[Any]:
        """Worker side (sync)."""
        return cls._cached(conn_id) or cls._store(conn_id, cls.build_client(cls.get_connection(conn_id)))

    @classmethod
    async def aget_client(cls, conn_id: str) -> JobClient[Any]:
        """Triggerer side: the connection is fetched without blocking the event loop, once for all who ask."""
        return cls._cached(conn_id) or await cls._fetch(conn_id)

    @classmethod
    async def arefresh_client(cls, conn_id: str, stale: JobClient[Any] | None = None) -> JobClient[Any]:
        """A client from the connection as it is now, to replace ``stale`` (refused after a rotation).

        Pollers that ask together share one fetch: when the cache already holds another client than
        ``stale`` (someone refreshed first) it is returned, and a fetch in flight serves every caller.
        """
        hit = _CACHE.get((cls, conn_id))
        if hit is not None and stale is not None and hit[2] is not stale and hit[0] > time.monotonic():
            return hit[2]
        return await cls._fetch(conn_id)

    @classmethod
    async def _fetch(cls, conn_id: str) -> JobClient[Any]:
        inflight = _INFLIGHT.get()
        key = (cls, conn_id)
        task = inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(cls._fetch_now(conn_id), name=f"durable-jobs-conn-{conn_id}")
            inflight[key] = task
            task.add_done_callback(lambda t: _fetched(inflight, key, t))
        # shielded: one trigger cancelled while it waits must not cancel the fetch the others wait for
        return await asyncio.shield(task)

    @classmethod
    async def _fetch_now(cls, conn_id: str) -> JobClient[Any]:
        started = time.monotonic()
        if cls.client_module and cls.client_module not in _IMPORTED:
            # the client's imports, off the loop, while the connection is fetched
            conn, _ = await asyncio.gather(
                cls.aget_connection(conn_id), asyncio.to_thread(import_client_module, cls.client_module)
            )
        else:
            conn = await cls.aget_connection(conn_id)
        if cls._reads_files():
            await asyncio.to_thread(cls.check, conn)  # a stat or a small file read: not on the loop
        else:
            cls.check(conn)
        return cls._store(conn_id, cls._client_of(conn), fetched_at=started)

    @staticmethod
    def clear_cache() -> None:
        _CACHE.clear()
        _INFLIGHT.clear()

    @staticmethod
    def probe(call: Callable[[], Awaitable[T]]) -> T:
        """Run one client call from sync code (``test_connection``) on a private loop, closing its sessions."""

        async def run() -> T:
            try:
                return await call()
            finally:
                await close_all()

        return asyncio.run(run())


# client modules imported whole by import_client_module (sys.modules also holds modules still being imported)
_IMPORTED: set[str] = set()
_IMPORTING = threading.Lock()


def import_client_module(name: str) -> None:
    """Import a client module (in a worker thread), one import at a time in the process.

    Python locks imports per module, so two threads importing client packages that import each other (Glue
    builds on EMR's AWS plumbing; a package's ``__init__`` imports its modules) can deadlock, or one sees a
    module the other has only half initialised: ``ImportError`` / ``_DeadlockError`` at a triggerer start
    with triggers (or reaper callbacks) of several systems. One lock serialises them; the loop thread builds
    a client only once its module is whole.
    """
    with _IMPORTING:
        if name not in _IMPORTED:
            importlib.import_module(name)
            _IMPORTED.add(name)


_NO_FILES = DurableJobHook.check_files.__func__  # type: ignore[attr-defined]


def _fetched(
    inflight: dict[tuple[type[Any], str], asyncio.Task[JobClient[Any]]],
    key: tuple[type[Any], str],
    task: asyncio.Task[JobClient[Any]],
) -> None:
    if inflight.get(key) is task:
        del inflight[key]
    if not task.cancelled():
        task.exception()  # retrieved: the waiters, if any are left, raise it themselves
