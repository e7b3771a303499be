"""The real service over HTTP: gunicorn, 2 workers, multiprocess metrics, hot swap."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import requests
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from harness.server import running_service
from tests.unit.serving.test_live_model import publish

pytestmark = pytest.mark.slow


def metric(url: str, name: str, **labels: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=5).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


@pytest.fixture
def service(tmp_path: Path) -> object:
    publish(seed=1)
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"), "MODEL_RELOAD_INTERVAL": "0.5"}
    return running_service(env, tmp_path / "gunicorn.log")


@pytest.fixture
def busy_service(tmp_path: Path) -> object:
    """Six workers: the master forks them while its supervisor thread starts `sync --watch`,
    the race that once hid the sync process's death (2 of 5 runs failed without the fix)."""
    publish(seed=1)
    env = {
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        "MODEL_RELOAD_INTERVAL": "0.5",
        "WORKERS": "6",
    }
    return running_service(env, tmp_path / "gunicorn.log")


def workers_with_requests(directory: Path) -> set[str]:
    """Processes whose metrics file counts requests (each process writes counter_<pid>.db;
    the registry-sync process has one too, for its failure counter, but serves nothing)."""
    return {
        path.stem
        for path in directory.glob("counter_*.db")
        if any(
            "app_request_count" in key
            for key, *_ in MmapedDict.read_all_values_from_file(str(path))
        )
    }


def test_metrics_sum_across_two_workers(service, tmp_path: Path) -> None:
    texts = [f"wonderful film number {i}, truly great acting " * 20 for i in range(32)]

    def post(_: int) -> requests.Response:
        return requests.post(f"{url}/api/v1/predict", json={"texts": texts}, timeout=30)

    with service as url:
        sent = 0
        # Which worker accepts a connection is the kernel's choice: send rounds of concurrent
        # batches until both have served some, then check the totals exactly.
        deadline = time.monotonic() + 60
        while len(workers_with_requests(tmp_path / "prom")) < 2 and time.monotonic() < deadline:
            with ThreadPoolExecutor(8) as pool:
                responses = list(pool.map(post, range(16)))
            assert all(r.status_code == 200 for r in responses)
            sent += len(responses)
        assert len(workers_with_requests(tmp_path / "prom")) == 2
        # Whichever worker answers /metrics, the totals are those of all workers.
        for _ in range(4):
            assert metric(url, "app_request_count_total", endpoint="/api/v1/predict") == sent
            assert metric(url, "model_prediction_count_total") == sent * len(texts)
        requests.post(f"{url}/api/v1/predict", json={"text": ""}, timeout=5)
        assert metric(url, "app_request_errors_total", reason="empty_text") == 1
        assert metric(url, "app_total_cost_usd_total") > 0


def test_alias_move_under_load_swaps_with_zero_failures(service) -> None:
    with service as url:
        stop = threading.Event()
        outcomes: Counter[str] = Counter()
        versions: Counter[str] = Counter()

        def hammer() -> None:
            while not stop.is_set():
                try:
                    r = requests.post(
                        f"{url}/api/v1/predict", json={"text": "a wonderful film"}, timeout=10
                    )
                    outcomes[str(r.status_code)] += 1
                    if r.status_code == 200:
                        versions[r.json()["model"]["version"]] += 1
                except requests.RequestException as exc:
                    outcomes[type(exc).__name__] += 1

        threads = [threading.Thread(target=hammer) for _ in range(6)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        new_version = publish(seed=2)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            seen = {
                requests.get(f"{url}/version", timeout=5).json()["model"]["version"]
                for _ in range(10)
            }
            if seen == {new_version}:
                break
            time.sleep(0.2)
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join()
        assert set(outcomes) == {"200"}, outcomes
        assert versions["1"] > 0 and versions[new_version] > 0, versions
        assert metric(url, "model_reload_total", result="success") >= 4  # 2 workers x 2 loads


def sync_watchers(port: str) -> list[psutil.Process]:
    """The service's `sync --watch` processes (found by the PORT in their environment)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            cmdline = " ".join(process.info["cmdline"] or [])
            ours = "imdb_sentiment.serving.server model-sync --watch" in cmdline
            if ours and process.environ().get("PORT") == port:
                found.append(process)
        except psutil.Error:  # exited or not ours meanwhile
            continue
    return found


def test_a_dead_model_sync_is_restarted(busy_service) -> None:
    with busy_service as url:
        port = url.rsplit(":", 1)[1]
        deadline = time.monotonic() + 30
        while not (watchers := sync_watchers(port)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(watchers) == 1
        watchers[0].kill()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            again = sync_watchers(port)
            if again and again[0].pid != watchers[0].pid:
                break
            time.sleep(0.2)
        assert [p.pid for p in sync_watchers(port)] not in ([], [watchers[0].pid])
        assert requests.get(f"{url}/readyz", timeout=5).status_code == 200
