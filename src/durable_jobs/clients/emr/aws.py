"""The base of the four EMR clients: one AWS service, one :class:`AwsConfig`, calls that cannot escape.

A call goes through the loop's pooled aiobotocore client (:mod:`~durable_jobs.clients.emr.aws_pool`),
its errors are classified (:mod:`~durable_jobs.clients.emr.aws_errors`) and its answer is checked against
a schema (:mod:`~durable_jobs.clients.emr.aws_decoding`). On top: retries within a budget, paginated
listings read page by page, grouped polling (one cluster or application per group), the poll of one
group (active jobs listed, recently ended ones looked for, the rest fetched by id) and console links.

Tokens: a job carries its token in its name (:func:`named`) and in a :data:`TOKEN_TAG` tag.

Clock: ``find`` windows (``ListSteps`` creation times, ``ListClusters CreatedAfter``, ``ListJobRuns
createdAtAfter``) start :data:`FIND_WINDOW` before the intent, widened further when AWS's clock (the
``Date`` header of its answers) is behind ours; a job is adopted only when it carries the token, so a wide
window cannot adopt another task's job.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import time
from collections.abc import Awaitable, Callable, Container, Hashable, Mapping, Sequence
from datetime import timezone
from typing import Any, ClassVar, TypeVar

from durable_jobs.clients.base import JobClient, Locator, locator_key
from durable_jobs.clients.emr.aws_config import AwsConfig
from durable_jobs.clients.emr.aws_decoding import page_schema
from durable_jobs.clients.emr.aws_errors import Throttled, classify, endpoint_wide
from durable_jobs.clients.emr.aws_pool import aws_client
from durable_jobs.decoding import convert
from durable_jobs.errors import AuthError, DurableJobError, MalformedAnswer
from durable_jobs.loop_local import LoopLocal
from durable_jobs.status import JobStatus
from durable_jobs.transport.retry import RetryPolicy

log = logging.getLogger(__name__)
SpecT = TypeVar("SpecT")
T = TypeVar("T")

TOKEN_TAG = "durable-jobs:token"
#: how far before the intent ``find`` looks: the crashed try's worker, this worker and AWS may disagree
FIND_WINDOW = 3600.0
#: AWS's clock behind ours widens the window by as much, up to this (a wrong ``Date`` only costs pages)
MAX_CLOCK_WIDENING = 7 * 86400.0
#: a listing longer than this many pages is not read further (unknown)
MAX_PAGES = 1000
#: names carry the token within AWS's 256 characters
MAX_NAME = 256


def named(name: str, token: str) -> str:
    """``"<name> [<token>]"``, within AWS's 256 characters."""
    suffix = f" [{token}]"
    return name[: MAX_NAME - len(suffix)] + suffix


class AwsJobClient(JobClient[SpecT]):
    """A JobClient talking to one AWS service with one :class:`AwsConfig`."""

    service: ClassVar[str]
    #: jobs of how many groups (clusters, applications) ``statuses`` lists at once
    group_concurrency: ClassVar[int] = 8
    #: requests of one client in flight at once. Each answer costs botocore ~2 ms of CPU (parse, events, the
    #: next request's signing), and answers that arrive together are handled in one turn of the event loop:
    #: a handful at a time keeps that turn far below 50 ms
    max_in_flight: ClassVar[int] = 6

    def __init__(self, config: AwsConfig) -> None:
        self.config = config
        # AWS's clock minus ours, from the Date header of the last answer (None until one was read)
        self.clock_offset: float | None = None
        self._limits = LoopLocal(lambda: asyncio.Semaphore(self.max_in_flight), name=f"{self.service} request limit")

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
        return self._limits.get()

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
        policy = RetryPolicy(attempts=None, budget=budget, backoff=self.config.backoff)
        return await policy.call(call, what=what, before_retry=before_retry, level=logging.WARNING)

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

    async def list_watched(
        self,
        read: Callable[[Mapping[str, Any], int | None], Awaitable[object]],
        wanted: Sequence[str],
        seen: Container[str],
        *,
        active: Mapping[str, Any],
        ended: Callable[[list[str]], Mapping[str, Any]],
        page_size: int,
        look_back_over: int,
    ) -> list[str]:
        """The watched ids of one group that a batched poll must still fetch by id.

        The one shape of every EMR poll: list the group's *active* jobs (``read(active, None)`` collects the
        watched ones into ``seen``); watched jobs it did not show have just ended, and when more than
        ``look_back_over`` did, a bounded look at the newest ended ones (``ended(missing)``: the listing's
        parameters; as many pages as they fill, plus one) is cheaper than asking each. What is still
        missing is returned, for the caller to fetch by id.
        """
        await read(active, None)
        missing = [i for i in wanted if i not in seen]
        if len(missing) > look_back_over:
            await read(ended(missing), math.ceil(len(missing) / page_size) + 1)
            missing = [i for i in missing if i not in seen]
        return missing

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
        once for all (as it does when nothing was learnt about any job).
        ``asked_directly(locs)`` is True for a group polled by its job's own request (not asked again).
        """
        groups: dict[str, list[Locator]] = {}
        for loc in locators:
            groups.setdefault(group_of(loc), []).append(loc)
        sem = asyncio.Semaphore(self.group_concurrency)
        out: dict[str, JobStatus] = {}
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
                    unknown = JobStatus.unknown_from(exc)
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
        return out

    def console_url(self, fragment: str, **fields: str) -> str:
        """The console page ``fragment``, its ``{region}`` and ``fields`` (ids the locator checked) filled in."""
        region = self.config.region_name or "us-east-1"
        return f"https://{self.config.console_domain()}/{fragment.format(region=region, **fields)}"

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


def join_uri(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)]) + "/"


__all__ = ["FIND_WINDOW", "MAX_CLOCK_WIDENING", "TOKEN_TAG", "AwsJobClient", "SpecT", "join_uri", "named"]
