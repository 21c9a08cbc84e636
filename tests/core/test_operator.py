"""The operator on a (simulated) worker: Airflow's real TaskStateStoreAccessor over an in-memory store."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from durable_jobs.clients.spark_standalone.client import SparkStandaloneClient
from durable_jobs.hooks.spark_standalone import SparkStandaloneHook
from durable_jobs.operators.spark_standalone import SparkStandaloneOperator
from durable_jobs.record import STATE_KEY, JobRecord, TaskIdentity
from durable_jobs.testing.state_store import InMemoryStateStore
from durable_jobs.triggers.spark_standalone import SparkStandaloneTrigger
from durable_jobs_harness.airflow_ctx import FakeTI, task_context
from durable_jobs_harness.fake_spark import ThreadedFakeSparkMaster

SECRET = "eyJhbGciOiJIUzI1NiJ9.e30.very-secret-signature"


@pytest.fixture
def master(monkeypatch):
    with ThreadedFakeSparkMaster() as m:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SPARK_FAKE",
            json.dumps(
                {
                    "conn_type": "spark_standalone_rest",
                    "host": "127.0.0.1",
                    "port": m.port,
                    "password": SECRET,
                    "extra": {"master_ui_urls": m.url},
                }
            ),
        )
        SparkStandaloneHook.clear_cache()
        yield m
    SparkStandaloneHook.clear_cache()


def ctx(store: InMemoryStateStore, try_number: int = 1, clear_number: int = 0) -> dict[str, Any]:
    return task_context(store, ("dag", "run1", "spark", -1), try_number, clear_number)


def op(**kw: Any) -> SparkStandaloneOperator:
    kw.setdefault("poll_interval", 0.1)
    return SparkStandaloneOperator(
        task_id="spark", application="file:/apps/a.jar", main_class="demo.Main", conn_id="spark_fake", **kw
    )


def test_deferrable_by_default_and_honours_explicit_config(monkeypatch):
    monkeypatch.delenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", raising=False)
    assert op().deferrable is True
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "false")
    assert op().deferrable is False
    assert op(deferrable=True).deferrable is True
    monkeypatch.delenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE")
    monkeypatch.setenv("AIRFLOW__DURABLE_JOBS__DEFAULT_DEFERRABLE", "False")
    assert op().deferrable is False


def test_execute_persists_then_defers_with_padded_timeout_and_no_secret(master, store):
    c = ctx(store)
    with pytest.raises(TaskDeferred) as exc:
        op(job_timeout=timedelta(minutes=10)).execute(c)
    deferred = exc.value
    rec = store.rows[("dag", "run1", "spark", -1)][STATE_KEY]
    assert rec["phase"] == "submitted" and rec["job"] == {"driver_id": "driver-20261121100236-0001"}
    assert [w[1]["phase"] for w in store.writes] == ["submitting", "submitted"]
    assert isinstance(deferred.trigger, SparkStandaloneTrigger)
    _, kwargs = deferred.trigger.serialize()
    assert kwargs["job"] == rec["job"] and kwargs["token"] == rec["token"]
    assert SECRET not in json.dumps(kwargs)
    assert abs(kwargs["deadline"] - (rec["intent_at"] + 600)) < 1
    assert timedelta(minutes=10) < deferred.timeout <= timedelta(minutes=11, seconds=1)
    assert c["ti"].xcom["driver_id"] == rec["job"]["driver_id"]
    assert c["ti"].xcom["master_ui_url"] == master.url
    assert deferred.method_name == "execute_complete"


def test_resume_success_and_retry_returns_same_result_without_resubmitting(master, store):
    with pytest.raises(TaskDeferred) as exc:
        op().execute(ctx(store))
    event = {"status": "succeeded", "job": exc.value.trigger.job, "message": ""}
    result = op().execute_complete(ctx(store), event=event, **(exc.value.kwargs or {}))
    assert result["outcome"] == "succeeded" and result["job"] == exc.value.trigger.job
    creates = master.requests.count("create")
    retry = ctx(store, try_number=2)  # e.g. a clear after success: a new try starts with no XCom
    assert retry["ti"].xcom == {}
    again = op().execute(retry)
    assert again == result and master.requests.count("create") == creates == 1
    # the finished job keeps its buttons on the task page
    assert retry["ti"].xcom["driver_id"] == result["job"]["driver_id"]
    assert retry["ti"].xcom["master_ui_url"] == master.url


def test_failure_event_fails_the_try_and_the_retry_submits_generation_1(master, store):
    from airflow.sdk.exceptions import AirflowException

    with pytest.raises(TaskDeferred) as exc:
        op().execute(ctx(store))
    resumed = ctx(store)
    resumed["ti"].max_tries = 1  # retries=1: Airflow's task runner sets ti.max_tries
    driver = exc.value.trigger.job["driver_id"]
    with pytest.raises(AirflowException) as failed:
        op().execute_complete(resumed, event={"status": "failed", "job": exc.value.trigger.job, "message": "x"})
    # the job, its driver log, and what the retry does, from the task's real retries
    assert str(failed.value) == (
        f"Spark driver {driver} (generation 0) ended FAILED: x. "
        f"Driver log: {master.url}/logPage/?driverId={driver}&logType=stderr. Master UI: {master.url}. "
        "A retry (try 2 of 2) submits generation 1."
    )
    master.drivers[exc.value.trigger.job["driver_id"]] = "FAILED"
    with pytest.raises(TaskDeferred) as exc2:
        op().execute(ctx(store, try_number=2))
    assert exc2.value.trigger.generation == 1 and master.requests.count("create") == 2


def test_reattach_after_worker_crash_defers_to_the_same_driver(master, store):
    with pytest.raises(TaskDeferred) as first:
        op().execute(ctx(store))
    with pytest.raises(TaskDeferred) as second:
        op().execute(ctx(store, try_number=2))
    assert second.value.trigger.job == first.value.trigger.job
    assert master.requests.count("create") == 1


def test_non_deferrable_polls_on_the_worker_under_the_same_protocol(master, store, monkeypatch):
    def finish_later() -> None:
        time.sleep(0.5)
        master.drivers["driver-20261121100236-0001"] = "FINISHED"

    asked: list[dict[str, Any]] = []
    links = SparkStandaloneClient.links

    async def counted(self: SparkStandaloneClient, locator: dict[str, Any]) -> dict[str, str]:
        asked.append(locator)
        return await links(self, locator)

    monkeypatch.setattr(SparkStandaloneClient, "links", counted)
    threading.Thread(target=finish_later, daemon=True).start()
    c = ctx(store)
    result = op(deferrable=False).execute(c)
    assert result["outcome"] == "succeeded"
    assert store.rows[("dag", "run1", "spark", -1)][STATE_KEY]["phase"] == "finished"
    # the links are pushed once, before the wait; the same try's result does not push them again
    assert asked == [result["job"]] and c["ti"].xcom["master_ui_url"] == master.url


def test_missing_state_store_is_a_clear_error(master):
    with pytest.raises(AirflowFailException, match="task_state_store"):
        op().execute({"ti": FakeTI(("dag", "run1", "spark", -1))})


def test_tampered_record_fails_without_any_request(master, store):
    c = ctx(store)
    c["task_state_store"].set(
        STATE_KEY,
        {
            "v": 1,
            "system": "spark-standalone",
            "phase": "submitted",
            "generation": 0,
            "token": "dj" + "0" * 20,
            "intent_at": 0,
            "job": {"driver_id": "driver-1"},
        },
    )
    with pytest.raises(AirflowFailException, match="copied from another task or edited"):
        op().execute(c)
    assert master.requests == []


def test_bad_spec_fails_at_parse_time():
    with pytest.raises(ValueError, match="supervise"):
        op(conf={"spark.driver.supervise": "true"})


def test_a_wait_past_the_deadline_has_no_airflow_timeout():
    """Past its deadline the trigger cancels and fires once the job ended, however long the endpoint stays
    away: Airflow's own defer timeout would fail the task with the job still running."""
    ident = TaskIdentity("dag", "run1", "spark")
    rec = JobRecord.intent(system="spark-standalone", identity=ident, generation=0, timeout=600.0)
    assert timedelta(minutes=10) < op()._defer_timeout(rec) <= timedelta(minutes=11, seconds=1)
    late = JobRecord.intent(
        system="spark-standalone", identity=ident, generation=0, timeout=600.0, now=time.time() - 700
    )
    assert op()._defer_timeout(late) is None
