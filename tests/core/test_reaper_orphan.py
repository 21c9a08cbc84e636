"""What a user's mark asks the reaper to do (:func:`durable_jobs.reaper.orphan.plan`), without a database."""

from __future__ import annotations

import json
from typing import Any

from durable_jobs.reaper.orphan import DurableTrigger, MarkedTask, Reap, Skip, plan
from durable_jobs.record import JobRecord, Outcome, TaskIdentity

TASK = MarkedTask("dag", "run", "task", -1, "ti-1", "mark_failed")
WHO = TaskIdentity("dag", "run", "task", -1)
HOOK = "durable_jobs.hooks.spark_standalone.SparkStandaloneHook"
TRIGGER = DurableTrigger(hook=HOOK, conn_id="from_trigger", job={"id": "job-1"}, token=WHO.token(0), generation=0)


def callback_kwargs(**over: Any) -> dict[str, Any]:
    """The kwargs the listener queues for generation 0 of ``TASK``'s job (``over`` replaces some)."""
    base = {
        "system": "scripted",
        "dag_id": "dag",
        "run_id": "run",
        "task_id": "task",
        "map_index": -1,
        "ti_id": "ti-1",
        "by": "mark_failed",
        "hook": HOOK,
        "conn_id": "c",
        "job": {"id": "job-1"},
        "token": WHO.token(0),
        "generation": 0,
        "marked_at": 1.0,
    }
    return {**base, **over}


def stored(rec: JobRecord) -> str:
    return json.dumps(rec.to_json())


def intent(**fields: Any) -> JobRecord:
    return JobRecord.intent(system="scripted", identity=WHO, generation=0, timeout=None, **fields)


def test_a_submitted_record_is_tombstoned_and_its_cancel_queued_without_secrets() -> None:
    rec = intent(conn_id="c", hook=HOOK).submitted({"id": "job-1"})
    out = plan(TASK, stored(rec), None, now=50.0)
    assert isinstance(out, Reap) and out.source == "record" and out.tombstone is not None
    tomb = json.loads(out.tombstone)
    assert (tomb["phase"], tomb["outcome"], tomb["cancel"]) == (
        "finished",
        "cancelled",
        {"at": 50.0, "by": "mark_failed", "ti_id": "ti-1"},
    )
    assert out.kwargs == callback_kwargs(conn_id="c", marked_at=50.0)


def test_no_record_and_no_trigger_is_not_ours() -> None:
    assert plan(TASK, None, None) == Skip("no record", quiet=True)


def test_a_finished_record_gets_nothing() -> None:
    rec = intent().submitted({"id": "job-1"}).finished(Outcome.SUCCEEDED)
    out = plan(TASK, stored(rec), TRIGGER)
    assert isinstance(out, Skip) and out.quiet and "already ended succeeded" in out.why


def test_an_intent_without_a_locator_gets_nothing_and_says_why() -> None:
    out = plan(TASK, stored(intent(conn_id="c", hook=HOOK)), None)
    assert isinstance(out, Skip) and not out.quiet and "no job id" in out.why


def test_an_intent_with_a_reserved_id_is_tombstoned_and_cancelled() -> None:
    rec = intent(conn_id="c", hook=HOOK)
    rec = JobRecord(**{**{f: getattr(rec, f) for f in rec.__dataclass_fields__}, "job": {"id": "job-7"}})
    out = plan(TASK, stored(rec), None)
    assert isinstance(out, Reap) and out.kwargs["job"] == {"id": "job-7"}
    assert json.loads(out.tombstone or "")["phase"] == "finished"


def test_a_record_cleared_on_success_takes_the_locator_from_the_trigger_row_and_writes_no_tombstone() -> None:
    out = plan(MarkedTask("dag", "run", "task", -1, "ti-1", "mark_success"), None, TRIGGER)
    assert isinstance(out, Reap) and out.tombstone is None and out.source == "trigger"
    assert (out.kwargs["conn_id"], out.kwargs["hook"], out.kwargs["system"]) == ("from_trigger", HOOK, None)


def test_an_old_record_takes_conn_id_and_hook_from_the_trigger_row_else_is_skipped() -> None:
    old = stored(intent().submitted({"id": "job-1"}))
    out = plan(TASK, old, TRIGGER)
    assert isinstance(out, Reap) and (out.kwargs["conn_id"], out.kwargs["hook"]) == ("from_trigger", HOOK)
    skipped = plan(TASK, old, None)
    assert isinstance(skipped, Skip) and "names no connection or hook" in skipped.why


def test_a_record_that_cannot_be_read_is_never_acted_on() -> None:
    other = TaskIdentity("dag", "run", "other_task", -1)
    foreign = JobRecord.intent(system="scripted", identity=other, generation=0, timeout=None).submitted({"id": "j"})
    for raw in (stored(foreign), "not json", json.dumps([1])):
        out = plan(TASK, raw, TRIGGER)
        assert isinstance(out, Skip) and "cannot be read" in out.why, raw


def test_an_object_storage_reference_falls_back_to_the_trigger_row() -> None:
    ref = json.dumps({"__airflow_state_ref__": "s3://bucket/x"})
    assert isinstance(plan(TASK, ref, TRIGGER), Reap)
    out = plan(TASK, ref, None)
    assert isinstance(out, Skip) and "object-storage" in out.why


def test_the_trigger_kwargs_must_be_a_durable_triggers() -> None:
    assert DurableTrigger.from_kwargs(HOOK, {"job": {"id": "j"}, "conn_id": "c", "token": "t", "generation": 0})
    assert DurableTrigger.from_kwargs(HOOK, {"job": "j", "conn_id": "c", "token": "t", "generation": 0}) is None
    assert DurableTrigger.from_kwargs(HOOK, {"moment": "2026"}) is None
