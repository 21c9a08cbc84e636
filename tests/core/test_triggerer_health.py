"""The triggerer check a deferring operator makes, against a real server answering like Airflow's health endpoint."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import structlog

from durable_jobs.hooks.spark_standalone import SparkStandaloneHook
from durable_jobs.operators.spark_standalone import SparkStandaloneOperator
from durable_jobs.operators.triggerer_health import HEALTH_PATH, check_triggerer, health_url, warn_if_no_triggerer
from durable_jobs_harness.airflow_ctx import run_until_deferred, task_context
from durable_jobs_harness.fake_spark import ThreadedFakeSparkMaster
from durable_jobs_harness.ports import free_port
from durable_jobs_harness.stub_http import Page, StubHTTPServer


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def health(triggerer: dict[str, Any] | None, database: str = "healthy") -> Page:
    """An answer shaped like Airflow 3.3's GET /api/v2/monitor/health."""
    body: dict[str, Any] = {
        "metadatabase": {"status": database},
        "scheduler": {"status": "healthy", "latest_scheduler_heartbeat": now().isoformat()},
        "dag_processor": {"status": "healthy", "latest_dag_processor_heartbeat": now().isoformat()},
    }
    if triggerer is not None:
        body["triggerer"] = triggerer
    return Page(200, json.dumps(body).encode())


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def warning(self, msg: str, *args: Any) -> None:
        self.lines.append(("warning", msg % args))

    def debug(self, msg: str, *args: Any) -> None:
        self.lines.append(("debug", msg % args))


def ask(page: Page, timeout: float = 2.0) -> tuple[Any, Log]:
    log = Log()
    with StubHTTPServer({("GET", HEALTH_PATH): page}) as server:
        result = warn_if_no_triggerer(log, server.url + HEALTH_PATH, timeout=timeout)
        assert server.requests == [("GET", HEALTH_PATH)]
    return result, log


def test_a_live_triggerer_logs_nothing():
    result, log = ask(health({"status": "healthy", "latest_triggerer_heartbeat": now().isoformat()}))
    assert result.alive is True and log.lines == []


def test_an_old_heartbeat_warns_how_long_ago_and_how_to_start_one():
    old = now() - dt.timedelta(minutes=12, seconds=10)
    result, log = ask(health({"status": "unhealthy", "latest_triggerer_heartbeat": old.isoformat()}))
    assert result.alive is False and result.latest_heartbeat == old
    [(level, text)] = log.lines
    assert level == "warning"
    assert text.startswith("No triggerer has sent a heartbeat for 12 min (latest ")
    assert "stays deferred until one runs" in text and "`airflow triggerer`" in text and "docs/triggerer.md" in text


def test_no_triggerer_ever_warns():
    result, log = ask(health({"status": None, "latest_triggerer_heartbeat": None}))
    assert result.alive is False
    [(level, text)] = log.lines
    assert level == "warning" and text.startswith("No triggerer has ever sent a heartbeat")
    assert "`airflow triggerer`" in text


@pytest.mark.parametrize(
    ("page", "why"),
    [
        (health(None), "no triggerer section"),
        (health({"status": "unhealthy", "latest_triggerer_heartbeat": None}, database="unhealthy"), "database"),
        (Page(200, b"<html><body>Spark Master</body></html>", "text/html"), "did not answer Airflow's health JSON"),
        (Page(503, b"{}"), "HTTPError"),
        (Page(200, b'{"triggerer": {"status": 5}}'), "did not answer Airflow's health JSON"),
        (Page(200, b'{"triggerer": {"status": "healthy", "latest_triggerer'), "did not answer Airflow's health JSON"),
        # a redirect is not followed (ask() checks that the one request made was ours)
        (Page(302, b"", headers={"Location": "http://elsewhere.invalid/health"}), "HTTPError"),
    ],
)
def test_an_answer_that_tells_nothing_is_logged_at_debug_only(page, why):
    result, log = ask(page)
    assert result.alive is None and why in result.detail
    assert [level for level, _ in log.lines] == ["debug"]


def test_a_server_that_never_answers_is_given_up_after_the_timeout():
    result, log = ask(Page(hang=True), timeout=0.3)
    assert result.alive is None and "did not answer within 0.3s" in result.detail
    assert [level for level, _ in log.lines] == ["debug"]


def test_a_refused_connection_tells_nothing():
    result = check_triggerer(f"http://127.0.0.1:{free_port()}{HEALTH_PATH}", timeout=2.0)
    assert result.alive is None and "URLError" in result.detail


def test_the_url_is_the_api_servers_as_airflow_finds_its_execution_api(monkeypatch):
    for name in ("DURABLE_JOBS__TRIGGERER_HEALTH_URL", "CORE__EXECUTION_API_SERVER_URL", "API__BASE_URL"):
        monkeypatch.delenv(f"AIRFLOW__{name}", raising=False)
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/af/")
    assert health_url() == "https://airflow.example.com/af" + HEALTH_PATH
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "http://api-server:9091/execution/")
    assert health_url() == "http://api-server:9091" + HEALTH_PATH
    monkeypatch.setenv("AIRFLOW__DURABLE_JOBS__TRIGGERER_HEALTH_URL", "http://lb/health")
    assert health_url() == "http://lb/health"
    monkeypatch.setenv("AIRFLOW__DURABLE_JOBS__TRIGGERER_HEALTH_URL", "off")
    assert health_url() is None
    log = Log()
    assert warn_if_no_triggerer(log).detail == "turned off" and log.lines == []


def test_the_operator_warns_before_it_defers_when_no_triggerer_is_alive(monkeypatch, store):
    old = (now() - dt.timedelta(hours=3)).isoformat()
    stale = health({"status": "unhealthy", "latest_triggerer_heartbeat": old})
    with (
        StubHTTPServer({("GET", HEALTH_PATH): stale}) as api,
        ThreadedFakeSparkMaster() as master,
    ):
        monkeypatch.setenv("AIRFLOW__DURABLE_JOBS__TRIGGERER_HEALTH_URL", api.url + HEALTH_PATH)
        monkeypatch.setenv(
            "AIRFLOW_CONN_SPARK_HEALTH",
            json.dumps({"conn_type": "spark_standalone_rest", "host": "127.0.0.1", "port": master.port}),
        )
        SparkStandaloneHook.clear_cache()
        op = SparkStandaloneOperator(
            task_id="spark", application="file:/apps/a.jar", main_class="demo.Main", conn_id="spark_health"
        )
        try:
            with structlog.testing.capture_logs() as logs:
                run_until_deferred(op, task_context(store, ("dag", "run1", "spark", -1)))
        finally:
            SparkStandaloneHook.clear_cache()
        assert api.requests == [("GET", HEALTH_PATH)]  # once, when it deferred
    warnings = [e["event"] for e in logs if e["log_level"] == "warning"]
    assert any(w.startswith("No triggerer has sent a heartbeat for 3 h") for w in warnings), logs
