"""Three DAGs whose tasks leave records of this library in several phases, as a try writes them (the real
task state store, through the worker's accessor): what the "Durable jobs" view lists (tests/ui)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk import DAG, BaseOperator, get_current_context, task

from durable_jobs.record import STATE_KEY, JobRecord, Outcome, TaskIdentity

HOOKS = {
    "spark-standalone": "durable_jobs.hooks.spark_standalone.SparkStandaloneHook",
    "yarn": "durable_jobs.hooks.yarn.YarnHook",
}
START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def write(
    context: Any,
    phase: str,
    *,
    system: str = "spark-standalone",
    generation: int = 0,
    outcome: str = "",
    tries: tuple[str, ...] = (),
) -> None:
    """Store a record of ``phase`` (after ``generation`` failed generations) for this task instance."""
    who = TaskIdentity.from_context(context)
    conn = {"spark-standalone": "spark_ui", "yarn": "yarn_ui"}[system]
    rec = JobRecord.intent(system=system, identity=who, generation=0, timeout=3600, conn_id=conn, hook=HOOKS[system])
    for gen in range(generation):
        rec = rec.submitted({"submission_id": f"driver-{who.task_id}-{gen}"}).finished(Outcome.FAILED, "exit 1")
        rec = rec.next_generation(who, 3600, conn_id=conn, hook=HOOKS[system])
    if phase != "submitting":
        rec = rec.submitted({"submission_id": f"driver-{who.task_id}-{rec.generation}"})
    if phase == "finished":
        rec = rec.finished(Outcome(outcome), f"the job ended {outcome}")
    for n, decision in enumerate(tries, 1):  # as the protocol keeps each try's resume decision
        rec = rec.decided(n, decision, time.time())
    context["task_state_store"].set(STATE_KEY, rec.to_json())


def orphan(context: Any) -> None:
    """A submitted job with its link, left by a task that then succeeds (cancellable in the view)."""
    write(context, "submitted")
    context["ti"].xcom_push(key="master_ui_url", value="http://127.0.0.1:1/master")


class DeferredJob(BaseOperator):  # type: ignore[misc]
    """Records a submitted job and defers for an hour (a trigger that never fires in a test)."""

    def execute(self, context: Any) -> None:
        write(context, "submitted")
        moment = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
        self.defer(trigger=DateTimeTrigger(moment=moment), method_name="execute_complete")

    def execute_complete(self, context: Any, event: Any = None) -> None:
        return None


with DAG("ui_view", schedule=None, start_date=START, catchup=False):

    @task
    def orphan_job() -> None:
        """Ends while its job is recorded as running: the view's cancel button."""
        orphan(get_current_context())

    @task
    def finished_job() -> None:
        write(get_current_context(), "finished", generation=2, outcome="succeeded", tries=("fresh", "next_generation"))

    @task
    def lost_job() -> None:
        write(get_current_context(), "finished", system="yarn", outcome="lost")

    @task
    def submitting_job() -> None:
        write(get_current_context(), "submitting", system="yarn")

    @task
    def unreadable_job() -> None:
        get_current_context()["task_state_store"].set(STATE_KEY, {"v": 99, "system": "yarn"})

    @task
    def mapped_job(i: int) -> None:
        write(get_current_context(), "submitted" if i % 2 else "finished", outcome="failed")

    DeferredJob(task_id="deferred_job")
    orphan_job()
    finished_job()
    lost_job()
    submitting_job()
    unreadable_job()
    mapped_job.expand(i=list(range(6)))


with DAG("ui_view_other", schedule=None, start_date=START, catchup=False):

    @task
    def other_job() -> None:
        write(get_current_context(), "finished", outcome="succeeded")

    other_job()


with DAG("ui_view_browser", schedule=None, start_date=START, catchup=False):
    # the browser tests' own orphan, which they cancel (tests/ui/test_view_api.py cancels ui_view's)

    @task
    def browser_orphan_job() -> None:
        orphan(get_current_context())

    browser_orphan_job()
