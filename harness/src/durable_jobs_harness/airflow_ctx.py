"""The pieces of an Airflow task context the operators read, for tests that run them without a task runner."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from durable_jobs.testing.state_store import InMemoryStateStore

Row = tuple[str, str, str, int]  # (dag_id, run_id, task_id, map_index)


class FakeTI:
    def __init__(self, row: Row, try_number: int = 1) -> None:
        self.dag_id, self.run_id, self.task_id, self.map_index = row
        self.try_number = try_number
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def task_context(store: InMemoryStateStore, row: Row, try_number: int = 1, clear_number: int = 0) -> dict[str, Any]:
    """A context for one try: a new TI id over the same state-store row, like a real retry."""
    return {
        "task_state_store": store.accessor(*row),
        "ti": FakeTI(row, try_number),
        "dag_run": SimpleNamespace(clear_number=clear_number),
    }


def run_until_deferred(operator: Any, context: dict[str, Any]) -> TaskDeferred:
    """Run ``operator.execute(context)``, which must defer; the deferral."""
    with pytest.raises(TaskDeferred) as exc:
        operator.execute(context)
    return exc.value
