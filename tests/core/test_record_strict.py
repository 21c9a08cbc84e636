"""Records read back from the task state store are validated strictly, and fuzzed."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable_jobs.errors import DurableJobError, RecordError
from durable_jobs.record import HISTORY_LIMIT, RECORD_LIMIT, STATE_KEY, JobRecord, Outcome, TaskIdentity

IDENT = TaskIdentity("dag", "run1", "task", -1, 1, 0)


def good(**overrides: Any) -> dict[str, Any]:
    rec = JobRecord.intent(system="scripted", identity=IDENT, generation=0, timeout=60.0).submitted({"id": "job-1"})
    data = rec.to_json()
    data.update(overrides)
    return data


def load(data: Any) -> JobRecord:
    return JobRecord.from_json(data, system="scripted", identity=IDENT)


def test_a_good_record_round_trips():
    data = good()
    assert load(data).to_json() == data


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"v": True}, "'v'"),
        ({"v": 1.0}, "'v'"),
        ({"generation": True}, "'generation'"),
        ({"generation": 0.0}, "'generation'"),
        ({"generation": "0"}, "'generation'"),
        ({"intent_at": True}, "'intent_at'"),
        ({"intent_at": "1700000000"}, "'intent_at'"),
        ({"intent_at": math.nan}, "'intent_at'"),
        ({"deadline": math.nan}, "'deadline'"),
        ({"deadline": math.inf}, "'deadline'"),
        ({"deadline": -math.inf}, "'deadline'"),
        ({"deadline": -5}, "'deadline'"),
        ({"clear_number": False}, "'clear_number'"),
        ({"submitted_try": 1.5}, "'submitted_try'"),
        ({"phase": 1}, "'phase'"),
        ({"outcome": "exploded"}, "'outcome'"),
        ({"message": 7}, "'message'"),
        ({"job": "job-1"}, "'job'"),
        ({"job": {"id": True}}, "'job'"),
        ({"job": {"id": {"nested": "x"}}}, "'job'"),
        ({"history": "[]"}, "'history'"),
        ({"history": [1]}, "'history[0]'"),
        ({"history": [{"generation": True, "token": "x"}]}, "'history[0]'.generation"),
        ({"history": [{"generation": 0, "token": "nope"}]}, "'history[0]'.token"),
        ({"history": [{"generation": 0, "token": IDENT.token(0) + "\n"}]}, "'history[0]'.token"),
        ({"history": [{"generation": 0, "token": IDENT.token(0), "outcome": "meh"}]}, "'history[0]'.outcome"),
        ({"token": None}, "'token'"),
    ],
)
def test_every_refusal_names_the_field(overrides, field):
    with pytest.raises(RecordError) as exc:
        load(good(**overrides))
    assert field in str(exc.value), str(exc.value)
    assert STATE_KEY in str(exc.value)


def test_a_huge_history_is_capped_on_load_and_a_huge_record_refused():
    entry = {"generation": 0, "token": IDENT.token(0), "job": {"id": "job-0"}, "outcome": "failed", "message": "x"}
    rec = load(good(history=[entry] * 1_000_000))  # about 90 MB as JSON, read in a fraction of a second
    assert len(rec.history) == HISTORY_LIMIT
    long_messages = [{**entry, "message": "m" * 10_000_000}] * 3
    assert all(len(h["message"]) <= 500 for h in load(good(history=long_messages)).history)
    with pytest.raises(RecordError, match=f"at most {RECORD_LIMIT}"):
        big_job = {f"k{i}": "v" * 2048 for i in range(16)}
        load(good(history=[{**entry, "job": big_job}] * HISTORY_LIMIT))


def test_a_message_is_cut_and_the_outcome_finished_record_stays_small():
    rec = load(good()).finished(Outcome.FAILED, "boom " * 1_000_000)
    assert rec.size() < RECORD_LIMIT
    assert load(json.loads(json.dumps(rec.to_json()))).outcome is Outcome.FAILED


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
fields = st.sampled_from(
    [
        "v",
        "system",
        "phase",
        "generation",
        "token",
        "intent_at",
        "deadline",
        "job",
        "outcome",
        "message",
        "clear_number",
        "submitted_try",
        "history",
        "extra",
    ]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(fields, json_values, max_size=6), st.booleans())
def test_fuzzed_records_either_load_cleanly_or_are_refused_with_a_record_error(changes, drop):
    data = good()
    for key, value in changes.items():
        if drop:
            data.pop(key, None)
        else:
            data[key] = value
    try:
        rec = load(data)
    except RecordError:
        return
    except DurableJobError as exc:  # pragma: no cover - would be a bug: only RecordError is expected
        raise AssertionError(f"unexpected {type(exc).__name__}") from exc
    # what loads is well formed: exact types, finite numbers, bounded
    assert type(rec.generation) is int and not isinstance(rec.generation, bool)
    assert math.isfinite(rec.intent_at) and (rec.deadline is None or math.isfinite(rec.deadline))
    assert rec.size() <= RECORD_LIMIT
    json.dumps(rec.to_json(), allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_anything_at_all_in_the_store_is_refused_cleanly(value):
    try:
        rec = load(value)
    except RecordError as exc:  # anything else escaping is the failure this test looks for
        assert "task state store key" in str(exc)
        return
    raise AssertionError(f"{value!r} loaded as {rec!r}")
