"""The dashboard in real headless Chromium (Debian's chromium and chromium-driver, through Selenium), served
by a real `phiwatch serve` process over a store of real lab scans: log in, see the trend chart, filter,
acknowledge. Screenshots are kept in test-artifacts/ (git-ignored)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from phiwatch.store import Store
from phiwatch_lab.canary import CANARY_STRINGS

from .chromium import headless_chromium
from .dashboard_store import history
from .test_dashboard import TOKEN, _free_port, _wait_healthy

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def dashboard(lab_plugin, tmp_path_factory):
    folder = tmp_path_factory.mktemp("dashboard-browser")
    store = Store(f"sqlite:///{folder}/watch.db")
    history(store, lab_plugin)
    store.close()
    port = _free_port()
    config = folder / "watch.yaml"
    config.write_text(f"store: sqlite:///{folder}/watch.db\n"
                      "jobs:\n  - name: lab-segment\n    targets: [127.0.0.1]\n"
                      f"dashboard:\n  listen: 127.0.0.1:{port}\n  token_env: DASH_TOKEN\n")
    env = {"DASH_TOKEN": TOKEN, "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder)}
    server = subprocess.Popen([sys.executable, "-m", "phiwatch", "serve", str(config)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_healthy(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        out, err = server.communicate(timeout=30)
        assert TOKEN not in out + err


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with headless_chromium(tmp_path_factory.mktemp("chromium-profile"), "1400,1000") as driver:
        yield driver


def _severe(driver) -> list[dict]:
    """Console errors: a Content-Security-Policy violation (a blocked style or image) is one."""
    return [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


def _filter(browser, state: str) -> list:
    """Choose a state in the filter, apply it, and wait for the new page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    Select(browser.find_element(By.ID, "f-state")).select_by_value(state)
    browser.find_element(By.ID, "apply").click()
    WebDriverWait(browser, 10).until(lambda d: f"state={state}" in d.current_url)
    return browser.find_elements(By.CSS_SELECTOR, "tr.finding")


@pytest.mark.lab
def test_log_in_see_the_trend_filter_and_acknowledge(dashboard, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def until(check) -> None:
        WebDriverWait(browser, 10).until(lambda d: check(d))

    ARTIFACTS.mkdir(exist_ok=True)
    browser.get(dashboard + "/")
    assert browser.current_url.endswith("/login")  # no session: the login form
    browser.find_element(By.ID, "token").send_keys("not-the-token-0000")
    browser.find_element(By.ID, "login").click()
    until(lambda d: d.find_elements(By.ID, "message"))
    assert "Wrong token" in browser.find_element(By.ID, "message").text
    browser.get_log("browser")  # the refused login's 401 is expected: not counted below
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "login").click()
    until(lambda d: d.current_url == dashboard + "/")
    assert browser.get_cookie("phiwatch_session")["httpOnly"] is True
    # The trend chart: a visible SVG with one line per series, drawn by the server
    chart = browser.find_element(By.CSS_SELECTOR, "#chart-open svg")
    assert chart.is_displayed() and chart.size["width"] > 300 and chart.size["height"] > 60
    total = browser.find_element(By.CSS_SELECTOR, "#chart-open polyline.series-total")
    assert len(total.get_attribute("points").split()) == 5  # five runs
    assert browser.find_elements(By.CSS_SELECTOR, "#chart-weekly rect")
    assert browser.find_element(By.ID, "median-fix").text == "9.0"
    browser.save_screenshot(str(ARTIFACTS / "dashboard-overview.png"))
    assert _severe(browser) == []  # the stylesheet loaded under the strict CSP, nothing blocked
    # Filter: the fixed findings, then the open ones
    browser.find_element(By.LINK_TEXT, "Findings").click()
    until(lambda d: d.current_url.endswith("/findings"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr.finding")) == 3
    rows = _filter(browser, "fixed")
    assert len(rows) == 2 and all(r.find_element(By.CSS_SELECTOR, ".state").text == "fixed" for r in rows)
    (row,) = _filter(browser, "open")
    browser.save_screenshot(str(ARTIFACTS / "dashboard-findings.png"))
    # Acknowledge it with a note
    row.find_element(By.CSS_SELECTOR, "a.open-finding").click()
    until(lambda d: d.find_elements(By.ID, "acknowledge-form"))
    form = browser.find_element(By.ID, "acknowledge-form")
    form.find_element(By.NAME, "note").send_keys("ticket INC-1234")
    browser.find_element(By.ID, "acknowledge").click()
    until(lambda d: "done=acknowledge" in d.current_url)
    assert browser.find_element(By.ID, "state").text == "acknowledged"
    assert browser.find_element(By.ID, "note").text == "ticket INC-1234"
    browser.save_screenshot(str(ARTIFACTS / "dashboard-finding.png"))
    browser.find_element(By.LINK_TEXT, "Findings").click()
    until(lambda d: d.current_url.endswith("/findings"))
    assert len(_filter(browser, "acknowledged")) == 1
    assert _severe(browser) == []
    for canary in CANARY_STRINGS:
        assert canary not in browser.page_source
    # The same data through the API
    api = httpx.get(dashboard + "/api/findings?state=acknowledged",
                    headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).json()
    assert api["total"] == 1 and api["findings"][0]["note"] == "ticket INC-1234"
