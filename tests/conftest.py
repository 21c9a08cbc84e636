from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

# Keep Airflow away from ~/airflow and any real metadata DB: every test session gets its own home.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="durable-jobs-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

import pytest

from durable_jobs import failpoints
from durable_jobs.testing.state_store import InMemoryStateStore

# The harness's fixtures, for every test directory: the systems' real servers and contract fakes.
pytest_plugins = (
    "durable_jobs_harness.spark_fixtures",
    "durable_jobs_harness.yarn_fixtures",
    "durable_jobs_harness.kube_fixtures",
    "durable_jobs_harness.moto_emr",
)

# The real-server tiers, marked from the fixtures a test uses (`pytest -m "not spark"` and so on).
_TIERS = {
    "spark": "spark",
    "spark_jwt": "spark",
    "spark_own": "spark",
    "spark_ha": "spark",
    "spark_apps": "spark",
    "kdc": "kdc",
    "moto_server": "moto",
    "airflow": "airflow",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for tier in {_TIERS[name] for name in getattr(item, "fixturenames", ()) if name in _TIERS}:
            item.add_marker(tier)


@pytest.fixture(autouse=True)
def _no_failpoints() -> Iterator[None]:
    """Fail-points armed by one test never leak into the next."""
    failpoints.configure("")
    yield
    failpoints.configure("")


@pytest.fixture
def store() -> Iterator[InMemoryStateStore]:
    """An in-memory task state store behind Airflow's real accessor."""
    s = InMemoryStateStore()
    with s.installed():
        yield s
