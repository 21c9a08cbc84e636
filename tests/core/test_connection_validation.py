"""A connection set up wrong is named with its fix when the hook builds a client, and fails without retry.

The checks are the core's (:mod:`durable_jobs.hooks.validate`, :meth:`DurableJobHook.check_connection`); the
systems' own messages are in ``tests/<system>/test_*_validation.py``.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from airflow.sdk.exceptions import AirflowFailException

from durable_jobs.errors import ConnectionConfigError, PermanentError
from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.kubernetes import KubernetesHook
from durable_jobs.hooks.spark_standalone import SparkStandaloneHook
from durable_jobs.operators.spark_standalone import SparkStandaloneOperator
from durable_jobs.record import STATE_KEY
from durable_jobs.testing.scripted import ScriptedClient
from durable_jobs.triggers.spark_standalone import SparkStandaloneTrigger
from durable_jobs_harness.airflow_ctx import task_context

SECRET = "eyJhbGciOiJIUzI1NiJ9.e30.never-in-a-message"


@pytest.fixture(autouse=True)
def _fresh_cache():
    DurableJobHook.clear_cache()
    yield
    DurableJobHook.clear_cache()


def spark_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, value: dict[str, Any] | str) -> None:
    """The connection as Airflow reads it from the environment: JSON, or a URI."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value if isinstance(value, str) else json.dumps(value))


def test_a_generic_connection_is_refused_with_how_to_recreate_it(monkeypatch):
    spark_conn(monkeypatch, "spark_x", {"conn_type": "generic", "host": "m", "port": 6066, "password": SECRET})
    with pytest.raises(ConnectionConfigError) as exc:
        SparkStandaloneHook.get_client("spark_x")
    text = str(exc.value)
    assert text.startswith("connection 'spark_x' has type 'generic'; the Spark Standalone (REST) hook needs type ")
    assert "--conn-type spark_standalone_rest" in text and "AIRFLOW_CONN_SPARK_X='spark-standalone-rest://" in text
    assert SECRET not in text
    assert isinstance(exc.value, PermanentError) and isinstance(exc.value, ValueError)


def test_a_uri_connection_gets_its_type_from_the_scheme(monkeypatch):
    spark_conn(monkeypatch, "spark_uri", "spark-standalone-rest://m1:6066")
    client = SparkStandaloneHook.get_client("spark_uri")
    assert client.config.rest_urls == ("http://m1:6066",)


def test_the_legacy_spark_uri_names_both_problems_and_the_rest_port(monkeypatch):
    spark_conn(monkeypatch, "spark_default", "spark://spark-master:7077")
    with pytest.raises(ConnectionConfigError) as exc:
        SparkStandaloneHook.get_client("spark_default")
    text = str(exc.value)
    assert text.startswith("connection 'spark_default' has 2 problems: (1) it has type 'spark';")
    assert "(2) it names port 7077 (spark-master), the master's legacy RPC port" in text
    assert "use host=spark-master, port=6066 (spark.master.rest.enabled=true on the master)" in text


def test_another_providers_type_is_accepted_where_the_declaration_lists_it():
    conn = SimpleNamespace(
        conn_id="k", conn_type="kubernetes", host="https://10.0.0.1:6443", port=None, password=None, extra_dejson={}
    )
    KubernetesHook.check_connection(conn)  # the cncf-kubernetes provider's type, read as it is
    with pytest.raises(ConnectionConfigError, match="needs type 'kubernetes_durable' \\(or 'kubernetes'\\)"):
        KubernetesHook.check_connection(SimpleNamespace(**{**vars(conn), "conn_type": "http"}))


class UndeclaredHook(DurableJobHook):
    """A hook that declares no connection type (the extension API allows it): any type is read."""

    built: ClassVar[int] = 0

    @classmethod
    def client_from_connection(cls, conn: Any) -> Any:
        if conn.port is not None and conn.port < 0:
            raise ValueError("port must be positive")
        cls.built += 1
        return ScriptedClient()


def test_a_hook_without_a_declared_type_reads_any_and_its_value_errors_name_the_connection():
    conn = SimpleNamespace(conn_id="any", conn_type="generic", host="h", port=1, schema="", extra_dejson={})
    assert isinstance(UndeclaredHook.build_client(conn), ScriptedClient)
    with pytest.raises(ConnectionConfigError, match=r"^connection 'any': port must be positive$"):
        UndeclaredHook.build_client(SimpleNamespace(**{**vars(conn), "port": -1}))


async def test_the_triggerer_path_raises_the_same_error_and_caches_nothing(monkeypatch):
    spark_conn(monkeypatch, "spark_ui", {"conn_type": "spark_standalone_rest", "host": "m", "port": 8080})
    with pytest.raises(ConnectionConfigError, match="names port 8080 \\(m\\), the master's web UI"):
        await SparkStandaloneHook.aget_client("spark_ui")
    spark_conn(monkeypatch, "spark_ui", {"conn_type": "spark_standalone_rest", "host": "m", "port": 6066})
    assert (await SparkStandaloneHook.aget_client("spark_ui")).config.rest_urls == ("http://m:6066",)


def op(conn_id: str) -> SparkStandaloneOperator:
    return SparkStandaloneOperator(
        task_id="spark", application="file:/apps/a.jar", main_class="demo.Main", conn_id=conn_id, retries=3
    )


@pytest.mark.parametrize(
    ("conn", "says"),
    [
        ({"conn_type": "generic", "host": "m", "port": 6066}, "has type 'generic'"),
        ({"conn_type": "spark_standalone_rest", "host": "spark://m:7077"}, "names spark://m:7077"),
        ({"conn_type": "spark_standalone_rest", "host": "m", "extra": {"timeout": -1}}, "timeout must be positive"),
    ],
)
def test_the_operator_fails_without_retry_before_recording_anything(monkeypatch, store, conn, says):
    spark_conn(monkeypatch, "spark_bad", conn)
    with pytest.raises(AirflowFailException, match="connection 'spark_bad'") as exc:
        op("spark_bad").execute(task_context(store, ("dag", "run1", "spark", -1)))
    assert says in str(exc.value)
    assert STATE_KEY not in store.rows.get(("dag", "run1", "spark", -1), {})  # nothing recorded, nothing submitted


def test_resuming_with_a_connection_broken_meanwhile_fails_without_retry(monkeypatch, store):
    spark_conn(monkeypatch, "spark_bad", {"conn_type": "http", "host": "m", "port": 6066})
    event = {"status": "succeeded", "job": {"driver_id": "driver-20261121100236-0001"}, "token": "t", "generation": 0}
    with pytest.raises(AirflowFailException, match="connection 'spark_bad' has type 'http'"):
        op("spark_bad").execute_complete(task_context(store, ("dag", "run1", "spark", -1)), event)


def bad_trigger() -> SparkStandaloneTrigger:
    job = {"driver_id": "driver-20261121100236-0001"}
    return SparkStandaloneTrigger(job=job, conn_id="spark_bad", token="dj0123456789abcdef0123", generation=0)


async def test_the_trigger_ends_with_one_error_event_that_says_what_to_fix(monkeypatch):
    spark_conn(monkeypatch, "spark_bad", {"conn_type": "spark_standalone_rest", "host": "m", "port": 7077})
    trigger = bad_trigger()
    events = [event.payload async for event in trigger.run()]
    assert len(events) == 1
    [event] = events
    assert event["status"] == "error" and event["job"] == {"driver_id": "driver-20261121100236-0001"}
    assert event["message"].startswith("connection 'spark_bad' names port 7077 (m), the master's legacy RPC port")
    assert "port=6066" in event["message"]


async def test_on_kill_with_a_broken_connection_logs_instead_of_raising(monkeypatch):
    spark_conn(monkeypatch, "spark_bad", {"conn_type": "generic", "host": "m"})
    trigger = bad_trigger()

    async def finished() -> str:
        return "failed"

    monkeypatch.setattr(trigger, "_task_instance_state", finished)
    await trigger.on_kill()  # nothing to cancel with: logged, not raised
