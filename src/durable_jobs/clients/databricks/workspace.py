"""The workspace's Jobs API 2.2 calls, and what each of its answers means: the only place that knows them.

Kept apart from the job logic (:mod:`durable_jobs.clients.databricks.client`):

* errors are ``{"error_code", "message"}``. 5xx, 408/425/429 (``REQUEST_LIMIT_EXCEEDED``, with
  ``Retry-After``), ``TEMPORARILY_UNAVAILABLE`` and a redirect not followed are transient; 401/403 are an
  :class:`~durable_jobs.errors.AuthError`; another 4xx with the API's error body is permanent, and one
  without it (a proxy's page) is malformed, so unknown;
* the documented not-found of a run is HTTP 404 with ``RESOURCE_DOES_NOT_EXIST``: a 404 page from a proxy
  is not, and proves nothing;
* the same ``idempotency_token`` again answers the existing run's id; the token of a deleted run answers
  400 ``INVALID_PARAMETER_VALUE`` saying so (:class:`TokenOfDeletedRun`);
* ``runs/list`` is paginated by ``page_token``, at most 24 runs a page on 2.2: :meth:`Workspace.walk` reads
  at most :data:`MAX_PAGES` pages, stops early once it has seen what it looks for, and refuses a page token
  that repeats.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from durable_jobs.clients.databricks.answers import (
    ErrorAnswer,
    JobsPage,
    Run,
    RunsListing,
    Submitted,
    decode_run,
    decode_runs_page,
    error_of,
)
from durable_jobs.clients.databricks.specs import API, validate_run_id
from durable_jobs.clients.paging import walk_pages
from durable_jobs.errors import (
    AnswerTooLarge,
    AuthError,
    DurableJobError,
    MalformedAnswer,
    PermanentError,
    RedirectRefused,
    TransientError,
)
from durable_jobs.messages import snippet
from durable_jobs.transport.base import TRANSIENT_STATUSES, Auth, Response
from durable_jobs.transport.http import DEFAULT_MAX_BODY, Endpoint, request
from durable_jobs.transport.retry import RetryPolicy

T = TypeVar("T")

#: the most runs a runs/list page holds on the Jobs API 2.2
LIST_LIMIT_MAX = 24
#: pages of one runs/list walk, at most (24 runs each on 2.2)
MAX_PAGES = 200
#: pages of one jobs/list?name= lookup, at most
MAX_JOB_PAGES = 20
#: error codes that say "later", whatever the HTTP status that carries them
TRANSIENT_CODES = frozenset({"REQUEST_LIMIT_EXCEEDED", "TEMPORARILY_UNAVAILABLE"})
#: requests other than the poll's are repeated on transient errors; a redirect or an oversized answer is not
RETRY = RetryPolicy(never=(RedirectRefused, AnswerTooLarge))
_DELETED_RE = re.compile(r"\bdeleted\b", re.IGNORECASE)


class TokenOfDeletedRun(PermanentError):
    """The idempotency token's run was deleted: Databricks refuses the token for good."""


def failure(resp: Response, what: str) -> DurableJobError:
    """The error an answer that is not a success means (see the module's docstring)."""
    err = error_of(resp.body)
    status = resp.status
    head = f"{what}: HTTP {status} from {resp.url}"
    if (
        status >= 500
        or status in TRANSIENT_STATUSES
        or 300 <= status < 400
        or (err and err.error_code in TRANSIENT_CODES)
    ):
        said = f"{err.error_code}: {snippet(err.message, 300, resp.secrets)}" if err else resp.snippet()
        return TransientError(f"{head}: {said}", retry_after=resp.retry_after(), status=status)
    if status in (401, 403):
        return AuthError(f"{head}: {resp.snippet()}", status=status)
    if err is None:
        return MalformedAnswer(f"{head} is not an answer of the Jobs API: {resp.snippet()}")
    return PermanentError(f"{head}: {err.error_code}: {snippet(err.message, 1000, resp.secrets)}", status=status)


def is_not_found(resp: Response) -> bool:
    """The documented "no such resource": 404 with ``RESOURCE_DOES_NOT_EXIST`` (a proxy's 404 is not)."""
    if resp.status != 404:
        return False
    err = error_of(resp.body)
    return err is not None and err.error_code == "RESOURCE_DOES_NOT_EXIST"


def _deleted_token(err: ErrorAnswer | None, token: str) -> bool:
    """The documented "token of a deleted run" answer (400 ``INVALID_PARAMETER_VALUE`` saying so)."""
    if err is None or err.error_code != "INVALID_PARAMETER_VALUE" or not _DELETED_RE.search(err.message):
        return False
    return "idempotency" in err.message.lower() or token in err.message


class Workspace:
    """One workspace's Jobs API over the shared transport; ``list_limit`` runs per ``runs/list`` page."""

    def __init__(
        self,
        host: str,
        *,
        auth: Auth,
        timeout: float = 30.0,
        verify_ssl: bool = True,
        ca_file: str | None = None,
        max_response_bytes: int | None = None,
        list_limit: int = LIST_LIMIT_MAX,
    ) -> None:
        if type(list_limit) is not int or not 1 <= list_limit <= LIST_LIMIT_MAX:
            raise ValueError(f"list_limit must be an integer from 1 to {LIST_LIMIT_MAX} (the Jobs API 2.2 maximum)")
        self.auth = auth
        self.list_limit = list_limit
        self.endpoint = Endpoint(
            host,
            verify_ssl=verify_ssl,
            ca_file=ca_file,
            timeout=timeout,
            identity=auth.identity,
            max_body=max_response_bytes or DEFAULT_MAX_BODY,
        )

    async def call(
        self, method: str, path: str, *, what: str, params: Mapping[str, str] | None = None, body: Any = None
    ) -> Response:
        return await request(
            self.endpoint, method, f"{API}/{path}", json_body=body, params=params, what=what, auth=self.auth
        )

    async def post_run(self, path: str, body: Mapping[str, Any], token: str) -> int:
        """POST ``runs/submit`` or ``run-now`` carrying ``token``; the run id (the existing one, for a known token)."""
        what = f"{path} with token {token}"
        resp = await self.call("POST", path, body=dict(body), what=what)
        if resp.status == 200:
            return resp.decode(Submitted, what=what).run_id
        if resp.status == 400 and _deleted_token(error_of(resp.body), token):
            raise TokenOfDeletedRun(
                f"the Databricks run submitted with token {token} was deleted "
                f"({snippet(resp.text, 300, resp.secrets)}). Databricks refuses that token for good and the "
                "run's outcome is unknown (it may have succeeded), so it is not submitted again: clear the task "
                "to submit a new generation (with a new token)",
                status=400,
            )
        raise failure(resp, what)

    async def get_run(self, run_id: int) -> Run | None:
        """``runs/get``; None on the documented not-found answer (404 ``RESOURCE_DOES_NOT_EXIST``)."""
        run_id = validate_run_id(run_id)
        what = f"runs/get of run {run_id}"
        resp = await self.call("GET", "runs/get", params={"run_id": str(run_id)}, what=what)
        if resp.status == 200:
            return decode_run(resp.body, run_id, what=f"{what} (HTTP 200 from {resp.url})")
        if is_not_found(resp):
            return None
        raise failure(resp, what)

    async def cancel_run(self, run_id: int) -> bool:
        """``runs/cancel``; False when the workspace does not know the run (nothing to stop)."""
        run_id = validate_run_id(run_id)
        what = f"runs/cancel of run {run_id}"
        resp = await self.call("POST", "runs/cancel", body={"run_id": run_id}, what=what)
        if resp.status == 200:
            return True
        if is_not_found(resp):
            return False
        raise failure(resp, what)

    async def walk(
        self,
        params: Mapping[str, str],
        *,
        what: str,
        done: Callable[[RunsListing], bool] = lambda listing: False,
        policy: RetryPolicy | None = None,
        max_pages: int = MAX_PAGES,
    ) -> RunsListing:
        """``runs/list`` page by page until its end, ``done(listing)``, or ``max_pages`` (then ``capped``).

        A page that cannot be read (or a page token that repeats) raises: the caller knows nothing of the
        pages it did not get. ``policy`` repeats each page's request on transient errors (None: once).
        """

        async def read(page_token: str | None, page_what: str) -> tuple[list[Any], str | None]:
            page_params = {**params, "page_token": page_token} if page_token else dict(params)
            return await self._page(page_params, page_what, policy)

        return await walk_pages(read, RunsListing(), what=what, done=done, max_pages=max_pages)

    async def _page(
        self, params: Mapping[str, str], what: str, policy: RetryPolicy | None
    ) -> tuple[list[Any], str | None]:
        async def one() -> tuple[list[Any], str | None]:
            resp = await self.call("GET", "runs/list", params=params, what=what)
            if resp.status != 200:
                raise failure(resp, what)
            return decode_runs_page(resp.body, what=f"{what} (HTTP 200 from {resp.url})")

        return await (policy.call(one, what=what) if policy is not None else one())

    async def jobs_named(self, name: str) -> list[int]:
        """The ids of the jobs whose name is exactly ``name`` (``jobs/list?name=``); stops at two."""
        what = f"jobs/list named {name!r}"
        found: list[int] = []
        page_token: str | None = None
        for _ in range(MAX_JOB_PAGES):
            params = {"name": name, "limit": "25", **({"page_token": page_token} if page_token else {})}

            async def one(p: dict[str, str] = params) -> JobsPage:
                resp = await self.call("GET", "list", params=p, what=what)
                if resp.status != 200:
                    raise failure(resp, what)
                return resp.decode(JobsPage, what=what)

            page = await RETRY.call(one, what=what)
            found += [j.job_id for j in page.jobs or () if j.settings is not None and j.settings.name == name]
            if len(found) > 1 or not page.has_more:
                return found
            if not page.next_page_token or page.next_page_token == page_token:
                raise MalformedAnswer(f"{what}: has_more without a new next_page_token")
            page_token = page.next_page_token
        raise MalformedAnswer(f"{what}: more than {MAX_JOB_PAGES} pages; cannot tell how many jobs have that name")


__all__ = [
    "LIST_LIMIT_MAX",
    "MAX_PAGES",
    "RETRY",
    "TRANSIENT_CODES",
    "TokenOfDeletedRun",
    "Workspace",
    "failure",
    "is_not_found",
]
