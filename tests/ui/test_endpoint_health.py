"""Endpoint health from a REAL triggerer to the view's API: the harness's Airflow (api-server, scheduler, dag
processor, triggerer, LocalExecutor), Spark standalone tasks deferred on two fake masters of this process.

``spark_up`` keeps answering; ``spark_down``'s master is stopped once its task is deferred. The triggerer's
pollers write their Airflow Variables through the supervisor (durable_jobs.health), and
``GET /durable-jobs/api/endpoints`` shows ``ok`` for one and ``unknown since ...`` for the other, with the jobs
each watches. A user who may read no DAG of those jobs sees neither endpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from durable_jobs import health
from durable_jobs_harness.airflow_env import AirflowEnv, wait_until
from durable_jobs_harness.airflow_env.api import AirflowApi
from durable_jobs_harness.fake_spark import FakeSparkMaster, ThreadedFakeSparkMaster
from tests.ui.browser import Browsers, open_page, screenshot, screenshots_dir, wait_for

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(900)]
DAGS = Path(__file__).resolve().parent / "dags_health"
DAG_ID = "endpoint_health"
JOBS = {"up_1": "spark_up", "up_2": "spark_up", "down_1": "spark_down"}


def conn(master: FakeSparkMaster) -> str:
    return json.dumps({"conn_type": "spark_standalone_rest", "host": "127.0.0.1", "port": master.port})


class Setup:
    def __init__(self, af: AirflowEnv, up: FakeSparkMaster, run_id: str) -> None:
        self.af, self.up, self.run_id = af, up, run_id

    def endpoints(self, user: str = "admin") -> dict[str, dict[str, Any]]:
        api = self.af.api if user == "admin" else as_user(self.af, user)
        body = api.call("GET", "/durable-jobs/api/endpoints")
        return {e["endpoint"]: e for e in body["endpoints"]}

    def variables(self) -> dict[str, str]:
        got = self.af.api.call("GET", "/api/v2/variables", params={"limit": 100})
        return {v["key"]: v["value"] for v in got["variables"] if v["key"].startswith(health.PREFIX)}


def as_user(af: AirflowEnv, user: str) -> AirflowApi:
    return AirflowApi(af.base_url, user, lambda: json.loads(af.password_file.read_text())[user])


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    with contextlib.ExitStack() as stack:
        up = stack.enter_context(ThreadedFakeSparkMaster())
        down_server = ThreadedFakeSparkMaster()
        down = down_server.__enter__()
        running = [True]

        def stop_down() -> None:
            if running.pop() if running else False:
                down_server.__exit__(None, None, None)

        stack.callback(stop_down)
        env = {
            "AIRFLOW_CONN_SPARK_UP": conn(up),
            "AIRFLOW_CONN_SPARK_DOWN": conn(down),
            "AIRFLOW__CORE__AUTH_MANAGER": "durable_jobs_harness.dag_auth.DagListAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,outsider:user",
            "DURABLE_JOBS_HARNESS_DAG_ACCESS": json.dumps({"outsider": ["endpoint_health_other"]}),
        }
        af = AirflowEnv(DAGS, env=env, database=os.environ.get("DURABLE_JOBS_UI_DB", "sqlite"))
        try:
            af.start()
            af.wait_dags([DAG_ID, "endpoint_health_other"])
            run_id = af.api.trigger(DAG_ID)
            for task_id in JOBS:
                af.api.wait_ti_state(DAG_ID, run_id, task_id, ["deferred"], timeout=300)
            stop_down()  # spark_down stops answering its triggerer's polls
            yield Setup(af, up, run_id)
        finally:
            print(af.logs_tail(80))  # shown when a test failed
            af.stop(keep_home=bool(os.environ.get("DURABLE_JOBS_UI_KEEP")))


def reported(s: Setup) -> dict[str, dict[str, Any]] | None:
    """The endpoints once both states are reported with every watched job: the first value is written at the
    poller's first poll, when the second job of spark_up may not have joined yet; the count follows at the
    next refresh (at most a minute later), since the state did not change."""
    got = s.endpoints()
    up, down = got.get("spark_up"), got.get("spark_down")
    if up and down and (up["state"], up["reported_watched"], down["state"]) == ("ok", 2, "unknown") and down["since"]:
        return got
    return None


def test_the_triggerer_reports_ok_for_one_endpoint_and_unknown_since_for_the_other(setup: Setup) -> None:
    got = wait_until("the triggerer's reports", lambda: reported(setup), timeout=180)
    up, down = got["spark_up"], got["spark_down"]
    assert (up["system"], up["jobs"], up["watched"], up["reported_watched"]) == ("spark-standalone", 2, 2, 2)
    assert (down["jobs"], down["watched"], down["reported_watched"]) == (1, 1, 1)
    assert up["state_detail"] == "answers" and up["last_poll"]
    assert down["state_detail"].startswith(f"no answer since {down['since']}")
    for e in (up, down):
        (t,) = e["triggerers"]
        assert t["readable"] and not t["stale"] and t["host"] == socket.gethostname() and t["pid"] > 0
        assert t["triggerer"] == health.triggerer_part(t["host"], t["pid"]) and t["age_seconds"] < 120
        assert setup.af.component_of_pid(t["pid"]) in setup.af.triggerers()  # written by the triggerer itself
    assert up["triggerers"][0]["watched"] == 2 and up["triggerers"][0]["problem"] is None
    assert down["triggerers"][0]["problem"]  # what the poll ran into


def test_the_values_are_airflow_variables_not_rewritten_at_each_poll(setup: Setup) -> None:
    wait_until("the triggerer's reports", lambda: reported(setup), timeout=180)
    first = setup.variables()
    assert {json.loads(v)["conn_id"] for v in first.values()} == {"spark_up", "spark_down"}
    for key, value in first.items():
        data = json.loads(value)
        assert key == health.variable_key(data["system"], data["conn_id"], *data["triggerer"].values())
    polls = len(setup.up.requests)
    # three more polls a second apart (poll_interval=1): the same values, written at most once a minute
    wait_until("three more polls", lambda: len(setup.up.requests) >= polls + 3 or None, timeout=60)
    later = setup.variables()
    changed = [k for k in first if first[k] != later.get(k)]
    assert len(changed) <= 1, changed  # a minute's refresh may fall in these seconds, once
    log = (setup.af.logs_dir / "triggerer.log").read_text("utf-8", "replace")
    assert "could not record endpoint health" not in log


def test_a_user_who_may_read_none_of_their_dags_sees_no_endpoint(setup: Setup) -> None:
    wait_until("the triggerer's reports", lambda: reported(setup), timeout=180)
    assert setup.endpoints("outsider") == {}


def test_the_page_shows_each_endpoints_state_in_a_browser(
    setup: Setup, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """What the triggerer reported, as the page's endpoints table shows it (headless Chromium; docs/ui.md's
    screenshot of the endpoints is taken here)."""
    wait_until("the triggerer's reports", lambda: reported(setup), timeout=180)
    browsers = Browsers(setup.af)
    try:
        driver = browsers("admin")
        open_page(driver, setup.af)
        shown: dict[str, list[str]] = wait_for(
            driver,
            "both endpoints in the table",
            lambda d: (
                {
                    cells[1]: [tr.get_attribute("data-state") or "", *cells]
                    for tr in d.find_elements(By.CSS_SELECTOR, "#endpoints tbody tr.endpoint")
                    for cells in [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]]
                }
                or None
            ),
        )
        assert set(shown) == {"spark_up", "spark_down"}, shown
        # data-state, then: System, Endpoint, State (and detail), Since, Last poll, Active jobs, Watched, ...
        up, down = shown["spark_up"], shown["spark_down"]
        assert (up[0], up[3], up[6], up[7]) == ("ok", "ok\nanswers", "2", "2"), up
        assert down[0] == "unknown" and down[3].startswith("unknown\nno answer since"), down
        assert down[4] and up[5] and down[6:8] == ["1", "1"], (up, down)
        assert "2 watched" in up[9] and "1 watched" in down[9], (up, down)
        screenshot(driver, screenshots_dir(tmp_path_factory) / "ui-endpoints.png")
    finally:
        browsers.quit()


def test_the_value_goes_when_the_endpoints_jobs_end(setup: Setup) -> None:
    wait_until("the triggerer's reports", lambda: reported(setup), timeout=180)
    for driver_id in list(setup.up.drivers):
        setup.up.drivers[driver_id] = "FINISHED"
    for task_id in ("up_1", "up_2"):
        setup.af.api.wait_ti_state(DAG_ID, setup.run_id, task_id, ["success"], timeout=180)

    def gone() -> bool:
        return not any(json.loads(v)["conn_id"] == "spark_up" for v in setup.variables().values())

    wait_until("spark_up's value to be deleted", gone, timeout=120)
    assert "spark_up" not in setup.endpoints()  # no active job there any more
    assert setup.endpoints()["spark_down"]["state"] == "unknown"
