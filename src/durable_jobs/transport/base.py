"""The transport seam: one method between the clients' HTTP API and the network (as in httpx).

Every HTTP client of this library (Spark, YARN, Kubernetes, and whatever comes next) sends through
:func:`durable_jobs.transport.http.request`, which applies the policy of ``docs/bad-answers.md`` once
(redirects, size limits, redaction) and then hands a :class:`Request` to a :class:`Transport`. The
transport only moves bytes: it never follows a redirect, never retries and never interprets a status. The
default one is pooled aiohttp (:mod:`durable_jobs.transport.default`); tests swap in
:class:`durable_jobs.testing.transport.MockTransport`, a function from request to response, and need no
sockets.

An :class:`Auth` decorates requests (bearer token, Hadoop ``user.name``, SPNEGO) and may send more than
one per call (a ``Negotiate`` round trip); it sees only the transport's ``send``, not the network.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from multidict import CIMultiDict, CIMultiDictProxy

from durable_jobs.messages import SNIPPET_LIMIT, snippet

if TYPE_CHECKING:
    from durable_jobs.transport.http import Endpoint

Headers = CIMultiDict[str] | CIMultiDictProxy[str]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request, fully resolved: what a transport needs and nothing it must decide."""

    method: str
    url: str  # absolute, without the query
    endpoint: Endpoint  # TLS settings, pool, limits of the host the URL points at
    params: Sequence[tuple[str, str]] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    timeout: float = 30.0  # total, seconds (ignored for streams, which use read_timeout per read)
    read_timeout: float | None = None  # streams: longest silence between two reads
    stream: bool = False  # the caller reads the body (a watch); otherwise the transport reads it whole
    what: str = "request"

    def with_headers(self, extra: Mapping[str, str]) -> Request:
        return replace(self, headers={**self.headers, **extra})

    def with_params(self, extra: Sequence[tuple[str, str]]) -> Request:
        return replace(self, params=(*self.params, *extra))

    @property
    def secrets(self) -> tuple[str, ...]:
        """Header values of this request that must never appear in an error snippet (each cookie's value too)."""
        out: list[str] = []
        for k, v in self.headers.items():
            name = k.lower()
            if name in ("authorization", "proxy-authorization", "x-amz-security-token"):
                out.append(v.split(" ", 1)[-1])
            elif name == "cookie":
                out.append(v)
                out.extend(part.split("=", 1)[1].strip() for part in v.split(";") if "=" in part)
        return tuple(out)


class ByteStream(Protocol):
    """The body of a streamed response, read by the caller."""

    async def readline(self, limit: int) -> bytes:
        """The next line (with its newline), b"" at the end; longer than ``limit`` raises AnswerTooLarge."""

    async def close(self) -> None: ...


TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(slots=True)
class Response:
    """A status, headers and a body read whole (bounded by the endpoint's ``max_body``), or a stream.

    The helpers below are the only way clients look at an answer: errors quote it through
    :meth:`snippet`, which is cut and redacted (the request's own credentials included).
    """

    status: int
    headers: Headers | Mapping[str, str]
    body: bytes
    url: str
    request: Request | None = None
    stream: ByteStream | None = None
    secrets: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def is_json(self) -> bool:
        return "json" in str(self.headers.get("Content-Type", "")).lower()

    def looks_like_json(self) -> bool:
        """The server says JSON, or the body starts like JSON (some servers send text/plain)."""
        return self.is_json or self.body.lstrip()[:1] in (b"{", b"[")

    def decode(self, schema: type[T], *, what: str) -> T:
        """The body checked against ``schema`` (:func:`durable_jobs.decoding.decode_json`)."""
        from durable_jobs.decoding import decode_json

        return decode_json(self.body, schema, what=f"{what} (HTTP {self.status} from {self.url})")

    def json(self) -> Any:
        """The body as untyped JSON, or None when it is not JSON. Prefer :meth:`decode`."""
        if not self.looks_like_json():
            return None
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            return None

    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("Retry-After"))

    def snippet(self, limit: int = SNIPPET_LIMIT) -> str:
        secrets = self.secrets or (self.request.secrets if self.request is not None else ())
        return snippet(self.body[: limit * 8].decode("utf-8", "replace"), limit, secrets)

    def raise_for_transient(self, what: str) -> None:
        """Raise :class:`TransientError` for statuses worth retrying (and for a redirect we did not follow)."""
        from durable_jobs.errors import TransientError

        if self.status in TRANSIENT_STATUSES or 300 <= self.status < 400:
            raise TransientError(
                f"{what}: HTTP {self.status} from {self.url}: {self.snippet()}",
                retry_after=self.retry_after(),
                status=self.status,
            )

    def raise_for_status(self, what: str) -> None:
        from durable_jobs.errors import AuthError, PermanentError

        self.raise_for_transient(what)
        if self.status in (401, 403):
            raise AuthError(f"{what}: HTTP {self.status} from {self.url}: {self.snippet()}", status=self.status)
        if self.status >= 400:
            raise PermanentError(f"{what}: HTTP {self.status} from {self.url}: {self.snippet()}", status=self.status)

    async def lines(self, limit: int) -> AsyncIterator[bytes]:
        """Non-empty lines of a streamed body (a watch), each at most ``limit`` bytes."""
        if self.stream is None:
            for line in self.body.splitlines(keepends=True):
                if len(line) > limit:
                    from durable_jobs.errors import AnswerTooLarge

                    raise AnswerTooLarge(f"a line of {len(line)} bytes is longer than {limit}")
                if line.strip():
                    yield line
            return
        while True:
            line = await self.stream.readline(limit)
            if not line:
                return
            if line.strip():
                yield line

    async def aclose(self) -> None:
        if self.stream is not None:
            stream, self.stream = self.stream, None
            await stream.close()


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = str(value).strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Transport(ABC):
    """Sends one :class:`Request` and returns its :class:`Response`. Nothing else."""

    @abstractmethod
    async def handle(self, request: Request) -> Response:
        """Send ``request``. Raise :class:`~durable_jobs.errors.TransientError` when no answer came
        (``connect_failed`` when it surely never left), :class:`~durable_jobs.errors.AnswerTooLarge` when
        the body exceeds ``request.endpoint.max_body``. Never follow a redirect."""

    async def aclose_loop(self) -> None:  # noqa: B027 - optional: most transports pool nothing
        """Close what belongs to the running event loop (pooled sessions)."""

    def sessions(self) -> int:
        """Open pooled sessions on the running loop (0 when the transport pools none)."""
        return 0


Send = Callable[[Request], Awaitable[Response]]


class Auth(ABC):
    """How requests are authenticated. ``identity`` separates pools and cookies of different principals."""

    identity: str = ""

    @abstractmethod
    async def flow(self, request: Request, send: Send) -> Response:
        """Send ``request`` (decorated) through ``send``; may send several (a challenge round trip)."""

    def secrets(self) -> tuple[str, ...]:
        """Values this auth puts on the wire that must be redacted from error snippets."""
        return ()


class NoAuth(Auth):
    async def flow(self, request: Request, send: Send) -> Response:
        return await send(request)


NO_AUTH = NoAuth()


def make_headers(items: Mapping[str, str] | Sequence[tuple[str, str]] | None = None) -> CIMultiDict[str]:
    return CIMultiDict(items or {})


def header_values(headers: Mapping[str, Any], name: str) -> list[str]:
    """Every value of a header (``WWW-Authenticate`` and ``Set-Cookie`` may repeat)."""
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return [str(v) for v in getall(name, [])]
    return [str(v) for k, v in headers.items() if k.lower() == name.lower()]
