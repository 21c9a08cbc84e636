"""The task page's links: declared once per system, serialized by Airflow, answered by its api-server from XCom.

The REST tests run Airflow's own code, in process: the example DAGs parsed by a ``DagBag`` and written to a
migrated SQLite metadata DB as the dag processor writes them, a dag run whose tasks are deferred, XComs
stored the way a task's ``xcom_push`` reaches the DB (serialized by the SDK, stored by the Execution API's
route), and ``GET /api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/links`` of the api-server's
FastAPI app.
"""

from __future__ import annotations

import importlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG
from airflow.sdk.bases.xcom import BaseXCom
from airflow.sdk.exceptions import TaskDeferred
from airflow.sdk.module_loading import import_string
from airflow.serialization.serialized_objects import DagSerialization

from durable_jobs.get_provider_info import get_provider_info
from durable_jobs.hooks.spark_standalone import SparkStandaloneHook
from durable_jobs.links import XComLink, system_links
from durable_jobs.operators.base import DurableJobOperator
from durable_jobs.operators.spark_standalone import SparkStandaloneOperator
from durable_jobs.system import LINK_CLASS
from durable_jobs.systems import declared
from durable_jobs.testing.state_store import InMemoryStateStore
from durable_jobs_harness.airflow_ctx import FakeTI, task_context
from durable_jobs_harness.fake_spark import ThreadedFakeSparkMaster
from tests.core.test_provider import airflow_json

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RUN_ID = "links_run"


def operator_classes() -> Iterator[tuple[Any, type[DurableJobOperator]]]:
    for system in declared():
        module = importlib.import_module(f"durable_jobs.operators.{system.module}")
        for name in system.operators:
            cls = getattr(module, name)
            if issubclass(cls, DurableJobOperator):
                yield system, cls


# --- declared once, on every operator ----------------------------------------------------------------------


def test_every_durable_operator_carries_its_systems_declared_links() -> None:
    seen = set()
    for system, cls in operator_classes():
        assert system.links, f"{system!r} declares no link"
        assert len({link.name for link in system.links}) == len(system.links)
        assert tuple(cls.operator_extra_links) == system_links(system), cls
        seen.add(system.module)
    assert seen == {system.module for system in declared()}


def test_the_links_each_system_declares() -> None:
    names = {system.module: [link.name for link in system.links] for system in declared()}
    assert names == {
        "spark_standalone": ["Spark master UI", "Spark driver UI"],
        "yarn": ["YARN application", "YARN tracking URL"],
        "kubernetes": ["Kubernetes object"],
        "emr": ["EMR console", "EMR logs"],
        "databricks": ["Databricks run"],
        "bigquery": ["BigQuery job"],
        "glue": ["Glue job run"],
    }


def test_provider_info_registers_the_one_link_class(tmp_path: Path) -> None:
    assert get_provider_info()["extra-links"] == [LINK_CLASS]
    assert import_string(LINK_CLASS) is XComLink
    rows = airflow_json(tmp_path, "providers", "links")  # Airflow's provider manager imports it
    assert [row["extra_link_class_name"] for row in rows if row["extra_link_class_name"] == LINK_CLASS] == [LINK_CLASS]


def test_airflow_serializes_each_link_as_its_name_and_xcom_key() -> None:
    with DAG("links_serialized", schedule=None) as dag:
        SparkStandaloneOperator(task_id="spark", conn_id="spark_x", application="file:/a.jar", main_class="a.B")
    data = DagSerialization.to_dict(dag)
    (task,) = data["dag"]["tasks"]
    assert task["__var"]["_operator_extra_links"] == {
        "Spark master UI": "master_ui_url",
        "Spark driver UI": "driver_ui_url",
    }
    loaded = DagSerialization.from_dict(data).get_task("spark")
    assert loaded.extra_links == ["Spark driver UI", "Spark master UI"]
    assert {link.name: link.xcom_key for link in loaded.operator_extra_links} == task["__var"]["_operator_extra_links"]


def test_get_link_returns_the_pushed_url_or_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the task runner pushes back to the link's key when a try ends: the URL unchanged, else ""."""
    from airflow.sdk.execution_time.xcom import XCom

    stored: dict[str, Any] = {"driver_ui_url": "http://w:8081/logPage/?driverId=d", "odd": {"url": "x"}}
    asked: list[tuple[Any, str]] = []

    def get_value(*, ti_key: Any, key: str) -> Any:
        asked.append((ti_key, key))
        return stored.get(key)

    monkeypatch.setattr(XCom, "get_value", get_value)
    ti_key = SimpleNamespace(dag_id="d", task_id="t", run_id="r", map_index=-1)
    assert (
        XComLink(name="Spark driver UI", key="driver_ui_url").get_link(None, ti_key=ti_key) == stored["driver_ui_url"]
    )
    assert XComLink(name="Spark master UI", key="master_ui_url").get_link(None, ti_key=ti_key) == ""
    assert XComLink(name="odd", key="odd").get_link(None, ti_key=ti_key) == ""
    assert asked == [(ti_key, "driver_ui_url"), (ti_key, "master_ui_url"), (ti_key, "odd")]


# --- through Airflow's api-server ------------------------------------------------------------------------------


def push(dag_id: str, task_id: str, key: str, value: Any, map_index: int = -1) -> None:
    """An XCom as a task's ``xcom_push`` stores it: serialized by the SDK, written by the Execution API's route."""
    from airflow.models.xcom import XComModel

    XComModel.set(
        key=key,
        value=BaseXCom.serialize_value(value),
        dag_id=dag_id,
        task_id=task_id,
        run_id=RUN_ID,
        map_index=map_index,
        serialize=False,
    )


def clear_xcoms() -> None:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    with create_session() as session:
        session.execute(delete(XComModel).where(XComModel.run_id == RUN_ID))


class Api:
    """The api-server's app over the example DAGs, each with one dag run whose tasks are all deferred."""

    def __init__(self, client: Any, tasks: dict[tuple[str, str], Any], tis: list[tuple[str, str, int]]) -> None:
        self.client = client
        self.tasks = tasks  # (dag_id, task_id) -> the task as the DAG file defines it (a mapped one too)
        self.tis = tis  # (dag_id, task_id, map_index) of every task instance of the runs

    def links(self, dag_id: str, task_id: str, map_index: int = -1) -> dict[str, str | None]:
        path = f"/dags/{dag_id}/dagRuns/{RUN_ID}/taskInstances/{task_id}/links"
        reply = self.client.get(path, params={"map_index": map_index})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["total_entries"] == len(body["extra_links"])
        links: dict[str, str | None] = body["extra_links"]
        return links

    def state(self, dag_id: str, task_id: str, map_index: int = -1) -> str:
        path = f"/dags/{dag_id}/dagRuns/{RUN_ID}/taskInstances/{task_id}" + (f"/{map_index}" if map_index >= 0 else "")
        reply = self.client.get(path)
        assert reply.status_code == 200, reply.text
        state: str = reply.json()["state"]
        return state


@pytest.fixture(scope="module")
def metadata_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A migrated SQLite metadata DB of this module's own, whatever AIRFLOW_HOME the session was given."""
    from airflow import settings
    from airflow.utils.db import initdb

    url = f"sqlite:///{tmp_path_factory.mktemp('links-db') / 'airflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", url)
        mp.delenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC", raising=False)
        settings.configure_vars()
        settings.reconfigure_orm()
        assert settings.engine is not None and str(settings.engine.url) == url
        try:
            initdb()
            yield
        finally:
            settings.dispose_orm()
    settings.configure_vars()
    settings.reconfigure_orm()


def deferred_run(dag_id: str, run_id: str, session: Any, *, logical: bool = False) -> list[Any]:
    """A running manual DAG run of a serialized DAG (a logical date if ``logical``), every task instance deferred."""
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    now = pendulum.now("UTC")
    run = SerializedDagModel.get_dag(dag_id, session=session).create_dagrun(
        run_id=run_id,
        logical_date=now if logical else None,
        data_interval=None,
        run_after=now,
        run_type=DagRunType.MANUAL,
        triggered_by=DagRunTriggeredByType.TEST,
        state=DagRunState.RUNNING,
        session=session,
    )
    tis: list[Any] = run.get_task_instances(session=session)
    for ti in tis:
        ti.state = TaskInstanceState.DEFERRED
    return tis


@pytest.fixture(scope="module")
def api(metadata_db: None) -> Iterator[Api]:
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.utils.session import create_session
    from fastapi.testclient import TestClient

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
        mp.setenv("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_urlsafe(64))
        DagBundlesManager().sync_bundles_to_db()
        bag = DagBag(dag_folder=str(EXAMPLES), bundle_path=EXAMPLES)
        assert not bag.import_errors, bag.import_errors
        sync_bag_to_db(bag, "dags-folder", None)  # what the dag processor writes
        tis: list[tuple[str, str, int]] = []
        with create_session() as session:
            for dag_id in bag.dags:
                for ti in deferred_run(dag_id, RUN_ID, session, logical=True):
                    tis.append((ti.dag_id, ti.task_id, ti.map_index))
        tasks = {(dag.dag_id, task.task_id): task for dag in bag.dags.values() for task in dag.tasks}
        try:
            with TestClient(create_app(apps="core"), base_url="http://testserver/api/v2") as client:
                yield Api(client, tasks, tis)
        finally:
            purge_cached_app()


@pytest.mark.airflow_db
def test_every_example_task_shows_its_links_while_deferred_and_none_without_xcom(api: Api) -> None:
    clear_xcoms()
    systems = {f"durable_jobs.operators.{system.module}": system for system in declared()}
    checked: list[tuple[str, str, int]] = []
    modules: set[str] = set()
    for dag_id, task_id, map_index in api.tis:
        task = api.tasks[(dag_id, task_id)]
        cls = getattr(task, "operator_class", type(task))  # a mapped task's class is its operator's
        if not (isinstance(cls, type) and issubclass(cls, DurableJobOperator)):
            continue  # EmrTerminateClusterOperator: not a durable job
        assert api.state(dag_id, task_id, map_index) == "deferred"
        system = systems.get(cls.__module__)
        # the keys the system's clients push (an extension's operator, examples/jobservice, sets its own)
        links = system.links if system else cls.operator_extra_links
        declared_links = {link.name: link.xcom_key for link in links}
        assert declared_links, (dag_id, task_id)
        assert api.links(dag_id, task_id, map_index) == dict.fromkeys(declared_links), (dag_id, task_id)
        *pushed, missing = declared_links.items()
        url = f"https://{task_id}.example/{map_index}/{{key}}?a=1&b=2"
        for _, key in pushed:
            push(dag_id, task_id, key, url.format(key=key), map_index)
        expected = {name: url.format(key=key) for name, key in pushed}
        assert api.links(dag_id, task_id, map_index) == {**expected, missing[0]: None}, (dag_id, task_id)
        checked.append((dag_id, task_id, map_index))
        modules.add(cls.__module__)
    assert modules >= set(systems)  # every system's operators are in the examples
    mapped = {(dag_id, task_id) for dag_id, task_id, map_index in checked if map_index >= 0}
    assert len(mapped) == 5, checked  # the examples' mapped Spark, Kubernetes, EMR Serverless, Databricks, Glue tasks
    clear_xcoms()


@pytest.fixture
def master(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with ThreadedFakeSparkMaster() as m:
        conn = {"conn_type": "spark_standalone_rest", "host": "127.0.0.1", "port": m.port}
        monkeypatch.setenv(
            "AIRFLOW_CONN_SPARK_STANDALONE_DEFAULT", json.dumps({**conn, "extra": {"master_ui_urls": m.url}})
        )
        SparkStandaloneHook.clear_cache()
        yield m
    SparkStandaloneHook.clear_cache()


class DbTI(FakeTI):
    """A task instance whose ``xcom_push`` lands in the metadata DB as the task runner's would."""

    def xcom_push(self, key: str, value: Any) -> None:
        super().xcom_push(key, value)
        push(self.dag_id, self.task_id, key, value)


def finalize_links(task: Any, row: tuple[str, str, str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    """What the task runner does with the links when a try ends: each link's get_link, pushed to its key."""
    from airflow.models.xcom import XComModel
    from airflow.sdk.execution_time.xcom import XCom
    from airflow.utils.session import create_session

    def get_value(*, ti_key: Any, key: str) -> Any:  # the Execution API's answer, read from the DB
        with create_session() as session:
            value = session.scalar(
                XComModel.get_many(
                    key=key, run_id=ti_key.run_id, dag_ids=ti_key.dag_id, task_ids=ti_key.task_id
                ).with_only_columns(XComModel.value)
            )
        return None if value is None else BaseXCom.deserialize_value(SimpleNamespace(value=value))

    monkeypatch.setattr(XCom, "get_value", get_value)
    ti_key = SimpleNamespace(dag_id=row[0], run_id=row[1], task_id=row[2], map_index=row[3])
    for link in task.operator_extra_links:
        push(row[0], row[2], link.xcom_key, link.get_link(task, ti_key=ti_key))


@pytest.mark.airflow_db
def test_the_quickstart_tasks_links_are_what_its_operator_pushed_before_deferring(
    api: Api, master: Any, store: InMemoryStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_xcoms()
    dag_id, task_id = "durable_spark_quickstart", "sleep_exit"
    task = api.tasks[(dag_id, task_id)]
    row = (dag_id, RUN_ID, task_id, -1)
    context = task_context(store, row)
    context["ti"] = DbTI(row)
    with pytest.raises(TaskDeferred):
        task.execute(context)
    (driver_id,) = master.drivers
    shown = {
        "Spark master UI": master.url,
        "Spark driver UI": f"{master.url}/logPage/?driverId={driver_id}&logType=stderr",
    }
    assert api.state(dag_id, task_id) == "deferred"
    assert api.links(dag_id, task_id) == shown
    finalize_links(task, row, monkeypatch)  # the try ends deferred: the links stay
    assert api.links(dag_id, task_id) == shown
    clear_xcoms()
