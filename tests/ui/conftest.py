"""The one real Airflow of tests/ui (see view_airflow.py), shared by the API and the browser tests.

Package-scoped: started once when the first test of tests/ui asks for it, stopped after the last. The
fixture's name, ``airflow``, marks the tests that use it with the ``airflow`` tier (tests/conftest.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from durable_jobs_harness.airflow_env import AirflowEnv
from tests.ui.view_airflow import View, view_airflow


@pytest.fixture(scope="package")
def airflow() -> Iterator[tuple[AirflowEnv, dict[str, str]]]:
    with view_airflow(os.environ.get("DURABLE_JOBS_UI_DB", "sqlite")) as started:
        yield started


@pytest.fixture(scope="package")
def admin(airflow: tuple[AirflowEnv, dict[str, str]]) -> View:
    return View(airflow[0], "admin")
