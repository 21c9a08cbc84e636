"""BigQuery's REST v2 ``jobs`` calls, and what each of their answers means: the only place that knows them.

Plain aiohttp through the shared transport (:func:`durable_jobs.transport.http.request`), not
gcloud-aio-bigquery: that library keeps its own sessions and retries, which would bypass the library's one
policy for timeouts, redirects (never to another host), answer sizes and redaction; and its answers would come
back as untyped dicts, where every answer here is decoded against a declared schema.

Errors are ``{"error": {"code", "message", "errors": [{"reason"}]}}``:

* 5xx (``backendError``), 408/429, 403 ``rateLimitExceeded``/``quotaExceeded`` and a redirect not followed
  are transient (``Retry-After`` kept);
* 401 is an :class:`~durable_jobs.errors.AuthError`, and so is another 403 (``accessDenied``);
* another 4xx with the API's error body (400 ``invalid``/``invalidQuery``...) is permanent; one without it
  (a proxy's page) is malformed, so unknown;
* the documented not-found is 404 with reason ``notFound``: a 404 page from a proxy is not, and proves
  nothing; a ``jobs.insert`` of an id that exists is 409 ``duplicate``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from durable_jobs.clients.bigquery.answers import (
    Job,
    JobsListing,
    decode_cancel,
    decode_job,
    decode_jobs_page,
    error_of,
)
from durable_jobs.clients.bigquery.specs import API, validate_job_id
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

BIGQUERY_URL = "https://bigquery.googleapis.com"
#: pages of one jobs.list walk, at most
MAX_PAGES = 200
#: jobs per jobs.list page asked for
PAGE_SIZE = 1000
#: reasons that say "later", whatever the HTTP status that carries them
TRANSIENT_REASONS = frozenset({"rateLimitExceeded", "quotaExceeded", "backendError", "internalError"})
#: requests other than the poll's are repeated on transient errors; a redirect or an oversized answer is not
RETRY = RetryPolicy(never=(RedirectRefused, AnswerTooLarge))
Params = Sequence[tuple[str, str]]


class DuplicateJob(PermanentError):
    """``jobs.insert`` answered 409 ``duplicate``: a job with that id exists."""


def failure(resp: Response, what: str) -> DurableJobError:
    """The error an answer that is not a success means (see the module's docstring)."""
    err = error_of(resp.body)
    reasons = err.reasons if err is not None else ()
    status = resp.status
    head = f"{what}: HTTP {status} from {resp.url}"
    said = (
        f"{', '.join(reasons) or err.error.status or 'error'}: {snippet(err.error.message, 1000, resp.secrets)}"
        if err is not None
        else resp.snippet()
    )
    if status >= 500 or status in TRANSIENT_STATUSES or 300 <= status < 400 or TRANSIENT_REASONS & set(reasons):
        return TransientError(f"{head}: {said}", retry_after=resp.retry_after(), status=status)
    if status in (401, 403):
        return AuthError(f"{head}: {said}", status=status)
    if err is None:
        return MalformedAnswer(f"{head} is not an answer of the BigQuery API: {resp.snippet()}")
    if status == 409 and "duplicate" in reasons:
        return DuplicateJob(f"{head}: {said}", status=status)
    return PermanentError(f"{head}: {said}", status=status)


def is_not_found(resp: Response) -> bool:
    """The documented "no such job": 404 with reason ``notFound`` (a proxy's 404 is not)."""
    if resp.status != 404:
        return False
    err = error_of(resp.body)
    return err is not None and "notFound" in err.reasons


class BigQueryApi:
    """One project's ``jobs`` collection over the shared transport."""

    def __init__(
        self,
        project: str,
        *,
        auth: Auth,
        base_url: str = BIGQUERY_URL,
        timeout: float = 30.0,
        verify_ssl: bool = True,
        ca_file: str | None = None,
        max_response_bytes: int | None = None,
    ) -> None:
        from durable_jobs.clients.bigquery.specs import validate_project
        from durable_jobs.errors import RecordError

        try:
            self.project = validate_project(project)
        except RecordError as exc:
            raise ValueError(str(exc)) from None
        self.auth = auth
        self.endpoint = Endpoint(
            base_url,
            verify_ssl=verify_ssl,
            ca_file=ca_file,
            timeout=timeout,
            identity=auth.identity,
            max_body=max_response_bytes or DEFAULT_MAX_BODY,
        )

    def _path(self, project: str, tail: str = "") -> str:
        return f"{API}/projects/{project}/jobs{tail}"

    async def call(
        self, method: str, path: str, *, what: str, params: Params | None = None, body: Any = None
    ) -> Response:
        return await request(self.endpoint, method, path, json_body=body, params=params, what=what, auth=self.auth)

    @staticmethod
    def _where(location: str | None) -> Params:
        return (("location", location),) if location else ()

    async def insert(self, project: str, body: Mapping[str, Any], job_id: str) -> Job:
        """``jobs.insert``; the job answered. A 409 ``duplicate`` raises :class:`DuplicateJob`."""
        what = f"jobs.insert of job {job_id}"
        resp = await self.call("POST", self._path(project), body=dict(body), what=what)
        if resp.status == 200:
            return decode_job(resp.body, job_id, what=f"{what} (HTTP 200 from {resp.url})")
        raise failure(resp, what)

    async def get(self, project: str, job_id: str, location: str | None) -> Job | None:
        """``jobs.get``; None on the documented not-found answer (404 ``notFound``)."""
        job_id = validate_job_id(job_id)
        what = f"jobs.get of job {job_id}"
        resp = await self.call("GET", self._path(project, f"/{job_id}"), params=self._where(location), what=what)
        if resp.status == 200:
            return decode_job(resp.body, job_id, what=f"{what} (HTTP 200 from {resp.url})")
        if is_not_found(resp):
            return None
        raise failure(resp, what)

    async def cancel_job(self, project: str, job_id: str, location: str | None) -> bool:
        """``jobs.cancel``; False when BigQuery does not know the job (nothing to stop)."""
        job_id = validate_job_id(job_id)
        what = f"jobs.cancel of job {job_id}"
        path = self._path(project, f"/{job_id}/cancel")
        resp = await self.call("POST", path, params=self._where(location), what=what)
        if resp.status == 200:
            decode_cancel(resp.body, job_id, what=f"{what} (HTTP 200 from {resp.url})")
            return True
        if is_not_found(resp):
            return False
        raise failure(resp, what)

    async def walk(
        self,
        project: str,
        params: Params,
        *,
        what: str,
        done: Callable[[JobsListing], bool] = lambda listing: False,
        policy: RetryPolicy | None = None,
        max_pages: int = MAX_PAGES,
    ) -> JobsListing:
        """``jobs.list`` page by page until its end, ``done(listing)``, or ``max_pages`` (then ``capped``).

        A page that cannot be read (or a page token that repeats) raises: the caller knows nothing of the
        pages it did not get. ``policy`` repeats each page's request on transient errors (None: once).
        """

        async def read(page_token: str | None, page_what: str) -> tuple[list[Any], str | None]:
            page_params = (*params, ("pageToken", page_token)) if page_token else tuple(params)
            return await self._page(project, page_params, page_what, policy)

        return await walk_pages(read, JobsListing(), what=what, done=done, max_pages=max_pages)

    async def _page(
        self, project: str, params: Params, what: str, policy: RetryPolicy | None
    ) -> tuple[list[Any], str | None]:
        async def one() -> tuple[list[Any], str | None]:
            resp = await self.call("GET", self._path(project), params=params, what=what)
            if resp.status != 200:
                raise failure(resp, what)
            return decode_jobs_page(resp.body, what=f"{what} (HTTP 200 from {resp.url})")

        return await (policy.call(one, what=what) if policy is not None else one())


__all__ = [
    "BIGQUERY_URL",
    "MAX_PAGES",
    "PAGE_SIZE",
    "RETRY",
    "TRANSIENT_REASONS",
    "BigQueryApi",
    "DuplicateJob",
    "failure",
    "is_not_found",
]
