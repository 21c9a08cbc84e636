"""AWS plumbing shared by the EMR clients: one aiobotocore client per endpoint and credentials, and error classes.

Why it exists: the amazon provider's triggers build an aiobotocore client per trigger (and each session its
own botocore JSON loader, ~8 MB per trigger, apache/airflow#40658). Here, per event loop, there is one
:class:`~aiobotocore.session.AioSession` per credentials and one client per (service, region, endpoint,
credentials), kept open in an :class:`~contextlib.AsyncExitStack` until the loop is torn down
(:func:`close_aws_clients`, also run by :func:`durable_jobs.transport.http.close_sessions`). Every session
shares one :class:`botocore.loaders.Loader`, so service models are parsed once per process.

Errors: botocore's own retries are off (``total_max_attempts=1``), because a throttled ``AddJobFlowSteps``
or ``RunJobFlow`` may have been applied anyway (aws/aws-sdk-ruby#825) and must be looked up by token before
it is sent again. Instead every error is classified once, here: throttling, 5xx and connection failures
are :class:`TransientError` (retried with jittered backoff within a time budget, never failing a task);
refused credentials are :class:`AuthError` and invalid requests :class:`PermanentError`, both with a
message that names the call and the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar, TypeVar

import aiohttp
import botocore.exceptions as bex  # type: ignore[import-untyped]
from aiobotocore.config import AioConfig  # type: ignore[import-untyped]
from aiobotocore.credentials import AioAssumeRoleCredentialFetcher, AioDeferredRefreshableCredentials  # type: ignore[import-untyped]
from aiobotocore.session import AioSession  # type: ignore[import-untyped]
from botocore.loaders import Loader, create_loader  # type: ignore[import-untyped]
from botocore.utils import parse_timestamp  # type: ignore[import-untyped]

from durable_jobs.clients.base import JobClient, Locator, locator_key
from durable_jobs.errors import AuthError, PermanentError, TransientError
from durable_jobs.status import JobState, JobStatus
from durable_jobs.transport.backoff import Backoff
from durable_jobs.transport.http import on_close_sessions

log = logging.getLogger(__name__)
SpecT = TypeVar("SpecT")
T = TypeVar("T")

TOKEN_TAG = "durable-jobs:token"
# botocore's standard retry mode: the union of the codes AWS services use for throttling
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
UNAVAILABLE_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServerException",
    }
)
AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AuthFailure",
        "ExpiredToken",
        "ExpiredTokenException",
        "IncompleteSignature",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "MissingAuthenticationToken",
        "NotAuthorized",
        "SignatureDoesNotMatch",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
    }
)
NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "NotFoundException"})


# --- configuration --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AwsConfig:
    """Where and as whom to call AWS. Secrets are kept out of ``repr`` and of every key and log line.

    Field names follow the amazon provider's ``aws`` connection (login/password = key id/secret,
    extra ``region_name``, ``endpoint_url``, ``service_config``, ``aws_session_token``, ``role_arn``,
    ``assume_role_kwargs``, ``profile_name``, ``verify``, ``config_kwargs``).
    """

    region_name: str | None = None
    endpoint_url: str | None = None
    service_endpoints: Mapping[str, str] = field(default_factory=dict)  # service name -> endpoint URL
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = field(default=None, repr=False)
    aws_session_token: str | None = field(default=None, repr=False)
    profile_name: str | None = None
    role_arn: str | None = None
    assume_role_kwargs: Mapping[str, Any] = field(default_factory=dict)
    verify: bool | str = True  # False, or a CA bundle path; TLS is verified by default
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_pool_connections: int = 32
    botocore_config: Mapping[str, Any] = field(default_factory=dict)
    retry_budget: float = 300.0  # seconds a worker-side call keeps retrying transient errors
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    label: str = "aws"  # names the connection in messages

    def __post_init__(self) -> None:
        if bool(self.aws_access_key_id) != bool(self.aws_secret_access_key):
            raise ValueError(f"{self.label}: give both the access key id and the secret access key, or neither")
        for url in (self.endpoint_url, *self.service_endpoints.values()):
            if url and not url.startswith(("http://", "https://")):
                raise ValueError(f"{self.label}: endpoint URL must start with http:// or https://, got {url!r}")
        if self.retry_budget < 0 or self.backoff_base <= 0:
            raise ValueError(f"{self.label}: retry_budget must be >= 0 and backoff_base > 0")

    def endpoint_for(self, service: str) -> str | None:
        return self.service_endpoints.get(service) or self.endpoint_url

    def credentials_key(self) -> str:
        """Identifies the credentials without revealing them (a hash stands for the secrets)."""
        secret = hashlib.sha256(
            f"{self.aws_secret_access_key or ''}\x1f{self.aws_session_token or ''}".encode()
        ).hexdigest()[:16]
        return _stable_json(
            {
                "key_id": self.aws_access_key_id,
                "secret": secret if self.aws_secret_access_key else None,
                "profile": self.profile_name,
                "role": self.role_arn,
                "assume": dict(self.assume_role_kwargs),
                "sts": self.endpoint_for("sts"),
                "region": self.region_name,
                "verify": self.verify,
            }
        )

    def client_key(self, service: str) -> str:
        return _stable_json(
            {
                "service": service,
                "region": self.region_name,
                "endpoint": self.endpoint_for(service),
                "credentials": self.credentials_key(),
                "verify": self.verify,
                "timeouts": [self.connect_timeout, self.read_timeout, self.max_pool_connections],
                "botocore": dict(self.botocore_config),
            }
        )

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


# --- the shared loader and the per-loop client pool ---------------------------------------------------

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
        self.stack = contextlib.AsyncExitStack()
        self.sessions: dict[str, AioSession] = {}
        self.clients: dict[str, Any] = {}
        self.lock = asyncio.Lock()
        self.created = 0


_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] = weakref.WeakKeyDictionary()


def utc_timestamp(value: Any) -> datetime:
    """botocore's timestamp parser for its response parsers, without most of its cost.

    botocore turns every epoch number into a datetime in dateutil's ``tzlocal()`` (about 45 µs each in
    pure Python; a ``ListSteps`` page of 50 steps carries up to 150 of them). The same instant as an aware
    UTC datetime costs a fraction of that; anything but a plain number goes to botocore's own parser.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, timezone.utc)
        except (OverflowError, OSError, ValueError):
            pass
    parsed: datetime = parse_timestamp(value)
    return parsed


def _new_session(config: AwsConfig) -> AioSession:
    session = AioSession(profile=config.profile_name)
    session.register_component("data_loader", shared_loader())
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=utc_timestamp)
    return session


def _client_config(config: AwsConfig) -> AioConfig:
    options: dict[str, Any] = {
        "connect_timeout": config.connect_timeout,
        "read_timeout": config.read_timeout,
        "max_pool_connections": config.max_pool_connections,
        "user_agent_extra": "airflow-durable-jobs",
        **dict(config.botocore_config),
    }
    # our retry policy, always: botocore must not resend a call that may have been applied
    options["retries"] = {"total_max_attempts": 1}
    return AioConfig(**options)


def _verify(config: AwsConfig) -> bool | str | None:
    return None if config.verify is True else config.verify  # None: botocore's default, which verifies


async def _session_for(pool: _LoopClients, config: AwsConfig) -> AioSession:
    key = config.credentials_key()
    session = pool.sessions.get(key)
    if session is not None:
        return session
    session = _new_session(config)
    if config.role_arn:
        source = _new_session(config)
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
    loop = asyncio.get_running_loop()
    pool = _POOLS.get(loop)
    if pool is None:
        pool = _POOLS[loop] = _LoopClients()
    key = config.client_key(service)
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
            try:
                client = await pool.stack.enter_async_context(
                    session.create_client(
                        service,
                        region_name=config.region_name,
                        endpoint_url=config.endpoint_for(service),
                        verify=_verify(config),
                        config=_client_config(config),
                        **keys,
                    )
                )
            except bex.NoRegionError as exc:
                raise PermanentError(
                    f"{config.label}: no AWS region: set region_name in the connection's extra"
                ) from exc
            pool.clients[key] = client
            pool.created += 1
    return client


async def close_aws_clients() -> None:
    """Close every AWS client of the running loop (worker teardown, tests)."""
    pool = _POOLS.pop(asyncio.get_running_loop(), None)
    if pool is not None:
        await pool.stack.aclose()


def clients_created() -> int:
    """How many clients the running loop has created (tests: sharing works)."""
    pool = _POOLS.get(asyncio.get_running_loop())
    return pool.created if pool else 0


on_close_sessions(close_aws_clients)


# --- error classification ---------------------------------------------------------------------------


class AwsRequestError(PermanentError):
    """AWS refused the request itself (validation, not found, conflict); ``code`` is AWS's error code."""

    def __init__(self, message: str, *, code: str, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.code = code

    @property
    def not_found(self) -> bool:
        return self.code in NOT_FOUND_CODES


def classify(exc: BaseException, *, what: str, label: str) -> Exception:
    """The library's error for an exception raised by an aiobotocore call."""
    if isinstance(exc, bex.ClientError):
        err = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        code = str(err.get("Code", ""))
        status = int(meta.get("HTTPStatusCode") or 0) or None
        message = str(err.get("Message") or "").strip()
        detail = f"{code}: {message}" if message else code
        if code in THROTTLING_CODES or status == 429:
            headers = {str(k).lower(): v for k, v in (meta.get("HTTPHeaders") or {}).items()}
            return TransientError(
                f"{what}: throttled ({detail})", retry_after=_retry_after(headers.get("retry-after")), status=status
            )
        if code in UNAVAILABLE_CODES or (status is not None and status >= 500):
            return TransientError(f"{what}: AWS is unavailable (HTTP {status}, {_first_line(detail)})", status=status)
        if code in AUTH_CODES or status in (401, 403):
            return AuthError(
                f"{what}: the credentials of connection {label!r} were refused ({detail}). Check the IAM policy of "
                "the connection's identity (and the execution role's trust policy); retrying will not help.",
                status=status,
            )
        return AwsRequestError(f"{what}: {detail}", code=code, status=status)
    if isinstance(exc, bex.SSLError):
        return PermanentError(f"{what}: TLS verification failed ({exc}); check the connection's verify setting")
    if isinstance(exc, (bex.EndpointConnectionError, bex.ConnectTimeoutError, bex.ProxyConnectionError)):
        return TransientError(f"{what}: cannot connect ({exc})", connect_failed=True)
    if isinstance(exc, (bex.HTTPClientError, bex.ConnectionError, aiohttp.ClientError, asyncio.TimeoutError)):
        return TransientError(f"{what}: {type(exc).__name__} ({exc})")
    if isinstance(exc, (bex.NoCredentialsError, bex.PartialCredentialsError, bex.CredentialRetrievalError)):
        return AuthError(f"{what}: no usable AWS credentials for connection {label!r} ({exc})")
    if isinstance(exc, bex.ParamValidationError):
        return PermanentError(f"{what}: invalid request: {exc}")
    if isinstance(exc, bex.BotoCoreError):
        return PermanentError(f"{what}: {exc}")
    return TransientError(f"{what}: {type(exc).__name__} ({exc})")


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:300]


def _retry_after(value: Any) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


_BOTO_ERRORS = (bex.ClientError, bex.BotoCoreError, aiohttp.ClientError, asyncio.TimeoutError, OSError)


# --- the base of the EMR clients ----------------------------------------------------------------------


class AwsJobClient(JobClient[SpecT]):
    """A JobClient talking to one AWS service with one :class:`AwsConfig`."""

    service: ClassVar[str]
    #: jobs of how many groups (clusters, applications) ``statuses`` lists at once
    group_concurrency: ClassVar[int] = 8

    def __init__(self, config: AwsConfig, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.config = config
        self._sleep = sleep

    @property
    def key(self) -> Hashable:
        return self.config.client_key(self.service)

    async def client(self) -> Any:
        return await aws_client(self.config, self.service)

    async def call(self, operation: str, *, what: str, **params: Any) -> dict[str, Any]:
        """One call of ``operation`` (snake_case), its errors classified."""
        try:
            client = await self.client()  # may resolve credentials (default chain, assume-role): classified too
            result: dict[str, Any] = await getattr(client, operation)(**params)
        except _BOTO_ERRORS as exc:
            raise classify(exc, what=what, label=self.config.label) from exc
        return result

    async def retrying(
        self,
        call: Callable[[], Awaitable[T]],
        *,
        what: str,
        budget: float | None = None,
        before_retry: Callable[[], Awaitable[T | None]] | None = None,
    ) -> T:
        """Run ``call``; on transient errors back off and retry until ``budget`` seconds are spent.

        ``before_retry`` runs before each new attempt; a non-None answer is returned instead of retrying
        (a submit checks whether the failed attempt was applied after all).
        """
        budget = self.config.retry_budget if budget is None else budget
        deadline = time.monotonic() + budget
        backoff = self.config.backoff
        attempt = 0
        while True:
            try:
                if attempt and before_retry is not None:
                    done = await before_retry()
                    if done is not None:
                        return done
                return await call()
            except TransientError as exc:
                delay = backoff.delay(attempt, exc.retry_after)
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("%s failed transiently (%s); retry %d in %.1fs", what, exc, attempt + 1, delay)
                await self._sleep(delay)
                attempt += 1

    async def pages(
        self,
        operation: str,
        params: Mapping[str, Any],
        *,
        what: str,
        items: str,
        marker_in: str,
        marker_out: str | None = None,
        max_pages: int = 1000,
        limit_pages: int | None = None,
        stop: Callable[[list[dict[str, Any]]], bool] | None = None,
        budget: float | None = 0.0,
        keep: bool = True,
    ) -> list[dict[str, Any]]:
        """All items of a paginated list call (one request per page), stopping early when ``stop(page)``.

        ``limit_pages`` returns what the first pages gave (a bounded look); more than ``max_pages`` is an
        error. ``budget`` is passed to :meth:`retrying` for each page: 0 (the poller's choice) raises the
        first transient error at once, None uses the connection's retry budget. ``keep=False`` returns
        nothing: ``stop`` reads each page and the page is dropped (a poll of thousands of items keeps none).
        """
        out: list[dict[str, Any]] = []
        marker: str | None = None
        for n in range(max_pages):
            if limit_pages is not None and n >= limit_pages:
                return out
            page_params = dict(params)
            if marker:
                page_params[marker_in] = marker
            page = await self.retrying(
                lambda p=page_params: self.call(operation, what=what, **p),  # type: ignore[misc]
                what=what,
                budget=budget,
            )
            batch = list(page.get(items) or [])
            marker = page.get(marker_out or marker_in)
            if keep:
                out.extend(batch)
            done = stop(batch) if stop is not None else False  # always called: it may collect the page
            del page, batch  # not kept alive while the next page is fetched
            if not marker or done:
                return out
        raise PermanentError(f"{what}: more than {max_pages} pages; refusing to list further")

    async def statuses_by_group(
        self,
        locators: Sequence[Locator],
        group_of: Callable[[Locator], str],
        poll_group: Callable[[str, list[Locator]], Awaitable[dict[str, JobStatus]]],
    ) -> dict[str, JobStatus]:
        """Poll the jobs group by group (one cluster or application per group) with bounded concurrency.

        A group whose poll fails transiently gives its jobs an UNKNOWN status; when every group failed,
        the error is raised so that the poller backs off once for all of them.
        """
        groups: dict[str, list[Locator]] = {}
        for loc in locators:
            groups.setdefault(group_of(loc), []).append(loc)
        sem = asyncio.Semaphore(self.group_concurrency)
        failures: list[TransientError] = []

        async def one(group: str, locs: list[Locator]) -> dict[str, JobStatus]:
            async with sem:
                try:
                    return await poll_group(group, locs)
                except TransientError as exc:
                    failures.append(exc)
                    return {locator_key(loc): JobStatus.unknown(str(exc)) for loc in locs}

        out: dict[str, JobStatus] = {}
        for part in await asyncio.gather(*(one(g, locs) for g, locs in groups.items())):
            out.update(part)
        if groups and len(failures) == len(groups):
            raise failures[0]
        return out

    async def statuses_one_by_one(self, locators: Iterable[Locator]) -> dict[str, JobStatus]:
        """The base class's bounded-concurrency fallback, as a helper for follow-ups."""
        return await JobClient.statuses(self, list(locators))

    def console_url(self, fragment: str) -> str:
        region = self.config.region_name or "us-east-1"
        return f"https://{self.config.console_domain()}/{fragment.format(region=region)}"

    def s3_console_url(self, s3_uri: str) -> str | None:
        """The S3 console page of an ``s3://bucket/prefix/`` URI."""
        if not s3_uri.startswith(("s3://", "s3n://", "s3a://")):
            return None
        bucket, _, prefix = s3_uri.split("://", 1)[1].partition("/")
        region = self.config.region_name or "us-east-1"
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        return f"https://{self.config.console_domain()}/s3/buckets/{bucket}?region={region}&prefix={prefix}"


def state_of(mapping: Mapping[str, JobState], raw: str) -> JobState:
    """Unknown raw states never fail a job: they are UNKNOWN."""
    return mapping.get(raw, JobState.UNKNOWN)


def epoch(value: Any) -> float:
    """Seconds since the epoch of an AWS timestamp (botocore parses them to datetimes); 0 when absent."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def join_uri(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)]) + "/"


__all__ = [
    "TOKEN_TAG",
    "AwsConfig",
    "AwsJobClient",
    "AwsRequestError",
    "aws_client",
    "classify",
    "close_aws_clients",
    "epoch",
    "join_uri",
    "shared_loader",
    "state_of",
    "utc_timestamp",
]
