"""Spark standalone connections set up wrong: the message names the connection, what it points at, and the fix.

Also the run-time half: a connection pointed at the master's web UI (on a port the build-time check cannot
know) gets the UI's HTML answers, which are recognised and named, and the task fails without retry.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from durable_jobs.clients.spark_standalone import SparkApplication, SparkStandaloneClient, SparkStandaloneConfig
from durable_jobs.errors import ConnectionConfigError, MalformedAnswer
from durable_jobs.hooks.spark_standalone import SparkStandaloneHook
from durable_jobs.operators.spark_standalone import SparkStandaloneOperator
from durable_jobs.record import STATE_KEY
from durable_jobs.transport.http import close_sessions
from durable_jobs_harness.airflow_ctx import task_context
from durable_jobs_harness.connections import connection, refusal
from durable_jobs_harness.spark_cluster import SparkCluster
from durable_jobs_harness.stub_http import Page, StubHTTPServer

FIX = "use host=m, port=6066 (spark.master.rest.enabled=true on the master), scheme http or https"
# what a Spark 4 master's web UI answers a POST to /v1/submissions/create (Jetty's servlet page)
UI_405 = (
    b'<html>\n<head>\n<meta http-equiv="Content-Type" content="text/html;charset=ISO-8859-1"/>\n'
    b"<title>Error 405 HTTP method POST is not supported by this URL</title>\n</head>\n<body>\n"
    b"<h2>HTTP ERROR 405 HTTP method POST is not supported by this URL</h2>\n</body>\n</html>\n"
)
UI_PAGE = (
    b'<!DOCTYPE html><html data-bs-theme="light"><head><title>Spark Master at spark://m:7077</title></head></html>'
)


def conn(**fields: Any) -> SimpleNamespace:
    return connection({"conn_id": "spark_default", "conn_type": "spark_standalone_rest", "host": "m"}, **fields)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"host": "spark://m:7077"},
            f"connection 'spark_default' names spark://m:7077, the master's legacy RPC address; durable_jobs talks "
            f"to the Spark master's REST submission server over HTTP: {FIX}",
        ),
        (
            {"host": "spark://m", "port": 7077},
            "connection 'spark_default' names spark://m:7077, the master's legacy RPC address",
        ),
        (
            {"port": 7077},
            f"connection 'spark_default' names port 7077 (m), the master's legacy RPC port (what spark:// URLs name); "
            f"durable_jobs talks to the Spark master's REST submission server: {FIX}",
        ),
        ({"port": 8080}, "names port 8080 (m), the master's web UI (it belongs in extra master_ui_urls)"),
        ({"port": 4040}, "names port 4040 (m), an application's web UI"),
        ({"host": "http://m:8081"}, "names port 8081 (http://m:8081), a worker's web UI"),
        ({"schema": "spark"}, "has schema 'spark', the master's legacy RPC address; the schema field is the URL"),
        ({"schema": "ftp"}, "has schema 'ftp'; the schema field is the URL scheme of the Spark master's REST"),
        ({"host": "m1:6066,m2:8080"}, "names port 8080 (m2:8080), the master's web UI"),
        (
            {"extra_dejson": {"master_ui_urls": "spark://m:7077"}},
            "extra master_ui_urls names 'spark://m:7077', which is not an http(s) URL: give each master's web UI, "
            "e.g. http://m:8080",
        ),
        (
            {"extra_dejson": {"master_ui_urls": "http://m:6066"}},
            "extra master_ui_urls names 'http://m:6066', a REST or RPC port: /json/ is read from the master's web UI",
        ),
    ],
)
def test_wrong_scheme_or_port_is_named_with_the_fix(fields, message):
    assert message in refusal(SparkStandaloneHook, conn(**fields))


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"port": 6066, "schema": "https"},
        {"host": "m1,m2", "port": 6066},
        {"host": "https://m1:6066,https://m2:16066"},
        {"conn_type": "spark-standalone-rest"},
        {"extra_dejson": {"master_ui_urls": "http://m1:8080,http://m2:8080"}},
    ],
)
def test_right_connections_pass(fields):
    assert isinstance(SparkStandaloneHook.build_client(conn(**fields)), SparkStandaloneClient)


@pytest.fixture
def spark_ui():
    """A server answering the REST paths as a Spark master's web UI does (seen on Spark 4.3)."""
    pages = {
        ("POST", "/v1/submissions/create"): Page(405, UI_405, "text/html;charset=iso-8859-1"),
        ("POST", "/v1/submissions/kill/driver-20261121100236-0001"): Page(405, UI_405, "text/html;charset=iso-8859-1"),
    }
    with StubHTTPServer(pages, default=Page(200, UI_PAGE, "text/html;charset=utf-8")) as ui:
        yield ui


APP = SparkApplication(app_resource="file:/apps/a.jar", main_class="demo.Main")


def ui_client(url: str) -> SparkStandaloneClient:
    return SparkStandaloneClient(SparkStandaloneConfig(rest_urls=(url,), ui_urls=(url,)))


async def test_the_uis_405_to_a_submit_is_named_and_permanent(spark_ui):
    try:
        with pytest.raises(ConnectionConfigError) as exc:
            await ui_client(spark_ui.url).submit(APP, "dj0123456789abcdef0123")
        with pytest.raises(ConnectionConfigError, match="web UI"):
            await ui_client(spark_ui.url).cancel({"driver_id": "driver-20261121100236-0001"})
    finally:
        await close_sessions()
    text = str(exc.value)
    assert "HTTP 405 (an HTML page)" in text and "<html" not in text
    assert "this looks like the Spark master's web UI, not its REST submission server (port 6066" in text
    assert spark_ui.requests.count(("POST", "/v1/submissions/create")) == 1  # not retried


async def test_the_uis_page_for_a_status_is_unknown_and_named(spark_ui):
    try:
        with pytest.raises(MalformedAnswer, match=r"an HTML page .* looks like the Spark master's web UI"):
            await ui_client(spark_ui.url).status({"driver_id": "driver-20261121100236-0001"})
    finally:
        await close_sessions()


def test_the_operator_pointed_at_the_ui_fails_without_retry(monkeypatch, store, spark_ui):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SPARK_UI",
        json.dumps({"conn_type": "spark_standalone_rest", "host": "127.0.0.1", "port": spark_ui.port}),
    )
    SparkStandaloneHook.clear_cache()
    op = SparkStandaloneOperator(
        task_id="spark", application="file:/apps/a.jar", main_class="demo.Main", conn_id="spark_ui", retries=3
    )
    try:
        with pytest.raises(AirflowFailException) as exc:
            op.execute(task_context(store, ("dag", "run1", "spark", -1)))
    finally:
        SparkStandaloneHook.clear_cache()
    assert str(exc.value).startswith("connection 'spark_ui': create Spark submission: HTTP 405 (an HTML page)")
    assert "web UI, not its REST submission server" in str(exc.value)
    # the intent stays recorded: a try after the fix looks for a job with the token before submitting
    assert store.rows[("dag", "run1", "spark", -1)][STATE_KEY]["phase"] == "submitting"
    assert spark_ui.requests.count(("POST", "/v1/submissions/create")) == 1


async def test_a_real_masters_ui_port_is_recognised_and_its_rest_port_as_a_ui(spark: SparkCluster):
    """The same answers from a real Spark master: its web UI where REST is due, its REST server where /json/ is."""
    swapped = SparkStandaloneClient(SparkStandaloneConfig(rest_urls=(spark.master_ui_url,), ui_urls=(spark.rest_url,)))
    try:
        with pytest.raises(ConnectionConfigError, match="looks like the Spark master's web UI"):
            await swapped.submit(APP, "dj0123456789abcdef0123")
        with pytest.raises(ConnectionConfigError, match="extra master_ui_urls names the master's REST server"):
            await swapped.find("dj0123456789abcdef0123", since=0.0, spec=APP)
    finally:
        await close_sessions()
