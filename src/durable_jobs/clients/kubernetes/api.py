"""How the Kubernetes client reaches a cluster: credentials, TLS, and every request, on one connection per loop.

kubernetes_asyncio is used for one thing only: **loading the configuration** (a kubeconfig, in-cluster, an exec
plugin, a token file), which it does as kubectl does. What it yields (the server URL, the CA, a client
certificate, the verify flag, and the bearer token with its refresh) becomes an
:class:`~durable_jobs.transport.http.Endpoint` with an :class:`ssl.SSLContext` and a :class:`KubeAuth`. Every
request (GET, LIST, WATCH, POST, DELETE, logs, events) then goes through
:func:`durable_jobs.transport.http.request`, the library's one HTTP policy: no redirect followed, bodies
bounded by the connection's ``max_response_bytes``, errors quoted cut and redacted.

Credentials: an exec plugin's token is renewed before its ``expirationTimestamp`` (or every ``credential_ttl``
when it states none); a 401 reloads the credentials once (exec plugin, token file, in-cluster token) and
repeats the request. A static token (host + password) cannot be reloaded here: the poller fetches the
connection again after the 401 (:attr:`~durable_jobs.clients.base.JobClient.refetch`), and the new client has
a connection of its own (see :mod:`durable_jobs.clients.kubernetes.config` for the two keys).
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import json
import logging
import os
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any

from durable_jobs import __version__
from durable_jobs.clients.kubernetes.config import KubernetesConfig
from durable_jobs.clients.kubernetes.errors import api_error
from durable_jobs.clients.kubernetes.listwatch import ListWatch
from durable_jobs.clients.kubernetes.objects import WATCH_SELECTOR, Kind
from durable_jobs.clients.kubernetes.status import projector
from durable_jobs.clients.kubernetes.watch import Informer
from durable_jobs.errors import PermanentError, TransientError
from durable_jobs.loop_local import LoopLocal
from durable_jobs.transport.base import Auth, Request, Response, Send
from durable_jobs.transport.http import Endpoint, request

log = logging.getLogger(__name__)

# kubernetes_asyncio (only its configuration loaders are used) takes about 0.4 s to import, most of it its
# generated API models. Imported on the triggerer's loop, that is a 0.4 s stall of every trigger at the first
# Kubernetes trigger after a start: it is imported once, in a thread, when the first connection loads.
_K8S: dict[str, Any] = {}


def _import_kubernetes_asyncio() -> dict[str, Any]:
    from kubernetes_asyncio import client, config
    from kubernetes_asyncio.config.config_exception import ConfigException

    return {"client": client, "config": config, "ConfigException": ConfigException}


async def _load_kubernetes_asyncio() -> None:
    if not _K8S:
        _K8S.update(await asyncio.to_thread(_import_kubernetes_asyncio))


USER_AGENT = f"airflow-durable-jobs/{__version__}"
_CONNECTIONS_PER_ENDPOINT = 4  # connections kept per endpoint (credential sets after rotations); older ones close


# --- credentials --------------------------------------------------------------------------------------------


class KubeAuth(Auth):
    """The bearer token (or basic credentials) of a kubeconfig, refreshed as kubectl does, once more after a 401."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.identity = ""  # pools are separated per credential set by the endpoint's identity

    def __repr__(self) -> str:
        return "KubeAuth(***)"

    async def flow(self, request: Request, send: Send) -> Response:
        sent_at = time.monotonic()
        header = await self._conn.authorization(request.what)
        resp = await send(request.with_headers({"Authorization": header}) if header else request)
        if resp.status == 401 and await self._conn.reload_after_401(sent_at):
            await resp.aclose()  # never read: a refusal, and the request goes again with the fresh credentials
            header = await self._conn.authorization(request.what)
            resp = await send(request.with_headers({"Authorization": header}) if header else request)
        return resp

    def secrets(self) -> tuple[str, ...]:
        return self._conn.secrets()


# --- one connection per credential set and event loop -------------------------------------------------------


class Connection:
    """The endpoint, TLS context and credentials of one configuration, on one event loop.

    Shared by every task and trigger of the connection (one pooled aiohttp session through the transport), with
    the shared list+watch caches (:attr:`informers`) and the failure diagnoses read once per object.
    """

    def __init__(self, config: KubernetesConfig) -> None:
        self.config = config
        self.endpoint: Endpoint | None = None
        self.auth = KubeAuth(self)
        self.default_namespace = "default"
        self.requests: Counter[str] = Counter()  # by "VERB kind" (tests and benchmark)
        self.informers: dict[tuple[str, str], Informer] = {}
        self.diagnoses: dict[str, asyncio.Task[str]] = {}
        self.closed = False
        self._cfg: Any = None  # kubernetes_asyncio.client.Configuration: the loaded credentials
        self._loader: Any = None
        self._exec = False
        self._credentials_at = 0.0
        self._secrets: list[str] = []  # the tokens sent so far (the last few): redacted from every quote
        self._lock = asyncio.Lock()
        self._refresh_lock = asyncio.Lock()

    async def ready(self) -> Endpoint:
        if self.endpoint is None:
            async with self._lock:
                if self.endpoint is None:
                    await _load_kubernetes_asyncio()
                    cfg = _K8S["client"].Configuration()
                    await self._load(cfg)
                    self._cfg = cfg
                    self.endpoint = self._endpoint(cfg)
        return self.endpoint

    def _endpoint(self, cfg: Any) -> Endpoint:
        c = self.config
        source = c.describe_source()
        if getattr(cfg, "proxy", None):
            raise PermanentError(
                f"the Kubernetes configuration of {source} names a proxy-url; connecting through a proxy is not "
                "supported: reach the apiserver directly"
            )
        if getattr(cfg, "tls_server_name", None):
            raise PermanentError(
                f"the Kubernetes configuration of {source} sets tls-server-name, which is not supported"
            )
        host = str(cfg.host or "")
        if not host.startswith(("https://", "http://")):
            raise PermanentError(f"the Kubernetes configuration of {source} names no apiserver URL (got {host!r})")
        ssl_context: ssl.SSLContext | None = None
        if host.startswith("https://"):
            try:
                ssl_context = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
                if cfg.cert_file:
                    ssl_context.load_cert_chain(cfg.cert_file, cfg.key_file or None)
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise PermanentError(
                    f"cannot set up TLS for {source}: {exc!r} (check its CA and client certificate)"
                ) from exc
            if not (c.verify_ssl and cfg.verify_ssl):
                ssl_context.check_hostname = False
                ssl_context.verify_mode = ssl.CERT_NONE
        return Endpoint(
            base_url=host,
            verify_ssl=bool(c.verify_ssl and cfg.verify_ssl),
            timeout=c.timeout,
            connect_timeout=c.connect_timeout,
            identity="kube:" + c._full_digest()[:24],
            max_body=c.max_response_bytes,
            ssl_context=ssl_context,
        )

    async def _load(self, cfg: Any) -> None:
        c = self.config
        try:
            if c.in_cluster:
                self._load_in_cluster(cfg)
                self.default_namespace = _read_namespace_file(c.service_account_dir) or self.default_namespace
            else:
                source = c.kubeconfig if c.kubeconfig is not None else c.direct_kubeconfig() if c.host else None
                if source is not None:
                    self._loader = await _K8S["config"].load_kube_config_from_dict(
                        config_dict=copy.deepcopy(dict(source)), context=c.context, client_configuration=cfg
                    )
                else:
                    self._loader = await _K8S["config"].load_kube_config(
                        config_file=c.kubeconfig_path, context=c.context, client_configuration=cfg, persist_config=False
                    )
                context = (self._loader.current_context or {}).get("context") or {}
                self.default_namespace = str(context.get("namespace") or self.default_namespace)
                self._exec = bool(self._loader._user is not None and "exec" in self._loader._user)
        except (
            _K8S["ConfigException"],
            OSError,
            KeyError,
            ValueError,
            TypeError,
            AssertionError,
            AttributeError,
        ) as exc:
            raise PermanentError(
                f"cannot load the Kubernetes configuration from {c.describe_source()}: {exc!r}"
            ) from exc
        self._credentials_at = time.monotonic()
        if self._exec:
            cfg.refresh_api_key_hook = self._refresh_hook
        if c.namespace:
            self.default_namespace = c.namespace

    def _load_in_cluster(self, cfg: Any) -> None:
        directory = self.config.service_account_dir
        _K8S["config"].load_incluster_config(
            client_configuration=cfg,
            token_filename=os.path.join(directory, "token"),
            cert_filename=os.path.join(directory, "ca.crt"),
        )

    # credentials

    async def authorization(self, what: str) -> str:
        """The ``Authorization`` header value now (an exec plugin may run, a token file may be re-read)."""
        try:
            value = await self._cfg.get_api_key_with_prefix("BearerToken")
        except Exception as exc:  # the exec plugin or the token file failed: nothing was sent
            raise TransientError(
                f"{what}: renewing the Kubernetes credentials of {self.config.describe_source()} failed: {exc!r}",
                connect_failed=True,
            ) from exc
        if not value:
            return ""
        text = str(value)
        secret = text.split(" ", 1)[-1]
        if secret not in self._secrets:
            self._secrets = [*self._secrets[-3:], secret]
        return text

    def secrets(self) -> tuple[str, ...]:
        return tuple(self._secrets)

    def _exec_expired(self) -> bool:
        expiry = getattr(self._loader, "exec_plugin_expiry", None)
        if isinstance(expiry, datetime.datetime):
            return expiry.timestamp() - 300 <= time.time()  # the loader's own 5-minute skew
        return time.monotonic() - self._credentials_at >= self.config.credential_ttl

    async def _refresh_hook(self, cfg: Any) -> None:
        """Called before every request when the credentials come from an exec plugin."""
        if self._exec_expired():
            async with self._refresh_lock:
                if self._exec_expired():
                    await self._reload_exec(cfg)

    async def _reload_exec(self, cfg: Any) -> None:
        if hasattr(self._loader, "exec_plugin_expiry"):
            del self._loader.exec_plugin_expiry  # make the loader run the plugin again
        await self._loader.load_from_exec_plugin()
        if getattr(self._loader, "token", None):
            cfg.api_key["BearerToken"] = self._loader.token
        self._credentials_at = time.monotonic()
        log.info("Kubernetes credentials renewed by the exec plugin (%s)", self.config.describe_source())

    async def reload_after_401(self, sent_at: float) -> bool:
        """Reload the credentials after a 401 to a request sent at ``sent_at``; True when worth repeating it.

        A static token cannot be reloaded here (False): the poller fetches the connection again instead.
        """
        async with self._refresh_lock:
            if self._credentials_at > sent_at:
                return True  # reloaded by another request since this one was sent
            try:
                if self.config.in_cluster:
                    self._load_in_cluster(self._cfg)
                elif self._exec:
                    await self._reload_exec(self._cfg)
                elif self._loader is not None and self._loader._user is not None and "tokenFile" in self._loader._user:
                    self._loader._load_user_token()
                    self._cfg.api_key["BearerToken"] = self._loader.token
                else:
                    return False
            except Exception as exc:
                log.warning("reloading the Kubernetes credentials after a 401 failed: %r", exc)
                return False
            self._credentials_at = time.monotonic()
            return True

    # requests

    async def send(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        stream: bool = False,
        read_timeout: float | None = None,
        timeout: float | None = None,
        what: str,
    ) -> Response:
        """One request through the library's HTTP policy; any status is returned. The caller reads it."""
        endpoint = await self.ready()
        self.requests[_request_label(method, path, query)] += 1
        headers = {"Accept": accept, "User-Agent": USER_AGENT}
        data: bytes | None = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        return await request(
            endpoint,
            method,
            path,
            body=data,
            params=list(query),
            headers=headers,
            timeout=timeout,
            what=what,
            auth=self.auth,
            stream=stream,
            read_timeout=read_timeout,
        )

    async def call(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        timeout: float | None = None,
        what: str,
    ) -> Response:
        """One request read whole; a non-2xx answer raises the error its ``Status`` calls for."""
        resp = await self.send(
            method, path, query=query, body=body, content_type=content_type, accept=accept, timeout=timeout, what=what
        )
        if not 200 <= resp.status < 300:
            raise api_error(resp.status, resp.body, resp.headers, what, resp.secrets)
        return resp

    async def open(
        self, method: str, path: str, *, query: Sequence[tuple[str, str]] = (), read_timeout: float = 60.0, what: str
    ) -> Response:
        """A streamed request (a watch): the caller reads ``lines()`` and must ``aclose()`` it."""
        return await self.send(method, path, query=query, stream=True, read_timeout=read_timeout, what=what)

    # shared watches and failure diagnoses

    def informer(self, kind: Kind, namespace: str) -> Informer:
        key = (kind.name, namespace)
        inf = self.informers.get(key)
        if inf is not None and (inf.running or (inf.forbidden and time.monotonic() - (inf.stopped_at or 0) < 600)):
            return inf
        c = self.config
        inf = Informer(
            ListWatch(self, kind, namespace, WATCH_SELECTOR),
            projector(kind.name),
            watch_timeout=c.watch_timeout,
            resync_interval=c.resync_interval,
            idle_timeout=c.idle_timeout,
            stale_after=max(60.0, 2 * c.timeout),
            page_size=c.page_size,
            on_stop=self._informer_stopped,
        )
        self.informers[key] = inf
        inf.start()
        return inf

    def _informer_stopped(self, inf: Informer) -> None:
        if inf.forbidden:
            return  # remembered for a while, so every poll does not list (and get refused) again
        for key, value in list(self.informers.items()):
            if value is inf:
                del self.informers[key]

    async def diagnosis(self, uid: str, make: Callable[[], Awaitable[str]]) -> str:
        """``make()`` once per failed object (its pod and logs are read once, not on every poll)."""
        task = self.diagnoses.get(uid)
        if task is None:
            while len(self.diagnoses) >= 1024:
                self.diagnoses.pop(next(iter(self.diagnoses)))
            task = self.diagnoses[uid] = asyncio.ensure_future(make())
        try:
            return await asyncio.shield(task)
        except Exception:
            self.diagnoses.pop(uid, None)
            raise

    async def close(self) -> None:
        self.closed = True
        for inf in list(self.informers.values()):
            await inf.stop()
        self.informers.clear()
        for task in self.diagnoses.values():
            task.cancel()
        self.diagnoses.clear()


def _request_label(method: str, path: str, query: Sequence[tuple[str, str]]) -> str:
    """``GET pods``, ``LIST jobs``, ``WATCH jobs``, ``GET pods/log``...: what the requests counter counts."""
    rest = path.split("/namespaces/", 1)[1].split("/")[1:] if "/namespaces/" in path else [path]
    if len(rest) == 1 and "/namespaces/" in path:
        method = "WATCH" if ("watch", "true") in query else "LIST" if method == "GET" else method
    return f"{method} {rest[0]}" + (f"/{rest[2]}" if len(rest) > 2 else "")


def _read_namespace_file(directory: str) -> str:
    """The service account's namespace (in-cluster), or ""."""
    path = os.path.join(directory, "namespace")
    if not os.path.isfile(path):
        return ""
    with open(path) as fh:
        return fh.read().strip()


async def _close_connections(conns: dict[Hashable, Connection]) -> None:
    for conn in conns.values():
        await conn.close()


_CONNECTIONS: LoopLocal[dict[Hashable, Connection]] = LoopLocal(
    dict, close=_close_connections, name="Kubernetes connections"
)
_CLOSING: set[asyncio.Task[None]] = set()


def connection_for(config: KubernetesConfig) -> Connection:
    """The running loop's connection for ``config`` (created on first use, loaded lazily).

    One per credential set: after a rotation the new credentials get a new connection, and the oldest ones of
    the same endpoint are closed once there are more than a few (their watches stop).
    """
    conns = _CONNECTIONS.get()
    conn = conns.get(config.connection_key)
    if conn is None:
        same = [k for k, c in conns.items() if c.config.key == config.key]
        for old in same[: max(0, len(same) - _CONNECTIONS_PER_ENDPOINT + 1)]:
            task = asyncio.get_running_loop().create_task(conns.pop(old).close())
            _CLOSING.add(task)  # referenced until done: a task nobody holds may be collected unfinished
            task.add_done_callback(_CLOSING.discard)
        conn = conns[config.connection_key] = Connection(config)
    return conn


def forget_connection(config: KubernetesConfig, conn: Connection) -> None:
    conns = _CONNECTIONS.peek() or {}
    if conns.get(config.connection_key) is conn:
        del conns[config.connection_key]


async def close_kube_connections() -> None:
    """Close the running loop's connections and watches (worker teardown, tests; also run by ``close_all``)."""
    await _CONNECTIONS.close()
