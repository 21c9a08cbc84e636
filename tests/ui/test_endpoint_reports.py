"""The view's reading of the triggerers' health reports (durable_jobs.ui.endpoints): no Airflow, no database.

A stored value is anything an Airflow Variable can hold (a user may edit it by hand): whatever it is, the
endpoint's row is answered, a value that cannot be read is listed as unreadable with why, and the endpoint's
state is then "unknown". Fuzzed with hypothesis.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from durable_jobs import health
from durable_jobs.ui.endpoints import by_endpoint, merge, stale_after

NOW = 1_800_000_000.0
ROW = {"system": "spark-standalone", "endpoint": "spark_up", "jobs": 3, "watched": 2, "last_update": None}


def value(**over: Any) -> str:
    base = health.EndpointHealth(
        "spark-standalone", "spark_up", "ok", NOW - 600, 2, NOW - 20, 30.0, "", "tr1.example", 101
    )
    data = json.loads(base.to_json())
    data.update(over)
    return json.dumps(data)


def key(conn_id: str = "spark_up", who: str = "tr1_example-101") -> str:
    return f"{health.PREFIX}{health.endpoint_part('spark-standalone', conn_id)}.{who}"


def answer(*values: tuple[str, str | None]) -> dict[str, Any]:
    return merge(ROW, by_endpoint(values), now=NOW)


def test_a_fresh_report_sets_the_state() -> None:
    row = answer((key(), value()))
    assert (row["state"], row["state_detail"], row["reported_watched"]) == ("ok", "answers", 2)
    assert row["last_poll"] == "2027-01-15T07:59:40+00:00" and row["since"] == "2027-01-15T07:50:00+00:00"
    ((t,),) = [row["triggerers"]]
    assert (t["host"], t["pid"], t["watched"], t["stale"], t["age_seconds"], t["readable"]) == (
        "tr1.example",
        101,
        2,
        False,
        20.0,
        True,
    )
    assert (row["jobs"], row["watched"]) == (3, 2)  # the records' own counts are kept


def test_the_worst_fresh_state_wins_with_its_earliest_since() -> None:
    row = answer(
        (key(), value()),
        (key(who="tr2-7"), value(state="unknown", since="2027-01-15T07:55:00+00:00", problem="connection refused")),
        (key(who="tr3-8"), value(state="unknown", since="2027-01-15T07:58:00+00:00", problem="later")),
    )
    assert (row["state"], row["since"]) == ("unknown", "2027-01-15T07:55:00+00:00")
    assert row["state_detail"] == "no answer since 2027-01-15T07:55:00+00:00: connection refused"
    row = answer((key(), value(state="auth refused", problem="HTTP 401")), (key(who="tr2-7"), value(state="unknown")))
    assert row["state"] == "auth refused" and row["state_detail"].startswith("refused the credentials since")


def test_a_stale_report_is_shown_with_its_age_but_sets_no_state() -> None:
    old = NOW - stale_after(30.0) - 1  # 181 s: 3 x max(30 s, 60 s)
    row = answer((key(), value(last_poll="2027-01-15T07:56:59+00:00")))
    assert old == 1_800_000_000.0 - 181
    (t,) = row["triggerers"]
    assert t["stale"] is True and t["age_seconds"] == 181.0
    assert row["state"] == "unknown" and row["since"] is None and row["reported_watched"] == 0
    assert row["state_detail"].startswith("not reported for 3 min") and row["last_poll"] == t["last_poll"]
    assert stale_after(600.0) == 1800.0  # a long poll interval waits longer


def test_no_report_and_no_connection() -> None:
    row = answer()
    assert (row["state"], row["triggerers"]) == ("unknown", [])
    assert row["state_detail"].startswith("no triggerer reports it")
    row = merge({**ROW, "endpoint": None}, by_endpoint([(key(), value())]), now=NOW)
    assert row["state"] == "unknown" and row["triggerers"] == []


def test_reports_of_other_endpoints_are_not_shown() -> None:
    row = answer((key("spark_other"), value(conn_id="spark_other")), ("unrelated.key", value()))
    assert row["triggerers"] == []
    (t,) = answer((key(), value(conn_id="spark_other")))["triggerers"]  # a value copied under another key
    assert t["readable"] is False and "another endpoint" in t["error"]


MALFORMED: list[tuple[str | None, str]] = [
    (None, "cannot be decrypted"),
    ("", "not JSON"),
    ("{", "not JSON"),
    ("[1]", "not a JSON object"),
    ("[" * 100_000, "not JSON"),
    (value(v=2), "field 'v' is 2"),
    (value(state="sick"), "field 'state'"),
    (value(state=None), "field 'state'"),
    (value(watched=True), "field 'watched'"),
    (value(watched=-1), "field 'watched'"),
    (value(watched="3"), "field 'watched'"),
    (value(interval=0), "field 'interval'"),
    (value(interval="30"), "field 'interval'"),
    (value(since="yesterday"), "field 'since'"),
    (value(since="2027-01-15T07:55:00"), "no time zone"),
    (value(since="0001-01-01T00:00:00+14:00"), "out of range"),
    (value(since=1.7e9), "field 'since'"),
    (value(last_poll=[]), "field 'last_poll'"),
    (value(triggerer="tr1"), "field 'triggerer'"),
    (value(triggerer={"host": "h"}), "field 'triggerer.pid'"),
    (value(problem="x" * 5000), "field 'problem'"),
    (value(system=None), "field 'system'"),
    (value(conn_id=""), "field 'conn_id'"),
]


def test_malformed_values_are_unreadable_never_an_error() -> None:
    for stored, why in MALFORMED:
        row = answer((key(), stored))
        (t,) = row["triggerers"]
        assert t["readable"] is False and why in t["error"], (stored and stored[:80], t["error"])
        assert row["state"] == "unknown" and row["state_detail"].startswith("its report cannot be read: ")
        json.dumps(row)  # the answer serialises
    row = answer((key(), "[1]"), (key(who="tr2-7"), value()))
    assert row["state"] == "ok" and [t["readable"] for t in row["triggerers"]] == [False, True]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "v": JSON | st.just(1),
        "system": JSON | st.just("spark-standalone"),
        "conn_id": JSON | st.just("spark_up"),
        "state": JSON | st.sampled_from(health.STATES),
        "since": JSON | st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
        "last_poll": JSON | st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
        "watched": JSON,
        "interval": JSON,
        "problem": JSON,
        "triggerer": JSON | st.fixed_dictionaries({"host": JSON, "pid": JSON}),
    },
)


@settings(max_examples=300, deadline=None)
@given(stored=st.one_of(st.none(), st.text(max_size=200), FIELDS.map(json.dumps), JSON.map(json.dumps)))
def test_any_stored_value_gives_an_answer(stored: str | None) -> None:
    row = answer((key(), stored))
    (t,) = row["triggerers"]
    assert row["state"] in health.STATES and t["readable"] in (True, False)
    assert t["readable"] or t["error"]
    json.dumps(row)


@settings(max_examples=100, deadline=None)
@given(keys=st.lists(st.text(max_size=60), max_size=5))
def test_any_stored_key_gives_an_answer(keys: list[str]) -> None:
    row = answer(*((health.PREFIX + k, value()) for k in keys))
    assert all(t["triggerer"] for t in row["triggerers"])
