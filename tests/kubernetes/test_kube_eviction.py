"""A finished Kubernetes object forgotten while no trigger watched it: never run again, success when remembered.

The issue's eviction case: a Job removed by ``ttlSecondsAfterFinished`` (or deleted) while the triggerer was
down. The GET answers 404 and the watch agrees; before calling it lost, the client reads what the cluster still
remembers of how it ended: the Job's Events (``Completed``, ``BackoffLimitExceeded``...; an apiserver keeps them
about an hour), then its pods (a Job deleted with ``propagationPolicy: Orphan`` leaves them). Success found:
the task succeeds. Nothing found: lost, and with the default ``on_lost="fail"`` the task fails without retry and
the Job is never created again. Against the TLS contract fake (its TTL controller and Events), with Airflow's
real task state store accessor over an in-memory store.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from durable_jobs.clients.kubernetes import KubeObject, KubernetesClient
from durable_jobs.operators.kubernetes import KubernetesJobOperator
from durable_jobs.status import JobState
from durable_jobs.testing.state_store import InMemoryStateStore
from durable_jobs.transport.http import close_sessions
from durable_jobs_harness.kube_fixtures import CONN_ID, KubeTarget, eventually
from tests.kubernetes.test_kube_protocol import ctx, record, trigger_event


@pytest.fixture
def store() -> Iterator[InMemoryStateStore]:
    s = InMemoryStateStore()
    with s.installed():
        yield s


def ttl_job_op(kube: KubeTarget, task_id: str, script: str, ttl: int = 1) -> KubernetesJobOperator:
    container = {"name": "main", "image": kube.image, "command": ["sh", "-c", script]}
    return KubernetesJobOperator(
        task_id=task_id,
        job={"backoffLimit": 0, "ttlSecondsAfterFinished": ttl, "template": {"spec": {"containers": [container]}}},
        namespace=kube.namespace,
        labels=kube.labels,
        conn_id=CONN_ID,
        poll_interval=0.1,
    )


def wait_removed(kube: KubeTarget, name: str) -> None:
    fake = kube.fake
    assert fake is not None

    async def gone() -> None:
        await eventually(lambda: fake.get("jobs", kube.namespace, name) is None, timeout=30, what=f"{name} removed")

    asyncio.run(gone())


def created_jobs(kube: KubeTarget) -> int:
    assert kube.fake is not None
    return int(kube.fake.created.get("jobs", 0))


def test_a_job_removed_by_ttl_unwatched_succeeds_from_its_events(
    kube_fake: KubeTarget, store: InMemoryStateStore
) -> None:
    with pytest.raises(TaskDeferred) as exc:
        ttl_job_op(kube_fake, "evicted_ok", "echo done").execute(ctx(store, "evicted_ok"))
    job = exc.value.trigger.job
    wait_removed(kube_fake, job["name"])  # the triggerer was down all along: nobody saw it finish
    assert kube_fake.fake is not None and kube_fake.fake.events_of(kube_fake.namespace, job["uid"])
    event = trigger_event(kube_fake, exc.value.trigger)  # a triggerer starts again
    assert event["status"] == "succeeded", event
    assert "Completed" in event["message"] and event["details"]["last"]["extra"]["remembered"] is True
    result = ttl_job_op(kube_fake, "evicted_ok", "echo done").execute_complete(ctx(store, "evicted_ok"), event=event)
    assert result["outcome"] == "succeeded"
    assert created_jobs(kube_fake) == 1


def test_a_retry_after_the_removal_returns_success_without_a_new_job(
    kube_fake: KubeTarget, store: InMemoryStateStore
) -> None:
    with pytest.raises(TaskDeferred) as exc:
        ttl_job_op(kube_fake, "retry_ok", "echo done").execute(ctx(store, "retry_ok"))
    wait_removed(kube_fake, exc.value.trigger.job["name"])
    result = ttl_job_op(kube_fake, "retry_ok", "echo done").execute(ctx(store, "retry_ok", try_number=2))
    assert result["outcome"] == "succeeded" and record(store, "retry_ok")["phase"] == "finished"
    assert created_jobs(kube_fake) == 1


def test_forgotten_entirely_it_is_lost_and_never_run_again_by_default(
    kube_fake: KubeTarget, store: InMemoryStateStore
) -> None:
    fake = kube_fake.fake
    assert fake is not None
    with pytest.raises(TaskDeferred) as exc:
        ttl_job_op(kube_fake, "evicted_lost", "echo done").execute(ctx(store, "evicted_lost"))
    wait_removed(kube_fake, exc.value.trigger.job["name"])
    fake.forget_events(kube_fake.namespace)  # an hour later: the apiserver's event TTL passed too
    event = trigger_event(kube_fake, exc.value.trigger)
    assert event["status"] == "lost", event
    assert "no event or pod" in event["message"]
    with pytest.raises(AirflowFailException, match="was not submitted again"):
        ttl_job_op(kube_fake, "evicted_lost", "echo done").execute_complete(ctx(store, "evicted_lost"), event=event)
    assert record(store, "evicted_lost")["outcome"] == "lost"
    with pytest.raises(AirflowFailException, match="was not submitted again"):  # a later try refuses again
        ttl_job_op(kube_fake, "evicted_lost", "echo done").execute(ctx(store, "evicted_lost", try_number=2))
    assert created_jobs(kube_fake) == 1  # never resubmitted


def run_client(kube: KubeTarget, call: Any) -> Any:
    async def main() -> Any:
        try:
            return await call(kube.client())
        finally:
            await close_sessions()

    return asyncio.run(main())


def new_token() -> str:
    return "dj" + secrets.token_hex(10)


def test_failure_remembered_by_events_and_success_by_orphaned_pods(kube_fake: KubeTarget) -> None:
    fake = kube_fake.fake
    assert fake is not None
    container = {"name": "main", "image": kube_fake.image, "command": ["sh", "-c", "exit 3"]}
    failing = KubeObject(
        "Job",
        {"spec": {"backoffLimit": 0, "ttlSecondsAfterFinished": 1, "template": {"spec": {"containers": [container]}}}},
        name="fails",
        labels=kube_fake.labels,
    )
    loc = run_client(kube_fake, lambda c: c.submit(failing, new_token()))
    wait_removed(kube_fake, loc["name"])
    st = run_client(kube_fake, lambda c: c.status(loc))
    assert st.state is JobState.FAILED and "BackoffLimitExceeded" in st.message and st.extra["remembered"]

    ok = KubeObject(
        "Job",
        {
            "spec": {
                "backoffLimit": 0,
                "template": {"spec": {"containers": [{**container, "command": ["sh", "-c", "echo ok"]}]}},
            }
        },
        name="orphan",
        labels=kube_fake.labels,
    )
    loc2 = run_client(kube_fake, lambda c: c.submit(ok, new_token()))

    async def finish_then_orphan(client: KubernetesClient) -> Any:
        await eventually(
            lambda: (fake.get("jobs", loc2["namespace"], loc2["name"]) or {}).get("status", {}).get("succeeded"),
            timeout=30,
            what="succeeded",
        )
        conn = await client.connection()
        await conn.call(
            "DELETE",
            f"/apis/batch/v1/namespaces/{loc2['namespace']}/jobs/{loc2['name']}",
            body={"propagationPolicy": "Orphan"},
            what="delete, orphaning the pods",
        )
        fake.forget_events(loc2["namespace"])
        return await client.status(loc2)

    st2 = run_client(kube_fake, finish_then_orphan)
    assert st2.state is JobState.SUCCEEDED and "pods succeeded" in st2.message, st2
