"""A hostile BigQuery: answers that are truncated, garbage, huge, of the wrong types, from a proxy, throttled,
redirected elsewhere. Malformed means unknown: never LOST, never FAILED, and an answer about one job touches that
job only.

Every job-level case watches two jobs: A, whose ``jobs.get`` the endpoint abuses, and B, which is fine. A has just
ended (so a poll asks ``jobs.get`` for it); B is running (the listing shows it).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from durable_jobs.clients.base import locator_key
from durable_jobs.clients.bigquery import BigQueryClient, DuplicateJob, ServiceAccountAuth, failure
from durable_jobs.errors import AuthError, MalformedAnswer, PermanentError, TransientError
from durable_jobs.status import JobState
from durable_jobs.testing.transport import response
from durable_jobs_harness.fake_bigquery import FakeBigQuery
from tests.bigquery.conftest import spec

pytestmark = pytest.mark.timeout(120)


def err(code: int, reason: str, message: str = "x") -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "errors": [{"reason": reason}]}}).encode()


def job_json(**over: Any) -> bytes:
    base: dict[str, Any] = {
        "jobReference": {"projectId": "fake-project", "jobId": "A", "location": "US"},
        "status": {"state": "DONE"},
    }
    return json.dumps({**base, **over}).encode()


# (status, body, content type, headers) that the endpoint answers to A's jobs.get; "A" is replaced by its id
J = "application/json"
OTHER_JOB = job_json(
    jobReference={"projectId": "fake-project", "jobId": "other"},
    status={"state": "DONE", "errorResult": {"reason": "invalidQuery"}},
)
NO_STATUS = json.dumps({"jobReference": {"projectId": "fake-project", "jobId": "A"}}).encode()
WRONG_404 = json.dumps({"error": {"code": "404", "errors": "notFound"}}).encode()
GET_CASES: dict[str, tuple[int, bytes, str, dict[str, str] | None]] = {
    "truncated-json": (200, NO_STATUS[:-1] + b', "status": {"sta', J, None),
    "garbage-bytes": (200, b"\x00\xff\xfe garbage \x81", J, None),
    "empty-body": (200, b"", J, None),
    "html-200": (200, b"<html><body>Sign in</body></html>", "text/html", None),
    "deep-nesting": (200, b'{"status": ' + b"[" * 20000 + b"]" * 20000 + b"}", J, None),
    "job-id-a-number": (200, job_json(jobReference={"projectId": "fake-project", "jobId": 5}), J, None),
    "status-a-string": (200, job_json(status="DONE"), J, None),
    "state-a-number": (200, job_json(status={"state": 3}), J, None),
    "error-result-a-list": (200, job_json(status={"state": "DONE", "errorResult": ["x"]}), J, None),
    "labels-a-list": (200, job_json(configuration={"labels": ["x"]}), J, None),
    "no-status": (200, NO_STATUS, J, None),
    "another-jobs-answer": (200, OTHER_JOB, J, None),
    "unknown-state": (200, job_json(status={"state": "EXPLODED"}), J, None),
    "job-is-a-list": (200, b"[]", J, None),
    "job-is-null": (200, b"null", J, None),
    "html-404-from-a-proxy": (404, b"<html>404 Not Found</html>", "text/html", None),
    "empty-404": (404, b"", J, None),
    "404-of-another-reason": (404, err(404, "accessDenied"), J, None),
    "404-error-of-wrong-types": (404, WRONG_404, J, None),
    "500-backend-error": (500, err(500, "backendError"), J, None),
    "502-html": (502, b"<html>Bad gateway</html>", "text/html", None),
    "503-with-retry-after": (503, err(503, "backendError"), J, {"Retry-After": "30"}),
    "403-rate-limit": (403, err(403, "rateLimitExceeded"), J, None),
    "403-quota": (403, err(403, "quotaExceeded"), J, None),
    "403-access-denied": (403, err(403, "accessDenied"), J, None),
    "400-html": (400, b"<html>Bad request</html>", "text/html", None),
    "400-invalid": (400, err(400, "invalid"), J, None),
    "409": (409, err(409, "duplicate"), J, None),
    "302-to-another-host": (302, b"", "text/html", {"Location": "https://evil.example.com/x"}),
    "huge-body": (200, b" " * (70 * 1024) + b"{}", J, None),
}  # fmt: skip


@pytest.fixture
def small_client(fake: FakeBigQuery, auth: ServiceAccountAuth) -> BigQueryClient:
    return BigQueryClient(fake.project, auth=auth, base_url=fake.url, max_response_bytes=64 * 1024)


@pytest.mark.parametrize("case", sorted(GET_CASES))
async def test_a_hostile_jobs_get_leaves_its_job_unknown_and_touches_no_other(
    fake: FakeBigQuery, small_client: BigQueryClient, case: str
) -> None:
    a = await small_client.submit(spec(), "dj" + "a" * 20)
    b = await small_client.submit(spec(), "dj" + "b" * 20)
    fake.finish(a["job_id"])
    status, body, ctype, headers = GET_CASES[case]
    fake.raw_next(
        1, status, body.replace(b'"A"', json.dumps(a["job_id"]).encode()), fake.jobs_path(a["job_id"]), ctype, headers
    )
    answer = await small_client.statuses([a, b])
    got = answer[locator_key(a)]
    assert got.state is JobState.UNKNOWN, f"{case}: job A is {got}"
    assert answer[locator_key(b)].state.is_active
    # the next poll, with a sane answer, knows A again
    assert (await small_client.statuses([a]))[locator_key(a)].state is JobState.SUCCEEDED


@pytest.mark.parametrize(
    ("entry", "why"),
    [({"jobReference": {"projectId": "fake-project", "jobId": "B"}, "status": {"state": 5}}, "malformed"),
     ({"jobReference": {"projectId": "fake-project", "jobId": "B"}}, "no state"),
     ({"jobReference": {"projectId": "fake-project", "jobId": "B"}, "state": "RUNNING", "status": {"state": "DONE"}},
      "the listing says")],
)  # fmt: skip
async def test_one_bad_entry_in_a_listing_touches_only_that_job(
    fake: FakeBigQuery, client: BigQueryClient, entry: dict[str, Any], why: str
) -> None:
    a = await client.submit(spec(), "dj" + "a" * 20)
    b = await client.submit(spec(), "dj" + "b" * 20)
    good = json.loads(json.dumps({"jobReference": {"projectId": "fake-project", "jobId": a["job_id"], "location": "US"},
                                  "state": "RUNNING", "status": {"state": "RUNNING"}}))  # fmt: skip
    bad = json.loads(json.dumps(entry).replace('"B"', json.dumps(b["job_id"])))
    fake.raw_next(1, 200, json.dumps({"kind": "bigquery#jobList", "jobs": [good, bad]}).encode(), path=fake.jobs_path())
    answer = await client.statuses([a, b])
    assert answer[locator_key(a)].state.is_active
    got = answer[locator_key(b)]
    assert got.state is JobState.UNKNOWN and why in got.message, got


async def test_an_unreadable_listing_asks_each_job_and_calls_none_lost(
    fake: FakeBigQuery, client: BigQueryClient
) -> None:
    a = await client.submit(spec(), "dj" + "a" * 20)
    b = await client.submit(spec(), "dj" + "b" * 20)
    fake.forget(b["job_id"])
    fake.raw_next(1, 200, b'{"jobs": "garbage"}', path=fake.jobs_path())
    answer = await client.statuses([a, b])
    assert answer[locator_key(a)].state.is_active
    assert answer[locator_key(b)].state is JobState.UNKNOWN  # not found by get, but the listing proved nothing


async def test_a_listing_with_an_unreadable_entry_calls_no_absent_job_lost(
    fake: FakeBigQuery, client: BigQueryClient
) -> None:
    a = await client.submit(spec(), "dj" + "a" * 20)
    fake.forget(a["job_id"])
    fake.raw_next(1, 200, b'{"jobs": [{"jobReference": 5}]}', path=fake.jobs_path())
    st = (await client.statuses([a]))[locator_key(a)]
    assert st.state is JobState.UNKNOWN and "not read whole" in st.message


async def test_a_listing_that_repeats_its_page_token_is_not_trusted(fake: FakeBigQuery, client: BigQueryClient) -> None:
    a = await client.submit(spec(), "dj" + "a" * 20)
    fake.forget(a["job_id"])
    page = b'{"jobs": [], "nextPageToken": "same"}'
    fake.raw_next(2, 200, page, path=fake.jobs_path())
    st = await client.status(a)
    assert st.state is JobState.UNKNOWN and "repeats its page token" in st.message


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [(403, err(403, "rateLimitExceeded"), TransientError), (403, err(403, "quotaExceeded"), TransientError),
     (500, err(500, "backendError"), TransientError), (503, b"<html>down</html>", TransientError),
     (400, err(400, "invalidQuery"), PermanentError), (401, err(401, "unauthorized"), AuthError),
     (403, err(403, "accessDenied"), AuthError), (404, b"<html>404</html>", MalformedAnswer),
     (409, err(409, "duplicate"), DuplicateJob), (400, err(400, "rateLimitExceeded"), TransientError)],
)  # fmt: skip
def test_error_shapes(status: int, body: bytes, expected: type[Exception]) -> None:
    exc = failure(response(status, body, content_type="application/json"), "jobs.insert")
    assert type(exc) is expected or (expected is TransientError and type(exc) is TransientError), exc


async def test_a_throttled_insert_is_transient_and_never_failed(fake: FakeBigQuery, client: BigQueryClient) -> None:
    fake.fail_next(5, status=403, reason="rateLimitExceeded", path_prefix=fake.jobs_path())
    with pytest.raises(TransientError) as caught:
        await client.submit(spec(), "dj" + "c" * 20)
    assert not isinstance(caught.value, PermanentError) and "rateLimitExceeded" in str(caught.value)
    assert await client.submit(spec(), "dj" + "c" * 20)  # later: exactly one job
    assert len(fake.jobs) == 1


async def test_a_proxy_404_never_makes_find_say_none(fake: FakeBigQuery, client: BigQueryClient) -> None:
    fake.raw_next(5, 404, b"<html>Not Found</html>", fake.jobs_path(spec().job_id("dj" + "d" * 20)), "text/html")
    with pytest.raises(MalformedAnswer):
        await client.find("dj" + "d" * 20, since=0, spec=spec())


async def test_a_redirect_of_an_insert_is_refused(fake: FakeBigQuery, client: BigQueryClient) -> None:
    fake.raw_next(1, 307, b"", fake.jobs_path(), "text/html", {"Location": "https://evil.example.com/jobs"})
    with pytest.raises(TransientError, match="not followed"):
        await client.submit(spec(), "dj" + "e" * 20)
    assert not fake.jobs
