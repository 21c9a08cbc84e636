"""The EMR example DAGs parse, and the create-cluster -> step -> terminate example runs against moto."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.definitions.mappedoperator import MappedOperator

from durable_jobs.clients.emr import EmrClusterClient
from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.operators.base import DurableJobOperator
from durable_jobs.operators.emr import (
    EmrCreateClusterOperator,
    EmrEksJobOperator,
    EmrServerlessJobOperator,
    EmrStepOperator,
    EmrTerminateClusterOperator,
)
from durable_jobs.testing.state_store import InMemoryStateStore
from durable_jobs_harness.moto_emr import MotoEmr

from ..example_runner import run_task

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DAG_ID = "durable_emr_cluster_step"


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(EXAMPLES))


def test_emr_examples_parse_with_deferrable_durable_operators(dagbag: DagBag) -> None:
    assert not {f: e for f, e in dagbag.import_errors.items() if "emr" in f}
    kinds = {
        DAG_ID: {EmrCreateClusterOperator, EmrStepOperator, EmrTerminateClusterOperator},
        "durable_emr_serverless": {EmrServerlessJobOperator},
        "durable_emr_eks": {EmrEksJobOperator},
    }
    for dag_id, expected in kinds.items():
        dag = dagbag.dags[dag_id]
        found = {t.operator_class if isinstance(t, MappedOperator) else type(t) for t in dag.tasks}
        assert found == expected, dag_id
        for task in dag.tasks:
            if isinstance(task, DurableJobOperator):
                assert task.deferrable is True and task.conn_id == "aws_default" and task.retries >= 1


def test_terminate_runs_whatever_happened_upstream(dagbag: DagBag) -> None:
    dag = dagbag.dags[DAG_ID]
    terminate = dag.get_task("terminate_cluster")
    assert terminate.trigger_rule == "all_done"
    assert dag.get_task("spark_pi").upstream_task_ids == {"create_cluster"}
    assert terminate.upstream_task_ids == {"spark_pi"}


@pytest.fixture
def store() -> Iterator[InMemoryStateStore]:
    s = InMemoryStateStore()
    with s.installed():
        yield s


def test_cluster_step_terminate_example_runs_against_moto(
    dagbag: DagBag, moto: MotoEmr, store: InMemoryStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", moto.connection())
    DurableJobHook.clear_cache()
    dag = dagbag.dags[DAG_ID]
    xcoms: dict[tuple[str, str], Any] = {}
    created = run_task(dag.get_task("create_cluster"), store, xcoms)
    cluster_id = created["cluster_id"]
    cluster = moto.cluster(cluster_id)
    assert created["outcome"] == "succeeded" and cluster.name.startswith("durable-jobs-example [dj")
    assert {"Key": "team", "Value": "data"} in cluster.tags and cluster.log_uri.startswith("s3://")

    def complete(job: dict[str, str]) -> None:
        moto.set_step(job["cluster_id"], job["step_id"], "COMPLETED")

    step = run_task(dag.get_task("spark_pi"), store, xcoms, finish=complete)
    assert step["outcome"] == "succeeded" and step["job"]["cluster_id"] == cluster_id
    (added,) = moto.steps(cluster_id)
    assert added.args[:2] == ["spark-submit", "--deploy-mode"] and added.state == "COMPLETED"
    terminated = run_task(dag.get_task("terminate_cluster"), store, xcoms)
    assert terminated == {"cluster_id": cluster_id, "state": "TERMINATED"} and cluster.state == "TERMINATED"
    DurableJobHook.clear_cache()


def test_terminate_finds_the_cluster_of_a_failed_create_or_does_nothing(
    dagbag: DagBag, moto: MotoEmr, store: InMemoryStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", moto.connection())
    DurableJobHook.clear_cache()
    dag = dagbag.dags[DAG_ID]
    cluster_id = moto.create_cluster()
    # create_cluster pushed the id before deferring, then failed: no return value
    assert run_task(dag.get_task("terminate_cluster"), store, {("create_cluster", "cluster_id"): cluster_id}) == {
        "cluster_id": cluster_id,
        "state": "TERMINATED",
    }
    assert run_task(dag.get_task("terminate_cluster"), store, {}) is None  # it never got a cluster
    DurableJobHook.clear_cache()


def test_terminate_waits_through_throttling_until_the_cluster_is_terminated(
    moto: MotoEmr, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", moto.connection())
    DurableJobHook.clear_cache()
    cluster_id = moto.create_cluster()
    real_terminate = EmrClusterClient.terminate_cluster
    polls: list[str] = []
    real_status = EmrClusterClient.status

    async def terminating(self: EmrClusterClient, cid: str) -> None:
        await real_terminate(self, cid)
        moto.set_cluster(cid, "TERMINATING")  # AWS takes minutes to get there
        moto.fail("emr", "DescribeCluster", times=1)  # and throttles the first look

    async def status(self: EmrClusterClient, locator: dict[str, Any]) -> Any:
        st = await real_status(self, locator)
        polls.append(st.raw_state or st.state.value)
        if st.raw_state == "TERMINATING" and polls.count("TERMINATING") == 2:
            moto.set_cluster(cluster_id, "TERMINATED")
        return st

    monkeypatch.setattr(EmrClusterClient, "terminate_cluster", terminating)
    monkeypatch.setattr(EmrClusterClient, "status", status)
    op = EmrTerminateClusterOperator(
        task_id="t", cluster_id=cluster_id, wait_for_termination=True, poll_interval=0.05, wait_timeout=60
    )
    assert op.execute({}) == {"cluster_id": cluster_id, "state": "TERMINATED"}
    assert polls[-1] == "TERMINATED" and polls.count("TERMINATING") == 2
    DurableJobHook.clear_cache()
