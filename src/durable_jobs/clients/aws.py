"""AWS plumbing shared by the EMR clients: one aiobotocore client per endpoint and credentials, the HTTP
policy applied at botocore's layer, typed answers, and the error classes.

AWS traffic goes through aiobotocore, not :func:`durable_jobs.transport.http.request` (SigV4 signing,
serialisation and the service models are botocore's). The policy of the design's §4 is applied here
instead, once for the four EMR clients:

* **no redirect is followed.** aiobotocore sends through ``aiohttp.ClientSession.request`` with aiohttp's
  default ``allow_redirects=True``: a ``307`` from a proxy or a hostile endpoint made aiohttp re-POST the
  signed body (with ``X-Amz-Security-Token``) to the other host and botocore accepted that host's answer
  as AWS's (checked: ``DescribeStep`` answered ``COMPLETED`` by the redirect target). botocore's own
  redirect handling exists for S3 only. Here every client is created with ``AioConfig(http_session_cls=
  ...)``, a subclass of aiobotocore's ``AIOHTTPSession`` (:class:`BoundedAIOHTTPSession`) whose requests
  go out with ``allow_redirects=False``; any ``3xx`` raises :class:`~durable_jobs.errors.RedirectRefused`
  (transient, ``connect_failed``: the server did not act, nothing it said is believed). The JSON services
  (``emr``, ``emr-serverless``, ``emr-containers``) never redirect.
* **bodies are bounded.** The same session reads each body itself, in chunks, up to the connection's
  ``max_response_bytes`` (``Endpoint.max_body``'s default, 16 MiB): more raises
  :class:`~durable_jobs.errors.AnswerTooLarge` (unknown) before botocore sees a byte. Error bodies
  (status >= 300) are cut at 64 KiB instead (only their code matters). A body above 256 KiB is parsed by
  botocore in a worker thread, so a large answer never holds the event loop.
* **the parse cannot crash a caller.** botocore parses against the service model but lets wrong types
  through, or raises ``AttributeError``/``TypeError``/``RecursionError`` on a string where a structure
  is expected. Every parser of these clients is wrapped (:class:`_GuardedParser`): any exception from the
  parse is :class:`~durable_jobs.errors.MalformedAnswer`.
* **every answer is typed.** What the clients read is checked against ``msgspec`` schemas
  (:func:`durable_jobs.decoding.convert`, strict: ``"1"`` is not an int, ``null`` is not an object).
  Malformed means unknown: never lost, never failed, never a permanent error.
* **messages are redacted.** Error messages quote AWS's (or a proxy's) message; they go through
  :func:`durable_jobs.messages.redact` with the connection's access key id, secret key and session token
  as known secrets, on top of the generic patterns (``Authorization``, ``Credential=``, ``Signature=``,
  ``X-Amz-Security-Token``). The botocore exception is not chained (``from None``), so a traceback
  cannot print the unredacted original.

Sharing: per event loop, one :class:`~aiobotocore.session.AioSession` per credentials and one client per
(service, endpoint, credentials, options), closed with the loop (:func:`close_aws_clients`, also run by
:func:`durable_jobs.transport.http.close_sessions`); a rotated credential gets a new client and the two
generations before it are closed once their calls had time to end. Every session shares one
:class:`botocore.loaders.Loader` (service models are parsed once per process, in a worker thread).

Keys: a client's :attr:`~AwsJobClient.key` (its poller's identity) is the endpoint's identity (connection,
service, region, endpoint URL, profile and role *names*), never a credential or a hash of one: two clients
built from the same connection before and after a key rotation share one poller, which picks up the new
client (after an ``AuthError`` it refetches the connection once). Credentials only select the pooled
aiobotocore client, by an HMAC under a per-process random key.

Errors: botocore's own retries are off (``total_max_attempts=1``), because a throttled ``AddJobFlowSteps``
or ``RunJobFlow`` may have been applied anyway (aws/aws-sdk-ruby#825) and must be looked up by token before
it is sent again. Every error is classified once, here: throttling, 5xx, connection failures, timeouts,
redirects and unreadable answers are :class:`TransientError`; refused credentials (``ExpiredToken``,
``InvalidClientTokenId``, ``UnrecognizedClientException``, ``InvalidSignatureException``,
``SignatureDoesNotMatch``...) and denials are :class:`AwsAuthError`; an error answer without an AWS error
code (a proxy's page) is malformed; only AWS's own coded refusals are :class:`AwsRequestError`.

Clock: ``find`` windows (``ListSteps`` creation times, ``ListClusters CreatedAfter``, ``ListJobRuns
createdAtAfter``) start :data:`FIND_WINDOW` before the intent, widened further when AWS's clock (the
``Date`` header of its answers) is behind ours; a job is adopted only when it carries the token, so a wide
window cannot adopt another task's job.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import hashlib
import hmac
import json
import logging
import os
import re
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Annotated, Any, ClassVar, TypeVar

import aiohttp
import botocore.exceptions as bex  # type: ignore[import-untyped]
import botocore.parsers as bparsers  # type: ignore[import-untyped]
import msgspec
from aiobotocore.config import AioConfig  # type: ignore[import-untyped]
from aiobotocore.credentials import AioAssumeRoleCredentialFetcher, AioDeferredRefreshableCredentials  # type: ignore[import-untyped]
from aiobotocore.httpsession import AIOHTTPSession  # type: ignore[import-untyped]
from aiobotocore.parsers import PROTOCOL_PARSERS as AIO_PARSERS  # type: ignore[import-untyped]
from aiobotocore.parsers import AioResponseParserFactory  # type: ignore[import-untyped]
from aiobotocore.session import AioSession  # type: ignore[import-untyped]
from botocore.loaders import Loader, create_loader  # type: ignore[import-untyped]
from botocore.utils import parse_timestamp  # type: ignore[import-untyped]

from durable_jobs.clients.base import JobClient, Locator, locator_key
from durable_jobs.decoding import convert
from durable_jobs.errors import (
    AnswerTooLarge,
    AuthError,
    DurableJobError,
    MalformedAnswer,
    PermanentError,
    RedirectRefused,
    TransientError,
)
from durable_jobs.messages import redact, snippet
from durable_jobs.status import JobState, JobStatus
from durable_jobs.transport.backoff import Backoff
from durable_jobs.transport.http import DEFAULT_MAX_BODY, on_close_sessions

log = logging.getLogger(__name__)
SpecT = TypeVar("SpecT")
T = TypeVar("T")

TOKEN_TAG = "durable-jobs:token"
#: how far before the intent ``find`` looks: the crashed try's worker, this worker and AWS may disagree
FIND_WINDOW = 3600.0
#: AWS's clock behind ours widens the window by as much, up to this (a wrong ``Date`` only costs pages)
MAX_CLOCK_WIDENING = 7 * 86400.0
#: error bodies are cut here: only their code and a quote of their message are read
ERROR_BODY_LIMIT = 64 * 1024
#: answers larger than this are parsed by botocore in a worker thread
INLINE_PARSE_LIMIT = 256 * 1024
#: a list page longer than this is malformed (AWS pages hold at most 50 items)
PAGE_ITEMS_MAX = 1000
#: a listing longer than this many pages is not read further (unknown)
MAX_PAGES = 1000

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
#: the credentials themselves were refused: about the endpoint and every job on it (refetch, then "error")
CREDENTIAL_CODES = frozenset(
    {
        "AuthFailure",
        "ExpiredToken",
        "ExpiredTokenException",
        "IncompleteSignature",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "MissingAuthenticationToken",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
    }
)
#: the identity is known but not allowed this call (IAM): fails a worker call fast, isolated in a poll
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "NotAuthorized", "UnauthorizedOperation"})
AUTH_CODES = CREDENTIAL_CODES | DENIED_CODES
NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "NotFoundException"})
#: the codes under which EMR, EMR Serverless and EMR on EKS say an id does not exist
ABSENCE_CODES = frozenset({"InvalidRequestException", "ValidationException", *NOT_FOUND_CODES})
_ABSENCE_WORDS = re.compile(r"(?i)\b(not valid|not found|does not exist|doesn't exist|cannot be found|no such)\b")
_CODE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,99}$")

# credentials select pooled clients by an HMAC under this key: nothing derived from a secret outlives the process
_PROCESS_KEY = os.urandom(32)


# --- configuration --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AwsConfig:
    """Where and as whom to call AWS. Secrets are kept out of ``repr`` and of every key and log line.

    Field names follow the amazon provider's ``aws`` connection (login/password = key id/secret,
    extra ``region_name``, ``endpoint_url``, ``service_config``, ``aws_session_token``, ``role_arn``,
    ``assume_role_kwargs``, ``profile_name``, ``verify``, ``config_kwargs``, and ``max_response_bytes``).
    """

    region_name: str | None = None
    endpoint_url: str | None = None
    service_endpoints: Mapping[str, str] = field(default_factory=dict)  # service name -> endpoint URL
    aws_access_key_id: str | None = field(default=None, repr=False)
    aws_secret_access_key: str | None = field(default=None, repr=False)
    aws_session_token: str | None = field(default=None, repr=False)
    profile_name: str | None = None
    role_arn: str | None = None
    assume_role_kwargs: Mapping[str, Any] = field(default_factory=dict)
    verify: bool | str = True  # False, or a CA bundle path; TLS is verified by default
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_pool_connections: int = 32
    max_body: int = DEFAULT_MAX_BODY  # largest answer read, in bytes (extra ``max_response_bytes``)
    botocore_config: Mapping[str, Any] = field(default_factory=dict)
    retry_budget: float = 300.0  # seconds a worker-side call keeps retrying transient errors
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    label: str = "aws"  # names the connection in messages and tells connections apart

    def __post_init__(self) -> None:
        if bool(self.aws_access_key_id) != bool(self.aws_secret_access_key):
            raise ValueError(f"{self.label}: give both the access key id and the secret access key, or neither")
        for url in (self.endpoint_url, *self.service_endpoints.values()):
            if url and not url.startswith(("http://", "https://")):
                raise ValueError(f"{self.label}: endpoint URL must start with http:// or https://, got {url!r}")
        if self.retry_budget < 0 or self.backoff_base <= 0:
            raise ValueError(f"{self.label}: retry_budget must be >= 0 and backoff_base > 0")
        if self.max_body <= 0:
            raise ValueError(f"{self.label}: max_response_bytes must be positive")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ValueError(f"{self.label}: timeouts must be positive")

    def endpoint_for(self, service: str) -> str | None:
        return self.service_endpoints.get(service) or self.endpoint_url

    def secrets(self) -> tuple[str, ...]:
        """What no message may quote: the access key id, the secret access key, the session token."""
        return tuple(s for s in (self.aws_access_key_id, self.aws_secret_access_key, self.aws_session_token) if s)

    def client_key(self, service: str) -> str:
        """The endpoint's identity: the poller key. No credential, nor anything derived from one.

        Equal before and after a rotation of the connection's keys, different for another connection.
        """
        return _stable_json({"conn": self.label, "endpoint": self.endpoint_key(service)})

    def endpoint_key(self, service: str) -> str:
        """Where the calls go, whoever makes them (no connection name, no credential)."""
        return _stable_json(
            {
                "service": service,
                "region": self.region_name,
                "endpoint": self.endpoint_for(service),
                "profile": self.profile_name,
                "role": self.role_arn,
                "verify": self.verify,
            }
        )

    def credentials_key(self) -> str:
        """Selects the pooled session of these credentials (an HMAC under a per-process key, in memory only)."""
        mac = hmac.new(_PROCESS_KEY, digestmod=hashlib.sha256)
        for part in (self.aws_access_key_id, self.aws_secret_access_key, self.aws_session_token):
            mac.update((part or "").encode() + b"\x1f")
        return _stable_json(
            {
                "credentials": mac.hexdigest()[:32],
                "profile": self.profile_name,
                "role": self.role_arn,
                "assume": dict(self.assume_role_kwargs),
                "sts": self.endpoint_for("sts"),
                "region": self.region_name,
                "verify": self.verify,
            }
        )

    def pool_key(self, service: str) -> str:
        """Selects the pooled aiobotocore client: the endpoint, the credentials and the client options.

        Connections with the same endpoint, credentials and options share one client.
        """
        return _stable_json(
            {
                "endpoint": self.endpoint_key(service),
                "credentials": self.credentials_key(),
                "options": [self.connect_timeout, self.read_timeout, self.max_pool_connections, self.max_body],
                "botocore": dict(self.botocore_config),
            }
        )

    @property
    def call_timeout(self) -> float:
        """The longest one call may take, whatever the server trickles (aiohttp's read timeout is per read)."""
        return self.connect_timeout + 2 * self.read_timeout

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


# --- the HTTP policy at botocore's layer -----------------------------------------------------------------


class _ReadResponse:
    """An aiohttp response whose body was already read (bounded); aiobotocore reads it with ``read()``."""

    __slots__ = ("_body", "_response")

    def __init__(self, response: aiohttp.ClientResponse, body: bytes) -> None:
        self._response = response
        self._body = body

    async def read(self) -> bytes:
        return self._body

    def __getattr__(self, name: str) -> Any:
        return getattr(self._response, name)


class _PolicySession:
    """Wraps aiobotocore's ``aiohttp.ClientSession``: no redirect followed, bodies read bounded."""

    __slots__ = ("_max_body", "_session")

    def __init__(self, session: aiohttp.ClientSession, max_body: int) -> None:
        self._session = session
        self._max_body = max_body

    async def request(self, method: str, url: Any, **kwargs: Any) -> _ReadResponse:
        kwargs["allow_redirects"] = False
        response = await self._session.request(method, url, **kwargs)
        try:
            if 300 <= response.status < 400:
                location = response.headers.get("Location", "")
                raise RedirectRefused(
                    f"{response.url.host} answered HTTP {response.status} (a redirect to {location[:200] or '?'}) to "
                    f"{method}; AWS APIs do not redirect, so it was not followed and nothing it said is believed",
                    status=response.status,
                    location=location,
                )
            if response.status >= 300:
                body = await _read_bounded(response, min(self._max_body, ERROR_BODY_LIMIT), cut=True)
            else:
                body = await _read_bounded(response, self._max_body, cut=False)
        except BaseException:
            response.close()
            raise
        return _ReadResponse(response, body)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


async def _read_bounded(response: aiohttp.ClientResponse, limit: int, *, cut: bool) -> bytes:
    """The body, at most ``limit`` bytes: beyond it, cut (``cut``) or :class:`AnswerTooLarge`."""
    declared = response.content_length
    if declared is not None and declared > limit and not cut:
        raise AnswerTooLarge(_too_large(declared, limit))
    buf = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        buf += chunk
        if len(buf) > limit:
            if cut:
                response.close()
                return bytes(buf[:limit])
            raise AnswerTooLarge(_too_large(len(buf), limit, more=True))
    return bytes(buf)


def _too_large(size: int, limit: int, *, more: bool = False) -> str:
    return (
        f"the answer is {'more than ' if more else ''}{size} bytes, above the connection's limit of {limit} "
        "(raise extra max_response_bytes if AWS really answers that much)"
    )


class BoundedAIOHTTPSession(AIOHTTPSession):  # type: ignore[misc]
    """aiobotocore's HTTP session with the library's policy: no redirect, bounded bodies."""

    max_body: ClassVar[int] = DEFAULT_MAX_BODY

    async def _get_session(self, proxy_url: str | None) -> Any:
        return _PolicySession(await super()._get_session(proxy_url), self.max_body)


@functools.lru_cache(maxsize=64)
def bounded_session_class(max_body: int) -> type[BoundedAIOHTTPSession]:
    """A session class for ``AioConfig(http_session_cls=...)`` (a class, so the limit is a class attribute)."""
    return type(f"BoundedAIOHTTPSession{max_body}", (BoundedAIOHTTPSession,), {"max_body": max_body})


class _GuardedParser:
    """botocore's parser for one protocol: any exception is malformed; large bodies parse in a thread."""

    def __init__(self, inner: Any, sync: Any) -> None:
        self._inner = inner
        self._sync = sync

    async def parse(self, response: dict[str, Any], shape: Any) -> Any:
        try:
            body = response.get("body")
            if self._sync is not None and isinstance(body, (bytes, bytearray)) and len(body) > INLINE_PARSE_LIMIT:
                return await asyncio.to_thread(self._sync.parse, response, shape)
            return await self._inner.parse(response, shape)
        except (Exception, RecursionError) as exc:
            raise MalformedAnswer(f"the answer could not be parsed ({type(exc).__name__}: {exc})") from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


_SYNC_PARSERS: dict[str, Any] = {"json": bparsers.JSONParser, "rest-json": bparsers.RestJSONParser}


class _StrictScalars:
    """Number and boolean members of a JSON body must be JSON numbers and booleans.

    botocore's REST-JSON parser converts them with ``int()``/``float()``/``ensure_boolean`` (meant for
    header values), so ``"attempt": "2"`` or ``true`` would be read as an int. Header members keep botocore's
    conversion; body members of the wrong type make the answer malformed.
    """

    def _handle_integer(self, shape: Any, value: Any) -> Any:
        if _in_header(shape):
            return super()._handle_integer(shape, value)  # type: ignore[misc]
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{shape.name}: expected an integer, got {type(value).__name__}")
        return value

    _handle_long = _handle_integer

    def _handle_float(self, shape: Any, value: Any) -> Any:
        if _in_header(shape):
            return super()._handle_float(shape, value)  # type: ignore[misc]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{shape.name}: expected a number, got {type(value).__name__}")
        return value

    _handle_double = _handle_float

    def _handle_boolean(self, shape: Any, value: Any) -> Any:
        if _in_header(shape):
            return super()._handle_boolean(shape, value)  # type: ignore[misc]
        if not isinstance(value, bool):
            raise TypeError(f"{shape.name}: expected a boolean, got {type(value).__name__}")
        return value


def _in_header(shape: Any) -> bool:
    return getattr(shape, "serialization", {}).get("location") in ("header", "headers", "statusCode")


@functools.lru_cache(maxsize=16)
def _strict(parser_cls: type[Any]) -> type[Any]:
    return type(f"Strict{parser_cls.__name__}", (_StrictScalars, parser_cls), {})


class _GuardedParserFactory(AioResponseParserFactory):  # type: ignore[misc]
    def create_parser(self, protocol_name: str) -> Any:
        sync_cls = _SYNC_PARSERS.get(protocol_name)
        if sync_cls is None:  # not a JSON protocol (STS speaks query/XML): botocore's parser, guarded
            return _GuardedParser(AIO_PARSERS[protocol_name](**self._defaults), None)
        inner = _strict(AIO_PARSERS[protocol_name])(**self._defaults)
        return _GuardedParser(inner, _strict(sync_cls)(**self._defaults))


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
        self.sessions: dict[str, AioSession] = {}
        self.clients: dict[str, Any] = {}
        self.contexts: dict[str, Any] = {}  # pool key -> the client's async context manager
        self.generations: dict[str, list[str]] = {}  # endpoint key -> pool keys, oldest first
        self.closing: set[asyncio.Task[None]] = set()
        self.lock = asyncio.Lock()
        self.created = 0


_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] = weakref.WeakKeyDictionary()
#: credential generations of one endpoint kept open (a rotation's old client still serves calls in flight)
KEEP_GENERATIONS = 3


def utc_timestamp(value: Any) -> datetime:
    """botocore's timestamp parser for its response parsers: stricter, and without most of its cost.

    botocore turns every epoch number into a datetime in dateutil's ``tzlocal()`` (about 45 µs each in
    pure Python; a ``ListSteps`` page of 50 steps carries up to 150 of them). The same instant as an aware
    UTC datetime costs a fraction of that; a string goes to botocore's own parser. Anything else (``true``,
    an object) is refused instead of read as a time (botocore reads ``true`` as one second after 1970,
    which would make a fresh job look older than any ``find`` window): the answer is malformed.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"a timestamp must be a number or a string, not {type(value).__name__}")
    if not isinstance(value, str):
        try:
            return datetime.fromtimestamp(value, timezone.utc)
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError(f"timestamp {value!r} is out of range") from exc
    parsed: datetime = parse_timestamp(value)
    return parsed


def _new_session(config: AwsConfig) -> AioSession:
    session = AioSession(profile=config.profile_name)
    session.register_component("data_loader", shared_loader())
    factory = _GuardedParserFactory()
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
    loop = asyncio.get_running_loop()
    pool = _POOLS.get(loop)
    if pool is None:
        pool = _POOLS[loop] = _LoopClients()
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
                raise PermanentError(
                    f"{config.label}: no AWS region: set region_name in the connection's extra"
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
    """Close every AWS client of the running loop (worker teardown, tests)."""
    pool = _POOLS.pop(asyncio.get_running_loop(), None)
    if pool is None:
        return
    for task in list(pool.closing):
        task.cancel()
    for context in pool.contexts.values():
        with contextlib.suppress(Exception):
            await context.__aexit__(None, None, None)
    if pool.closing:
        await asyncio.gather(*pool.closing, return_exceptions=True)


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

    def denies(self, *ids: str) -> bool:
        """AWS's documented answer that (one of) ``ids`` does not exist: a not-found code naming the id."""
        text = str(self)
        return self.code in ABSENCE_CODES and bool(_ABSENCE_WORDS.search(text)) and any(i and i in text for i in ids)


class Throttled(TransientError):
    """AWS throttled the call: back off; asking job by job instead would only add to the load."""


class AwsAuthError(AuthError):
    """AWS refused the credentials (``code`` in :data:`CREDENTIAL_CODES`) or denied the call (IAM)."""

    def __init__(self, message: str, *, code: str, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.code = code

    @property
    def credentials_refused(self) -> bool:
        """About the credentials (every call of the connection fails), not about one resource."""
        return self.code in CREDENTIAL_CODES or self.code not in DENIED_CODES


def endpoint_wide(exc: BaseException) -> bool:
    """An error about the endpoint or our credentials (every job on it), not about one job or group."""
    if isinstance(exc, AwsAuthError):
        return exc.credentials_refused
    if isinstance(exc, AuthError):
        return True
    return isinstance(exc, TransientError) and exc.connect_failed and not isinstance(exc, RedirectRefused)


def classify(exc: BaseException, *, what: str, label: str, secrets: Sequence[str] = ()) -> Exception:
    """The library's error for an exception raised by an aiobotocore call, redacted."""
    inner = exc.kwargs.get("error") if isinstance(exc, bex.HTTPClientError) else None
    if isinstance(inner, DurableJobError):
        exc = inner  # our own session's refusal (redirect, size), wrapped by aiobotocore
    if isinstance(exc, DurableJobError):
        return _with_context(exc, what, secrets)
    if isinstance(exc, bex.ClientError):
        return _classify_answer(exc, what=what, label=label, secrets=secrets)
    text = redact(f"{exc}", secrets)
    if isinstance(exc, bex.SSLError):
        return PermanentError(f"{what}: TLS verification failed ({text}); check the connection's verify setting")
    if isinstance(exc, (bex.EndpointConnectionError, bex.ConnectTimeoutError, bex.ProxyConnectionError)):
        return TransientError(f"{what}: cannot connect ({text})", connect_failed=True)
    if isinstance(exc, (bex.HTTPClientError, bex.ConnectionError, aiohttp.ClientError, asyncio.TimeoutError)):
        return TransientError(f"{what}: {type(exc).__name__} ({text})")
    if isinstance(exc, (bex.NoCredentialsError, bex.PartialCredentialsError, bex.CredentialRetrievalError)):
        return AwsAuthError(f"{what}: no usable AWS credentials for connection {label!r} ({text})", code="")
    if isinstance(exc, bex.ParamValidationError):
        return PermanentError(f"{what}: invalid request: {text}")
    if isinstance(exc, bex.BotoCoreError):
        return PermanentError(f"{what}: {text}")
    # anything else came out of botocore's handling of the answer: it could not be read
    return MalformedAnswer(f"{what}: the answer could not be read ({type(exc).__name__}: {text})")


def _classify_answer(exc: Any, *, what: str, label: str, secrets: Sequence[str]) -> Exception:
    response: dict[str, Any] = exc.response if isinstance(exc.response, dict) else {}
    err = _dict(response.get("Error"))
    meta = _dict(response.get("ResponseMetadata"))
    raw_code = err.get("Code")
    code = raw_code if isinstance(raw_code, str) else ""
    raw_status = meta.get("HTTPStatusCode")
    status = raw_status if isinstance(raw_status, int) and not isinstance(raw_status, bool) else None
    raw_message = err.get("Message")
    message = snippet(raw_message, 500, secrets) if isinstance(raw_message, str) else ""
    if not _CODE_RE.match(code) or code.isdigit():
        code = ""  # botocore's stand-in (the status) for an answer without an AWS error code
    detail = f"{code}: {message}" if code and message else code or message or "no message"
    if code in THROTTLING_CODES or status == 429:
        headers = meta.get("HTTPHeaders")
        lowered = {str(k).lower(): v for k, v in headers.items()} if isinstance(headers, dict) else {}
        retry_after = _retry_after(lowered.get("retry-after"))
        return Throttled(f"{what}: throttled ({detail})", retry_after=retry_after, status=status)
    if code in UNAVAILABLE_CODES or (status is not None and status >= 500):
        return TransientError(f"{what}: AWS is unavailable (HTTP {status}, {detail})", status=status)
    if code in AUTH_CODES or status in (401, 403):
        return AwsAuthError(
            f"{what}: the credentials of connection {label!r} were refused ({detail}). Check the IAM policy of "
            "the connection's identity (and the execution role's trust policy); retrying will not help.",
            code=code,
            status=status,
        )
    if not code:
        # a proxy's or a broken endpoint's page, not an AWS refusal: proves nothing about the request
        return MalformedAnswer(f"{what}: HTTP {status} without an AWS error code ({message or 'empty body'})")
    return AwsRequestError(f"{what}: {detail}", code=code, status=status)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _with_context(exc: DurableJobError, what: str, secrets: Sequence[str]) -> DurableJobError:
    text = redact(str(exc), secrets)
    message = text if text.startswith(what) else f"{what}: {text}"
    if isinstance(exc, RedirectRefused):
        return RedirectRefused(message, status=exc.status or 0, location=redact(exc.location, secrets))
    if isinstance(exc, TransientError):
        out = type(exc)(message, retry_after=exc.retry_after, status=exc.status, connect_failed=exc.connect_failed)
        return out
    if isinstance(exc, (AwsAuthError, AwsRequestError)):
        return type(exc)(message, code=exc.code, status=exc.status)
    if isinstance(exc, PermanentError):
        return type(exc)(message, status=exc.status)
    return type(exc)(message)


def _retry_after(value: Any) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


# --- typed answers -----------------------------------------------------------------------------------


class Page(msgspec.Struct, frozen=True, gc=False):
    """One page of a list call: its raw items (each decoded on its own) and the next page's marker."""

    items: list[Any]
    marker: str | None = None


def page_schema(items: str, marker: str) -> type[Page]:
    """A :class:`Page` reading ``items`` and ``marker`` under the service's names."""
    return _page_schema(items, marker)


@functools.lru_cache(maxsize=16)
def _page_schema(items: str, marker: str) -> type[Page]:
    annotated = msgspec.Meta(max_length=PAGE_ITEMS_MAX)
    return msgspec.defstruct(  # type: ignore[return-value]
        f"Page_{items}",
        [("items", Annotated[list[Any], annotated]), ("marker", str | None, None)],
        bases=(Page,),
        rename={"items": items, "marker": marker},
        frozen=True,
        gc=False,
    )


def decode_item(item: Any, schema: type[T], *, what: str) -> T:
    """One listed item against ``schema`` (:class:`MalformedAnswer` when it does not fit)."""
    return convert(item, schema, what=what)


def item_field(item: Any, name: str) -> str | None:
    """A string field of a raw listed item, or None (not a dict, missing, or not a string)."""
    if isinstance(item, dict):
        value = item.get(name)
        if isinstance(value, str):
            return value
    return None


# --- the base of the EMR clients ----------------------------------------------------------------------


class AwsJobClient(JobClient[SpecT]):
    """A JobClient talking to one AWS service with one :class:`AwsConfig`."""

    service: ClassVar[str]
    #: jobs of how many groups (clusters, applications) ``statuses`` lists at once
    group_concurrency: ClassVar[int] = 8
    #: requests of one client in flight at once. Each answer costs botocore ~2 ms of CPU (parse, events, the
    #: next request's signing), and answers that arrive together are handled in one turn of the event loop:
    #: a handful at a time keeps that turn far below 50 ms
    max_in_flight: ClassVar[int] = 6

    def __init__(self, config: AwsConfig, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.config = config
        self._sleep = sleep
        # AWS's clock minus ours, from the Date header of the last answer (None until one was read)
        self.clock_offset: float | None = None
        self._limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._limits = weakref.WeakKeyDictionary()

    @property
    def key(self) -> Hashable:
        return self.config.client_key(self.service)

    @property
    def endpoint_name(self) -> str:
        endpoint = self.config.endpoint_for(self.service) or f"{self.service}.{self.config.region_name or '?'}"
        return f"{self.service} at {endpoint} (connection {self.config.label})"

    async def client(self) -> Any:
        return await aws_client(self.config, self.service)

    def _in_flight(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        sem = self._limits.get(loop)
        if sem is None:
            sem = self._limits[loop] = asyncio.Semaphore(self.max_in_flight)
        return sem

    async def _raw(self, operation: str, what: str, params: Mapping[str, Any]) -> Any:
        try:
            client = await self.client()  # may resolve credentials (default chain, assume-role): classified too
            async with self._in_flight():
                raw = await asyncio.wait_for(getattr(client, operation)(**params), self.config.call_timeout)
        except Exception as exc:  # every failure of the call is classified (RecursionError too): none escapes raw
            raise classify(exc, what=what, label=self.config.label, secrets=self.config.secrets()) from None
        if isinstance(raw, dict):
            self._note_clock(raw)
        return raw

    async def call(self, operation: str, *, what: str, schema: type[T], **params: Any) -> T:
        """One call of ``operation`` (snake_case): errors classified, the answer checked against ``schema``."""
        return convert(await self._raw(operation, what, params), schema, what=what)

    async def send(self, operation: str, *, what: str, **params: Any) -> None:
        """One call whose answer is not read (nothing in it is believed), errors classified."""
        await self._raw(operation, what, params)

    def _note_clock(self, raw: dict[str, Any]) -> None:
        meta = raw.get("ResponseMetadata")
        headers = meta.get("HTTPHeaders") if isinstance(meta, dict) else None
        date = headers.get("date") if isinstance(headers, dict) else None
        if not isinstance(date, str):
            return
        try:
            server = email.utils.parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError):
            return
        if server.tzinfo is None:
            server = server.replace(tzinfo=timezone.utc)
        self.clock_offset = server.timestamp() - _now()

    def find_cutoff(self, since: float) -> float:
        """Epoch seconds (AWS's clock) from which ``find`` looks: :data:`FIND_WINDOW` before the intent,
        more when AWS's clock is behind ours (never less: a wrong ``Date`` header only costs pages)."""
        behind = min(0.0, self.clock_offset or 0.0)
        return since - FIND_WINDOW + max(behind, -MAX_CLOCK_WIDENING)

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
        on_page: Callable[[list[Any]], bool],
        max_pages: int = MAX_PAGES,
        limit_pages: int | None = None,
        budget: float | None = 0.0,
    ) -> bool:
        """Read a paginated list call page by page into ``on_page`` (raw items); True when read to its end.

        ``on_page`` returns True to stop early (then the answer is True too). ``limit_pages`` stops after
        that many pages (a bounded look; False when more were left). A page that does not fit its schema,
        a marker that repeats, or more than ``max_pages`` pages raise :class:`MalformedAnswer`. ``budget``
        is passed to :meth:`retrying` for each page: 0 (the poller's choice) raises the first transient
        error at once, None uses the connection's retry budget. No page outlives its turn.
        """
        schema = page_schema(items, marker_out or marker_in)
        marker: str | None = None
        markers: set[str] = set()
        for n in range(max_pages):
            if limit_pages is not None and n >= limit_pages:
                return False
            page_params = dict(params)
            if marker:
                page_params[marker_in] = marker
            page = await self.retrying(
                lambda p=page_params: self.call(operation, what=what, schema=schema, **p),  # type: ignore[misc]
                what=what,
                budget=budget,
            )
            marker = page.marker
            done = on_page(page.items)
            del page
            if not marker or done:
                return True
            if marker in markers:
                raise MalformedAnswer(f"{what}: the listing repeats its page marker; not reading it further")
            markers.add(marker)
            await asyncio.sleep(0)  # a fast server must not keep the loop through every page
        raise MalformedAnswer(f"{what}: more than {max_pages} pages; not reading further")

    async def statuses_by_group(
        self,
        locators: Sequence[Locator],
        group_of: Callable[[Locator], str],
        poll_group: Callable[[str, list[Locator]], Awaitable[dict[str, JobStatus]]],
        *,
        asked_directly: Callable[[list[Locator]], bool] | None = None,
    ) -> dict[str, JobStatus]:
        """Poll the jobs group by group (one cluster or application per group) with bounded concurrency.

        A group whose poll fails (its listing answered an error, a malformed page, a denial for that
        group) gives its jobs UNKNOWN, and they are asked one by one within :meth:`fallback_statuses`'s
        bound (one budget for the whole poll, however many groups failed); other groups are untouched.
        Refused credentials, or the endpoint unreachable, raise at once: the poller refetches or backs off
        once for all. When every group failed and nothing was learnt, the first error is raised.
        ``asked_directly(locs)`` is True for a group polled by its job's own request (not asked again).
        """
        groups: dict[str, list[Locator]] = {}
        for loc in locators:
            groups.setdefault(group_of(loc), []).append(loc)
        sem = asyncio.Semaphore(self.group_concurrency)
        out: dict[str, JobStatus] = {}
        failures: list[BaseException] = []
        retry_one_by_one: list[Locator] = []

        async def one(group: str, locs: list[Locator]) -> None:
            async with sem:
                try:
                    out.update(await poll_group(group, locs))
                except Exception as exc:
                    if endpoint_wide(exc):
                        raise
                    if not isinstance(exc, DurableJobError):
                        log.warning("polling %s of %s failed unexpectedly", group, self.system, exc_info=True)
                    failures.append(exc)
                    unknown = JobStatus.unknown(f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc))
                    for loc in locs:
                        out[locator_key(loc)] = unknown
                    if not isinstance(exc, Throttled) and not (asked_directly is not None and asked_directly(locs)):
                        retry_one_by_one.extend(locs)

        results = await asyncio.gather(*(one(g, locs) for g, locs in groups.items()), return_exceptions=True)
        wide = [r for r in results if isinstance(r, BaseException)]
        if wide:
            raise next((r for r in wide if isinstance(r, AuthError)), wide[0])
        if retry_one_by_one:
            out.update(await self.fallback_statuses(retry_one_by_one))
        if groups and len(failures) == len(groups) and all(s.state is JobState.UNKNOWN for s in out.values()):
            raise failures[0]
        return out

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


def _now() -> float:
    """This worker's clock (tests skew it)."""
    return time.time()


def state_of(mapping: Mapping[str, JobState], raw: str) -> JobState:
    """Unknown raw states never fail a job: they are UNKNOWN."""
    return mapping.get(raw, JobState.UNKNOWN)


def unknown_state(raw: str, message: str) -> str:
    """The message of a state AWS does not document: unknown, never a failure."""
    said = f"state {raw!r} is not one this library knows; the job counts as unknown"
    return f"{said}: {message}" if message else said


def epoch(value: Any) -> float:
    """Seconds since the epoch of an AWS timestamp (botocore parses them to datetimes); 0 when absent."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return 0.0


def join_uri(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)]) + "/"


__all__ = [
    "TOKEN_TAG",
    "AwsAuthError",
    "AwsConfig",
    "AwsJobClient",
    "AwsRequestError",
    "BoundedAIOHTTPSession",
    "Page",
    "Throttled",
    "aws_client",
    "bounded_session_class",
    "classify",
    "close_aws_clients",
    "endpoint_wide",
    "epoch",
    "join_uri",
    "shared_loader",
    "state_of",
    "unknown_state",
    "utc_timestamp",
]
