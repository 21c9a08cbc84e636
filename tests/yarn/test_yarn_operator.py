"""The YARN operators and trigger under the submit-once protocol: Airflow's real TaskStateStoreAccessor over an
in-memory store, the fake RM in a thread (simple auth), a crash at every point -> exactly one application."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException, TaskDeferred
from airflow.sdk.module_loading import import_string

from durable_jobs import failpoints
from durable_jobs.clients.yarn import YarnClient
from durable_jobs.failpoints import SimulatedCrash
from durable_jobs.hooks.yarn import YarnHook
from durable_jobs.operators.yarn import SparkOnYarnOperator, YarnApplicationOperator
from durable_jobs.record import STATE_KEY
from durable_jobs.status import JobState
from durable_jobs.testing.state_store import InMemoryStateStore
from durable_jobs.triggers.yarn import YarnTrigger
from durable_jobs_harness.airflow_ctx import run_until_deferred, task_context
from durable_jobs_harness.fake_yarn import FakeSparkSubmit, FakeYarnRM, ThreadedFakeYarnRM
from durable_jobs_harness.yarn_fixtures import crash_after_id_recorded, crash_after_new_application, threaded_rm

ROW = ("dag", "run1", "yarn_task", -1)


@pytest.fixture
def threaded(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadedFakeYarnRM]:
    with threaded_rm(monkeypatch, "yarn_fake", "simple", {"login": "alice"}) as t:
        yield t


@pytest.fixture
def rm(threaded: ThreadedFakeYarnRM) -> FakeYarnRM:
    return threaded.rm


def ctx(store: InMemoryStateStore, try_number: int = 1) -> dict[str, Any]:
    return task_context(store, ROW, try_number)


def rest_op(**kw: Any) -> YarnApplicationOperator:
    kw.setdefault("poll_interval", 0.1)
    return YarnApplicationOperator(
        task_id="yarn_task", command="sleep 30", tags=["Nightly"], conn_id="yarn_fake", retries=3, **kw
    )


def spark_op(**kw: Any) -> SparkOnYarnOperator:
    kw.setdefault("poll_interval", 0.1)
    return SparkOnYarnOperator(
        task_id="yarn_task", application="hdfs:///apps/etl.jar", main_class="Etl", conn_id="yarn_fake", **kw
    )


def record(store: InMemoryStateStore) -> dict[str, Any]:
    return store.rows[ROW][STATE_KEY]


# --- REST submission ---------------------------------------------------------------------------------------


def test_the_reserved_id_is_recorded_before_the_submission(rm, store):
    seen_at_post: list[Any] = []
    orig = YarnClient.submit_application

    async def spy(self, body):
        seen_at_post.append(json.loads(json.dumps(record(store))))
        return await orig(self, body)

    YarnClient.submit_application = spy  # type: ignore[method-assign]
    try:
        deferred = run_until_deferred(rest_op(), c := ctx(store))
    finally:
        YarnClient.submit_application = orig  # type: ignore[method-assign]
    (app_id,) = rm.apps
    assert seen_at_post[0]["phase"] == "submitting" and seen_at_post[0]["job"]["application_id"] == app_id
    assert [(w[1]["phase"], bool(w[1]["job"])) for w in store.writes] == [
        ("submitting", False),
        ("submitting", True),
        ("submitted", True),
    ]
    assert isinstance(deferred.trigger, YarnTrigger)
    assert deferred.trigger.job == {"application_id": app_id, "tag": record(store)["token"]}
    assert set(rm.apps[app_id].tags) == {record(store)["token"], "nightly"}
    assert c["ti"].xcom["application_id"] == app_id
    assert c["ti"].xcom["rm_app_url"] == f"{rm.url}/cluster/app/{app_id}"


CRASHES = {
    "after_intent": lambda mp, rm: failpoints.configure("after_intent=raise"),
    "after_new_application": lambda mp, rm: crash_after_new_application(mp),
    "after_id_recorded": lambda mp, rm: crash_after_id_recorded(mp),
    "submit_answer_lost": lambda mp, rm: rm.fail_next(path="/ws/v1/cluster/apps", method="POST", drop_after=True),
    "after_submit": lambda mp, rm: failpoints.configure("after_submit=raise"),
    "after_persist": lambda mp, rm: failpoints.configure("after_persist=raise"),
}


@pytest.mark.parametrize("crash", list(CRASHES))
def test_a_crash_at_any_point_leaves_exactly_one_application(rm, store, monkeypatch, crash):
    CRASHES[crash](monkeypatch, rm)
    with pytest.raises((SimulatedCrash, AirflowException, TaskDeferred)) as first:
        rest_op().execute(ctx(store))
    # a lost submit answer: the same try finds the application by its reserved id and defers on it
    assert isinstance(first.value, TaskDeferred) is (crash == "submit_answer_lost")
    failpoints.configure("")
    recorded = (record(store).get("job") or {}).get("application_id")
    assert (recorded is None) is (crash in ("after_intent", "after_new_application"))
    deferred = run_until_deferred(rest_op(), ctx(store, try_number=2))
    assert len(rm.apps) == 1, crash
    (app_id,) = rm.apps
    assert recorded in (None, app_id)  # a recorded id is the one that runs: nothing was guessed
    assert deferred.trigger.job["application_id"] == app_id
    assert record(store)["phase"] == "submitted" and record(store)["generation"] == 0
    # a third try reattaches to the same application
    assert run_until_deferred(rest_op(), ctx(store, try_number=3)).trigger.job == deferred.trigger.job
    assert len(rm.apps) == 1


def test_a_failure_starts_a_new_generation_with_a_new_application(rm, store):
    first = run_until_deferred(rest_op(), ctx(store))
    app1 = first.trigger.job["application_id"]
    rm.advance(app1, "FAILED", "FAILED", "AM container exited with exitCode: 1")
    event = {"status": "failed", "job": first.trigger.job, "message": "AM container exited with exitCode: 1"}
    with pytest.raises(AirflowException, match="ended FAILED: AM container exited"):
        rest_op().execute_complete(ctx(store), event=event)
    second = run_until_deferred(rest_op(), ctx(store, try_number=2))
    assert second.trigger.generation == 1 and second.trigger.job["application_id"] != app1
    assert len(rm.apps) == 2
    assert second.trigger.token in rm.apps[second.trigger.job["application_id"]].tags
    assert record(store)["history"][0]["job"]["application_id"] == app1


def test_an_unreachable_rm_is_unknown_never_failed(threaded, store):
    rm = threaded.rm
    first = run_until_deferred(rest_op(), ctx(store))
    threaded.stop_rm()
    # a new try while the RM is down: status unknown -> defer again to the same application, nothing new
    again = run_until_deferred(rest_op(), ctx(store, try_number=2))
    assert again.trigger.job == first.trigger.job and record(store)["phase"] == "submitted"
    threaded.start_rm()
    assert len(rm.apps) == 1


def test_find_cannot_decide_while_the_rm_is_down_so_nothing_is_submitted(threaded, store):
    rm = threaded.rm
    failpoints.configure("after_submit=raise")
    with pytest.raises(SimulatedCrash):
        rest_op().execute(ctx(store))
    failpoints.configure("")
    threaded.stop_rm()
    with pytest.raises(AirflowException, match=r"cannot look for the job|cannot tell yet"):
        rest_op().execute(ctx(store, try_number=2))
    assert record(store)["phase"] == "submitting"
    threaded.start_rm()
    run_until_deferred(rest_op(), ctx(store, try_number=3))
    assert len(rm.apps) == 1


def test_an_app_evicted_while_the_triggerer_was_down_fails_the_task_without_a_resubmission(rm, store):
    first = run_until_deferred(rest_op(lost_confirmations=2), ctx(store))
    app_id = first.trigger.job["application_id"]
    rm.advance(app_id, "FINISHED", "SUCCEEDED")  # it ran to success while no trigger watched it ...
    rm.cluster.max_completed = 0  # ... and the RM forgot it (yarn.resourcemanager.max-completed-applications)
    rm.cluster.enforce_retention()
    assert rm.cluster.evicted == [app_id]
    posts = len(rm.requests("POST"))
    for try_number in (2, 3):  # the default on_lost: fail without retry, and never submit again
        with pytest.raises(AirflowFailException, match="was not submitted again"):
            rest_op(lost_confirmations=2).execute(ctx(store, try_number=try_number))
    assert len(rm.requests("POST")) == posts and rm.apps == {}
    assert record(store)["outcome"] == "lost"


def test_non_deferrable_waits_on_the_worker_under_the_same_protocol(rm, store):
    rm.cluster.script_for_new = [("RUNNING", "UNDEFINED", ""), ("FINISHED", "SUCCEEDED", "")]
    result = rest_op(deferrable=False).execute(ctx(store))
    assert result["outcome"] == "succeeded" and result["system"] == "yarn"
    assert record(store)["phase"] == "finished"


def test_operator_validates_at_parse_time():
    with pytest.raises(ValueError, match="AM command"):
        YarnApplicationOperator(task_id="t", command=" ")
    with pytest.raises(ValueError, match="cluster"):
        SparkOnYarnOperator(task_id="t", application="/a.py", conf={"spark.submit.deployMode": "client"})


# --- spark-submit ------------------------------------------------------------------------------------------


@pytest.fixture
def spark_submit(rm, monkeypatch) -> FakeSparkSubmit:
    runner = FakeSparkSubmit(rm.cluster)
    orig = YarnHook.client_from_connection.__func__  # type: ignore[attr-defined]

    def with_runner(cls, conn):
        client = orig(cls, conn)
        client.runner = runner
        return client

    monkeypatch.setattr(YarnHook, "client_from_connection", classmethod(with_runner))
    YarnHook.clear_cache()
    return runner


def test_spark_on_yarn_submits_once_and_a_crash_after_submit_adopts_by_tag(rm, store, spark_submit):
    failpoints.configure("after_submit=raise")
    with pytest.raises(SimulatedCrash):
        spark_op().execute(ctx(store))
    failpoints.configure("")
    assert record(store)["phase"] == "submitting" and record(store)["job"] is None  # nothing to GET: find by tag
    deferred = run_until_deferred(spark_op(), ctx(store, try_number=2))
    assert len(spark_submit.calls) == 1 and len(rm.apps) == 1
    (app_id,) = rm.apps
    assert deferred.trigger.job == {"application_id": app_id, "tag": record(store)["token"]}
    argv = spark_submit.calls[0][0]
    assert argv[argv.index("--deploy-mode") + 1] == "cluster"
    assert f"spark.yarn.tags={record(store)['token']}" in argv
    assert "spark.yarn.submit.waitAppCompletion=false" in argv


# --- the trigger -------------------------------------------------------------------------------------------


def test_trigger_serializes_and_holds_no_secret():
    trig = YarnTrigger(
        job={"application_id": "application_1_2", "tag": "dj0123456789abcdef0123"},
        conn_id="yarn_fake",
        token="dj0123456789abcdef0123",
        generation=0,
        deadline=time.time() + 60,
    )
    classpath, kwargs = trig.serialize()
    assert classpath == "durable_jobs.triggers.yarn.YarnTrigger"
    assert import_string(classpath)(**kwargs).serialize() == (classpath, kwargs)
    assert set(kwargs) == {
        "job",
        "conn_id",
        "token",
        "generation",
        "poll_interval",
        "deadline",
        "unknown_budget",
        "lost_confirmations",
    }


async def test_trigger_runs_to_success_and_on_kill_kills(monkeypatch):
    from airflow.sdk.execution_time import task_runner

    from durable_jobs.transport.http import close_sessions

    rm = await FakeYarnRM(auth="simple").start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_YARN_FAKE",
        json.dumps({"conn_type": "yarn_rm", "host": "127.0.0.1", "port": rm.port, "login": "alice"}),
    )
    YarnHook.clear_cache()
    try:
        client = await YarnHook.aget_client("yarn_fake")
        spec = rest_op().build_spec(None)
        token = "dj0123456789abcdef0123"
        job = await client.submit(spec, token, reserved=await client.reserve(spec, token))
        rm.script(job["application_id"], [("RUNNING", "UNDEFINED", ""), ("FINISHED", "SUCCEEDED", "")])
        trig = YarnTrigger(job=job, conn_id="yarn_fake", token=token, generation=0, poll_interval=0.05)
        events = [e async for e in trig.run()]
        assert [e.payload["status"] for e in events] == ["succeeded"]
        assert events[0].payload["details"]["last"]["raw_state"] == "FINISHED/SUCCEEDED"

        other = await client.submit(spec, "dj" + "2" * 20, reserved=await client.reserve(spec, "dj" + "2" * 20))
        rm.advance(other["application_id"], "RUNNING")
        killer = YarnTrigger(job=other, conn_id="yarn_fake", token="dj" + "2" * 20, generation=0)
        killer.task_instance = SimpleNamespace(dag_id="d", run_id="run1", task_id="t", map_index=-1, try_number=1)

        class Comms:
            async def asend(self, msg: Any) -> Any:
                return SimpleNamespace(task_states={"run1": {"t": "failed"}})

        monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", Comms(), raising=False)
        await killer.on_kill()
        assert rm.apps[other["application_id"]].state == "KILLED"
        assert (await client.status(other)).state is JobState.CANCELLED
    finally:
        await close_sessions()
        await rm.stop()
        YarnHook.clear_cache()


def test_connection_fields_build_the_config():
    conn = SimpleNamespace(
        conn_id="c",
        host="rm1.example.com,https://rm2.example.com:8090",
        port=None,
        schema="https",
        login=None,
        extra_dejson={
            "principal": "etl@EXAMPLE.COM",
            "keytab": "/etc/security/etl.keytab",
            "kerberos_hostname": "rm.example.com",
            "verify_ssl": "false",
            "spark_home": "/opt/spark",
            "hadoop_conf_dir": "/etc/hadoop/conf",
            "max_response_bytes": "64MiB",
        },
    )
    cfg = YarnHook.config_from_connection(conn)
    assert cfg.max_body == 64 * 1024 * 1024
    assert cfg.rm_urls == ("https://rm1.example.com:8090", "https://rm2.example.com:8090")
    assert cfg.auth == "kerberos" and cfg.kerberos is not None and cfg.kerberos.keytab == "/etc/security/etl.keytab"
    assert cfg.kerberos_hostname == "rm.example.com" and cfg.verify_ssl is False
    assert cfg.spark_submit == "/opt/spark/bin/spark-submit" and cfg.spark_env["HADOOP_CONF_DIR"] == "/etc/hadoop/conf"
    simple = YarnHook.config_from_connection(
        SimpleNamespace(conn_id="s", host="rm", port=8088, schema="", login="bob", extra_dejson={})
    )
    assert simple.auth == "simple" and simple.user == "bob" and simple.rm_urls == ("http://rm:8088",)
    assert simple.max_body == 16 * 1024 * 1024  # the default
    with pytest.raises(ValueError, match="max_response_bytes"):
        YarnHook.config_from_connection(
            SimpleNamespace(
                conn_id="s", host="rm", port=8088, schema="", login="bob", extra_dejson={"max_response_bytes": -1}
            )
        )
