"""A real Prometheus scrapes the real services with the shipped config and rules, and a real
Alertmanager with the shipped routing delivers to a local webhook receiver.

The shipped rules are loaded with shorter `for:` and evaluation intervals (a test clock); their
real durations are covered by `promtool test rules` (test_deploy.py).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from harness.server import free_port, running_service
from tests.conftest import require_tool
from tests.integration.test_deploy import MONITORING, dashboard_queries
from tests.integration.test_release import host_alias
from tests.unit.serving.test_live_model import publish

pytestmark = pytest.mark.slow
DEAD_REGISTRY = "http://127.0.0.1:9"


def prometheus_config(tmp_path: Path, targets: dict[str, list[str]], alertmanager: str) -> Path:
    """The shipped config and rules on a fast clock; `targets`: namespace label → host:ports.
    The scrape job is compose's static one (no cluster here to discover pods in), and the
    Alertmanager the shipped DNS entry names is reached on loopback (no cluster DNS here)."""
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    config["global"].update({"scrape_interval": "1s", "evaluation_interval": "1s"})
    compose = yaml.safe_load((MONITORING / "prometheus.compose.yml").read_text())
    local = [j for j in compose["scrape_configs"] if "static_configs" in j]
    template = local[0]["static_configs"][0]
    local[0]["static_configs"] = [
        {**template, "targets": hosts, "labels": {**template["labels"], "namespace": ns}}
        for ns, hosts in targets.items()
    ]
    config["scrape_configs"] = local
    (entry,) = config["alerting"]["alertmanagers"]
    (dns,) = entry.pop("dns_sd_configs")
    assert dns["port"] == 9093  # Alertmanager's port; here on loopback, on a free one
    entry["static_configs"] = [{"targets": [alertmanager]}]
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if "for" in rule:  # a minute becomes a second, at most 3: the order is kept
                minutes = int(rule["for"][:-1]) * (60 if rule["for"].endswith("h") else 1)
                rule["for"] = f"{min(3, minutes)}s"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def alertmanager_config(tmp_path: Path, receiver: str) -> Path:
    """The shipped routing and receivers, at their cluster address (the test aliases its host
    name to loopback, as the cluster's DNS would resolve it): only the port moves to the test's
    webhook; groups sent at once."""
    from urllib.parse import urlsplit

    config = yaml.safe_load((MONITORING / "alertmanager.yml").read_text())
    config["route"].update({"group_wait": "1s", "group_interval": "1s"})
    for route in config["route"].get("routes", []):
        route.pop("group_wait", None)
    port = urlsplit(receiver).port
    for entry in config["receivers"]:
        for hook in entry.get("webhook_configs", []):
            shipped = urlsplit(hook["url"])
            hook["url"] = shipped._replace(netloc=f"{shipped.hostname}:{port}").geturl()
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def receiver_hosts() -> set[str]:
    from urllib.parse import urlsplit

    config = yaml.safe_load((MONITORING / "alertmanager.yml").read_text())
    return {str(urlsplit(h["url"]).hostname) for r in config["receivers"]
            for h in r.get("webhook_configs", [])}  # fmt: skip


class Receiver:
    """A webhook endpoint recording what Alertmanager delivers: (receiver path, alert)."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str, dict[str, Any]]] = []
        received = self.delivered

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                received.extend((self.path, alert) for alert in body["alerts"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self, name: str) -> list[tuple[str, dict[str, Any]]]:
        return [(path, a) for path, a in self.delivered if a["labels"]["alertname"] == name]


@contextmanager
def process(args: list[str], log: Path) -> Iterator[None]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    prometheus = require_tool("prometheus")
    alertmanager = require_tool("prometheus-alertmanager")
    publish(seed=1)
    publish(seed=2, alias="staging")  # a candidate: the service shadows it on every request
    receiver = Receiver()
    with ExitStack() as stack:
        app = stack.enter_context(
            running_service(
                {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"), "SHADOW_SAMPLE": "1.0"},
                tmp_path / "app.log",
            )
        )
        # No registry and no cached model: up (/healthz) but answering 503 to predictions.
        broken = stack.enter_context(
            running_service(
                {
                    "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom-broken"),
                    "MLFLOW_TRACKING_URI": DEAD_REGISTRY,
                    "MODEL_CACHE_DIR": str(tmp_path / "empty-cache"),
                    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                    "MLFLOW_HTTP_REQUEST_TIMEOUT": "2",
                },
                tmp_path / "broken.log",
                ready_path="/healthz",
            )
        )
        am_port, prom_port = free_port(), free_port()
        am = f"127.0.0.1:{am_port}"
        for host in receiver_hosts():  # the receivers' cluster address, resolved to here
            stack.enter_context(host_alias(host))
        stack.enter_context(
            process(
                [
                    alertmanager,
                    f"--config.file={alertmanager_config(tmp_path, receiver.url)}",
                    f"--storage.path={tmp_path / 'am'}",
                    f"--web.listen-address={am}",
                    "--cluster.listen-address=",
                ],
                tmp_path / "alertmanager.log",
            )
        )
        # "broken" has one pod that errs and one that is down; "gone" has only a pod that is down.
        dead = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
        targets = {
            "local": [app.removeprefix("http://")],
            "broken": [broken.removeprefix("http://"), dead[0]],
            "gone": [dead[1]],
        }
        config = prometheus_config(tmp_path, targets, am)
        stack.enter_context(
            process(
                [
                    prometheus,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                tmp_path / "prometheus.log",
            )
        )
        prom = f"http://127.0.0.1:{prom_port}"
        wait_for(lambda: requests.get(f"{prom}/-/ready", timeout=1).status_code == 200, 30)
        wait_for(lambda: requests.get(f"http://{am}/-/ready", timeout=1).status_code == 200, 30)
        yield {"app": app, "broken": broken, "prom": prom, "receiver": receiver, "dead": dead}


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


def error_alerts(prom: str) -> list[dict[str, Any]]:
    alerts = requests.get(f"{prom}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == "HighErrorRate"]


def test_dashboard_queries_return_data_4xx_pages_nobody_5xx_pages(
    stack: dict[str, Any],
) -> None:
    app, broken, prom, receiver = stack["app"], stack["broken"], stack["prom"], stack["receiver"]
    wait_for(
        lambda: (
            len([r for r in query(prom, 'up{job="imdb-sentiment"}') if r["value"][1] == "1"]) == 2
        ),
        30,
        "both live targets up",
    )
    # Normal traffic, labelled feedback on 7 of every 10 predictions right and 3 wrong, plus a
    # flood of client errors, spread over several scrapes.
    for _ in range(8):
        for i in range(10):
            done = requests.post(
                f"{app}/api/v1/predict", json={"text": f"wonderful film {i}"}, timeout=5
            )
            predicted = done.json()["label"]
            truth = predicted if i < 7 else ("negative" if predicted == "positive" else "positive")
            answer = {"request_id": done.headers["X-Request-ID"], "label": truth}
            assert requests.post(f"{app}/api/v1/feedback", json=answer, timeout=5).ok
            requests.post(f"{app}/api/v1/predict", json={"texts": ["awful", "boring"]}, timeout=5)
        requests.post(f"{app}/predict", data={"text": "great"}, timeout=5)
        for _ in range(30):
            requests.post(f"{app}/api/v1/predict", json={"text": ""}, timeout=5)
            requests.post(
                f"{app}/api/v1/predict",
                data="{broken",
                headers={"Content-Type": "application/json"},
                timeout=5,
            )
        time.sleep(1.2)

    empty = []
    for expr in dashboard_queries():
        concrete = (
            expr.replace("$__rate_interval", "1m")
            .replace("$__range", "5m")
            .replace("$namespace", "local")
            .replace("$job", "imdb-sentiment")
        )
        if not query(prom, concrete):
            empty.append(expr)
    assert not empty, f"dashboard queries without data: {empty}"

    # Live accuracy is exactly the share of right labels sent; the evaluated one is the
    # registered version's test accuracy (publish() registers 0.9).
    # (Once the last label is scraped and the rules have run again: polled, not slept.)
    def live_accuracy() -> float:
        (live,) = query(prom, 'imdb:live_accuracy:ratio1d{namespace="local"}')
        return float(live["value"][1])

    wait_for(lambda: abs(live_accuracy() - 0.7) < 1e-9, 20, "live accuracy = 56 right of 80")
    (evaluated,) = query(prom, 'imdb:evaluated_quality{namespace="local", metric="accuracy"}')
    assert float(evaluated["value"][1]) == pytest.approx(0.9)

    # 4xx are the client's problem: well past the (test) `for:`, nothing is pending or sent.
    time.sleep(6)
    assert error_alerts(prom) == []
    assert receiver.alerts("HighErrorRate") == []

    # A service that has no model answers 503: a server fault. It pages, for its namespace only.
    for _ in range(6):
        for i in range(20):
            response = requests.post(f"{broken}/api/v1/predict", json={"text": f"x {i}"}, timeout=5)
            assert response.status_code == 503
        time.sleep(1.2)
    wait_for(
        lambda: [a["state"] for a in error_alerts(prom)] == ["firing"], 40, "HighErrorRate firing"
    )
    assert error_alerts(prom)[0]["labels"]["namespace"] == "broken"
    # Delivered although one pod of the same deployment is down (TargetDown mutes only alerts
    # about that pod), and routed to the pager.
    wait_for(lambda: receiver.alerts("HighErrorRate"), 30, "alert delivered to the receiver")
    path, alert = receiver.alerts("HighErrorRate")[0]
    assert path == "/oncall"  # critical routes to the pager
    assert alert["labels"]["namespace"] == "broken" and alert["status"] == "firing"
    down = [a for _, a in receiver.alerts("TargetDown") if a["labels"]["namespace"] == "broken"]
    assert [a["labels"]["instance"] for a in down][:1] == [stack["dead"][0]]
    # A deployment with every pod down pages once: ServiceDown, its TargetDown and NoTraffic
    # muted.
    wait_for(lambda: [a for _, a in receiver.alerts("ServiceDown")], 30, "ServiceDown delivered")
    (path, alert), *_ = receiver.alerts("ServiceDown")
    assert (path, alert["labels"]["namespace"]) == ("/oncall", "gone")
    time.sleep(5)  # past the muted alerts' `for` and Alertmanager's group wait
    muted = [a["labels"]["alertname"] for _, a in receiver.delivered
             if a["labels"].get("namespace") == "gone"]  # fmt: skip
    assert set(muted) == {"ServiceDown"}, muted
    firing = {a["labels"]["alertname"] for a in requests.get(f"{prom}/api/v1/alerts", timeout=5)
              .json()["data"]["alerts"] if a["labels"].get("namespace") == "gone"}  # fmt: skip
    assert {"ServiceDown", "TargetDown", "NoTraffic"} <= firing  # fired, and muted
