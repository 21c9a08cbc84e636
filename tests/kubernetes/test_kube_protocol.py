"""The submit-once protocol over Kubernetes: the operators on a (simulated) worker, against the fake or a cluster.

Airflow's real TaskStateStoreAccessor over an in-memory store (tests/core/test_operator.py does the same for
Spark); the cluster is the TLS contract fake (or a real one with DURABLE_JOBS_KUBE_REAL=1). A crash at every
protocol point, then a retry, leaves exactly one object per generation.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, TypeVar
from unittest import mock

import pytest
from airflow.sdk.exceptions import AirflowException, TaskDeferred

from durable_jobs import failpoints
from durable_jobs.clients.kubernetes import KINDS, TOKEN_LABEL, KubernetesClient
from durable_jobs.operators.kubernetes import KubernetesJobOperator, KubernetesPodOperator, SparkApplicationOperator
from durable_jobs.record import STATE_KEY, make_token
from durable_jobs.testing.state_store import InMemoryStateStore
from durable_jobs.transport.http import close_sessions
from durable_jobs.triggers.kubernetes import KubernetesTrigger
from durable_jobs_harness.kube_fixtures import CONN_ID, TEST_RUN_LABEL, KubeTarget

T = TypeVar("T")
RUN_ID = "manual__2026-11-21T10:00:00+00:00"


class FakeTI:
    def __init__(self, task_id: str, try_number: int = 1) -> None:
        self.dag_id, self.run_id, self.task_id, self.map_index = "k8s_dag", RUN_ID, task_id, -1
        self.try_number = try_number
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


@pytest.fixture
def store():
    s = InMemoryStateStore()
    with s.installed():
        yield s


@pytest.fixture(autouse=True)
def _no_failpoints():
    failpoints.configure("")
    yield
    failpoints.configure("")


def ctx(store: InMemoryStateStore, task_id: str, try_number: int = 1) -> dict[str, Any]:
    return {
        "task_state_store": store.accessor("k8s_dag", RUN_ID, task_id),
        "ti": FakeTI(task_id, try_number),
        "dag_run": SimpleNamespace(clear_number=0),
    }


def record(store: InMemoryStateStore, task_id: str) -> dict[str, Any]:
    return store.rows[("k8s_dag", RUN_ID, task_id, -1)][STATE_KEY]


def run(kube: KubeTarget, call: Callable[[KubernetesClient], Awaitable[T]]) -> T:
    """Run ``call(client)`` on a private loop (the test is sync, like a worker)."""

    async def main() -> T:
        try:
            return await call(kube.client())
        finally:
            await close_sessions()

    return asyncio.run(main())


def task_objects(kube: KubeTarget, kind: str, task_id: str) -> list[dict[str, Any]]:
    """Every object of ``kind`` this test run created for ``task_id``, any generation."""

    async def call(client: KubernetesClient) -> list[dict[str, Any]]:
        conn = await client.connection()
        selector = f"{TEST_RUN_LABEL}={kube.run_id},durable-jobs.io/task-id={task_id}"
        reply = await conn.call(
            "GET", KINDS[kind].collection(kube.namespace), query=[("labelSelector", selector)], what="list"
        )
        return list(reply.json().get("items") or ())

    return run(kube, call)


def job_op(kube: KubeTarget, task_id: str, script: str, **kwargs: Any) -> KubernetesJobOperator:
    kwargs.setdefault("poll_interval", 0.1 if kube.fake else 1.0)
    return KubernetesJobOperator(
        task_id=task_id,
        image=kube.image,
        cmds=["sh", "-c"],
        arguments=[script],
        backoff_limit=0,
        namespace=kube.namespace,
        labels=kube.labels,
        conn_id=CONN_ID,
        **kwargs,
    )


def trigger_event(kube: KubeTarget, trigger: KubernetesTrigger) -> dict[str, Any]:
    """Run the trigger the way the triggerer does, until its one event."""

    async def main() -> list[dict[str, Any]]:
        try:
            return [event.payload async for event in trigger.run()]
        finally:
            await close_sessions()

    events = asyncio.run(asyncio.wait_for(main(), kube.wait_limit))
    assert len(events) == 1, events
    return events[0]


def test_execute_persists_then_defers_with_xcom_labels_and_no_secret(kube: KubeTarget, store) -> None:
    c = ctx(store, "load")
    with pytest.raises(TaskDeferred) as exc:
        job_op(kube, "load", "sleep 600", job_timeout=timedelta(minutes=10)).execute(c)
    rec = record(store, "load")
    assert [w[1]["phase"] for w in store.writes] == ["submitting", "submitted"]
    job = rec["job"]
    token = make_token("k8s_dag", RUN_ID, "load", -1, 0)
    assert rec["token"] == token and job["name"] == f"load-{token}" and job["namespace"] == kube.namespace
    assert {k: c["ti"].xcom[k] for k in ("kind", "namespace", "name", "uid")} == job
    trigger = exc.value.trigger
    assert isinstance(trigger, KubernetesTrigger) and trigger.job == job
    _, kwargs = trigger.serialize()
    text = json.dumps(kwargs)
    assert kwargs["conn_id"] == CONN_ID and str(kube.kubeconfig) not in text and 'token": "dj' in text
    if kube.fake is not None:
        assert kube.fake.token not in text
    (obj,) = task_objects(kube, "Job", "load")
    labels = obj["metadata"]["labels"]
    assert labels[TOKEN_LABEL] == token and labels["durable-jobs.io/dag-id"] == "k8s_dag"
    assert labels["durable-jobs.io/generation"] == "0"
    assert obj["metadata"]["annotations"]["durable-jobs.io/run-id"] == RUN_ID
    assert obj["metadata"]["uid"] == job["uid"]
    run(kube, lambda client: client.cancel(job))


@pytest.mark.parametrize("point", [failpoints.AFTER_INTENT, failpoints.AFTER_SUBMIT, failpoints.AFTER_PERSIST])
def test_a_crash_at_each_point_then_a_retry_gives_one_object(kube: KubeTarget, store, point: str) -> None:
    task_id = f"crash-{point.replace('_', '-')}"
    failpoints.configure(f"{point}=raise")
    with pytest.raises(failpoints.SimulatedCrash):
        job_op(kube, task_id, "sleep 600").execute(ctx(store, task_id))
    failpoints.configure("")
    created = task_objects(kube, "Job", task_id)
    assert len(created) == (0 if point == failpoints.AFTER_INTENT else 1)
    with pytest.raises(TaskDeferred) as exc:
        job_op(kube, task_id, "sleep 600").execute(ctx(store, task_id, try_number=2))
    (obj,) = task_objects(kube, "Job", task_id)  # exactly one object
    job = exc.value.trigger.job
    assert obj["metadata"]["uid"] == job["uid"] == record(store, task_id)["job"]["uid"]
    if created:
        assert created[0]["metadata"]["uid"] == job["uid"]  # adopted, not created again
    run(kube, lambda client: client.cancel(job))


def test_a_crash_before_the_outcome_is_recorded_returns_without_a_new_object(kube: KubeTarget, store) -> None:
    with pytest.raises(TaskDeferred) as exc:
        job_op(kube, "outcome", "echo done").execute(ctx(store, "outcome"))
    event = trigger_event(kube, exc.value.trigger)
    assert event["status"] == "succeeded", event
    failpoints.configure(f"{failpoints.BEFORE_OUTCOME}=raise")
    with pytest.raises(failpoints.SimulatedCrash):
        job_op(kube, "outcome", "echo done").execute_complete(ctx(store, "outcome"), event=event)
    failpoints.configure("")
    result = job_op(kube, "outcome", "echo done").execute(ctx(store, "outcome", try_number=2))
    assert result["outcome"] == "succeeded" and result["job"] == exc.value.trigger.job
    assert len(task_objects(kube, "Job", "outcome")) == 1
    assert record(store, "outcome")["phase"] == "finished"


def test_a_failure_raises_with_the_pod_logs_and_the_retry_runs_generation_1(kube: KubeTarget, store) -> None:
    script = "echo reading input; echo ValueError: bad row 17; exit 4"
    with pytest.raises(TaskDeferred) as exc:
        job_op(kube, "flaky", script).execute(ctx(store, "flaky"))
    event = trigger_event(kube, exc.value.trigger)
    assert event["status"] == "failed"
    with pytest.raises(AirflowException) as failed:
        job_op(kube, "flaky", script).execute_complete(ctx(store, "flaky"), event=event)
    message = str(failed.value)
    assert "ended FAILED" in message and "BackoffLimitExceeded" in message and "exit code 4" in message
    assert "ValueError: bad row 17" in message  # the failed pod's last log lines
    with pytest.raises(TaskDeferred) as retry:
        job_op(kube, "flaky", "sleep 600").execute(ctx(store, "flaky", try_number=2))
    assert retry.value.trigger.generation == 1
    objects = task_objects(kube, "Job", "flaky")
    assert sorted(o["metadata"]["labels"]["durable-jobs.io/generation"] for o in objects) == ["0", "1"]
    assert len({o["metadata"]["labels"][TOKEN_LABEL] for o in objects}) == 2
    run(kube, lambda client: client.cancel(retry.value.trigger.job))


def test_on_kill_deletes_the_object_unless_a_new_try_owns_it(kube: KubeTarget, store) -> None:
    with pytest.raises(TaskDeferred) as exc:
        job_op(kube, "killed", "sleep 600").execute(ctx(store, "killed"))
    trigger: KubernetesTrigger = exc.value.trigger
    trigger.task_instance = SimpleNamespace(dag_id="k8s_dag", run_id=RUN_ID, task_id="killed", map_index=-1)

    def kill(ti_state: str) -> None:
        async def main() -> None:
            try:
                with mock.patch.object(trigger, "_task_instance_state", mock.AsyncMock(return_value=ti_state)):
                    await trigger.on_kill()
            finally:
                await close_sessions()

        asyncio.run(main())

    kill("deferred")  # cleared: a new try re-attached to the job, which must live
    assert len(task_objects(kube, "Job", "killed")) == 1
    kill("failed")  # marked failed by a user: delete it
    assert task_objects(kube, "Job", "killed") == []


def test_a_deadline_event_cancels_the_job(kube: KubeTarget, store) -> None:
    with pytest.raises(TaskDeferred) as exc:
        job_op(kube, "late", "sleep 600").execute(ctx(store, "late"))
    event = {"status": "timeout", "job": exc.value.trigger.job, "message": "deadline passed while running"}
    with pytest.raises(AirflowException, match="deadline passed; job cancelled"):
        job_op(kube, "late", "sleep 600").execute_complete(ctx(store, "late"), event=event)
    assert task_objects(kube, "Job", "late") == []
    assert record(store, "late")["outcome"] == "cancelled"


def test_not_deferrable_waits_on_the_worker_under_the_same_protocol(kube: KubeTarget, store) -> None:
    c = ctx(store, "inline")
    result = job_op(kube, "inline", "echo hi", deferrable=False).execute(c)
    assert result["outcome"] == "succeeded" and result["system"] == "kubernetes"
    assert c["ti"].xcom["name"] == result["job"]["name"]
    assert record(store, "inline")["phase"] == "finished"


def test_pod_and_spark_application_operators(kube_fake: KubeTarget, store) -> None:
    pod_op = KubernetesPodOperator(
        task_id="pod",
        image=kube_fake.image,
        cmds=["sh", "-c", "echo pod done"],
        namespace=kube_fake.namespace,
        conn_id=CONN_ID,
        poll_interval=0.1,
        deferrable=False,
    )
    assert pod_op.execute(ctx(store, "pod"))["outcome"] == "succeeded"
    spark_op = SparkApplicationOperator(
        task_id="spark_pi",
        application={"type": "Scala", "mode": "cluster", "image": "spark:4.0.0", "mainClass": "Pi"},
        namespace=kube_fake.namespace,
        conn_id=CONN_ID,
        poll_interval=0.1,
    )
    with pytest.raises(TaskDeferred) as exc:
        spark_op.execute(ctx(store, "spark_pi"))
    assert exc.value.trigger.job["kind"] == "SparkApplication"
    event = trigger_event(kube_fake, exc.value.trigger)
    assert event["status"] == "succeeded" and event["details"]["last"]["raw_state"] == "COMPLETED"
    assert spark_op.execute_complete(ctx(store, "spark_pi"), event=event)["outcome"] == "succeeded"


def test_a_lost_record_is_looked_up_with_one_get_per_generation(kube_fake: KubeTarget, store) -> None:
    fake = kube_fake.fake
    assert fake is not None
    tokens = [make_token("k8s_dag", RUN_ID, "lost", -1, g) for g in range(3)]

    def calls(since: int, generation: int) -> list[tuple[str, str]]:
        return [(m, p) for m, p in fake.requests[since:] if f"/lost-{tokens[generation]}" in p]

    # no record at try 3, and no job: one GET for each generation tries 1 and 2 could have submitted, then the create
    before = len(fake.requests)
    with pytest.raises(TaskDeferred) as first:
        job_op(kube_fake, "lost", "sleep 600").execute(ctx(store, "lost", try_number=3))
    assert [m for m, _ in calls(before, 0)] == ["GET"] and [m for m, _ in calls(before, 1)] == ["GET"]
    assert [m for m, _ in calls(before, 2)] == ["GET"]
    assert [m for m, p in fake.requests[before:] if m == "POST"] == ["POST"]
    job = first.value.trigger.job
    assert job["name"] == f"lost-{tokens[0]}"
    # the record deleted by hand: try 4 finds generation 0 by its name with one GET and adopts it
    del store.rows[("k8s_dag", RUN_ID, "lost", -1)][STATE_KEY]
    before = len(fake.requests)
    with pytest.raises(TaskDeferred) as second:
        job_op(kube_fake, "lost", "sleep 600").execute(ctx(store, "lost", try_number=4))
    assert second.value.trigger.job == job and record(store, "lost")["job"] == job
    # the lookup, then one status read; generation 1 is not looked for (nothing follows a running job)
    assert (
        fake.requests[before:]
        == [("GET", f"/apis/batch/v1/namespaces/{kube_fake.namespace}/jobs/lost-{tokens[0]}")] * 2
    )
    assert len(task_objects(kube_fake, "Job", "lost")) == 1
    run(kube_fake, lambda client: client.cancel(job))
