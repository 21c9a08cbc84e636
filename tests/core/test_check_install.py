"""The install check's rules (scripts/check_install.py): which version changes a `pip install` of the package may
make in an Airflow deployment. Fed made-up environments; `make check-install` runs the real installs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_install.py"


@pytest.fixture(scope="module")
def ci() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_install", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_install"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def airflow(ci: ModuleType, dateutil_spec: str = ">=2.7.0") -> dict[str, object]:
    return {
        "apache-airflow": ci.Dist("3.3.2", ("apache-airflow-core==3.3.2", "apache-airflow-task-sdk==1.3.2")),
        "apache-airflow-core": ci.Dist("3.3.2", (f"python-dateutil{dateutil_spec}", 'pytest; extra == "tests"')),
        "apache-airflow-task-sdk": ci.Dist("1.3.2", ("python-dateutil>=2.7.0",)),
    }


def test_a_downgrade_an_sdk_declares_within_airflows_requirement_is_allowed(ci: ModuleType) -> None:
    before = {**airflow(ci), "python-dateutil": ci.Dist("4.0.0", ())}
    after = {
        **airflow(ci),
        "python-dateutil": ci.Dist("2.9.0.post0", ()),
        "botocore": ci.Dist("1.43.117", ("python-dateutil<3.0.0,>=2.1",)),
        "airflow-durable-jobs": ci.Dist("0.1.0", ('botocore; extra == "emr"',)),
    }
    added, removed, changes = ci.compare(before, after, "emr")
    assert added == {"botocore": "1.43.117", "airflow-durable-jobs": "0.1.0"}
    assert removed == []
    (change,) = changes
    assert (change.name, change.direction, change.allowed) == ("python-dateutil", "downgrade", True)
    assert change.forced_by == ["botocore 1.43.117 declares python-dateutil<3.0.0,>=2.1"]
    assert change.airflow_requires == [
        "apache-airflow-core: python-dateutil>=2.7.0",
        "apache-airflow-task-sdk: python-dateutil>=2.7.0",
    ]
    assert ci.airflow_violations(after) == []


def test_a_downgrade_our_own_requirement_forces_is_refused(ci: ModuleType) -> None:
    before = {**airflow(ci), "python-dateutil": ci.Dist("4.0.0", ())}
    after = {
        **airflow(ci),
        "python-dateutil": ci.Dist("2.9.0.post0", ()),
        "airflow-durable-jobs": ci.Dist("0.1.0", ("python-dateutil<3",)),
    }
    (change,) = ci.compare(before, after, "none")[2]
    assert not change.allowed
    assert "airflow-durable-jobs's own requirement" in change.why


def test_a_change_nothing_asks_for_is_refused(ci: ModuleType) -> None:
    before = {**airflow(ci), "rich": ci.Dist("14.0.0", ())}
    after = {**airflow(ci), "rich": ci.Dist("14.1.0", ()), "airflow-durable-jobs": ci.Dist("0.1.0", ())}
    (change,) = ci.compare(before, after, "none")[2]
    assert (change.direction, change.allowed, change.forced_by) == ("upgrade", False, [])


def test_a_forced_change_outside_airflows_requirement_is_refused(ci: ModuleType) -> None:
    before = {**airflow(ci, ">=3"), "python-dateutil": ci.Dist("4.0.0", ())}
    after = {
        **airflow(ci, ">=3"),
        "python-dateutil": ci.Dist("2.9.0.post0", ()),
        "botocore": ci.Dist("1.43.117", ("python-dateutil<3.0.0",)),
        "airflow-durable-jobs": ci.Dist("0.1.0", ()),
    }
    (change,) = ci.compare(before, after, "emr")[2]
    assert not change.allowed and change.forced_by
    assert ci.airflow_violations(after) == [
        "apache-airflow-core requires python-dateutil>=3; installed python-dateutil 2.9.0.post0"
    ]


def test_only_requested_extras_force(ci: ModuleType) -> None:
    """A requirement under an extra nobody asked for forces nothing; one asked for through a dependency does."""
    before = {**airflow(ci), "decorator": ci.Dist("5.3.1", ())}
    after = {
        **airflow(ci),
        "decorator": ci.Dist("5.2.0", ()),
        "pyspnego": ci.Dist("0.12.4", ('decorator<5.3; extra == "kerberos"', 'decorator<5.2.5; extra == "other"')),
        "airflow-durable-jobs": ci.Dist("0.1.0", ('pyspnego[kerberos]; extra == "yarn"',)),
    }
    assert ci.compare(before, after, "none")[2][0].forced_by == []
    (change,) = ci.compare(before, after, "yarn")[2]
    assert change.allowed
    assert change.forced_by == ['pyspnego 0.12.4 declares decorator<5.3; extra == "kerberos"']


def test_an_airflow_distribution_may_not_move_and_none_may_go(ci: ModuleType) -> None:
    before = {**airflow(ci), "old-thing": ci.Dist("1.0", ())}
    after = {**airflow(ci), "airflow-durable-jobs": ci.Dist("0.1.0", ("apache-airflow-core==3.3.1",))}
    after["apache-airflow-core"] = ci.Dist("3.3.1", ("python-dateutil>=2.7.0",))
    _, removed, changes = ci.compare(before, after, "none")
    assert removed == ["old-thing"]
    (change,) = changes
    assert (change.name, change.allowed) == ("apache-airflow-core", False)
    assert change.why == "an Airflow distribution changed version"
