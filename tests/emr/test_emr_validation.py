"""EMR's ``aws`` connections set up wrong: the type, endpoint URLs without a scheme, half a key pair, no region."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from durable_jobs.clients.emr.aws_config import AwsConfig
from durable_jobs.clients.emr.aws_pool import aws_client
from durable_jobs.errors import ConnectionConfigError
from durable_jobs.hooks.emr import EmrServerlessHook, EmrStepHook
from durable_jobs.loop_local import close_all
from durable_jobs_harness.connections import connection, refusal

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def conn(**fields: Any) -> SimpleNamespace:
    return connection({"conn_id": "aws_x", "conn_type": "aws", "extra_dejson": {"region_name": "eu-west-1"}}, **fields)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"extra_dejson": {"endpoint_url": "localhost:5000"}},
            "connection 'aws_x' extra endpoint_url 'localhost:5000' is not an http(s) URL: write it with its scheme, "
            "e.g. 'https://localhost:5000'",
        ),
        (
            {"extra_dejson": {"service_config": {"emr": {"endpoint_url": "emr.local"}}}},
            "extra service_config.emr.endpoint_url 'emr.local' is not an http(s) URL",
        ),
        ({"conn_type": "emr"}, "connection 'aws_x' has type 'emr'; the Amazon Web Services (durable_jobs) hook needs"),
        (
            {"password": SECRET},
            "connection 'aws_x': give both the access key id and the secret access key (login and password), "
            "or neither",
        ),
    ],
)
def test_wrong_connections_are_named_with_the_fix(fields, message):
    assert message in refusal(EmrStepHook, conn(**fields), secrets=(SECRET,))


def test_a_right_connection_passes():
    client = EmrServerlessHook.build_client(conn(extra_dejson={"endpoint_url": "http://127.0.0.1:5000"}))
    assert client.config.endpoint_url == "http://127.0.0.1:5000"


async def test_no_region_anywhere_is_a_connection_error_naming_the_fix(monkeypatch, tmp_path):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    config = AwsConfig(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key=SECRET, label="aws_x")
    try:
        with pytest.raises(ConnectionConfigError) as exc:
            await aws_client(config, "emr")
    finally:
        await close_all()
    assert str(exc.value).startswith("connection 'aws_x': no AWS region: set extra region_name")
    assert SECRET not in str(exc.value)
