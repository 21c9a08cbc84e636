"""Run an example DAG's task in-process as a worker would, for the tests that play the examples against a system
(moto for EMR, the fake workspace for Databricks): render, execute, and on a deferral run the trigger to its
event and resume. XComs live in a dict shared by the tasks of one run; the task state store is in memory."""

from __future__ import annotations

import asyncio
import copy
from types import SimpleNamespace
from typing import Any

from airflow.sdk.exceptions import TaskDeferred

from durable_jobs.testing.state_store import InMemoryStateStore
from durable_jobs.transport.http import close_sessions

RUN_ID = "run1"


class FakeTI:
    """A task instance whose XComs live in a dict shared by the tasks of one run."""

    def __init__(self, dag_id: str, task_id: str, xcoms: dict[tuple[str, str], Any]) -> None:
        self.dag_id, self.run_id, self.task_id, self.map_index, self.try_number = dag_id, RUN_ID, task_id, -1, 1
        self._xcoms = xcoms

    def xcom_push(self, key: str, value: Any) -> None:
        self._xcoms[(self.task_id, key)] = value

    def xcom_pull(self, task_ids: str, key: str = "return_value", **kwargs: Any) -> Any:
        return self._xcoms.get((task_ids, key))


def run_task(
    task: Any,
    store: InMemoryStateStore,
    xcoms: dict[tuple[str, str], Any],
    finish: Any = None,
    *,
    extra_context: dict[str, Any] | None = None,
) -> Any:
    """Render and execute ``task`` like a worker; a deferral runs its trigger to the event and resumes.

    ``finish(job)`` is called with the deferred job's locator before the trigger runs (to end the job).
    """
    task = copy.copy(task)  # rendering replaces the templates: keep the parsed DAG's task as it is
    dag_id = task.dag_id
    context = {
        "task_state_store": store.accessor(dag_id, RUN_ID, task.task_id),
        "ti": FakeTI(dag_id, task.task_id, xcoms),
        "dag_run": SimpleNamespace(clear_number=0),
        "run_id": RUN_ID,
        **(extra_context or {}),
    }
    task.render_template_fields(context)
    try:
        result = task.execute(context)
    except TaskDeferred as deferred:
        trigger = deferred.trigger
        if finish is not None:
            finish(trigger.job)

        async def event() -> dict[str, Any]:
            try:
                return (await asyncio.wait_for(trigger.run().__anext__(), 60)).payload  # type: ignore[no-any-return]
            finally:
                await close_sessions()

        result = task.execute_complete(context, event=asyncio.run(event()))
    xcoms[(task.task_id, "return_value")] = result
    return result
