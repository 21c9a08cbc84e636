"""The ``aws`` connection type without the amazon provider: this package registers it, so the documented
``airflow connections add --conn-type aws`` stores an ``aws`` connection (not ``generic``) and
``airflow connections test`` tests it."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from durable_jobs.get_provider_info import get_provider_info
from durable_jobs.systems import emr
from durable_jobs_harness.moto_emr import REGION, MotoEmr


def test_aws_is_registered_exactly_when_the_amazon_provider_is_not_installed() -> None:
    entries = {e["connection-type"]: e for e in get_provider_info()["connection-types"]}
    assert emr.CONNECTION.own_form is not emr.amazon_provider_installed()
    assert ("aws" in entries) is emr.CONNECTION.own_form
    if "aws" in entries:
        assert entries["aws"]["hook-class-name"] == "durable_jobs.hooks.emr.DurableAwsHook"
        assert entries["aws"]["ui-field-behaviour"]["hidden-fields"] == ["host", "schema", "port"]


def test_the_amazon_provider_is_found_by_its_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    looked_up: list[str] = []

    def distribution(name: str) -> object:
        looked_up.append(name)
        if name == "apache-airflow-providers-amazon":
            return object()
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", distribution)
    assert emr.amazon_provider_installed() is True
    monkeypatch.setattr(emr, "AMAZON_PROVIDER", "apache-airflow-providers-not-there")
    assert emr.amazon_provider_installed() is False
    assert looked_up == ["apache-airflow-providers-amazon", "apache-airflow-providers-not-there"]


def _airflow(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    clean.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False", **env)
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args], env=clean, capture_output=True, text=True, timeout=180, check=False
    )


@pytest.mark.airflow_db
def test_the_documented_command_stores_an_aws_connection_that_tests_green(tmp_path: Path, moto_server: MotoEmr) -> None:
    assert not emr.amazon_provider_installed(), "this test is about a deployment without the amazon provider"
    assert _airflow(tmp_path, "db", "migrate").returncode == 0
    extra = f'{{"region_name": "{REGION}", "endpoint_url": "{moto_server.endpoint}"}}'
    add = _airflow(
        tmp_path, "connections", "add", "aws_default", "--conn-type", "aws", "--conn-login", "testing",
        "--conn-password", "testing", "--conn-extra", extra,
    )  # fmt: skip
    assert add.returncode == 0, add.stderr
    assert "generic" not in add.stderr  # Airflow's "Hence overriding the conn-type with generic"
    got = _airflow(tmp_path, "connections", "get", "aws_default", "--output", "json")
    assert '"conn_type": "aws"' in got.stdout, got.stdout

    disabled = _airflow(tmp_path, "connections", "test", "aws_default")
    assert disabled.returncode == 1 and "disabled" in disabled.stdout  # Airflow 3's default

    tested = _airflow(tmp_path, "connections", "test", "aws_default", AIRFLOW__CORE__TEST_CONNECTION="Enabled")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "Connection success!" in tested.stdout
