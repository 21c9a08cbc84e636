"""The record's optional ``tries``: each try's resume decision, written by the protocol, read back by the view."""

from __future__ import annotations

import json
from typing import Any

import pytest

from durable_jobs.errors import RecordError
from durable_jobs.protocol import Defer, Finished
from durable_jobs.record import STATE_KEY, TRIES_LIMIT, JobRecord, Outcome
from durable_jobs.status import JobState
from durable_jobs.testing.scripted import ScriptedClient
from tests.core.test_protocol import DictStore, ident, proto


def decisions(store: DictStore) -> list[tuple[int, str]]:
    return [(t["try"], t["decision"]) for t in store.data[STATE_KEY].get("tries", [])]


def test_each_try_keeps_its_decision_in_the_record_with_its_own_write_or_alone() -> None:
    client, store = ScriptedClient(), DictStore()
    assert isinstance(proto(client, store, 1).start(), Defer)
    assert decisions(store) == [(1, "fresh")]
    writes = len(store.log)
    # try 2 re-attaches: a decision that writes nothing else is written alone, once
    assert isinstance(proto(client, store, 2).start(), Defer)
    assert decisions(store) == [(1, "fresh"), (2, "reattached")] and len(store.log) == writes + 1
    # the job fails: try 3 submits the next generation, and the record keeps every try
    client.jobs["job-1"].script, client.jobs["job-1"].polls = [JobState.FAILED], 0
    assert isinstance(proto(client, store, 3).start(), Defer)
    rec = store.data[STATE_KEY]
    assert rec["generation"] == 1 and decisions(store) == [(1, "fresh"), (2, "reattached"), (3, "next_generation")]
    client.jobs["job-2"].script, client.jobs["job-2"].polls = [JobState.SUCCEEDED], 0
    assert isinstance(proto(client, store, 4).start(), Finished)
    assert decisions(store)[-1] == (4, "returned")
    assert all(isinstance(t["at"], float) for t in store.data[STATE_KEY]["tries"])


def test_a_record_without_tries_still_loads_and_one_with_them_round_trips() -> None:
    rec = JobRecord.intent(system="scripted", identity=ident(), generation=0, timeout=None, now=1_796_000_000.0)
    old = rec.to_json()
    assert "tries" not in old and JobRecord.from_json(old, system="scripted", identity=ident()).tries == ()
    kept = rec.decided(1, "fresh", 1_796_000_001.0).decided(1, "fresh", 1_796_000_002.0)  # the same: kept once
    assert kept.tries == ({"try": 1, "decision": "fresh", "at": 1_796_000_001.0},)
    back = JobRecord.from_json(json.loads(json.dumps(kept.to_json())), system="scripted", identity=ident())
    assert back == kept
    # kept across generations, capped to the last TRIES_LIMIT
    many = kept
    for n in range(2, TRIES_LIMIT + 5):
        many = many.decided(n, "reattached", 1_796_000_000.0 + n)
    assert len(many.tries) == TRIES_LIMIT and many.tries[-1]["try"] == TRIES_LIMIT + 4
    nxt = many.submitted({"id": "job-1"}).finished(Outcome.FAILED).next_generation(ident(), None)
    assert nxt.tries == many.tries


@pytest.mark.parametrize(
    ("tries", "says"),
    [
        ("fresh", "field 'tries' is 'fresh'"),
        ([1], "field 'tries[0]' is 1, expected an object"),
        ([{"try": 1, "decision": "Fresh!", "at": 1.0}], "'tries[0].decision' is 'Fresh!'"),
        ([{"try": -1, "decision": "fresh", "at": 1.0}], "field 'try' is -1"),
        ([{"try": 1, "decision": "fresh", "at": float("nan")}], "field 'at' is nan"),
    ],
)
def test_bad_tries_are_refused_naming_the_field(tries: Any, says: str) -> None:
    rec = JobRecord.intent(system="scripted", identity=ident(), generation=0, timeout=None).to_json()
    with pytest.raises(RecordError, match=says.replace("[", r"\[").replace("]", r"\]").replace("!", "!")):
        JobRecord.from_json({**rec, "tries": tries}, system="scripted", identity=ident())
