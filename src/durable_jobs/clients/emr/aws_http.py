"""The HTTP policy at botocore's layer: no redirect, bounded bodies, a parse that cannot crash a caller.

AWS traffic goes through aiobotocore, not :func:`durable_jobs.transport.http.request` (SigV4 signing,
serialisation and the service models are botocore's). The rules of ``docs/bad-answers.md`` are applied
here instead, once for the four EMR clients:

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
  is expected. Every parser of these clients is wrapped (:class:`GuardedParserFactory`): any exception
  from the parse is :class:`~durable_jobs.errors.MalformedAnswer`; body numbers and booleans must have
  their JSON type, and timestamps are read by :func:`utc_timestamp`.
"""

from __future__ import annotations

import asyncio
import functools
from datetime import datetime, timezone
from typing import Any, ClassVar

import aiohttp
import botocore.parsers as bparsers  # type: ignore[import-untyped]
from aiobotocore.httpsession import AIOHTTPSession  # type: ignore[import-untyped]
from aiobotocore.parsers import PROTOCOL_PARSERS as AIO_PARSERS  # type: ignore[import-untyped]
from aiobotocore.parsers import AioResponseParserFactory  # type: ignore[import-untyped]
from botocore.utils import parse_timestamp  # type: ignore[import-untyped]

from durable_jobs.errors import AnswerTooLarge, MalformedAnswer, RedirectRefused
from durable_jobs.transport.http import DEFAULT_MAX_BODY

#: error bodies are cut here: only their code and a quote of their message are read
ERROR_BODY_LIMIT = 64 * 1024
#: answers larger than this are parsed by botocore in a worker thread
INLINE_PARSE_LIMIT = 256 * 1024


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


class GuardedParserFactory(AioResponseParserFactory):  # type: ignore[misc]
    """Makes botocore's parsers, each guarded (:class:`_GuardedParser`) and, for JSON, strict on scalars."""

    def create_parser(self, protocol_name: str) -> Any:
        sync_cls = _SYNC_PARSERS.get(protocol_name)
        if sync_cls is None:  # not a JSON protocol (STS speaks query/XML): botocore's parser, guarded
            return _GuardedParser(AIO_PARSERS[protocol_name](**self._defaults), None)
        inner = _strict(AIO_PARSERS[protocol_name])(**self._defaults)
        return _GuardedParser(inner, _strict(sync_cls)(**self._defaults))


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


__all__ = ["BoundedAIOHTTPSession", "GuardedParserFactory", "bounded_session_class", "utc_timestamp"]
