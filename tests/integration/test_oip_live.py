"""The kserve SDK's REST client (`InferenceRESTClient`, in its tool venv) against the real
service (gunicorn, 2 workers) gets the same numbers as /api/v1/predict. tritonclient's HTTP and
gRPC clients and KServe's gRPC client: test_oip_clients.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import requests

from harness.server import running_service
from tests.unit.serving.test_live_model import publish

pytestmark = pytest.mark.slow
TEXTS = ["A wonderful, moving film.", "Dull and far too long.", "It was fine, I suppose."]


def test_the_kserve_sdk_speaks_to_the_service(tmp_path: Path) -> None:
    """KServe's own REST client (kserve SDK, in its tool venv) gets what /api/v1/predict says."""
    from tests.integration.test_kserve import kserve_python

    python = kserve_python()
    publish(seed=1)
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}
    with running_service(env, tmp_path / "service.log") as url:
        client = Path(__file__).with_name("kserve_clients.py")
        said = subprocess.run(
            [python, str(client), "rest", url, "imdb-sentiment", *TEXTS],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        assert said.returncode == 0, said.stderr[-2000:]
        got = json.loads(said.stdout)
        api = requests.post(f"{url}/api/v1/predict", json={"texts": TEXTS}, timeout=10).json()
    expected = np.array([p["scores"]["positive"] for p in api["predictions"]])
    assert got["live"] is got["ready"] is got["model_ready"] is True
    assert got["unknown_model_ready"] is False  # a 404: v2 clients read any 4xx as not ready
    assert got["id"] == "kserve-1" and got["model_name"] == "imdb-sentiment"
    assert np.abs(np.array(got["probability"]) - expected).max() <= 1e-12
    assert got["label"] == [p["label"] for p in api["predictions"]]
    assert got["predict_proba_shape"] == [len(TEXTS), 2]
    proba = np.array(got["predict_proba"]).reshape(len(TEXTS), 2)
    assert np.abs(proba[:, 1] - expected).max() <= 1e-12
