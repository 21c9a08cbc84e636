"""The reaper's listener under Airflow's own mark routes: the api-server's FastAPI app, in process, on a migrated
SQLite metadata DB (``airflow_db``).

Each test makes a DAG run whose durable task is deferred, with a record in the task state store and its
trigger row, as a real try leaves them; then marks it through ``PATCH /api/v2/...`` and reads the DB after
the request committed (or rolled back).
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from durable_jobs import airflow_compat
from durable_jobs.reaper import listener
from durable_jobs.reaper.orphan import CALLBACK_PATH
from durable_jobs.record import STATE_KEY, JobRecord, TaskIdentity
from tests.core.test_links import deferred_run, metadata_db  # noqa: F401  # metadata_db: the migrated DB fixture

DAG_ID = "reaper_routes"
HOOK = "durable_jobs.hooks.spark_standalone.SparkStandaloneHook"
TRIGGER_CLASS = "durable_jobs.triggers.spark_standalone.SparkStandaloneTrigger"
DAG_FILE = f'''
from airflow.sdk import DAG, TaskGroup
from airflow.providers.standard.operators.empty import EmptyOperator
from durable_jobs.operators.spark_standalone import SparkStandaloneOperator

def job(task_id):
    return SparkStandaloneOperator(task_id=task_id, conn_id="spark_c", application="file:/a.jar", main_class="a.B")

with DAG("{DAG_ID}", schedule=None):
    job("durable")
    EmptyOperator(task_id="plain")
    with TaskGroup("grp"):
        job("inner")
'''
_RUNS = itertools.count()


@pytest.fixture(scope="module")
def client(metadata_db: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:  # noqa: F811
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from fastapi.testclient import TestClient

    folder = tmp_path_factory.mktemp("reaper-dags")
    (folder / "reaper_dag.py").write_text(DAG_FILE, "utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
        mp.setenv("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_urlsafe(64))
        DagBundlesManager().sync_bundles_to_db()
        bag = DagBag(dag_folder=str(folder), bundle_path=folder)
        assert not bag.import_errors, bag.import_errors
        sync_bag_to_db(bag, "dags-folder", None)
        try:
            with TestClient(create_app(apps="core"), base_url="http://testserver/api/v2") as c:
                yield c
        finally:
            purge_cached_app()


def new_run(*, record: str = "submitted", trigger: bool = True, tasks: tuple[str, ...] = ("durable",)) -> str:
    """A running DAG run whose tasks are deferred; ``tasks`` have a record (``record``: which kind) and a trigger."""
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session

    run_id = f"run_{next(_RUNS)}"
    with create_session() as session:
        for ti in deferred_run(DAG_ID, run_id, session):
            short = ti.task_id.split(".")[-1]
            if short not in tasks:
                continue
            who = TaskIdentity(DAG_ID, run_id, ti.task_id, -1)
            job = {"driver_id": f"driver-20261203120000-{len(short):04d}"}
            if trigger:
                row = Trigger(
                    classpath=TRIGGER_CLASS,
                    kwargs={
                        "job": job,
                        "conn_id": "spark_c",
                        "token": who.token(0),
                        "generation": 0,
                        "poll_interval": 30.0,
                    },
                )
                session.add(row)
                session.flush()
                ti.trigger_id = row.id
            if record != "none":
                rec = JobRecord.intent(
                    system="spark-standalone",
                    identity=who,
                    generation=0,
                    timeout=None,
                    conn_id=None if record == "old" else "spark_c",
                    hook=None if record == "old" else HOOK,
                )
                if record != "intent":
                    rec = rec.submitted(job)
                if record == "finished":
                    from durable_jobs.record import Outcome

                    rec = rec.finished(Outcome.SUCCEEDED)
                airflow_compat.write_task_state(
                    DAG_ID, run_id, ti.task_id, -1, STATE_KEY, json.dumps(rec.to_json()), session=session
                )
    return run_id


def stored(run_id: str, task_id: str = "durable") -> dict[str, Any] | None:
    from airflow.utils.session import create_session

    with create_session() as session:
        raw = airflow_compat.read_task_state(DAG_ID, run_id, task_id, -1, STATE_KEY, session=session)
    return None if raw is None else dict(json.loads(raw))


def callbacks(run_id: str) -> list[tuple[str | None, dict[str, Any], str | None]]:
    """(state, kwargs, trigger classpath) of every reaper callback of the run."""
    from airflow.models.callback import Callback
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(select(Callback)).all()
        return [
            (cb.state, cb.data["kwargs"], cb.trigger.classpath if cb.trigger else None)
            for cb in rows
            if cb.data.get("path") == CALLBACK_PATH and cb.data["kwargs"]["run_id"] == run_id
        ]


def ti_state(client: Any, run_id: str, task_id: str = "durable") -> str:
    reply = client.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}")
    assert reply.status_code == 200, reply.text
    return str(reply.json()["state"])


def mark(client: Any, run_id: str, state: str, task_id: str = "durable") -> None:
    reply = client.patch(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}", json={"new_state": state})
    assert reply.status_code == 200, reply.text


def assert_reaped(run_id: str, by: str, task_id: str = "durable", *, tombstone: bool = True) -> dict[str, Any]:
    rec = stored(run_id, task_id)
    if tombstone:
        assert rec is not None and (rec["phase"], rec["outcome"]) == ("finished", "cancelled"), rec
        assert rec["cancel"]["by"] == by and rec["cancel"]["ti_id"], rec
    ((state, kwargs, classpath),) = callbacks(run_id) and [c for c in callbacks(run_id) if c[1]["task_id"] == task_id]
    assert state == "queued" and classpath == "airflow.triggers.callback.CallbackTrigger"
    assert set(kwargs) == {
        "system", "dag_id", "run_id", "task_id", "map_index", "ti_id", "by", "hook", "conn_id", "job", "token",
        "generation", "marked_at",
    }  # fmt: skip
    assert kwargs["by"] == by and kwargs["hook"] == HOOK and kwargs["conn_id"] == "spark_c"
    assert kwargs["token"] == TaskIdentity(DAG_ID, run_id, task_id, -1).token(0)
    return dict(kwargs)


# --- discovery and what is ignored ------------------------------------------------------------------------


def test_the_plugin_is_found_through_its_entry_point_in_a_fresh_process(tmp_path: Path) -> None:
    code = (
        "from airflow.listeners.listener import get_listener_manager\n"
        "m = get_listener_manager()\n"
        "print('HOOKS', sorted(h.plugin_name for h in m.pm.hook.on_task_instance_failed.get_hookimpls()))\n"
        "print('HOOKS', sorted(h.plugin_name for h in m.pm.hook.on_task_instance_success.get_hookimpls()))\n"
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    env.pop("PYTHONPATH", None)  # found through the installed package's metadata, not through a path
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=tmp_path
    )
    # registered once. (An editable install from a checkout also has src/*.egg-info on the path: Airflow then
    # sees the entry point twice and logs "Plugin 'durable_jobs_reaper' already registered, skipping".)
    hooks = [line for line in out.stdout.splitlines() if line.startswith("HOOKS ")]
    assert hooks == ["HOOKS ['durable_jobs.reaper.listener']"] * 2, (out.stdout[-2000:], out.stderr[-2000:])


def test_a_workers_task_instance_and_the_schedulers_failure_handling_are_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_db(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the listener touched the DB")

    monkeypatch.setattr(airflow_compat, "read_task_state", no_db)
    monkeypatch.setattr(airflow_compat, "session_of", no_db)
    # what a worker passes at the end of a try: not the ORM model, even with the same fields
    runtime_ti = SimpleNamespace(dag_id=DAG_ID, run_id="r", task_id="durable", map_index=-1, state="success")
    listener.on_task_instance_success(previous_state=None, task_instance=runtime_ti)
    listener.on_task_instance_failed(previous_state="running", task_instance=runtime_ti, error="x")

    from airflow.models.taskinstance import TaskInstance

    orm_ti = TaskInstance.__new__(TaskInstance)  # the scheduler's handle_failure passes previous_state=RUNNING
    listener.on_task_instance_failed(previous_state="running", task_instance=orm_ti, error="x")


# --- the routes ------------------------------------------------------------------------------------------


@pytest.mark.airflow_db
@pytest.mark.parametrize(
    ("state", "by"), [("failed", "mark_failed"), ("success", "mark_success"), ("skipped", "mark_skipped")]
)
def test_a_deferred_task_marked_through_the_route_is_tombstoned_and_its_cancel_queued(
    client: Any, state: str, by: str
) -> None:
    run_id = new_run()
    mark(client, run_id, state)
    assert ti_state(client, run_id) == state
    kwargs = assert_reaped(run_id, by)
    assert kwargs["job"] == {"driver_id": "driver-20261203120000-0007"} and kwargs["system"] == "spark-standalone"


@pytest.mark.airflow_db
def test_the_task_group_route(client: Any) -> None:
    run_id = new_run(tasks=("inner",))
    reply = client.patch(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskGroupInstances/grp", json={"new_state": "failed"})
    assert reply.status_code == 200, reply.text
    assert_reaped(run_id, "mark_failed", "grp.inner")


@pytest.mark.airflow_db
@pytest.mark.parametrize(("state", "by"), [("failed", "mark_failed"), ("success", "mark_success")])
def test_the_dag_run_route_reaps_its_active_tasks(client: Any, state: str, by: str) -> None:
    run_id = new_run(tasks=("durable", "inner"))
    reply = client.patch(f"/dags/{DAG_ID}/dagRuns/{run_id}", json={"state": state})
    assert reply.status_code == 200, reply.text
    assert_reaped(run_id, by)
    assert_reaped(run_id, by, "grp.inner")
    assert len(callbacks(run_id)) == 2


@pytest.mark.airflow_db
def test_a_task_that_is_not_durable_costs_one_select_and_writes_nothing(client: Any) -> None:
    from airflow import settings
    from sqlalchemy import event

    run_id = new_run()
    seen: list[str] = []

    def spy(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "task_state_store" in statement or "INSERT INTO callback" in statement or "INSERT INTO trigger" in statement:
            seen.append(statement.split()[0])

    event.listen(settings.engine, "before_cursor_execute", spy)
    try:
        mark(client, run_id, "failed", "plain")
    finally:
        event.remove(settings.engine, "before_cursor_execute", spy)
    assert seen == ["SELECT"]
    assert callbacks(run_id) == [] and stored(run_id)["phase"] == "submitted"  # type: ignore[index]


@pytest.mark.airflow_db
def test_a_failure_of_the_listener_rolls_back_only_its_savepoint(
    client: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    run_id = new_run()

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("injected: the callback table is unavailable")

    monkeypatch.setattr(airflow_compat, "queue_triggerer_callback", broken)  # after the tombstone was written
    mark(client, run_id, "failed")
    assert ti_state(client, run_id) == "failed"  # the user's mark committed
    assert stored(run_id)["phase"] == "submitted"  # type: ignore[index]  # the tombstone was rolled back
    assert callbacks(run_id) == []
    assert any("could not record the cancel" in r.getMessage() for r in caplog.records)


@pytest.mark.airflow_db
def test_a_request_that_rolls_back_after_the_listener_leaves_nothing(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.api_fastapi.core_api.services.public import task_instances as service

    run_id = new_run()
    real = service._emit_state_listener_hooks

    def then_fail(*args: Any, **kwargs: Any) -> None:
        real(*args, **kwargs)
        raise RuntimeError("injected: the request fails after the listeners ran")

    monkeypatch.setattr(service, "_emit_state_listener_hooks", then_fail)
    with pytest.raises(RuntimeError, match="injected"):
        mark(client, run_id, "failed")
    monkeypatch.undo()
    assert ti_state(client, run_id) == "deferred"
    assert stored(run_id)["phase"] == "submitted"  # type: ignore[index]
    assert callbacks(run_id) == []


@pytest.mark.airflow_db
def test_finished_and_intent_only_records_get_nothing(client: Any) -> None:
    for kind in ("finished", "intent"):
        run_id = new_run(record=kind)
        before = stored(run_id)
        mark(client, run_id, "failed")
        assert stored(run_id) == before and callbacks(run_id) == [], kind


@pytest.mark.airflow_db
def test_clear_on_success_takes_the_job_from_the_trigger_row(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS", "True")
    run_id = new_run()
    mark(client, run_id, "success")
    assert stored(run_id) is None  # Airflow deleted the record before the listener ran
    assert_reaped(run_id, "mark_success", tombstone=False)


@pytest.mark.airflow_db
def test_an_old_record_takes_conn_id_and_hook_from_the_trigger_row_or_is_skipped(client: Any) -> None:
    run_id = new_run(record="old")
    mark(client, run_id, "failed")
    assert_reaped(run_id, "mark_failed")
    lonely = new_run(record="old", trigger=False)
    mark(client, lonely, "failed")
    assert callbacks(lonely) == [] and stored(lonely)["phase"] == "submitted"  # type: ignore[index]
