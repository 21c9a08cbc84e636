"""The aiobotocore clients of the EMR clients, shared per event loop and closed with it.

Per event loop, one :class:`~aiobotocore.session.AioSession` per credentials and one client per
(service, endpoint, credentials, options), held in a :class:`~durable_jobs.loop_local.LoopLocal` and
closed with the loop's other resources (:func:`durable_jobs.loop_local.close_all`); a rotated credential
gets a new client and the two generations before it are closed once their calls had time to end.
Every session shares one :class:`botocore.loaders.Loader` (service models are parsed once per process, in
a worker thread), and every client gets the HTTP policy of :mod:`durable_jobs.clients.emr.aws_http`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import Any

import botocore.exceptions as bex  # type: ignore[import-untyped]
from aiobotocore.config import AioConfig  # type: ignore[import-untyped]
from aiobotocore.credentials import AioAssumeRoleCredentialFetcher, AioDeferredRefreshableCredentials  # type: ignore[import-untyped]
from aiobotocore.session import AioSession  # type: ignore[import-untyped]
from botocore.loaders import Loader, create_loader  # type: ignore[import-untyped]

from durable_jobs.clients.emr.aws_config import AwsConfig
from durable_jobs.clients.emr.aws_http import GuardedParserFactory, bounded_session_class, utc_timestamp
from durable_jobs.errors import AuthError, ConnectionConfigError
from durable_jobs.loop_local import LoopLocal

_LOADER: Loader | None = None


def shared_loader() -> Loader:
    """One botocore loader for every session of the process: service models are parsed once."""
    global _LOADER
    if _LOADER is None:
        _LOADER = create_loader()
    return _LOADER


class _LoopClients:
    """The sessions and open clients of one event loop."""

    def __init__(self) -> None:
        self.sessions: dict[str, AioSession] = {}
        self.clients: dict[str, Any] = {}
        self.contexts: dict[str, Any] = {}  # pool key -> the client's async context manager
        self.generations: dict[str, list[str]] = {}  # endpoint key -> pool keys, oldest first
        self.closing: set[asyncio.Task[None]] = set()
        self.lock = asyncio.Lock()
        self.created = 0


async def _close_pool(pool: _LoopClients) -> None:
    for task in list(pool.closing):
        task.cancel()
    for context in pool.contexts.values():
        with contextlib.suppress(Exception):
            await context.__aexit__(None, None, None)
    if pool.closing:
        await asyncio.gather(*pool.closing, return_exceptions=True)


_POOLS: LoopLocal[_LoopClients] = LoopLocal(_LoopClients, close=_close_pool, name="AWS clients")
#: credential generations of one endpoint kept open (a rotation's old client still serves calls in flight)
KEEP_GENERATIONS = 3


def _new_session(config: AwsConfig) -> AioSession:
    session = AioSession(profile=config.profile_name)
    session.register_component("data_loader", shared_loader())
    factory = GuardedParserFactory()
    factory.set_parser_defaults(timestamp_parser=utc_timestamp)
    session.register_component("response_parser_factory", factory)
    return session


def _client_config(config: AwsConfig) -> AioConfig:
    options: dict[str, Any] = {
        "connect_timeout": config.connect_timeout,
        "read_timeout": config.read_timeout,
        "max_pool_connections": config.max_pool_connections,
        "user_agent_extra": "airflow-durable-jobs",
        **{k: v for k, v in config.botocore_config.items() if k not in ("http_session_cls", "connector_args")},
    }
    # our policy, always: botocore must not resend a call that may have been applied; no redirect is
    # followed and bodies are bounded; service models load in a thread, not on the event loop
    options["retries"] = {"total_max_attempts": 1}
    options["http_session_cls"] = bounded_session_class(config.max_body)
    options["warm_up_loader_caches"] = True
    return AioConfig(**options)


def _verify(config: AwsConfig) -> bool | str | None:
    return None if config.verify is True else config.verify  # None: botocore's default, which verifies


async def _session_for(pool: _LoopClients, config: AwsConfig) -> AioSession:
    key = config.credentials_key()
    known = pool.sessions.get(key)
    if known is not None:
        return known
    # a botocore session registers ~120 event handlers when it is made (~40 ms of CPU): off the event loop
    session = await asyncio.to_thread(_new_session, config)
    if config.role_arn:
        source = await asyncio.to_thread(_new_session, config)
        if config.aws_access_key_id:
            source.set_credentials(config.aws_access_key_id, config.aws_secret_access_key, config.aws_session_token)
        source_credentials = await source.get_credentials()
        if source_credentials is None:
            raise AuthError(f"{config.label}: no credentials to assume {config.role_arn} with")
        extra = {"RoleSessionName": "airflow-durable-jobs", **dict(config.assume_role_kwargs)}
        fetcher = AioAssumeRoleCredentialFetcher(
            client_creator=functools.partial(
                source.create_client,
                region_name=config.region_name,
                endpoint_url=config.endpoint_for("sts"),
                verify=_verify(config),
                config=_client_config(config),
            ),
            source_credentials=source_credentials,
            role_arn=config.role_arn,
            extra_args=extra,
        )
        # refreshed (assume_role again) before expiry, on the loop, by aiobotocore
        session._credentials = AioDeferredRefreshableCredentials(
            refresh_using=fetcher.fetch_credentials, method="assume-role"
        )
    pool.sessions[key] = session
    return session


async def aws_client(config: AwsConfig, service: str) -> Any:
    """The running loop's shared, open aiobotocore client for ``service`` with ``config``."""
    pool = _POOLS.get()
    key = config.pool_key(service)
    client = pool.clients.get(key)
    if client is not None:
        return client
    async with pool.lock:
        client = pool.clients.get(key)
        if client is None:
            session = await _session_for(pool, config)
            keys: dict[str, Any] = {}
            if config.aws_access_key_id and not config.role_arn:
                keys = {
                    "aws_access_key_id": config.aws_access_key_id,
                    "aws_secret_access_key": config.aws_secret_access_key,
                    "aws_session_token": config.aws_session_token,
                }
            context = session.create_client(
                service,
                region_name=config.region_name,
                endpoint_url=config.endpoint_for(service),
                verify=_verify(config),
                config=_client_config(config),
                **keys,
            )
            try:
                client = await context.__aenter__()
            except bex.NoRegionError as exc:
                raise ConnectionConfigError(
                    f'connection {config.label!r}: no AWS region: set extra region_name (e.g. "eu-west-1"), or '
                    "AWS_DEFAULT_REGION on every worker and triggerer"
                ) from exc
            pool.clients[key] = client
            pool.contexts[key] = context
            pool.created += 1
            _retire_old_generations(pool, config.endpoint_key(service), key, grace=config.call_timeout + 1.0)
    return client


def _retire_old_generations(pool: _LoopClients, endpoint: str, key: str, *, grace: float) -> None:
    """Close the clients of credentials older than the last few generations, after their calls could end."""
    keys = pool.generations.setdefault(endpoint, [])
    keys.append(key)
    while len(keys) > KEEP_GENERATIONS:
        old = keys.pop(0)
        pool.clients.pop(old, None)
        context = pool.contexts.pop(old, None)
        if context is not None:
            task = asyncio.get_running_loop().create_task(_close_later(context, grace))
            pool.closing.add(task)
            task.add_done_callback(pool.closing.discard)


async def _close_later(context: Any, delay: float) -> None:
    await asyncio.sleep(delay)
    with contextlib.suppress(Exception):
        await context.__aexit__(None, None, None)


async def close_aws_clients() -> None:
    """Close every AWS client of the running loop (worker teardown, tests; also run by ``close_all``)."""
    await _POOLS.close()


def clients_created() -> int:
    """How many clients the running loop has created (tests: sharing works)."""
    pool = _POOLS.peek()
    return pool.created if pool else 0


__all__ = ["aws_client", "clients_created", "close_aws_clients", "shared_loader"]
