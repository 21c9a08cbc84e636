"""Glue reads the ``aws`` connection as EMR does: the client's arguments from the connection (region, Glue's own
endpoint, TLS, the credentials in the config), what is refused (with the fix, never a secret), the declaration
(no second ``aws`` type), ``test_connection`` through STS, and nothing secret in a trigger's kwargs.

The client is replaced by a recorder of its constructor's arguments: what is tested is the hook's reading.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from durable_jobs.clients.emr.aws_config import AwsConfig
from durable_jobs.clients.glue import GlueClient
from durable_jobs.get_provider_info import get_provider_info
from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.emr import DurableAwsHook
from durable_jobs.hooks.glue import GlueHook
from durable_jobs.status import JobState
from durable_jobs.systems import emr, glue
from durable_jobs.triggers.base import BASE_KWARGS
from durable_jobs.triggers.glue import GlueTrigger
from durable_jobs_harness.airflow_ctx import run_until_deferred, task_context
from durable_jobs_harness.connections import connection, refusal
from durable_jobs_harness.moto_emr import ACCOUNT, MotoEmr
from tests.glue.fake_client import FakeGlueClient

KEY_ID = "AKIAGLUETESTKEY00001"
SECRET = "glue-secret-0123456789abcdefghijklmnopq"


@pytest.fixture(autouse=True)
def fresh_hooks() -> None:
    DurableJobHook.clear_cache()


def conn(**extra: Any) -> Any:
    return connection(
        {"conn_id": "aws_glue", "conn_type": "aws", "login": KEY_ID, "password": SECRET}, extra_dejson=extra
    )


def built(**extra: Any) -> Any:
    return GlueHook.build_client(conn(**extra))


def test_the_client_gets_the_config_of_the_connection() -> None:
    client = built(region_name="eu-west-1", endpoint_url="http://127.0.0.1:5000")
    assert isinstance(client, GlueClient) and isinstance(client.config, AwsConfig)
    config = client.config
    assert (config.aws_access_key_id, config.aws_secret_access_key, config.label) == (KEY_ID, SECRET, "aws_glue")
    assert (config.region_name, config.endpoint_for("glue")) == ("eu-west-1", "http://127.0.0.1:5000")
    assert config == DurableAwsHook.config_from_connection(
        conn(region_name="eu-west-1", endpoint_url="http://127.0.0.1:5000")
    )


def test_glues_own_endpoint_wins_over_the_shared_one() -> None:
    client = built(
        endpoint_url="http://127.0.0.1:5000",
        service_config={"glue": {"endpoint_url": "http://127.0.0.1:5001"}, "emr": {"endpoint_url": "http://e"}},
    )
    assert client.config.endpoint_for("glue") == "http://127.0.0.1:5001"
    assert built().config.endpoint_for("glue") is None  # AWS's own endpoint for the region


def test_tls_verification_off_or_with_a_ca_bundle() -> None:
    assert built(verify=False).config.verify is False
    assert built(verify="/etc/ssl/ca.pem").config.verify == "/etc/ssl/ca.pem"


def test_no_keys_is_the_default_chain_and_the_durable_jobs_settings_are_read() -> None:
    client: Any = GlueHook.build_client(
        connection(
            {"conn_id": "aws_default", "conn_type": "aws"},
            extra_dejson={"role_arn": "arn:aws:iam::123456789012:role/glue", "durable_jobs": {"retry_budget": 60}},
        )
    )
    config = client.config
    assert config.aws_access_key_id is None and config.role_arn == "arn:aws:iam::123456789012:role/glue"
    assert config.retry_budget == 60.0 and config.region_name is None


def test_a_connection_set_up_wrong_is_refused_with_the_fix_and_no_secret() -> None:
    text = refusal(GlueHook, conn(endpoint_url="localhost:5000"), secrets=(SECRET, KEY_ID))
    assert "extra endpoint_url 'localhost:5000' is not an http(s) URL" in text and "'https://localhost:5000'" in text
    text = refusal(GlueHook, connection({"conn_id": "g", "conn_type": "http", "password": SECRET}), secrets=(SECRET,))
    assert "has type 'http'" in text and "'aws'" in text
    text = refusal(GlueHook, connection({"conn_id": "g", "conn_type": "aws", "login": KEY_ID}), secrets=(KEY_ID,))
    assert "give both the access key id and the secret access key" in text


def test_the_declaration_reuses_the_aws_connection_and_registers_it_once() -> None:
    assert GlueHook.connection is emr.CONNECTION
    assert (GlueHook.conn_type, GlueHook.default_conn_name) == ("aws", "aws_default")
    assert glue.SYSTEM.connections == ()
    info = get_provider_info()
    types = [entry["connection-type"] for entry in info["connection-types"]]
    assert types.count("aws") == (1 if emr.CONNECTION.own_form else 0)
    assert {"integration-name": "AWS Glue (durable)", "python-modules": ["durable_jobs.hooks.glue"]} in info["hooks"]
    assert [(link.name, link.xcom_key) for link in glue.SYSTEM.links] == [("Glue job run", "glue_run_url")]


def test_the_triggers_kwargs_carry_the_connection_id_not_the_keys(monkeypatch: pytest.MonkeyPatch, store: Any) -> None:
    from durable_jobs.operators.glue import GlueJobRunOperator

    fake = FakeGlueClient(scripts=[[JobState.RUNNING]])
    monkeypatch.setattr(GlueHook, "get_client", classmethod(lambda cls, conn_id: fake))
    monkeypatch.setenv("AIRFLOW_CONN_AWS_GLUE", json.dumps({"conn_type": "aws", "login": KEY_ID, "password": SECRET}))
    op = GlueJobRunOperator(task_id="g", job_name="etl", aws_conn_id="aws_glue")
    trigger = run_until_deferred(op, task_context(store, ("d", "r", "g", -1))).trigger
    assert isinstance(trigger, GlueTrigger)
    _, kwargs = trigger.serialize()
    assert set(kwargs) <= set(BASE_KWARGS) and kwargs["conn_id"] == "aws_glue"
    assert SECRET not in json.dumps(kwargs, default=str) and KEY_ID not in json.dumps(kwargs, default=str)


def test_test_connection_asks_sts_who_the_credentials_are(moto: MotoEmr, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_MOTO", moto.connection())
    ok, message = GlueHook(conn_id="aws_moto").test_connection()
    assert ok and message.startswith(f"authenticated as arn:aws:sts::{ACCOUNT}:")
    assert moto.count("sts", "GetCallerIdentity") == 1
