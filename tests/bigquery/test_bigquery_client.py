"""The BigQuery client against the contract fake: insert, a duplicate adopted only with its label, get, the
jobs.list walk, cancel, the states, errorResult, the result for XCom, links, and what specs and locators accept."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from durable_jobs.clients.base import locator_key
from durable_jobs.clients.bigquery import BigQueryClient, BigQueryJobSpec, JobsListing
from durable_jobs.clients.bigquery.client import ACTIVE_PARAMS
from durable_jobs.errors import PermanentError, RecordError
from durable_jobs.status import JobState
from durable_jobs_harness.fake_bigquery import FakeBigQuery
from tests.bigquery.conftest import spec

TOKEN = "dj" + "a" * 20


async def test_insert_sends_the_job_id_the_label_and_the_location(fake: FakeBigQuery, client: BigQueryClient) -> None:
    loc = await client.submit(spec(location="EU", labels={"team": "etl"}), TOKEN)
    assert loc == {"project": "fake-project", "location": "EU", "job_id": f"airflow_durable_{TOKEN}"}
    job = fake.jobs[loc["job_id"]]
    assert job.location == "EU" and job.labels == {"team": "etl", "durable_jobs_token": TOKEN}
    assert (await client.status(loc)).state in (JobState.PENDING, JobState.RUNNING)


async def test_the_prefix_is_sanitised(fake: FakeBigQuery, client: BigQueryClient) -> None:
    loc = await client.submit(spec(job_id_prefix="my dag.task/"), TOKEN)
    assert loc["job_id"] == f"my_dag_task_{TOKEN}" and loc["job_id"] in fake.jobs


async def test_a_duplicate_with_our_label_is_adopted(fake: FakeBigQuery, client: BigQueryClient) -> None:
    first = await client.submit(spec(), TOKEN)
    again = await client.submit(spec(), TOKEN)
    assert again == first and len(fake.jobs) == 1
    path = fake.jobs_path()
    assert fake.count(path, "POST") == 2 and fake.count(fake.jobs_path(first["job_id"]), "GET") == 1


async def test_a_duplicate_without_our_label_is_refused(fake: FakeBigQuery, client: BigQueryClient) -> None:
    other = BigQueryJobSpec({"query": {"query": "SELECT 2"}}, job_id_prefix=f"airflow_durable_{TOKEN[:2]}")
    # someone else's job with the very id (no token label): made with a raw insert
    await client.insert(
        client.project,
        {"jobReference": {"projectId": client.project, "jobId": f"airflow_durable_{TOKEN}"},
         "configuration": {"query": {"query": "SELECT 2"}, "labels": {"durable_jobs_token": "dj" + "f" * 20}}},
        f"airflow_durable_{TOKEN}",
    )  # fmt: skip
    with pytest.raises(PermanentError, match="not adopted"):
        await client.submit(spec(), TOKEN)
    with pytest.raises(PermanentError, match="not adopted"):
        await client.find(TOKEN, since=0, spec=spec())
    assert len(fake.jobs) == 1 and other.job_id(TOKEN) != spec().job_id(TOKEN)


async def test_find_is_a_get_of_the_id(fake: FakeBigQuery, client: BigQueryClient) -> None:
    assert await client.find(TOKEN, since=0, spec=spec()) is None
    loc = await client.submit(spec(), TOKEN)
    assert await client.find(TOKEN, since=0, spec=spec()) == loc
    assert client.find_unrecorded is True


async def test_states_done_failed_cancelled(fake: FakeBigQuery, client: BigQueryClient) -> None:
    ok = await client.submit(spec(), "dj" + "1" * 20)
    bad = await client.submit(spec(), "dj" + "2" * 20)
    stop = await client.submit(spec(), "dj" + "3" * 20)
    fake.finish(ok["job_id"])
    fake.finish(bad["job_id"], "FAILED")
    await client.cancel(stop)
    await asyncio.sleep(0.05)
    assert (await client.status(ok)).state is JobState.SUCCEEDED
    failed = await client.status(bad)
    assert failed.state is JobState.FAILED and failed.raw_state == "DONE/invalidQuery"
    assert "invalidQuery at query: Syntax error: boom" in failed.message
    cancelled = await client.status(stop)
    assert cancelled.state is JobState.CANCELLED and "stopped" in cancelled.raw_state


async def test_scripted_failure_from_the_query_text(fake: FakeBigQuery, client: BigQueryClient) -> None:
    loc = await client.submit(spec("SELECT x -- durable-fake:0s:FAILED"), TOKEN)
    st = await client.status(loc)
    assert st.state is JobState.FAILED and "scripted failure" in st.message


async def test_result_and_links(fake: FakeBigQuery, client: BigQueryClient) -> None:
    loc = await client.submit(spec(location="europe-west1"), TOKEN)
    fake.finish(loc["job_id"])
    assert await client.result(loc) == {
        "destination_table": f"fake-project._fake_anon.anon_{loc['job_id'][-20:]}",
        "total_bytes_processed": 10485760,
        "total_slot_ms": 4321,
    }
    assert await client.links(loc) == {
        "bigquery_job_url": "https://console.cloud.google.com/bigquery?project=fake-project"
        f"&j=bq:europe-west1:{loc['job_id']}&page=queryresults"
    }


async def test_a_destination_table_is_reported(fake: FakeBigQuery, client: BigQueryClient) -> None:
    dest = {"projectId": "fake-project", "datasetId": "ds", "tableId": "out"}
    loc = await client.submit(BigQueryJobSpec({"query": {"query": "SELECT 1", "destinationTable": dest}}), TOKEN)
    fake.finish(loc["job_id"])
    assert (await client.result(loc))["destination_table"] == "fake-project.ds.out"


async def test_statuses_walk_every_page_once_then_get_the_ended(fake: FakeBigQuery, client: BigQueryClient) -> None:
    locs = [await client.submit(spec(), f"dj{i:020x}") for i in range(25)]
    ended = locs[:3]
    for loc in ended:
        fake.finish(loc["job_id"])
    pages = []
    walk = client.walk

    async def small_pages(project, params, **kw):  # type: ignore[no-untyped-def]
        pages.append(params)
        return await walk(project, [(k, "10" if k == "maxResults" else v) for k, v in params], **kw)

    client.walk = small_pages  # type: ignore[method-assign]
    before = fake.count(fake.jobs_path(), "GET")
    answer = await client.statuses(locs)
    assert fake.count(fake.jobs_path(), "GET") - before == 3  # 22 active jobs, 10 a page
    assert {answer[locator_key(loc)].state for loc in ended} == {JobState.SUCCEEDED}
    assert all(answer[locator_key(loc)].state.is_active for loc in locs[3:])
    gets = sum(fake.count(fake.jobs_path(loc["job_id"]), "GET") for loc in locs)
    assert gets == 3  # jobs.get only for the jobs that left the listing
    tokens = [q for m, p, q in fake.requests if m == "GET" and p == fake.jobs_path()]
    assert [dict(q).get("pageToken") is not None for q in tokens[-3:]] == [False, True, True]
    assert all(("stateFilter", "pending") in q and ("stateFilter", "running") in q for q in tokens)
    assert ACTIVE_PARAMS[2] == ("projection", "minimal") and ("allUsers", "false") in ACTIVE_PARAMS


async def test_a_forgotten_job_is_lost_only_when_the_listing_agrees(fake: FakeBigQuery, client: BigQueryClient) -> None:
    loc = await client.submit(spec(), TOKEN)
    fake.forget(loc["job_id"])
    st = await client.status(loc)
    assert st.state is JobState.LOST and "notFound" in st.raw_state


async def test_a_job_in_another_location_is_not_mixed_up(fake: FakeBigQuery, client: BigQueryClient) -> None:
    loc = await client.submit(spec(location="EU"), TOKEN)
    wrong = {**loc, "location": "asia-east1"}
    answer = await client.statuses([wrong])
    # the listing shows the id in EU, not in asia-east1: jobs.get there says notFound, and it is lost there
    assert answer[locator_key(wrong)].state is JobState.LOST


async def test_cancel_is_idempotent_and_an_unknown_job_is_nothing_to_stop(
    fake: FakeBigQuery, client: BigQueryClient
) -> None:
    loc = await client.submit(spec(), TOKEN)
    await client.cancel(loc)
    await client.cancel(loc)
    fake.forget(loc["job_id"])
    await client.cancel(loc)
    assert fake.jobs[loc["job_id"]].cancelled


def test_specs_refuse_what_would_break_the_id_or_the_label() -> None:
    cases: list[dict[str, Any]] = [
        {"configuration": {}},
        {"configuration": {"query": {}, "load": {}}},
        {"configuration": {"query": {"query": "x"}, "jobReference": {"jobId": "x"}}},
        {"configuration": {"query": {"query": "x"}, "labels": {"durable_jobs_token": "x"}}},
        {"configuration": {"query": {"query": "x"}}, "labels": {"Team": "x"}},
        {"configuration": {"query": {"query": object()}}},
        {"configuration": {"query": {"query": "x"}}, "location": "us/east"},
    ]
    for bad in cases:
        with pytest.raises(ValueError):
            BigQueryJobSpec(**bad)


def test_locators_are_validated(client: BigQueryClient) -> None:
    good = {"project": "fake-project", "location": None, "job_id": "a_b-1"}
    assert client.validate_locator(good) == good
    for bad in (
        {**good, "job_id": "a/b"},
        {**good, "job_id": "x" * 1025},
        {**good, "project": "Fake"},
        {**good, "location": "US/../x"},
        {"job_id": "x"},
        {**good, "extra": 1},
    ):
        with pytest.raises(RecordError):
            client.validate_locator(bad)
    assert client.locator_matches_token({**good, "job_id": "p_" + TOKEN}, TOKEN)
    assert not client.locator_matches_token(good, TOKEN)


def test_the_listing_keeps_a_malformed_entry_apart() -> None:
    import msgspec

    listing = JobsListing()
    entries = [
        msgspec.Raw(b'{"jobReference": {"projectId": "p", "jobId": "a"}, "state": "RUNNING"}'),
        msgspec.Raw(b'{"jobReference": {"projectId": "p", "jobId": "b"}, "status": {"state": 5}}'),
        msgspec.Raw(b'{"jobReference": 7}'),
    ]
    listing.add_page(entries, "page")
    assert set(listing.jobs) == {"a"} and set(listing.malformed) == {"b"} and listing.unreadable == 1
    assert not listing.complete
