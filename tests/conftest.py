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
