"""The triggerer check against a real Airflow 3.3 api-server: alive, then its only triggerer SIGKILLed.

The harness's Airflow runs with ``[triggerer] triggerer_health_check_threshold = 6``, so the api-server calls
the killed triggerer unhealthy seconds after its last heartbeat.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from durable_jobs.operators.triggerer_health import HEALTH_PATH, check_triggerer
from durable_jobs_harness.airflow_env import AirflowEnv, wait_until


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowEnv]:
    dags: Path = tmp_path_factory.mktemp("no-dags")
    with AirflowEnv(dags) as env:
        yield env


def test_a_real_api_servers_health_says_alive_then_not(airflow: AirflowEnv) -> None:
    url = airflow.base_url + HEALTH_PATH
    alive = check_triggerer(url)
    assert alive.alive is True and alive.latest_heartbeat is not None and alive.warning() is None

    airflow.kill("triggerer")
    airflow.wait_exited("triggerer")
    dead = wait_until(
        "the api-server to call the killed triggerer unhealthy",
        lambda: (h := check_triggerer(url)).alive is False and h,
        timeout=60,
        interval=1.0,
        on_timeout=airflow.logs_tail,
    )
    assert dead.latest_heartbeat is not None and dead.latest_heartbeat >= alive.latest_heartbeat
    warning = dead.warning()
    assert warning is not None and warning.startswith("No triggerer has sent a heartbeat for ")
    assert f"(latest {dead.latest_heartbeat.isoformat()})" in warning and "`airflow triggerer`" in warning
