"""The package registers as an Airflow provider: the CLI sees it, its hook and trigger, and its metadata is valid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import durable_jobs
from durable_jobs.get_provider_info import get_provider_info

DIST = "airflow-durable-jobs"
HOOK_CLASS = "durable_jobs.hooks.spark_standalone.SparkStandaloneHook"


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("airflow-home")


def airflow_cli(home: Path, *args: str) -> str:
    """Run ``python -m airflow <args>`` in a clean environment with its own AIRFLOW_HOME; return stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    proc = subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, f"airflow {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def airflow_json(home: Path, *args: str) -> list[dict[str, Any]]:
    out = airflow_cli(home, *args, "--output", "json")
    try:
        rows = json.loads(out)
    except ValueError as exc:
        raise AssertionError(f"airflow {' '.join(args)} did not print JSON:\n{out}") from exc
    assert isinstance(rows, list)
    return rows


def test_providers_list_shows_the_package(airflow_home: Path) -> None:
    assert DIST in airflow_cli(airflow_home, "providers", "list")
    rows = [r for r in airflow_json(airflow_home, "providers", "list") if r.get("package_name") == DIST]
    assert len(rows) == 1, rows
    assert rows[0]["version"] == metadata.version(DIST)


def test_providers_hooks_lists_the_connection_type(airflow_home: Path) -> None:
    text = airflow_cli(airflow_home, "providers", "hooks")
    assert "spark_standalone_rest" in text
    assert HOOK_CLASS in text
    rows = [
        r
        for r in airflow_json(airflow_home, "providers", "hooks")
        if r.get("connection_type") == "spark_standalone_rest"
    ]
    assert len(rows) == 1, rows
    assert rows[0]["class"] == HOOK_CLASS
    assert rows[0]["package_name"] == DIST


def test_providers_triggers_lists_the_trigger_module(airflow_home: Path) -> None:
    assert "durable_jobs.triggers.spark_standalone" in airflow_cli(airflow_home, "providers", "triggers")


def test_provider_info_validates_against_airflow_schema() -> None:
    schema = json.loads(files("airflow").joinpath("provider_info.schema.json").read_text("utf-8"))
    info = get_provider_info()
    jsonschema.validate(instance=info, schema=schema)
    assert info["package-name"] == DIST
    assert info["name"] == "Durable Jobs"
    assert info["description"]
    assert info["versions"] == [metadata.version(DIST)]


def test_version_is_the_installed_distributions() -> None:
    assert durable_jobs.__version__ == metadata.version(DIST)
    assert get_provider_info()["versions"][0] == durable_jobs.__version__


def test_entry_point_points_at_get_provider_info() -> None:
    eps = [ep for ep in metadata.entry_points(group="apache_airflow_provider") if ep.dist and ep.dist.name == DIST]
    assert len(eps) == 1, eps
    assert eps[0].load() is get_provider_info


def test_example_dag_discovery_finds_the_distributions_module(caplog: pytest.LogCaptureFixture) -> None:
    """Airflow's example-DAG discovery imports each provider's module from its distribution name: ours imports
    (no traceback in the dag-processor's log) and adds no bundle, since it ships no example DAGs."""
    from airflow.dag_processing.bundles import manager
    from airflow.providers_manager import ProvidersManager

    bundles: list[Any] = []
    with caplog.at_level("ERROR"):
        manager._add_provider_example_dags_to_bundle(bundles)
    assert not [r for r in caplog.records if "airflow_durable_jobs" in r.getMessage()]
    assert DIST in ProvidersManager().providers
    assert not [b for b in bundles if DIST in b.name]
