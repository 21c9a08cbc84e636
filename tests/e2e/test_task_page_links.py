"""The task page's buttons on a real Airflow: shown while the task is deferred, and still right once it succeeded.

A real api-server, scheduler, dag-processor, triggerer and LocalExecutor worker (the harness's
:class:`AirflowEnv`) run a Spark standalone task against the fake master of this process. The links are read
from the api-server's REST endpoint, as the UI reads them: once while the task is deferred (the XCom the
operator pushed before deferring), and once the driver finished and the task succeeded (after the task runner
called each link's ``get_link`` when each try ended and pushed its answer back to the same key).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from durable_jobs_harness.airflow_env import AirflowEnv
from durable_jobs_harness.fake_spark import FakeSparkMaster, ThreadedFakeSparkMaster

pytestmark = pytest.mark.airflow

DAG_ID = "task_page_links"
TASK_ID = "spark"
# retries: on a busy host Airflow's LocalExecutor may report the process that deferred after the trigger's event
# re-queued the task, and the scheduler then fails the resumed try ("Server indicated the task shouldn't be
# running anymore", docs/e2e.md); the retry finds the job finished and must show the same buttons
DAG_FILE = f"""
from datetime import timedelta
from airflow.sdk import DAG
from durable_jobs.operators import SparkStandaloneOperator

with DAG({DAG_ID!r}, schedule=None, default_args={{"retries": 2, "retry_delay": timedelta(seconds=1)}}):
    SparkStandaloneOperator(
        task_id={TASK_ID!r}, application="file:/apps/a.jar", main_class="demo.Main", poll_interval=1
    )
"""


@pytest.fixture(scope="module")
def master() -> Iterator[FakeSparkMaster]:
    with ThreadedFakeSparkMaster() as m:
        yield m


@pytest.fixture(scope="module")
def airflow_fake_spark(master: FakeSparkMaster) -> Iterator[AirflowEnv]:
    root = Path(tempfile.mkdtemp(prefix="durable-jobs-links-"))
    dags = root / "dags"
    dags.mkdir()
    (dags / "task_page_links.py").write_text(textwrap.dedent(DAG_FILE), "utf-8")
    conn = {"conn_type": "spark_standalone_rest", "host": "127.0.0.1", "port": master.port}
    env = {"AIRFLOW_CONN_SPARK_STANDALONE_DEFAULT": json.dumps({**conn, "extra": {"master_ui_urls": master.url}})}
    af = AirflowEnv(dags, env=env)
    try:
        af.start()
        af.wait_dags([DAG_ID])
        yield af
    except BaseException:
        print(f"\n===== component logs (home {af.home}) =====\n{af.logs_tail(60)}")
        raise
    finally:
        af.stop()  # by PID; the temporary home goes with it
        shutil.rmtree(root, ignore_errors=True)


def links(af: AirflowEnv, run_id: str) -> dict[str, Any]:
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}/links"
    payload = af.api.call("GET", path)
    assert payload["total_entries"] == len(payload["extra_links"])
    extra: dict[str, Any] = payload["extra_links"]
    return extra


def failed_in_task(af: AirflowEnv, run_id: str, try_number: int) -> bool:
    """Whether the task itself raised in this try (as opposed to Airflow ending it)."""
    said = [t for p, t in af.task_logs(DAG_ID, run_id, TASK_ID).items() if p.name == f"attempt={try_number}.log"]
    return any("Task failed with exception" in t for t in said)


def test_the_spark_buttons_while_deferred_and_after_success(
    airflow_fake_spark: AirflowEnv, master: FakeSparkMaster
) -> None:
    af = airflow_fake_spark
    run_id = af.api.trigger(DAG_ID)
    try:
        af.api.wait_ti_state(DAG_ID, run_id, TASK_ID, ["deferred"], timeout=180)
        (driver_id,) = master.drivers
        shown = {
            "Spark driver UI": f"{master.url}/logPage/?driverId={driver_id}&logType=stderr",
            "Spark master UI": master.url,
        }
        assert links(af, run_id) == shown
        master.drivers[driver_id] = "FINISHED"
        assert af.api.wait_run_finished(DAG_ID, run_id, timeout=180)["state"] == "success"
        assert links(af, run_id) == shown
        assert list(master.drivers) == [driver_id]  # one driver, however many tries it took
        tries = af.api.tries(DAG_ID, run_id, TASK_ID)
        # only Airflow's own race may cost a try: no try failed in the operator
        assert not [t["try_number"] for t in tries if failed_in_task(af, run_id, t["try_number"])], tries
        logs = "\n".join(af.task_logs(DAG_ID, run_id).values())
        assert "operator extra link" not in logs  # the task runner's get_link calls did not fail
    except BaseException:
        for path, text in af.task_logs(DAG_ID, run_id).items():
            print(f"===== {path} =====\n" + "\n".join(text.splitlines()[-40:]))
        raise
