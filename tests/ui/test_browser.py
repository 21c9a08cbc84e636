"""The "Durable jobs" page in a real browser: headless Chromium, driven by Selenium, against the real api-server.

The Airflow of tests/ui (conftest.py, view_airflow.py: its DAGs leave jobs in every phase) serves the page.
Users sign in through Airflow's own login page (SimpleAuthManager's form), which sets the UI's ``_token``
cookie the page's requests carry. What the page shows is compared with what its API answers the same user.
The browser (Debian's Chromium and driver) and the screenshots: tests/ui/browser.py.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from durable_jobs_harness.airflow_env import AirflowEnv
from tests.ui.browser import (
    Browsers,
    after_load,
    error,
    js_errors,
    loads,
    open_page,
    screenshot,
    screenshots_dir,
    set_filter,
    wait_for,
)
from tests.ui.view_airflow import BROWSER, OTHER, View

pytestmark = [pytest.mark.timeout(900)]  # the first test of tests/ui also waits for Airflow to start

# Each row of the records table as the user sees it: its cells' text (innerText: what is rendered)
ROWS_JS = """
return Array.from(document.querySelectorAll("#records tbody tr.record")).map((tr) => ({
  ti_id: tr.dataset.tiId, phase: tr.dataset.phase,
  cells: Array.from(tr.cells).map((td) => td.innerText.trim()),
  cancel: tr.querySelectorAll("button.cancel-job:not([disabled])").length,
  copy: tr.querySelectorAll("button.copy-links").length,
}));
"""
COLUMNS = ("task", "try", "state", "system", "generation", "phase", "job", "deferred", "status", "history", "tries")


@pytest.fixture(scope="module")
def browsers(airflow: tuple[AirflowEnv, dict[str, str]]) -> Iterator[Browsers]:
    opened = Browsers(airflow[0])
    try:
        yield opened
    finally:
        opened.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return screenshots_dir(tmp_path_factory)


def rows(driver: WebDriver) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = driver.execute_script(ROWS_JS)
    return got


def by_name(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rows by their task instance's name as shown ("dag.task[map index]")."""
    return {r["cells"][0].splitlines()[0]: r for r in found}


def api_ids(view: View, **params: Any) -> list[str]:
    """The task instance ids of the records the API lists, in its order."""
    return [r["ti_id"] for r in view.records(limit=500, **params)["records"]]


def test_without_a_cookie_the_page_says_not_signed_in(
    browsers: Browsers, airflow: tuple[AirflowEnv, dict[str, str]]
) -> None:
    driver = browsers(None)
    open_page(driver, airflow[0])
    assert error(driver).startswith("Not signed in: sign in to Airflow"), error(driver)
    assert rows(driver) == []
    assert driver.find_elements(By.CSS_SELECTOR, "#endpoints tbody tr") == []


def test_the_nav_entry_under_browse_shows_the_page_in_airflows_frame(
    browsers: Browsers, airflow: tuple[AirflowEnv, dict[str, str]], admin: View, shots: Path
) -> None:
    af, _ = airflow
    driver = browsers("admin")
    driver.get(f"{af.base_url}/")
    browse = wait_for(
        driver, "the nav's Browse", lambda d: d.find_elements(By.CSS_SELECTOR, "button[aria-label=Browse]")
    )
    browse[0].click()
    entry = wait_for(
        driver,
        "the Durable jobs entry under Browse",
        lambda d: d.find_elements(By.XPATH, "//*[@role='menuitem'][normalize-space(.)='Durable jobs']"),
    )[0]
    assert urllib.parse.urlsplit(entry.get_attribute("href") or "").path == "/plugin/durable-jobs"
    entry.click()
    frame = wait_for(driver, "the plugin's frame", lambda d: d.find_elements(By.CSS_SELECTOR, "iframe"))[0]
    assert urllib.parse.urlsplit(driver.current_url).path.startswith("/plugin/durable-jobs")
    assert (frame.get_attribute("src"), frame.get_attribute("title")) == (
        f"{af.base_url}/durable-jobs/",
        "Durable jobs",
    )
    driver.switch_to.frame(frame)
    try:
        wait_for(driver, "the page's first load in the frame", lambda d: loads(d) >= 1)
        # the UI's cookie authenticates the page's requests: it lists what the API lists for admin
        assert error(driver) == ""
        assert [r["ti_id"] for r in rows(driver)] == api_ids(admin)[:50]
    finally:
        driver.switch_to.default_content()
    screenshot(driver, shots / "ui-in-airflow.png")


def test_rows_show_task_system_phase_job_history_and_tries(
    browsers: Browsers, airflow: tuple[AirflowEnv, dict[str, str]], admin: View, shots: Path
) -> None:
    driver = browsers("admin")
    js_errors(driver)
    open_page(driver, airflow[0], dag="ui_view")
    screenshot(driver, shots / "ui-records.png")
    found = rows(driver)
    assert [r["ti_id"] for r in found] == api_ids(admin, dag_id="ui_view") and len(found) == 12
    named = by_name(found)
    cells = {name: dict(zip(COLUMNS, r["cells"], strict=False)) for name, r in named.items()}
    finished = cells["ui_view.finished_job"]
    assert (finished["system"], finished["generation"], finished["phase"], finished["job"]) == (
        "spark-standalone / spark_ui",
        "2",
        "finished (succeeded)",
        "submission_id=driver-finished_job-2",
    )
    assert finished["history"].splitlines() == [
        "gen 0: submission_id=driver-finished_job-0 \u2192 failed (exit 1)",
        "gen 1: submission_id=driver-finished_job-1 \u2192 failed (exit 1)",
    ]
    assert finished["tries"].splitlines() == ["try 1: fresh", "try 2: next_generation"]
    assert finished["status"].splitlines()[0] == "the job ended succeeded"
    deferred = cells["ui_view.deferred_job"]
    assert (deferred["state"], deferred["phase"], deferred["job"]) == (
        "deferred",
        "submitted",
        "submission_id=driver-deferred_job-0",
    )
    assert deferred["deferred"].startswith("20") and deferred["deferred"].endswith(" +00:00")  # when it deferred
    assert (cells["ui_view.submitting_job"]["system"], cells["ui_view.submitting_job"]["phase"]) == (
        "yarn / yarn_ui",
        "submitting",
    )
    assert cells["ui_view.submitting_job"]["job"] == "\u2014"  # no job id yet
    assert cells["ui_view.lost_job"]["phase"] == "finished (lost)"
    assert [cells[f"ui_view.mapped_job[{i}]"]["phase"] for i in range(6)] == ["finished (failed)", "submitted"] * 3
    unreadable = named["ui_view.unreadable_job"]
    assert unreadable["phase"] == "unreadable" and "unreadable record:" in unreadable["cells"][3]
    assert "field 'v' is 99" in unreadable["cells"][3]
    # the row's own try and run id
    assert (finished["try"], finished["task"].splitlines()[1]) == ("1", airflow[1]["ui_view"])
    assert js_errors(driver) == []


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"dag": OTHER}, {f"{OTHER}.other_job"}),
        ({"system": "yarn"}, {"ui_view.lost_job", "ui_view.submitting_job"}),
        ({"phase": "submitting"}, {"ui_view.submitting_job"}),
        ({"outcome": "lost"}, {"ui_view.lost_job"}),
        ({"dag": "ui_view", "phase": "finished", "outcome": "failed"}, {f"ui_view.mapped_job[{i}]" for i in (0, 2, 4)}),
    ],
)
def test_filters_narrow_the_rows(
    browsers: Browsers,
    airflow: tuple[AirflowEnv, dict[str, str]],
    admin: View,
    filters: dict[str, str],
    expected: set[str],
) -> None:
    driver = browsers("admin")
    open_page(driver, airflow[0], **filters)
    found = rows(driver)
    assert set(by_name(found)) == expected
    params = {{"dag": "dag_id"}.get(k, k): v for k, v in filters.items()}
    assert [r["ti_id"] for r in found] == api_ids(admin, **params)
    info = driver.find_element(By.ID, "page-info").text
    assert info == f"1\u2013{len(expected)} of {len(expected)}", info


def test_paging_through_the_records(
    browsers: Browsers, airflow: tuple[AirflowEnv, dict[str, str]], admin: View
) -> None:
    driver = browsers("admin")
    open_page(driver, airflow[0])
    everything = api_ids(admin)
    total = len(everything)
    assert 10 < total <= 20  # two pages of 10
    after_load(driver, lambda: Select(driver.find_element(By.ID, "page-size")).select_by_visible_text("10"))
    prev, older = driver.find_element(By.ID, "prev-page"), driver.find_element(By.ID, "next-page")

    def page() -> tuple[list[str], str, bool, bool]:
        return (
            [r["ti_id"] for r in rows(driver)],
            driver.find_element(By.ID, "page-info").text,
            prev.is_enabled(),
            older.is_enabled(),
        )

    assert page() == (everything[:10], f"1\u201310 of {total}", False, True)
    after_load(driver, older.click)
    assert page() == (everything[10:], f"11\u2013{total} of {total}", True, False)
    after_load(driver, prev.click)
    assert page() == (everything[:10], f"1\u201310 of {total}", False, True)
    # a filter starts again at the first page
    after_load(driver, older.click)
    set_filter(driver, "dag", OTHER)
    assert page()[1:] == ("1\u20131 of 1", False, False)


def test_the_endpoints_table(browsers: Browsers, airflow: tuple[AirflowEnv, dict[str, str]], admin: View) -> None:
    driver = browsers("admin")
    open_page(driver, airflow[0])
    shown = [
        [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        for tr in driver.find_elements(By.CSS_SELECTOR, "#endpoints tbody tr.endpoint")
    ]
    status, body = admin.request("GET", "/api/endpoints")
    assert status == 200
    # System, Endpoint, State (and its detail), Since, Last poll, Active jobs, Watched, Last record update, Triggerers
    expected = [
        [e["system"], e["endpoint"], f"{e['state']}\n{e['state_detail']}", str(e["jobs"]), str(e["watched"])]
        for e in body["endpoints"]
    ]
    assert [[row[0], row[1], row[2], row[5], row[6]] for row in shown] == expected
    assert {(row[0], row[1]) for row in shown} == {("spark-standalone", "spark_ui"), ("yarn", "yarn_ui")}
    # no triggerer reports these endpoints (their connections do not exist): unknown, no poll, no report
    assert all(row[2].startswith("unknown\n") and row[7].endswith(" +00:00") for row in shown), shown
    assert all(row[4] == "" and row[8] == "" for row in shown), shown
    states = [tr.get_attribute("data-state") for tr in driver.find_elements(By.CSS_SELECTOR, "#endpoints tr.endpoint")]
    assert states == [e["state"] for e in body["endpoints"]]


def test_copy_links_puts_them_on_the_clipboard(browsers: Browsers, airflow: tuple[AirflowEnv, dict[str, str]]) -> None:
    af, _ = airflow
    driver = browsers("admin")
    driver.execute_cdp_cmd(
        "Browser.grantPermissions",
        {"origin": af.base_url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
    )
    open_page(driver, af, dag=BROWSER)
    button = driver.find_element(By.CSS_SELECTOR, "#records tr.record button.copy-links")
    link = driver.find_element(By.CSS_SELECTOR, "#records tr.record a")
    assert (link.text, link.get_attribute("href")) == ("Spark master UI", "http://127.0.0.1:1/master")
    button.click()
    wait_for(driver, "the button to say Copied", lambda d: button.text == "Copied")
    pasted = driver.execute_async_script(
        "const done = arguments[0]; navigator.clipboard.readText().then(done, (e) => done('refused: ' + e));"
    )
    assert pasted == "Spark master UI: http://127.0.0.1:1/master"
    assert error(driver) == ""


def test_cancel_of_an_orphan_job_turns_its_row_cancelled(
    browsers: Browsers, airflow: tuple[AirflowEnv, dict[str, str]], admin: View
) -> None:
    af, _ = airflow
    driver = browsers("admin")
    # no cancel for a deferred task: its trigger owns the job
    open_page(driver, af, dag="ui_view", phase="submitted")
    deferred = by_name(rows(driver))["ui_view.deferred_job"]
    assert (deferred["cells"][2], deferred["cancel"]) == ("deferred", 0)
    set_filter(driver, "phase", "any")
    set_filter(driver, "dag", BROWSER)
    (orphan,) = rows(driver)
    assert (orphan["cells"][2], orphan["phase"], orphan["cancel"]) == ("success", "submitted", 1)
    row = driver.find_element(By.CSS_SELECTOR, f'#records tr.record[data-ti-id="{orphan["ti_id"]}"]')
    # the page asks first: dismissed, nothing happens
    row.find_element(By.CSS_SELECTOR, "button.cancel-job").click()
    alert = wait_for(driver, "the confirmation", lambda d: d.switch_to.alert)
    assert alert.text == f"Cancel submission_id=driver-browser_orphan_job-0 of {BROWSER}.browser_orphan_job?"
    alert.dismiss()
    assert admin.records(dag_id=BROWSER)["records"][0]["phase"] == "submitted"
    # accepted: the reaper's tombstone, and the row reloads finished (cancelled), without its button

    def confirmed() -> None:
        row.find_element(By.CSS_SELECTOR, "button.cancel-job").click()
        wait_for(driver, "the confirmation", lambda d: d.switch_to.alert).accept()

    after_load(driver, confirmed)
    assert error(driver) == ""
    (after,) = rows(driver)
    assert (after["ti_id"], after["phase"], after["cells"][5], after["cancel"]) == (
        orphan["ti_id"],
        "finished",
        "finished (cancelled)",
        0,
    )
    (record,) = admin.records(dag_id=BROWSER)["records"]
    assert (record["outcome"], record["cancel"]["by"]) == ("cancelled", "ui_cancel")


def test_a_user_without_access_sees_none_of_its_jobs(
    browsers: Browsers, airflow: tuple[AirflowEnv, dict[str, str]], shots: Path
) -> None:
    driver = browsers("outsider")  # kept to ui_view_other by DagListAuthManager
    open_page(driver, airflow[0])
    screenshot(driver, shots / "ui-outsider.png")
    assert error(driver) == ""
    assert list(by_name(rows(driver))) == [f"{OTHER}.other_job"]
    assert driver.find_element(By.ID, "page-info").text == "1\u20131 of 1"
    assert driver.find_elements(By.CSS_SELECTOR, "#endpoints tbody tr") == []  # no active job it may see
    set_filter(driver, "dag", "ui_view")
    assert rows(driver) == [] and driver.find_element(By.ID, "page-info").text == "no records"
    page_text: Any = driver.find_element(By.TAG_NAME, "body").text
    assert "ui_view." not in page_text and BROWSER not in page_text
