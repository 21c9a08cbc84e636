"""Databricks connections -> the client's arguments: a PAT or OAuth M2M, the databricks provider's extras, the
workspace URL, what is refused (with the fix, never a secret), and nothing secret in a trigger's kwargs.

The client is replaced by recorders of its constructor's arguments: what is tested is the hook's reading.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

import durable_jobs.clients.databricks as client_package
from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.databricks import DatabricksHook, DatabricksSettings, workspace_url
from durable_jobs.status import JobState
from durable_jobs.systems.databricks import CONNECTION
from durable_jobs.transport.auth import BearerAuth
from durable_jobs.triggers.base import BASE_KWARGS
from durable_jobs.triggers.databricks import DatabricksTrigger
from durable_jobs_harness.airflow_ctx import run_until_deferred, task_context
from durable_jobs_harness.connections import Recorded, connection, refusal
from tests.databricks.fake_client import FakeRunsClient

HOST = "adb-1234567890123456.7.azuredatabricks.net"
PAT = "dapi0123456789abcdef0123456789abcdef"
SECRET = "dose0123456789abcdef-oauth-secret"


@pytest.fixture(autouse=True)
def recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_package, "DatabricksClient", type("RecordedClient", (Recorded,), {}))
    monkeypatch.setattr(client_package, "OAuthM2MAuth", type("RecordedOAuth", (Recorded,), {}))
    DurableJobHook.clear_cache()


def conn(**fields: Any) -> SimpleNamespace:
    return connection({"conn_id": "databricks_default", "conn_type": "databricks_durable", "host": HOST}, **fields)


def built(**fields: Any) -> Any:
    return DatabricksHook.build_client(conn(**fields))


def test_a_pat_in_the_password_is_a_bearer() -> None:
    client = built(password=PAT)
    assert client.args == (f"https://{HOST}",)
    auth = client.kwargs.pop("auth")
    assert isinstance(auth, BearerAuth) and auth.secrets() == (PAT,)
    assert client.kwargs == {
        "timeout": 30.0,
        "verify_ssl": True,
        "ca_file": None,
        "max_response_bytes": 16 * 1024 * 1024,
        "list_limit": 24,
    }


def test_the_providers_token_login_and_token_extra_are_pats() -> None:
    assert built(login="token", password=PAT).kwargs["auth"].secrets() == (PAT,)
    # the provider's older place wins over the password, as the provider reads it
    assert built(password="other", extra_dejson={"token": PAT}).kwargs["auth"].secrets() == (PAT,)
    assert built(login="someone", password=PAT, extra_dejson={"auth": "pat"}).kwargs["auth"].secrets() == (PAT,)


@pytest.mark.parametrize(
    "extra", [{"service_principal_oauth": True}, {"service_principal_oauth": "true"}, {"auth": "oauth"}]
)
def test_oauth_m2m_takes_the_client_id_and_secret(extra: dict[str, Any]) -> None:
    client = built(login="6f1c-sp-client-id", password=SECRET, extra_dejson=extra)
    auth = client.kwargs["auth"]
    assert type(auth).__name__ == "RecordedOAuth"
    assert auth.args == (f"https://{HOST}", "6f1c-sp-client-id", SECRET)


def test_the_providers_order_puts_a_token_before_the_oauth_flag() -> None:
    # the provider uses a password without a login as a PAT even with service_principal_oauth
    assert built(password=PAT, extra_dejson={"service_principal_oauth": True}).kwargs["auth"].secrets() == (PAT,)
    assert isinstance(built(login="sp", password=SECRET, extra_dejson={"token": PAT}).kwargs["auth"], BearerAuth)


def test_the_providers_connection_type_and_host_extra_are_read() -> None:
    client = built(conn_type="databricks", host=None, password=PAT, extra_dejson={"host": f"https://{HOST}/"})
    assert client.args == (f"https://{HOST}",)
    assert built(host="ignored.example.com", password=PAT, extra_dejson={"host": HOST}).args == (f"https://{HOST}",)
    assert "needs type 'databricks_durable' (or 'databricks')" in refusal(DatabricksHook, conn(conn_type="http"))


def test_the_declared_extras_reach_the_client() -> None:
    extra = {
        "verify_ssl": "false",
        "ca_file": "/etc/ssl/dbx.pem",
        "timeout": "5",
        "max_response_bytes": "1MiB",
        "list_limit": "10",
    }
    assert built(password=PAT, extra_dejson=extra).kwargs | {"auth": None} == {
        "auth": None,
        "timeout": 5.0,
        "verify_ssl": False,
        "ca_file": "/etc/ssl/dbx.pem",
        "max_response_bytes": 1024 * 1024,
        "list_limit": 10,
    }


@pytest.mark.parametrize(
    ("host", "schema", "port", "url"),
    [
        (HOST, None, None, f"https://{HOST}"),
        (f"https://{HOST}/?o=1234567890123456", None, None, f"https://{HOST}"),
        (f"{HOST}/", "https", 443, f"https://{HOST}:443"),
        ("127.0.0.1", "http", 8443, "http://127.0.0.1:8443"),
        ("http://127.0.0.1:9000", "https", 1, "http://127.0.0.1:9000"),
        ("[::1]", "http", 80, "http://[::1]:80"),
    ],
)
def test_the_workspace_url(host: str, schema: str | None, port: int | None, url: str) -> None:
    assert workspace_url(host, schema, port) == url


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"host": None}, "host is empty; give the workspace URL"),
        ({"host": "a.example.com,b.example.com"}, "names several hosts; a connection is one workspace"),
        ({"host": "ftp://a.example.com"}, "names ftp://a.example.com, a ftp:// address"),
        ({"schema": "jdbc"}, "has schema 'jdbc', a SQL warehouse's JDBC URL"),
    ],
)
def test_a_connection_without_a_workspace_is_refused(fields: dict[str, Any], message: str) -> None:
    assert message in refusal(DatabricksHook, conn(password=PAT, **fields), secrets=(PAT,))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "connection 'databricks_default': has no credentials; put a personal access token in the password"),
        ({"login": "someone"}, "has no credentials"),
        ({"login": "alice@example.com", "password": SECRET}, "has a login and a password but no OAuth flag"),
        ({"password": SECRET, "extra_dejson": {"auth": "oauth"}}, "OAuth M2M needs a login (the service principal's"),
        (
            {"extra_dejson": {"service_principal_oauth": True}, "login": "sp"},
            "OAuth M2M needs a password (its secret)",
        ),
        ({"password": PAT, "extra_dejson": {"auth": "basic"}}, "extra auth must be one of pat, oauth, not 'basic'"),
    ],
)
def test_missing_credentials_are_refused_with_the_fix_and_no_secret(fields: dict[str, Any], message: str) -> None:
    assert message in refusal(DatabricksHook, conn(**fields), secrets=(PAT, SECRET))


@pytest.mark.parametrize("value", [0, 25, -3, "abc", 2.5, True])
def test_list_limit_is_between_1_and_24(value: Any) -> None:
    text = refusal(DatabricksHook, conn(password=PAT, extra_dejson={"list_limit": value}))
    assert text.startswith("connection 'databricks_default': extra list_limit")


@pytest.mark.parametrize("value", [1, 24, "12", 7.0])
def test_list_limit_in_bounds_is_taken(value: Any) -> None:
    assert built(password=PAT, extra_dejson={"list_limit": value}).kwargs["list_limit"] == int(float(value))


def test_settings_never_show_a_secret() -> None:
    pat = DatabricksHook.config_from_connection(conn(password=PAT))
    oauth = DatabricksHook.config_from_connection(conn(login="sp", password=SECRET, extra_dejson={"auth": "oauth"}))
    assert isinstance(pat, DatabricksSettings) and (pat.auth, oauth.auth) == ("pat", "oauth")
    assert PAT not in repr(pat) and SECRET not in repr(oauth) and "sp" in repr(oauth)


def test_the_form_hides_nothing_it_needs_and_masks_the_token() -> None:
    entry = CONNECTION.provider_entry("durable_jobs.hooks.databricks")
    assert entry["hook-class-name"] == "durable_jobs.hooks.databricks.DatabricksHook"
    assert entry["conn-fields"]["token"]["schema"]["format"] == "password"
    assert entry["conn-fields"]["list_limit"]["schema"]["default"] == 24
    assert entry["ui-field-behaviour"]["hidden-fields"] == []


def test_nothing_secret_reaches_the_triggers_kwargs(monkeypatch: pytest.MonkeyPatch, store: Any) -> None:
    """The operator defers with the conn_id only: the trigger table never holds the PAT or the OAuth secret."""
    from durable_jobs.operators.databricks import DatabricksRunNowOperator

    value = {"conn_type": "databricks_durable", "host": HOST, "login": "sp", "password": SECRET}
    monkeypatch.setenv("AIRFLOW_CONN_DBX_SECRET", json.dumps({**value, "extra": {"service_principal_oauth": True}}))
    built_from: list[Any] = []
    fake = FakeRunsClient(scripts=[[JobState.RUNNING]])

    def client_from_connection(cls: Any, connection: Any) -> FakeRunsClient:
        built_from.append(DatabricksHook.config_from_connection(connection))
        return fake

    monkeypatch.setattr(DatabricksHook, "client_from_connection", classmethod(client_from_connection))
    op = DatabricksRunNowOperator(task_id="t", job_id=9, databricks_conn_id="dbx_secret")
    trigger = run_until_deferred(op, task_context(store, ("d", "r", "t", -1))).trigger
    assert isinstance(trigger, DatabricksTrigger)
    assert built_from[0].client_secret == SECRET  # the connection was read, on the worker
    classpath, kwargs = trigger.serialize()
    text = json.dumps(kwargs)
    assert SECRET not in text and "sp" not in kwargs.values() and kwargs["conn_id"] == "dbx_secret"
    assert tuple(kwargs) == BASE_KWARGS  # the base arguments, nothing of its own
    assert DatabricksTrigger(**kwargs).serialize() == (classpath, kwargs)  # as the triggerer rebuilds it
    DurableJobHook.clear_cache()
