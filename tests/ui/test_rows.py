"""The view's decoding of stored rows and its filters: no Airflow, no database."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from durable_jobs.record import JobRecord, Outcome, Phase, TaskIdentity, cancel_words
from durable_jobs.ui.filters import MAX_LIMIT, FilterError, Filters
from durable_jobs.ui.rows import StoredRow, item, job_id

WHO = TaskIdentity("dag_a", "run_1", "spark", 3)
AT = dt.datetime(2026, 12, 4, 0, 10, tzinfo=dt.timezone.utc)
JOB = {"master": "spark://m:7077", "submission_id": "driver-1"}


def stored(rec: JobRecord | str, *, state: str | None = "deferred", **kw: object) -> StoredRow:
    value = rec if isinstance(rec, str) else json.dumps(rec.to_json())
    base: dict[str, object] = dict(
        dag_id=WHO.dag_id,
        run_id=WHO.run_id,
        task_id=WHO.task_id,
        map_index=WHO.map_index,
        value=value,
        updated_at=AT,
        ti_id="0199-ti",
        try_number=2,
        state=state,
        deferred_since=AT - dt.timedelta(minutes=5),
    )
    base.update(kw)
    return StoredRow(**base)  # type: ignore[arg-type]


def submitted(**kw: object) -> JobRecord:
    rec = JobRecord.intent(
        system="spark-standalone",
        identity=WHO,
        generation=0,
        timeout=3600,
        now=1_796_000_000.0,
        conn_id="spark_default",
        hook="durable_jobs.hooks.spark_standalone.SparkStandaloneHook",
    )
    return rec.submitted(JOB)


def test_a_deferred_record_is_answered_with_its_task_job_and_times() -> None:
    out = item(stored(submitted(), links={"Spark master UI": "http://m:8080"}))
    assert out["readable"] is True and out["error"] is None
    assert (out["dag_id"], out["run_id"], out["task_id"], out["map_index"], out["try_number"]) == (
        "dag_a",
        "run_1",
        "spark",
        3,
        2,
    )
    assert (out["system"], out["endpoint"], out["generation"], out["phase"], out["outcome"]) == (
        "spark-standalone",
        "spark_default",
        0,
        "submitted",
        None,
    )
    assert out["job"] == JOB and out["job_id"] == "master=spark://m:7077, submission_id=driver-1"
    assert out["deferred_since"] == "2026-12-04T00:05:00+00:00"
    assert out["last_status_at"] == AT.isoformat()
    assert out["intent_at"] == dt.datetime.fromtimestamp(1_796_000_000.0, dt.timezone.utc).isoformat()
    assert out["links"] == [{"name": "Spark master UI", "url": "http://m:8080"}]
    assert out["cancellable"] is False  # its trigger owns the job


def test_deferred_since_only_while_deferred() -> None:
    assert item(stored(submitted(), state="success"))["deferred_since"] is None


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("success", True),
        ("failed", True),
        ("skipped", True),
        ("deferred", False),
        ("running", False),
        ("up_for_retry", False),
        ("queued", False),
        (None, False),
    ],
)
def test_only_an_active_job_of_an_ended_task_can_be_cancelled(state: str | None, expected: bool) -> None:
    assert item(stored(submitted(), state=state))["cancellable"] is expected


def test_a_finished_record_is_never_cancellable_and_keeps_its_history() -> None:
    first = submitted().finished(Outcome.FAILED, "driver exited 1")
    second = first.next_generation(WHO, 3600).submitted({"master": "spark://m:7077", "submission_id": "driver-2"})
    done = second.finished(Outcome.SUCCEEDED, "FINISHED").decided(1, "fresh", 1.0).decided(2, "next_generation", 2.0)
    out = item(stored(done, state="success"))
    assert out["tries"] == [
        {"try": 1, "decision": "fresh", "at": 1.0},
        {"try": 2, "decision": "next_generation", "at": 2.0},
    ]
    assert (out["generation"], out["phase"], out["outcome"], out["last_status"]) == (
        1,
        "finished",
        "succeeded",
        "FINISHED",
    )
    assert out["cancellable"] is False
    (h,) = out["history"]
    assert (h["generation"], h["outcome"], h["message"], h["job_id"]) == (
        0,
        "failed",
        "driver exited 1",
        "master=spark://m:7077, submission_id=driver-1",
    )


def test_a_tombstone_shows_who_cancelled() -> None:
    rec = submitted().tombstone("ui_cancel", ti_id="0199-ti", now=1_796_000_100.0)
    out = item(stored(rec, state="success"))
    assert out["cancel"] == {"at": 1_796_000_100.0, "by": "ui_cancel", "ti_id": "0199-ti"}
    assert out["outcome"] == "cancelled" and out["cancellable"] is False
    assert "cancelled in the Durable jobs view" in out["last_status"]
    assert cancel_words("mark_failed") == "marked failed"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "holds a list"),
        (json.dumps({"v": 99, "system": "yarn"}), "field 'v' is 99"),
        # a record copied from another task: its token is not this task's
        (json.dumps({**submitted().to_json(), "token": TaskIdentity("other", "r", "t").token(0)}), "not this task's"),
        (json.dumps({**submitted().to_json(), "phase": "exploded"}), "field 'phase'"),
    ],
)
def test_an_unreadable_record_is_listed_with_why_never_raised(value: str, why: str) -> None:
    out = item(stored(value, state="success"))
    assert out["readable"] is False and out["phase"] == "unreadable" and out["cancellable"] is False
    assert why in out["error"]
    assert (out["dag_id"], out["task_id"], out["ti_id"]) == ("dag_a", "spark", "0199-ti")


def test_a_record_without_its_task_instance() -> None:
    out = item(stored(submitted(), state=None, ti_id=None, try_number=None, deferred_since=None))
    assert (out["ti_id"], out["state"], out["deferred_since"], out["cancellable"]) == (None, None, None, False)


def test_job_id_in_one_line() -> None:
    assert job_id(None) is None and job_id({}) is None
    assert job_id({"app_id": "application_1_0001", "attempt": None, "n": 3}) == "app_id=application_1_0001, n=3"


# --- filters -------------------------------------------------------------------------------------------------


def test_empty_query_parameters_filter_nothing() -> None:
    f = Filters.parse(dag_id="", system="", phase="", outcome="")
    assert f == Filters() and not f.on_value and f.patterns() == []


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"limit": 0}, "limit must be from 1 to 500"),
        ({"limit": MAX_LIMIT + 1}, "limit must be from 1 to 500"),
        ({"offset": -1}, "offset must be 0 or more"),
        ({"phase": "running"}, "phase must be one of submitting, submitted, finished"),
        ({"outcome": "ok"}, "outcome must be one of succeeded, failed, cancelled, lost"),
        ({"system": "Spark%"}, "is not a system name"),
        ({"dag_id": "d" * 251}, "longer than 250"),
    ],
)
def test_bad_filters_are_refused_with_their_name(kw: dict[str, object], message: str) -> None:
    with pytest.raises(FilterError, match=message):
        Filters.parse(**kw)  # type: ignore[arg-type]


def like(pattern: str, text: str) -> bool:
    """SQL LIKE with escape character backslash, as the database applies the patterns."""
    import re

    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out += re.escape(pattern[i + 1])
            i += 2
            continue
        out += ".*" if c == "%" else "." if c == "_" else re.escape(c)
        i += 1
    return re.fullmatch(out, text, re.S) is not None


def test_the_patterns_match_a_stored_record_exactly_on_its_top_level_fields() -> None:
    first = submitted().finished(Outcome.FAILED, 'the driver said "outcome": "succeeded", "message": x')
    second = first.next_generation(WHO, 3600).submitted(JOB)
    value = json.dumps(second.to_json())  # as the execution API stores it
    assert all(like(p, value) for p in Filters.parse(system="spark-standalone", phase="submitted").patterns())
    assert all(like(p, value) for p in Filters.parse(phase="submitted").patterns())
    assert not all(like(p, value) for p in Filters.parse(system="yarn").patterns())
    assert not all(like(p, value) for p in Filters.parse(phase="finished").patterns())
    # the history's "failed" and the message's quoted words are not the record's outcome
    for outcome in ("failed", "succeeded"):
        assert not all(like(p, value) for p in Filters.parse(outcome=outcome).patterns()), outcome
    done = json.dumps(second.finished(Outcome.SUCCEEDED, "ok").to_json())
    assert all(like(p, done) for p in Filters.parse(outcome="succeeded", phase="finished").patterns())
    assert not all(like(p, done) for p in Filters.parse(outcome="failed").patterns())


def test_the_exact_check_after_the_database() -> None:
    f = Filters.parse(system="yarn", phase=Phase.FINISHED.value, outcome="lost")
    assert f.on_value and f.matches("yarn", "finished", "lost")
    assert not f.matches("yarn", "finished", "failed") and not f.matches("emr", "finished", "lost")


def test_a_system_name_is_escaped_in_its_pattern() -> None:
    (pattern,) = Filters.parse(system="my_sys").patterns()
    assert '"system": "my\\_sys"' in pattern


def test_only_http_links_are_answered() -> None:
    links = {
        "Spark UI": "http://m:8080/app",
        "Evil": "javascript:alert(document.cookie)",
        "Data": "data:text/html,<script>x</script>",
        "Spaced": "https://m/a b",
    }
    answered = item(stored(submitted(), links=links))["links"]
    assert answered == [{"name": "Spark UI", "url": "http://m:8080/app"}]
