"""The client's requests that may be repeated, and the GET whose "not found" is trusted.

Why it exists: what is safe to repeat (a create, by its name; a GET; a DELETE with a uid precondition) is
repeated on a transient error only; a redirect or an answer that cannot be read is never repeated. And only the
apiserver's documented 404 (reason NotFound, naming the object asked for) means "no such object": any other
404 is an answer this client cannot read. Used by the client, the failure diagnosis and the lost evidence.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from durable_jobs.clients.kubernetes.errors import KubeApiError, is_not_found
from durable_jobs.clients.kubernetes.objects import Kind
from durable_jobs.clients.kubernetes.schemas import decode
from durable_jobs.errors import AnswerTooLarge, MalformedAnswer, RedirectRefused
from durable_jobs.transport.backoff import Backoff
from durable_jobs.transport.retry import RetryPolicy

if TYPE_CHECKING:
    from durable_jobs.clients.kubernetes.api import Connection

log = logging.getLogger(__name__)
T = TypeVar("T")
_RETRY = RetryPolicy(
    backoff=Backoff(base=0.5, cap=5.0, max_retry_after=10.0), never=(RedirectRefused, MalformedAnswer, AnswerTooLarge)
)


async def retry(call: Callable[[], Awaitable[T]], *, attempts: int, what: str) -> T:
    """``call()``, repeated on a transient error that may pass (not on a redirect or an answer that cannot be read)."""
    return await _RETRY.replace(attempts=attempts).call(call, what=what)


async def get_object(
    conn: Connection, kind: Kind, namespace: str, name: str, schema: type[T], *, attempts: int = 2
) -> T | None:
    """The object decoded against ``schema``, or None on the apiserver's documented "not found"."""
    what = f"read {kind.name} {namespace}/{name}"
    try:
        reply = await retry(
            lambda: conn.call("GET", kind.item(namespace, name), what=what), attempts=attempts, what=what
        )
    except KubeApiError as exc:
        if is_not_found(exc, name):
            return None
        if exc.status == 404 and exc.reason == "NotFound" and not exc.details.name:
            # a 404 that names no object: the apiserver does not serve this resource at all
            raise KubeApiError(
                f"{exc} (the apiserver does not serve {kind.api_version} {kind.plural}: is its CRD installed?)",
                status=404,
                reason="NotFound",
            ) from exc
        if exc.status == 404:
            raise MalformedAnswer(f"{exc} (a 404 that is not about {name}: not taken for its absence)") from exc
        raise
    return decode(reply.body, schema, what=what)
