"""Every example DAG serializes like the DAG processor does it, and no operator templates a BaseOperator field.

A template field named like a BaseOperator attribute (``queue`` once) overrides Airflow's own setting and makes
the DAG fail to serialize: only a real ``dag.test()`` or dag-processor run would show it otherwise.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import BaseOperator
from airflow.serialization.serialized_objects import DagSerialization

import durable_jobs.operators as ops

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    bag = DagBag(dag_folder=str(EXAMPLES))
    assert not bag.import_errors, bag.import_errors
    return bag


def test_every_example_dag_serializes(dagbag: DagBag) -> None:
    assert len(dagbag.dags) >= 6
    for dag_id, dag in dagbag.dags.items():
        data = DagSerialization.to_dict(dag)
        assert data["dag"]["dag_id"] == dag_id


@pytest.mark.parametrize("name", ops.__all__)
def test_operators_do_not_template_base_operator_attributes(name: str) -> None:
    cls = getattr(importlib.import_module("durable_jobs.operators"), name)
    base_attrs = set(dir(BaseOperator)) | set(inspect.signature(BaseOperator.__init__).parameters)
    clashes = sorted(set(cls.template_fields) & base_attrs)
    assert not clashes, f"{name} templates BaseOperator attributes {clashes}"
