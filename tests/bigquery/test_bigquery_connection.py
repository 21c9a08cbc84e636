"""BigQuery connections -> the client's arguments: a key (JSON in the extra or a file), user credentials, or
Application Default Credentials; the project; the google provider's type, extras and prefix; what is refused
(with the fix, never a secret); and nothing secret in a trigger's kwargs.

The client and its auth classes are replaced by recorders of their arguments: what is tested is the hook's
reading, not the client.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import durable_jobs.clients.bigquery as client_package
from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.bigquery import BigQueryHook, BigQuerySettings
from durable_jobs.status import JobState
from durable_jobs.systems.bigquery import CONNECTION
from durable_jobs.triggers.base import BASE_KWARGS
from durable_jobs.triggers.bigquery import BigQueryTrigger
from durable_jobs_harness.airflow_ctx import run_until_deferred, task_context
from durable_jobs_harness.connections import Recorded, connection, refusal
from tests.bigquery.fake_client import FakeJobsClient

PRIVATE_KEY = (
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC-not-a-real-key\n-----END PRIVATE KEY-----\n"
)
SERVICE_ACCOUNT = {
    "type": "service_account",
    "project_id": "key-project",
    "private_key_id": "0123456789abcdef",
    "private_key": PRIVATE_KEY,
    "client_email": "etl@key-project.iam.gserviceaccount.com",
    "client_id": "1234567890",
    "token_uri": "https://oauth2.googleapis.com/token",
}
USER_SECRET = "d-FL95Q19q7MQmFpd7hHD0Ty"
REFRESH_TOKEN = "1//0g-refresh-token-never-shown"
AUTHORIZED_USER = {
    "type": "authorized_user",
    "client_id": "764086051850-6qr4p6gpi6hn506pt8ejuq83di341hur.apps.googleusercontent.com",
    "client_secret": USER_SECRET,
    "refresh_token": REFRESH_TOKEN,
}
SECRETS = (PRIVATE_KEY, "not-a-real-key", USER_SECRET, REFRESH_TOKEN)


@pytest.fixture(autouse=True)
def recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_package, "BigQueryClient", type("RecordedClient", (Recorded,), {}))
    monkeypatch.setattr(client_package, "ServiceAccountAuth", type("RecordedServiceAccount", (Recorded,), {}))
    monkeypatch.setattr(client_package, "AuthorizedUserAuth", type("RecordedUser", (Recorded,), {}))
    monkeypatch.setattr(client_package, "application_default", lambda environ: ("adc", environ))
    for name in ("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    DurableJobHook.clear_cache()


def conn(extra: dict[str, Any] | None = None, **fields: Any) -> SimpleNamespace:
    return connection(
        {"conn_id": "google_cloud_default", "conn_type": "bigquery_durable"}, extra_dejson=extra or {}, **fields
    )


def built(extra: dict[str, Any] | None = None, **fields: Any) -> Any:
    return BigQueryHook.build_client(conn(extra, **fields))


def key_file(tmp_path: Path, content: Any) -> str:
    path = tmp_path / "key.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_a_keyfile_dict_is_a_service_account_in_its_project() -> None:
    client = built({"keyfile_dict": json.dumps(SERVICE_ACCOUNT)})
    assert client.args == ("key-project",)
    auth = client.kwargs.pop("auth")
    assert type(auth).__name__ == "RecordedServiceAccount" and auth.args == (SERVICE_ACCOUNT,)
    assert client.kwargs == {
        "base_url": "https://bigquery.googleapis.com",
        "timeout": 30.0,
        "verify_ssl": True,
        "ca_file": None,
        "max_response_bytes": 16 * 1024 * 1024,
    }
    # a JSON extra may hold the key as an object
    assert built({"keyfile_dict": SERVICE_ACCOUNT}).kwargs["auth"].args == (SERVICE_ACCOUNT,)


def test_a_key_file_and_the_scopes(tmp_path: Path) -> None:
    path = key_file(tmp_path, SERVICE_ACCOUNT)
    auth = built({"key_path": path, "scope": "https://www.googleapis.com/auth/bigquery, openid"}).kwargs["auth"]
    assert auth.args == (SERVICE_ACCOUNT,)
    assert auth.kwargs == {"scopes": ("https://www.googleapis.com/auth/bigquery", "openid")}
    # keyfile_dict wins over key_path, as in the provider
    other = {**SERVICE_ACCOUNT, "project_id": "dict-project"}
    assert built({"key_path": path, "keyfile_dict": json.dumps(other)}).args == ("dict-project",)


def test_authorized_user_credentials_refresh_their_token(tmp_path: Path) -> None:
    client = built({"key_path": key_file(tmp_path, AUTHORIZED_USER), "project": "user-project"})
    assert client.args == ("user-project",)
    assert type(client.kwargs["auth"]).__name__ == "RecordedUser" and client.kwargs["auth"].args == (AUTHORIZED_USER,)


def test_no_key_is_application_default_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    assert built({"project": "adc-project"}).kwargs["auth"] == ("adc", os.environ)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "env-project")
    assert built().args == ("env-project",)
    assert built({"project": "extra-project"}).args == ("extra-project",)  # the extra wins


def test_the_project_of_the_extra_wins_over_the_keys() -> None:
    assert built({"keyfile_dict": SERVICE_ACCOUNT, "project": "billing-project"}).args == ("billing-project",)
    assert built({"keyfile_dict": SERVICE_ACCOUNT, "project": "example.com:scoped-project"}).args == (
        "example.com:scoped-project",
    )


def test_the_providers_type_extras_and_prefix_are_read(tmp_path: Path) -> None:
    prefix = "extra__google_cloud_platform__"
    extra = {f"{prefix}key_path": key_file(tmp_path, SERVICE_ACCOUNT), f"{prefix}project": "prefixed-project"}
    client = built(extra, conn_type="google_cloud_platform")
    assert client.args == ("prefixed-project",) and client.kwargs["auth"].args == (SERVICE_ACCOUNT,)
    assert "needs type 'bigquery_durable' (or 'google_cloud_platform')" in refusal(
        BigQueryHook, conn({"project": "my-project"}, conn_type="http")
    )


def test_the_declared_extras_reach_the_client() -> None:
    extra = {
        "project": "my-project",
        "base_url": "http://127.0.0.1:9050/",
        "verify_ssl": "false",
        "ca_file": "/etc/ssl/gcp.pem",
        "timeout": "5",
        "max_response_bytes": "1MiB",
    }
    assert built(extra).kwargs | {"auth": None} == {
        "auth": None,
        "base_url": "http://127.0.0.1:9050",
        "timeout": 5.0,
        "verify_ssl": False,
        "ca_file": "/etc/ssl/gcp.pem",
        "max_response_bytes": 1024 * 1024,
    }
    assert BigQueryHook.config_from_connection(conn({**extra, "location": "EU"})).location == "EU"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({}, "names no project: set extra project"),
        ({"project": "My Project"}, "extra project 'My Project' is not a Google Cloud project id"),
        ({"keyfile_dict": {**SERVICE_ACCOUNT, "project_id": "x"}}, "the key's project_id 'x' is not a Google Cloud"),
        ({"project": "p-123456", "keyfile_dict": "{not json"}, "extra keyfile_dict is not JSON"),
        ({"project": "p-123456", "keyfile_dict": "[1]"}, "extra keyfile_dict is not a JSON object"),
        (
            {"keyfile_dict": {**SERVICE_ACCOUNT, "type": "external_account"}},
            "extra keyfile_dict has type 'external_account': durable_jobs takes a service_account key",
        ),
        (
            {"keyfile_dict": {k: v for k, v in SERVICE_ACCOUNT.items() if k != "private_key"}},
            "extra keyfile_dict (type service_account) lacks private_key: download the key again",
        ),
        (
            {"project": "p-123456", "keyfile_dict": {**AUTHORIZED_USER, "refresh_token": ""}},
            "(type authorized_user) lacks refresh_token",
        ),
        ({"project": "p-123456", "key_secret_name": "sa-key"}, "sets extra key_secret_name, which durable_jobs does"),
        ({"project": "p-123456", "credential_config_file": "/etc/wif.json"}, "workload identity federation"),
        (
            {"project": "p-123456", "extra__google_cloud_platform__impersonation_chain": "sa@p.iam"},
            "sets extra impersonation_chain",
        ),
        ({"project": "p-123456", "base_url": "bigquery.googleapis.com"}, "extra base_url must be an http(s) URL"),
    ],
)
def test_a_connection_that_cannot_work_is_refused_with_the_fix_and_no_secret(
    extra: dict[str, Any], message: str
) -> None:
    assert message in refusal(BigQueryHook, conn(extra), secrets=SECRETS)


def test_a_key_file_that_cannot_be_used_is_refused_naming_the_file_not_its_content(tmp_path: Path) -> None:
    missing = str(tmp_path / "absent.json")
    text = refusal(BigQueryHook, conn({"key_path": missing}))
    assert f"extra key_path '{missing}' cannot be read on this host" in text and "every worker and triggerer" in text
    broken = key_file(tmp_path, PRIVATE_KEY)
    assert "is not JSON" in refusal(BigQueryHook, conn({"key_path": broken}), secrets=SECRETS)
    wrong = key_file(tmp_path, {**AUTHORIZED_USER, "type": "impersonated_service_account"})
    assert "has type 'impersonated_service_account'" in refusal(
        BigQueryHook, conn({"key_path": wrong}), secrets=SECRETS
    )


def test_settings_never_show_the_key() -> None:
    settings = BigQueryHook.config_from_connection(conn({"keyfile_dict": SERVICE_ACCOUNT}))
    assert isinstance(settings, BigQuerySettings) and settings.key_source == "extra keyfile_dict"
    assert not any(secret in repr(settings) for secret in SECRETS) and "key-project" in repr(settings)


def test_the_form_masks_the_key_and_hides_the_standard_fields() -> None:
    entry = CONNECTION.provider_entry("durable_jobs.hooks.bigquery")
    assert entry["hook-class-name"] == "durable_jobs.hooks.bigquery.BigQueryHook"
    assert entry["conn-fields"]["keyfile_dict"]["schema"]["format"] == "password"
    assert entry["conn-fields"]["base_url"]["schema"]["default"] == "https://bigquery.googleapis.com"
    assert set(entry["ui-field-behaviour"]["hidden-fields"]) == {"host", "schema", "login", "password", "port"}


def test_nothing_secret_reaches_the_triggers_kwargs(monkeypatch: pytest.MonkeyPatch, store: Any) -> None:
    """The operator defers with the conn_id only: the trigger table never holds the key."""
    from durable_jobs.operators.bigquery import BigQueryJobOperator

    value = {"conn_type": "google_cloud_platform", "extra": {"keyfile_dict": json.dumps(SERVICE_ACCOUNT)}}
    monkeypatch.setenv("AIRFLOW_CONN_GCP_SECRET", json.dumps(value))
    built_from: list[Any] = []
    fake = FakeJobsClient(project="key-project", scripts=[[JobState.RUNNING]])

    def client_from_connection(cls: Any, connection: Any) -> FakeJobsClient:
        built_from.append(BigQueryHook.config_from_connection(connection))
        return fake

    monkeypatch.setattr(BigQueryHook, "client_from_connection", classmethod(client_from_connection))
    op = BigQueryJobOperator(task_id="t", configuration={"query": {"query": "SELECT 1"}}, gcp_conn_id="gcp_secret")
    trigger = run_until_deferred(op, task_context(store, ("d", "r", "t", -1))).trigger
    assert isinstance(trigger, BigQueryTrigger)
    assert built_from[0].key == SERVICE_ACCOUNT  # the connection was read, on the worker
    classpath, kwargs = trigger.serialize()
    text = json.dumps(kwargs)
    assert not any(secret in text for secret in SECRETS) and "etl@key-project" not in text
    assert kwargs["conn_id"] == "gcp_secret" and tuple(kwargs) == BASE_KWARGS
    assert BigQueryTrigger(**kwargs).serialize() == (classpath, kwargs)  # as the triggerer rebuilds it
    DurableJobHook.clear_cache()
