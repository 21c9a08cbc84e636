"""The record's fields for the reaper (conn_id, hook, cancel): optional, round-tripped, strictly read."""

from __future__ import annotations

from typing import Any

import pytest

from durable_jobs.errors import RecordError
from durable_jobs.record import JobRecord, Outcome, Phase, TaskIdentity

WHO = TaskIdentity("dag", "run", "task", -1)


def submitted(**fields: Any) -> JobRecord:
    rec = JobRecord.intent(system="scripted", identity=WHO, generation=0, timeout=None, now=100.0, **fields)
    return rec.submitted({"id": "job-1"})


def load(data: dict[str, Any]) -> JobRecord:
    return JobRecord.from_json(data, system="scripted", identity=WHO)


def test_conn_id_and_hook_are_written_at_intent_and_round_trip() -> None:
    rec = submitted(conn_id="spark_default", hook="durable_jobs.hooks.spark_standalone.SparkStandaloneHook")
    data = rec.to_json()
    assert data["conn_id"] == "spark_default" and data["hook"].endswith(".SparkStandaloneHook")
    assert load(data) == rec
    nxt = rec.finished(Outcome.FAILED).next_generation(WHO, None, conn_id="other", hook="m.H")
    assert (nxt.conn_id, nxt.hook, nxt.generation) == ("other", "m.H", 1)


def test_a_record_without_the_new_fields_loads_and_is_written_without_them() -> None:
    rec = submitted()
    data = rec.to_json()
    assert not {"conn_id", "hook", "cancel"} & data.keys()  # readable by 0.1.0 as it was
    assert load(data) == rec
    assert (load(data).conn_id, load(data).hook, load(data).cancel) == (None, None, None)


def test_the_tombstone_is_finished_cancelled_with_who_and_when() -> None:
    tomb = submitted(conn_id="c", hook="m.H").tombstone("mark_failed", ti_id="0190-ab", now=123.5)
    assert (tomb.phase, tomb.outcome, tomb.job) == (Phase.FINISHED, Outcome.CANCELLED, {"id": "job-1"})
    assert tomb.cancel == {"at": 123.5, "by": "mark_failed", "ti_id": "0190-ab"}
    assert "marked failed by a user" in tomb.message
    assert load(tomb.to_json()) == tomb
    with pytest.raises(ValueError, match="by must be one of"):
        submitted().tombstone("cleared", ti_id="x")


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("conn_id", 3, "field 'conn_id' is 3, expected a string"),
        ("conn_id", "c" * 251, "field 'conn_id'"),
        ("hook", "no_dots", "field 'hook' is 'no_dots', expected an import path"),
        ("hook", "a.b; import os", "field 'hook'"),
        ("hook", "m." + "x" * 200, "field 'hook'"),
        ("cancel", "yes", "field 'cancel' is 'yes', expected an object"),
        ("cancel", {"at": 1.0, "by": "cleared", "ti_id": "x"}, "field 'cancel.by' is 'cleared'"),
        ("cancel", {"at": "now", "by": "mark_failed"}, "field 'at' is 'now'"),
        ("cancel", {"at": 1.0, "by": "mark_failed", "ti_id": 7}, "field 'ti_id' is 7"),
        ("cancel", {"by": "mark_failed"}, "field 'at' is missing"),
    ],
)
def test_each_refusal_names_the_field(field: str, value: Any, says: str) -> None:
    data = submitted().to_json()
    data[field] = value
    with pytest.raises(RecordError, match=None) as err:
        load(data)
    assert says in str(err.value)


def test_null_optional_fields_read_as_missing() -> None:
    data = {**submitted().to_json(), "conn_id": None, "hook": None, "cancel": None}
    assert load(data) == submitted()
