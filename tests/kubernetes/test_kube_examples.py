"""The Kubernetes example DAGs parse, and their tasks run as written against the contract fake."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.definitions.mappedoperator import MappedOperator

from durable_jobs.operators.kubernetes import (
    KubernetesJobOperator,
    KubernetesObjectOperator,
    KubernetesPodOperator,
    SparkApplicationOperator,
)
from durable_jobs.testing.state_store import InMemoryStateStore
from durable_jobs_harness.kube_fixtures import CONN_ID, KubeTarget

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DAG_IDS = {"durable_kubernetes_job", "durable_kubernetes_pod", "durable_spark_on_kubernetes"}


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    # parsing needs no metadata DB in Airflow 3.3, nor a cluster
    return DagBag(dag_folder=str(EXAMPLES))


def test_the_examples_parse(dagbag: DagBag) -> None:
    assert not {f: e for f, e in dagbag.import_errors.items() if "kubernetes" in f}
    assert set(dagbag.dags) >= DAG_IDS
    kinds = set()
    for dag_id in DAG_IDS:
        for task in dagbag.dags[dag_id].tasks:
            if isinstance(task, MappedOperator):
                assert task.operator_class is KubernetesPodOperator
                assert len(task.expand_input.value["arguments"]) == 3
                continue
            assert isinstance(task, KubernetesObjectOperator), task
            assert task.conn_id == "kubernetes_default" and task.deferrable is True and task.retries >= 1
            kinds.add(task.build_spec(None).kind)
    assert kinds == {"Job", "Pod", "SparkApplication"}


class FakeTI:
    def __init__(self, dag_id: str, task_id: str) -> None:
        self.dag_id, self.run_id, self.task_id, self.map_index, self.try_number = dag_id, "example_run", task_id, -1, 1
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def test_the_example_tasks_run_on_the_fake_cluster(dagbag: DagBag, kube_fake: KubeTarget) -> None:
    store = InMemoryStateStore()
    ran = []
    with store.installed():
        for dag_id in sorted(DAG_IDS):
            for task in dagbag.dags[dag_id].tasks:
                if isinstance(task, MappedOperator):
                    continue
                op = copy.copy(task)
                op.conn_id, op.deferrable, op.poll_interval = CONN_ID, False, 0.1
                context = {
                    "task_state_store": store.accessor(dag_id, "example_run", op.task_id),
                    "ti": FakeTI(dag_id, op.task_id),
                    "dag_run": SimpleNamespace(clear_number=0),
                }
                result = op.execute(context)
                assert result["outcome"] == "succeeded", (dag_id, op.task_id, result)
                ran.append(type(op))
    assert sorted(t.__name__ for t in set(ran)) == sorted(
        t.__name__ for t in (KubernetesJobOperator, KubernetesPodOperator, SparkApplicationOperator)
    )
