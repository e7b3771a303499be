"""A real Prometheus scrapes the real service with the shipped config and rules."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.conftest import require_tool
from tests.integration.test_deploy import MONITORING, dashboard_queries
from tests.server import free_port, running_service
from tests.unit.serving.test_model_store import publish

pytestmark = pytest.mark.slow


def prometheus_config(tmp_path: Path, target: str) -> Path:
    """The shipped config and rules, pointed at the test service, on a fast clock."""
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    config["global"].update({"scrape_interval": "1s", "evaluation_interval": "1s"})
    local = [j for j in config["scrape_configs"] if "static_configs" in j]
    local[0]["static_configs"][0]["targets"] = [target]
    config["scrape_configs"] = local  # no cluster here to discover pods in
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if rule.get("alert") == "HighErrorRate":
                rule["for"] = "5s"  # test override: the shipped rule waits 5 minutes
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[str, str]]:
    binary = require_tool("prometheus")
    publish(seed=1)
    with running_service(
        {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}, tmp_path / "app.log"
    ) as app:
        port = free_port()
        config = prometheus_config(tmp_path, app.removeprefix("http://"))
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "prometheus.log").open("w"),
        )
        prom = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: requests.get(f"{prom}/-/ready", timeout=1).status_code == 200, 30)
            yield app, prom
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def wait_for(check: Any, seconds: float, what: str = "condition") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what}: not met within {seconds} s")


def query(prom: str, expr: str) -> list[dict[str, Any]]:
    body = requests.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def test_dashboard_queries_return_data_and_error_alert_fires(stack: tuple[str, str]) -> None:
    app, prom = stack
    wait_for(
        lambda: any(r["value"][1] == "1" for r in query(prom, 'up{job="imdb-sentiment-local"}')),
        30,
        "target up",
    )
    for _ in range(6):  # traffic spread over several scrapes, so rates have data
        for i in range(10):
            requests.post(f"{app}/api/v1/predict", json={"text": f"wonderful film {i}"}, timeout=5)
            requests.post(f"{app}/api/v1/predict", json={"text": f"awful boring {i}"}, timeout=5)
        requests.post(f"{app}/predict", data={"text": "great"}, timeout=5)
        requests.post(f"{app}/api/v1/predict", json={"text": ""}, timeout=5)
        time.sleep(1.2)
    # The injected error burst, spread over several scrapes: Prometheus' rate() ignores the
    # jump from nothing to a new series' first sample.
    for _ in range(5):
        for _ in range(20):
            requests.post(
                f"{app}/api/v1/predict",
                data="{broken",
                headers={"Content-Type": "application/json"},
                timeout=5,
            )
        time.sleep(1.2)

    empty = []
    for expr in dashboard_queries():
        if not query(prom, expr.replace("$__rate_interval", "1m")):
            empty.append(expr)
    assert not empty, f"dashboard queries without data: {empty}"

    def error_alert_state() -> str | None:
        alerts = requests.get(f"{prom}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        states = [a["state"] for a in alerts if a["labels"]["alertname"] == "HighErrorRate"]
        return states[0] if states else None

    wait_for(lambda: error_alert_state() in {"pending", "firing"}, 30, "HighErrorRate pending")
    wait_for(lambda: error_alert_state() == "firing", 30, "HighErrorRate firing")
