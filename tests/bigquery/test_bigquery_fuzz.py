"""Fuzzing the BigQuery decoders and the state mapping: any bytes decode to a job or raise MalformedAnswer (never
anything else); any job maps to a status without raising, never LOST, and FAILED only for DONE with an
errorResult whose reason is not ``stopped``; a listing's entries never raise and never mix jobs up."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable_jobs.clients.bigquery.answers import Job, JobsListing, decode_job, decode_jobs_page, error_of, int64
from durable_jobs.clients.bigquery.specs import JOB_ID_RE, sanitise_prefix
from durable_jobs.clients.bigquery.states import result_of, status_from_job
from durable_jobs.errors import MalformedAnswer
from durable_jobs.status import JobState

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

words = st.sampled_from(["PENDING", "RUNNING", "DONE", "done", "", "EXPLODED"]) | st.text(max_size=10)
reasons = st.sampled_from(["stopped", "invalidQuery", "backendError", None]) | st.text(max_size=8)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
any_json = st.recursive(
    json_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3), max_leaves=10
)
error_result = st.none() | st.fixed_dictionaries({"reason": reasons}, optional={"message": st.text(max_size=20)})


@st.composite
def jobs(draw: st.DrawFn) -> dict[str, Any]:
    status: dict[str, Any] = {"state": draw(words)}
    err = draw(error_result)
    if err is not None:
        status["errorResult"] = err
        status["errors"] = draw(st.lists(st.just(err) | error_result.filter(lambda e: e is not None), max_size=3))
    job: dict[str, Any] = {
        "jobReference": {"projectId": "p-roject", "jobId": "job_1", "location": draw(st.none() | st.just("EU"))},
        "status": status,
    }
    if draw(st.booleans()):
        job["statistics"] = {
            "totalBytesProcessed": draw(st.none() | st.text(max_size=25) | st.integers().map(str)),
            "totalSlotMs": draw(st.none() | st.integers(min_value=-5, max_value=10**12).map(str)),
        }
    if draw(st.booleans()):
        job["state"] = draw(words)
    return job


@FUZZ
@given(st.binary(max_size=300) | any_json.map(lambda v: json.dumps(v).encode()))
def test_any_bytes_are_a_job_or_malformed(body: bytes) -> None:
    with contextlib.suppress(MalformedAnswer):
        decode_job(body, "job_1", what="fuzz")
    with contextlib.suppress(MalformedAnswer):
        decode_jobs_page(body, what="fuzz")
    error_of(body)  # never raises


@FUZZ
@given(jobs())
def test_any_job_maps_to_a_status_never_lost(raw: dict[str, Any]) -> None:
    job = msgspec.json.decode(json.dumps(raw).encode(), type=Job)
    status = status_from_job(job)
    assert status.state is not JobState.LOST
    word, err = raw["status"]["state"], raw["status"].get("errorResult")
    if status.state is JobState.FAILED:
        assert word == "DONE" and err is not None and err.get("reason") != "stopped"
    if status.state is JobState.SUCCEEDED:
        assert word == "DONE" and err is None
    if word not in ("PENDING", "RUNNING", "DONE"):
        assert status.state is JobState.UNKNOWN
    result = result_of(job)
    assert set(result) == {"destination_table", "total_bytes_processed", "total_slot_ms"}


@FUZZ
@given(st.lists(jobs() | any_json, max_size=8))
def test_a_listing_never_raises_and_keeps_each_entry_apart(entries: list[Any]) -> None:
    listing = JobsListing()
    listing.add_page([msgspec.Raw(json.dumps(e).encode()) for e in entries], "fuzz")
    assert not set(listing.jobs) & set(listing.malformed)
    assert len(listing.jobs) + len(listing.malformed) + listing.unreadable <= len(entries)


@FUZZ
@given(st.text(max_size=40))
def test_counters_and_prefixes(value: str) -> None:
    number = int64(value)
    assert number is None or number == int(value)
    prefix = sanitise_prefix(value)
    assert JOB_ID_RE.match(prefix + "dj" + "0" * 20)
