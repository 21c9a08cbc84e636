"""Headless Chromium for the view's tests: Debian's browser and driver, Airflow's login, the page's loads.

Chromium and its driver are Debian's (``chromium``, ``chromium-driver``: .ci/apt-packages.txt), given to
Selenium by path, so Selenium Manager never runs (it would download a driver). Either one missing fails
the tests. ``DURABLE_JOBS_UI_SCREENSHOTS=docs/img`` writes the screenshots of docs/ui.md there (else into
the test's temporary directory).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from durable_jobs_harness.airflow_env import AirflowEnv
from tests.ui.view_airflow import password

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WIDTH, HEIGHT = 1400, 900
WAIT = 60.0  # an upper bound: the CI host may be busy
T = TypeVar("T")


def new_chromium() -> WebDriver:
    """Headless Chromium at WIDTHxHEIGHT, through Debian's driver (never one Selenium Manager would fetch)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(
            f"the browser tests need {' and '.join(missing)}: install the Debian packages chromium and "
            "chromium-driver (.ci/apt-packages.txt; .ci/run installs them)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={WIDTH},{HEIGHT}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    # the viewport itself (what a screenshot holds) is WIDTHxHEIGHT
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
    )
    return driver


class Browsers:
    """Chromium sessions, one per user (``None``: never signed in), all quit at the end."""

    def __init__(self, af: AirflowEnv) -> None:
        self.af = af
        self.open: dict[str | None, WebDriver] = {}

    def __call__(self, user: str | None) -> WebDriver:
        if user not in self.open:
            driver = new_chromium()
            self.open[user] = driver
            if user is not None:
                sign_in(driver, self.af, user)
        return self.open[user]

    def quit(self) -> None:
        for driver in self.open.values():
            driver.quit()
        self.open.clear()


def screenshots_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go."""
    chosen = os.environ.get("DURABLE_JOBS_UI_SCREENSHOTS")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def wait_for(driver: WebDriver, what: str, check: Callable[[WebDriver], T | None], timeout: float = WAIT) -> T:
    """``check``'s first truthy answer; fails saying ``what`` was awaited."""
    answer: T = WebDriverWait(driver, timeout, poll_frequency=0.1).until(check, f"waited {timeout:.0f} s for {what}")
    return answer


def sign_in(driver: WebDriver, af: AirflowEnv, user: str) -> None:
    """Through Airflow's own login page (SimpleAuthManager's form): it sets the UI's ``_token`` cookie."""
    driver.get(f"{af.base_url}/auth/login?next=%2F")
    name = wait_for(driver, "the login form", lambda d: d.find_elements(By.CSS_SELECTOR, "input[name=username]"))
    name[0].send_keys(user)
    driver.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys(password(af, user))
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(
        driver,
        f"{user} to be signed in",
        lambda d: "/auth/login" not in d.current_url and any(c["name"] == "_token" for c in d.get_cookies()),
    )


def loads(driver: WebDriver) -> int:
    """How many loads of its data the page finished (``body[data-loads]``)."""
    return int(driver.find_element(By.TAG_NAME, "body").get_attribute("data-loads") or 0)


def after_load(driver: WebDriver, action: Callable[[], object]) -> None:
    """Do ``action`` (a filter, a page, a cancel) and wait until the page loaded its data again."""
    before = loads(driver)
    action()
    wait_for(driver, "the page to load again", lambda d: loads(d) > before or error(d) or None)
    assert loads(driver) > before, f"the page did not load again; it says: {error(driver)}"


def open_page(driver: WebDriver, af: AirflowEnv, **filters: str) -> None:
    """The page alone at /durable-jobs/, once its first load ended, with ``filters`` applied."""
    driver.get(f"{af.base_url}/durable-jobs/")
    wait_for(driver, "the page's first load", lambda d: loads(d) >= 1)
    for name, value in filters.items():
        set_filter(driver, name, value)


def set_filter(driver: WebDriver, name: str, value: str) -> None:
    element = driver.find_element(By.ID, f"filter-{name}")
    if element.tag_name == "select":
        after_load(driver, lambda: Select(element).select_by_visible_text(value))
    else:  # a text box: typed over (one change event, when it loses focus)
        element.send_keys(Keys.CONTROL, "a")
        after_load(driver, lambda: element.send_keys(value, Keys.TAB))


def error(driver: WebDriver) -> str:
    banner = driver.find_element(By.ID, "error")
    return str(banner.text) if banner.is_displayed() else ""


def screenshot(driver: WebDriver, path: Path) -> None:
    assert driver.save_screenshot(str(path)), path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size < 300_000, path.stat().st_size


def js_errors(driver: WebDriver) -> list[str]:
    """The browser console's errors since the last call (a failed request is logged as one too)."""
    return [str(e["message"]) for e in driver.get_log("browser") if e["level"] == "SEVERE"]
