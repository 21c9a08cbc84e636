"""Every branch of the submit-once protocol, against an in-memory store and a scripted client."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from durable_jobs import failpoints
from durable_jobs.errors import RecordError, TransientError
from durable_jobs.protocol import Defer, Finished, JobFailed, JobLost, JobProtocol, ProtocolSettings, RetryLater
from durable_jobs.record import STATE_KEY, JobRecord, Outcome, Phase, TaskIdentity, make_token
from durable_jobs.status import JobState
from durable_jobs.testing.scripted import ScriptedClient

R, S, F, C = JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED


class DictStore:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.log: list[dict[str, Any]] = []

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        assert value is not None
        self.data[key] = value
        self.log.append(value)


def ident(try_number: int = 1, clear_number: int = 0) -> TaskIdentity:
    return TaskIdentity("dag", "run1", "task", -1, try_number, clear_number)


def proto(client: ScriptedClient, store: DictStore, try_number: int = 1, **settings: Any) -> JobProtocol:
    loop = asyncio.new_event_loop()
    settings.setdefault("confirm_delay", 0.0)
    return JobProtocol(
        client=client,
        store=store,
        identity=ident(try_number, settings.pop("clear_number", 0)),
        spec=lambda _record: {"app": "x"},
        run=loop.run_until_complete,
        settings=ProtocolSettings(**settings),
        sleep=lambda s: None,
    )


def test_token_is_deterministic_and_per_generation():
    assert make_token("d", "r", "t", -1, 0) == make_token("d", "r", "t", -1, 0)
    assert make_token("d", "r", "t", -1, 0) != make_token("d", "r", "t", -1, 1)
    assert make_token("d", "r", "t", -1, 0) != make_token("d", "r", "t", 0, 0)
    assert ident().token(0).startswith("dj") and len(ident().token(0)) == 22


def test_fresh_task_writes_intent_before_submitting_then_the_locator():
    client, store = ScriptedClient(), DictStore()
    order: list[str] = []
    orig_set = store.set
    store.set = lambda k, v: (order.append(f"set:{v['phase']}"), orig_set(k, v))  # type: ignore[method-assign]
    orig_submit = client.submit

    async def submit(spec, token, *, reserved=None):
        order.append("submit")
        return await orig_submit(spec, token, reserved=reserved)

    client.submit = submit  # type: ignore[method-assign]
    decision = proto(client, store).start()
    assert isinstance(decision, Defer)
    assert order == ["set:submitting", "submit", "set:submitted"]
    rec = store.data[STATE_KEY]
    assert rec["phase"] == "submitted" and rec["job"] == {"id": "job-1"} and rec["generation"] == 0
    assert rec["token"] == ident().token(0)
    assert client.jobs["job-1"].token == rec["token"]


@pytest.mark.parametrize(
    ("point", "adopts"),
    [
        (failpoints.BEFORE_INTENT, False),
        (failpoints.AFTER_INTENT, False),
        (failpoints.AFTER_SUBMIT, True),
        (failpoints.AFTER_PERSIST, True),
    ],
)
def test_crash_at_each_submit_point_then_retry_gives_one_job(point: str, adopts: bool):
    client, store = ScriptedClient(), DictStore()
    failpoints.configure(f"{point}=raise")
    with pytest.raises(failpoints.SimulatedCrash):
        proto(client, store).start()
    failpoints.configure("")
    decision = proto(client, store, try_number=2).start()
    assert isinstance(decision, Defer)
    assert client.submissions() == 1, client.calls
    assert decision.record.job == {"id": "job-1"}
    assert decision.adopted is (point == failpoints.AFTER_SUBMIT)
    if point == failpoints.AFTER_SUBMIT:
        assert "find" in client.calls
    if point == failpoints.BEFORE_INTENT:
        # no record: try 2 cannot tell a crash before the intent from a lost record, so it looks for both
        # generations a second try could know of, finds neither, and submits generation 0
        assert client.calls == ["find", "find", "submit"]


def test_crash_before_outcome_then_retry_returns_without_new_job():
    client, store = ScriptedClient(scripts=[[S]]), DictStore()
    d = proto(client, store).start()
    assert isinstance(d, Defer)
    failpoints.configure(f"{failpoints.BEFORE_OUTCOME}=raise")
    with pytest.raises(failpoints.SimulatedCrash):
        proto(client, store).complete({"status": "succeeded", "job": d.record.job})
    failpoints.configure("")
    d2 = proto(client, store, try_number=2).start()
    assert isinstance(d2, Finished)
    assert d2.record.outcome is Outcome.SUCCEEDED
    assert client.submissions() == 1


def test_unknown_status_never_resubmits():
    client, store = ScriptedClient(), DictStore()
    proto(client, store).start()
    client.down = {"status"}
    for attempt in range(2, 5):
        d = proto(client, store, try_number=attempt).start()
        assert isinstance(d, Defer)
        assert d.status is not None and d.status.state is JobState.UNKNOWN
    assert client.submissions() == 1


def test_unreachable_endpoint_while_submitting_never_submits_blindly():
    client, store = ScriptedClient(), DictStore()
    failpoints.configure(f"{failpoints.AFTER_INTENT}=raise")
    with pytest.raises(failpoints.SimulatedCrash):
        proto(client, store).start()
    failpoints.configure("")
    client.down = {"find"}
    with pytest.raises(RetryLater, match="Not submitting blindly"):
        proto(client, store, try_number=2).start()
    assert client.submissions() == 0
    client.undecidable, client.down = True, set()
    with pytest.raises(RetryLater, match="cannot tell yet"):
        proto(client, store, try_number=3).start()
    assert client.submissions() == 0
    client.undecidable = False
    assert isinstance(proto(client, store, try_number=4).start(), Defer)
    assert client.submissions() == 1


def test_transient_submit_failure_keeps_intent_and_retry_finds_first():
    client, store = ScriptedClient(), DictStore()
    client.down = {"submit"}
    with pytest.raises(RetryLater):
        proto(client, store).start()
    assert store.data[STATE_KEY]["phase"] == "submitting"
    assert client.calls == ["submit", "find"]  # the try looked for the token once before failing
    client.down = set()
    proto(client, store, try_number=2).start()
    assert client.calls.count("find") == 2 and client.submissions() == 1


def test_a_submit_whose_answer_was_lost_goes_on_with_the_job_it_finds():
    """The submit reached the system and its answer was lost: the same try finds the job by its token."""
    client, store = ScriptedClient(), DictStore()
    submit = client.submit

    async def reset_after_sending(spec, token, *, reserved=None):
        await submit(spec, token, reserved=reserved)
        raise TransientError("connection reset after the request was sent")

    client.submit = reset_after_sending  # type: ignore[method-assign]
    d = proto(client, store).start()
    assert isinstance(d, Defer) and d.record.job == {"id": "job-1"} and client.submissions() == 1
    assert store.data[STATE_KEY]["phase"] == "submitted" and store.data[STATE_KEY]["job"] == {"id": "job-1"}


def test_terminal_failure_resubmits_once_with_new_generation_and_token():
    client, store = ScriptedClient(scripts=[[R, F], [R]]), DictStore()
    d = proto(client, store).start()
    with pytest.raises(JobFailed, match="generation 0"):
        proto(client, store).complete({"status": "failed", "job": d.record.job, "message": "exit 1"})
    rec = store.data[STATE_KEY]
    assert rec["phase"] == "finished" and rec["outcome"] == "failed"
    d2 = proto(client, store, try_number=2).start()
    assert isinstance(d2, Defer)
    assert d2.record.generation == 1 and d2.record.token == ident().token(1) != d.record.token
    assert client.submissions() == 2 and client.submissions(d2.record.token) == 1
    assert store.data[STATE_KEY]["history"][0]["job"] == {"id": "job-1"}
    assert store.data[STATE_KEY]["history"][0]["outcome"] == "failed"
    # a third try reattaches to generation 1, it does not submit again
    assert isinstance(proto(client, store, try_number=3).start(), Defer)
    assert client.submissions() == 2


def test_failure_seen_by_the_worker_check_moves_to_next_generation_at_once():
    client, store = ScriptedClient(scripts=[[F], [R]]), DictStore()
    proto(client, store).start()
    d = proto(client, store, try_number=2).start()
    assert isinstance(d, Defer) and d.record.generation == 1
    assert client.submissions() == 2


def test_a_try_run_again_by_airflow_fails_on_its_own_failed_job_and_submits_nothing():
    """apache/airflow#72716: Airflow runs try 1's execute() again after its job ended (the resume was lost). The
    job that try submitted failed: the try fails as execute_complete() would have; the retry submits generation 1."""
    client, store = ScriptedClient(scripts=[[F], [R]]), DictStore()
    proto(client, store).start()
    with pytest.raises(JobFailed, match=r"generation 0\) ended FAILED") as err:
        proto(client, store).start()  # the same try again
    assert "A retry" in str(err.value) and "submits generation 1" in str(err.value)
    assert client.submissions() == 1
    rec = store.data[STATE_KEY]
    assert (rec["phase"], rec["outcome"], rec["generation"]) == ("finished", "failed", 0)
    d = proto(client, store, try_number=2).start()
    assert isinstance(d, Defer) and d.record.generation == 1 and client.submissions() == 2


def test_succeeded_job_is_returned_without_a_new_submission():
    client, store = ScriptedClient(scripts=[[S]]), DictStore()
    proto(client, store).start()
    d = proto(client, store, try_number=2).start()  # worker check sees success
    assert isinstance(d, Finished) and store.data[STATE_KEY]["outcome"] == "succeeded"
    client.calls.clear()
    d3 = proto(client, store, try_number=3).start()
    assert isinstance(d3, Finished)
    assert client.calls == []  # no status, no submit: the record says it all


def test_lost_must_be_confirmed_before_a_new_generation():
    client, store = ScriptedClient(scripts=[[R], [R]]), DictStore()
    proto(client, store).start()
    calls = {"n": 0}
    orig = client.status

    async def flaky(loc):
        calls["n"] += 1
        if calls["n"] == 1:
            client.forget.add("job-1")
        else:
            client.forget.discard("job-1")
        return await orig(loc)

    client.status = flaky  # type: ignore[method-assign]
    d = proto(client, store, try_number=2, lost_confirmations=3).start()
    assert isinstance(d, Defer) and d.record.generation == 0
    client.status = orig  # type: ignore[method-assign]
    client.forget.add("job-1")
    # confirmed now; on_lost="resubmit" was asked for, so the next generation starts
    d = proto(client, store, try_number=3, lost_confirmations=3, on_lost="resubmit").start()
    assert isinstance(d, Defer) and d.record.generation == 1
    assert store.data[STATE_KEY]["history"][-1]["outcome"] == "lost"


def test_timeout_event_cancels_records_and_next_try_starts_fresh_deadline():
    client, store = ScriptedClient(scripts=[[R], [R]]), DictStore()
    d = proto(client, store, timeout=60).start()
    assert d.record.deadline is not None
    with pytest.raises(JobFailed, match="deadline passed"):
        proto(client, store, timeout=60).complete({"status": "timeout", "job": d.record.job})
    assert client.jobs["job-1"].cancelled
    assert store.data[STATE_KEY]["outcome"] == "cancelled"
    d2 = proto(client, store, try_number=2, timeout=60).start()
    assert d2.record.generation == 1 and d2.record.deadline is not None
    assert d2.record.deadline >= d.record.deadline


def test_a_job_forgotten_by_its_deadline_is_lost_not_cancelled_and_not_rerun():
    """Found by the simulation (tests/simulation): the cancel after a deadline found the job LOST and recorded
    CANCELLED, so the retry submitted the next generation, rerunning a job that may have succeeded."""
    client, store = ScriptedClient(scripts=[[R]]), DictStore()
    d = proto(client, store, timeout=60).start()
    client.forget.add("job-1")
    with pytest.raises(JobLost, match="no longer knows"):
        proto(client, store, timeout=60).complete({"status": "timeout", "job": d.record.job})
    assert store.data[STATE_KEY]["outcome"] == "lost"
    with pytest.raises(JobLost):
        proto(client, store, try_number=2, timeout=60).start()
    assert client.submissions() == 1


def test_timeout_with_unreachable_endpoint_waits_again_instead_of_failing_with_the_job_running(caplog):
    """Found by the simulation: a try that failed here left the job running for good when it was the last one.
    It waits again; its trigger starts past the deadline, so the triggerer cancels (tests/core/test_trigger.py)."""
    client, store = ScriptedClient(), DictStore()
    d = proto(client, store, timeout=60).start()
    client.down = {"cancel"}
    with caplog.at_level(logging.WARNING, logger="durable_jobs.protocol"):
        again = proto(client, store, max_tries=0).complete({"status": "timeout", "job": d.record.job})
    assert isinstance(again, Defer) and again.record.job == d.record.job
    assert store.data[STATE_KEY]["phase"] == "submitted" and client.submissions() == 1
    assert "the cancel of id=job-1 failed (cancel: endpoint down)" in caplog.text
    assert "the trigger cancels it until the system takes the cancel" in caplog.text


def test_unknown_event_rechecks_and_defers_again():
    client, store = ScriptedClient(), DictStore()
    d = proto(client, store).start()
    d2 = proto(client, store).complete({"status": "unknown", "job": d.record.job, "message": "down"})
    assert isinstance(d2, Defer) and client.submissions() == 1


def test_event_for_another_job_is_not_trusted():
    client, store = ScriptedClient(scripts=[[R]]), DictStore()
    proto(client, store).start()
    d = proto(client, store).complete({"status": "succeeded", "job": {"id": "job-99"}})
    assert isinstance(d, Defer)  # re-checked the recorded job instead
    assert store.data[STATE_KEY]["phase"] == "submitted"


def test_clear_semantics():
    client, store = ScriptedClient(scripts=[[S], [R]]), DictStore()
    proto(client, store).start()
    assert isinstance(proto(client, store, try_number=2).start(), Finished)
    # cleared: by default the recorded success is returned
    assert isinstance(proto(client, store, try_number=3, clear_number=1).start(), Finished)
    assert client.submissions() == 1
    # with rerun_on_clear a changed clear_number means a new generation
    d = proto(client, store, try_number=3, clear_number=1, rerun_on_clear=True).start()
    assert isinstance(d, Defer) and d.record.generation == 1
    assert client.submissions() == 2


def _seed(store: DictStore, **overrides: Any) -> None:
    rec = JobRecord.intent(system="scripted", identity=ident(), generation=0, timeout=None).submitted({"id": "job-1"})
    data = rec.to_json()
    data.update(overrides)
    store.data[STATE_KEY] = data


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"token": make_token("other-dag", "run1", "task", -1, 0)}, "copied from another task"),
        ({"token": "not-a-token"}, "field 'token' is 'not-a-token'"),
        ({"system": "yarn"}, "belongs to system"),
        ({"v": 99}, "record version"),
        ({"job": {"id": "job-1/../../admin"}}, "invalid scripted job id"),
        ({"job": {"id": "x", "extra": 1}}, "invalid scripted job id"),
        ({"generation": -1}, "field 'generation' is -1"),
        ({"phase": "weird"}, "field 'phase' is 'weird'"),
        ({"phase": "finished", "outcome": None}, "field 'outcome' is missing"),
    ],
)
def test_tampered_or_foreign_record_is_refused_before_any_request(overrides, match):
    client, store = ScriptedClient(), DictStore()
    _seed(store, **overrides)
    with pytest.raises(RecordError, match=match):
        proto(client, store).start()
    assert client.calls == []


def test_non_dict_record_is_refused():
    client, store = ScriptedClient(), DictStore()
    store.data[STATE_KEY] = "job-1"
    with pytest.raises(RecordError, match="not a durable_jobs record"):
        proto(client, store).start()
    assert client.calls == []


def test_history_is_bounded():
    client, store = ScriptedClient(scripts=[[F]] * 30), DictStore()
    proto(client, store).start()
    for t in range(2, 28):
        proto(client, store, try_number=t).start()
    rec = store.data[STATE_KEY]
    assert len(rec["history"]) == 20 and rec["generation"] == 26


def test_record_phase_values_are_stable_api():
    assert [p.value for p in Phase] == ["submitting", "submitted", "finished"]
    assert STATE_KEY == "durable_jobs.job"


@pytest.mark.parametrize("point", [failpoints.AFTER_INTENT, failpoints.AFTER_SUBMIT, failpoints.AFTER_PERSIST])
def test_reserved_id_is_recorded_before_submit_and_settles_find(point: str):
    client, store = ScriptedClient(reserving=True), DictStore()
    phases: list[tuple[str, Any]] = []
    orig_set = store.set
    store.set = lambda k, v: (phases.append((v["phase"], v["job"])), orig_set(k, v))  # type: ignore[method-assign]
    failpoints.configure(f"{point}=raise")
    with pytest.raises(failpoints.SimulatedCrash):
        proto(client, store).start()
    failpoints.configure("")
    d = proto(client, store, try_number=2).start()
    assert isinstance(d, Defer) and client.submissions() == 1
    if point != failpoints.AFTER_INTENT:
        # the intent held the id before the job existed
        assert phases[:2] == [("submitting", None), ("submitting", {"id": "job-1"})]
        assert d.record.job == {"id": "job-1"}


# --- what the task log and the failure say ---------------------------------------------------------------


def info_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    lines = [r.getMessage() for r in caplog.records if r.name == "durable_jobs.protocol" and r.levelno == logging.INFO]
    caplog.clear()
    return lines


def test_each_decision_is_one_info_line_in_words(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG, logger="durable_jobs.protocol")
    t0, t1 = ident().token(0), ident().token(1)
    client, store = ScriptedClient(scripts=[[R, F], [R]]), DictStore()
    proto(client, store).start()
    assert info_lines(caplog) == [
        "No job recorded for dag.task run run1: submitting generation 0",
        f"Submitted id=job-1 (generation 0, token {t0})",
    ]
    proto(client, store, try_number=2).start()
    assert info_lines(caplog) == ["Found id=job-1 from try 1; it is still RUNNING: re-attaching"]
    proto(client, store, try_number=3).start()
    assert info_lines(caplog) == [
        "Found id=job-1 from try 1; it ended FAILED (boom): submitting generation 1",
        f"Submitted id=job-2 (generation 1, token {t1})",
    ]
    d = proto(client, store, try_number=4).start()
    assert info_lines(caplog) == ["Found id=job-2 from try 3; it is still RUNNING: re-attaching"]
    last = {"state": "succeeded", "raw_state": "FINISHED"}
    proto(client, store, try_number=4).complete({"status": "succeeded", "job": d.record.job, "details": {"last": last}})
    assert info_lines(caplog) == ["id=job-2 SUCCEEDED (FINISHED): recording the outcome and returning its result"]
    proto(client, store, try_number=5).start()
    assert info_lines(caplog) == [
        "id=job-2 from generation 1 already SUCCEEDED: returning its result without running anything"
    ]
    # a crashed try's job, adopted; a crashed try that never submitted
    for point, line in (
        (
            failpoints.AFTER_SUBMIT,
            "Adopted id=job-1 from try 1, which ended before recording it; it is still RUNNING: re-attaching "
            f"(generation 0, token {t0})",
        ),
        (
            failpoints.AFTER_INTENT,
            f"No job carries token {t0} (generation 0, intent written by try 1): that try ended before submitting; "
            "submitting generation 0",
        ),
    ):
        client, store = ScriptedClient(), DictStore()
        failpoints.configure(f"{point}=raise")
        with pytest.raises(failpoints.SimulatedCrash):
            proto(client, store).start()
        failpoints.configure("")
        caplog.clear()
        proto(client, store, try_number=2).start()
        assert info_lines(caplog)[0] == line
    # forgotten by the system: lost
    client, store = ScriptedClient(), DictStore()
    proto(client, store).start()
    client.forget.add("job-1")
    caplog.clear()
    with pytest.raises(JobLost):
        proto(client, store, try_number=2).start()
    assert info_lines(caplog) == [
        "id=job-1 (generation 0) is LOST (job-1 unknown): not submitting it again; failing the task (on_lost='fail')"
    ]


class LinkedClient(ScriptedClient):
    """A client whose jobs have a driver log and a master page, like Spark standalone's."""

    async def links(self, locator: dict[str, Any]) -> dict[str, str]:
        return {"master_ui_url": "http://master:8080", "driver_ui_url": f"http://worker:8081/log?id={locator['id']}"}


@pytest.mark.parametrize(
    ("max_tries", "try_number", "then"),
    [
        (2, 1, "A retry (try 2 of 3) submits generation 1."),
        (2, 2, "A retry (try 3 of 3) submits generation 1."),
        (2, 3, "This task has no retries left, so nothing is resubmitted; clearing the task submits generation 1."),
        (0, 1, "This task has no retries left, so nothing is resubmitted; clearing the task submits generation 1."),
        (None, 1, "A retry of the task, if it has one left, submits generation 1."),
    ],
)
def test_a_failure_names_the_job_its_log_and_what_a_retry_does(max_tries: int | None, try_number: int, then: str):
    client, store = LinkedClient(), DictStore()
    d = proto(client, store).start()
    with pytest.raises(JobFailed) as failed:
        proto(client, store, try_number=try_number, max_tries=max_tries).complete(
            {"status": "failed", "job": d.record.job, "message": "exit code 1"}
        )
    assert str(failed.value) == (
        "id=job-1 (generation 0) ended FAILED: exit code 1. Driver log: http://worker:8081/log?id=job-1. "
        f"Master UI: http://master:8080. {then}"
    )


def test_a_links_error_never_masks_the_failure():
    class Broken(ScriptedClient):
        async def links(self, locator: dict[str, Any]) -> dict[str, str]:
            raise RuntimeError("links exploded")

    client, store = Broken(), DictStore()
    d = proto(client, store).start()
    last = {"state": "cancelled", "raw_state": "KILLED", "tracking_url": "http://ui/job-1"}
    with pytest.raises(JobFailed) as failed:
        proto(client, store, max_tries=0).complete(
            {"status": "cancelled", "job": d.record.job, "message": "", "details": {"last": last}}
        )
    # the status's own tracking URL stands in for the links
    assert str(failed.value) == (
        "id=job-1 (generation 0) ended CANCELLED. Tracking UI: http://ui/job-1. This task has no retries left, so "
        "nothing is resubmitted; clearing the task submits generation 1."
    )
    assert store.data[STATE_KEY]["outcome"] == "cancelled"


def test_a_retryable_refusal_says_whether_a_retry_comes():
    client, store = ScriptedClient(), DictStore()
    client.down = {"submit"}
    with pytest.raises(RetryLater) as later:
        proto(client, store, max_tries=1).start()
    assert str(later.value).endswith(
        "The intent is recorded. A retry (try 2 of 2) looks for the job with that token before submitting again."
    )
    with pytest.raises(RetryLater) as last:
        proto(client, store, try_number=2, max_tries=1).start()
    assert str(last.value).endswith(
        "This task has no retries left, so nothing is submitted; clearing the task looks for the job with that token "
        "before submitting again."
    )


def test_states_outcomes_and_phases_print_as_words():
    as_logged = logging.LogRecord("x", logging.INFO, "", 0, "%s %s %s", (Outcome.LOST, Phase.FINISHED, F), None)
    assert as_logged.getMessage() == "lost finished failed"
    assert f"{JobState.FAILED}" == "failed" and str(Phase.SUBMITTED) == "submitted"
    assert [f"{o}" for o in Outcome] == [o.value for o in Outcome]
