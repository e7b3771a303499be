"""The page in headless Chromium: type, submit, see the label and highlighted words."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.project import ROOT
from harness.server import running_service
from tests.conftest import require_tool
from tests.unit.serving.test_live_model import publish

pytestmark = pytest.mark.slow
SCREENSHOTS = ROOT / "reports" / "browser"


@pytest.fixture
def browser() -> Iterator[object]:
    chromium = require_tool("chromium")
    driver_path = require_tool("chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1100,1400",
        f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def service_url(tmp_path: Path) -> Iterator[str]:
    """The real service (gunicorn) on a published model."""
    publish(seed=1)
    with running_service(
        {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}, tmp_path / "log"
    ) as url:
        yield url


def no_console_errors(browser: Any) -> None:
    logs = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not logs, logs  # no CSP violations or script errors


def test_type_submit_and_see_highlighted_result(browser, service_url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(service_url + "/")
    box = browser.find_element(By.ID, "text")
    box.send_keys("A wonderful, brilliant film. I loved every minute <script>alert(1)</script>")
    browser.find_element(By.ID, "submit").click()
    label = WebDriverWait(browser, 15).until(ec.visibility_of_element_located((By.ID, "label")))
    assert label.text == "Positive"
    marked = browser.find_elements(By.CSS_SELECTOR, "#highlighted mark.pos")
    assert {m.text.lower() for m in marked} & {"wonderful", "brilliant", "loved"}
    assert "<script>" in browser.find_element(By.ID, "highlighted").text  # shown, not run
    assert browser.find_element(By.ID, "confidence").text.endswith("%")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "positive.png"))

    # Keyboard only: an example button fills the box, Ctrl+Enter submits.
    browser.find_elements(By.CSS_SELECTOR, "button.example")[1].send_keys(Keys.ENTER)
    box = browser.find_element(By.ID, "text")
    assert "waste of time" in box.get_attribute("value")
    box.send_keys(Keys.CONTROL, Keys.ENTER)
    WebDriverWait(browser, 15).until(ec.text_to_be_present_in_element((By.ID, "label"), "Negative"))
    assert browser.find_elements(By.CSS_SELECTOR, "#highlighted mark.neg")
    browser.save_screenshot(str(SCREENSHOTS / "negative.png"))

    # "Was this right?" - No: the true label (the other one) is posted and counted once.
    browser.find_element(By.CSS_SELECTOR, "button.feedback-answer[data-correct='false']").click()
    WebDriverWait(browser, 15).until(
        ec.text_to_be_present_in_element((By.ID, "feedback-status"), "Thanks, recorded.")
    )
    assert all(
        not b.is_enabled() for b in browser.find_elements(By.CSS_SELECTOR, "button.feedback-answer")
    )
    browser.save_screenshot(str(SCREENSHOTS / "feedback.png"))
    counted = requests.get(service_url + "/metrics", timeout=5).text
    # predicted negative, truly positive: one false negative
    assert re.search(r'model_feedback_total\{[^}]*outcome="fn"[^}]*\} 1\.0', counted), counted
    no_console_errors(browser)


def test_docs_page_renders_every_operation_offline(browser, service_url: str) -> None:
    """/docs: Swagger UI from the pinned package's assets, under the page's strict CSP."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(service_url + "/docs")
    WebDriverWait(browser, 20).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, ".opblock-summary-path"))
    )
    paths = {
        e.text.strip() for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    }
    assert {"/api/v1/predict", "/invocations", "/ping"} <= {p.replace("\u200b", "") for p in paths}
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "docs.png"))
    no_console_errors(browser)
