"""Open Inference Protocol clients against the real service (gunicorn, 2 workers): Triton's
`tritonclient.http` and the kserve SDK's `InferenceRESTClient` (in its tool venv) — the clients
KServe, Triton and MLServer users have — get the same numbers as /api/v1/predict."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.conftest import IN_CI
from tests.server import running_service
from tests.unit.serving.test_model_store import publish

pytestmark = pytest.mark.slow
TEXTS = ["A wonderful, moving film.", "Dull and far too long.", "It was fine, I suppose."]


def test_tritonclient_speaks_to_the_service(tmp_path: Path) -> None:
    try:
        import tritonclient.http as triton
    except ImportError:
        if IN_CI:
            pytest.fail("tritonclient[http] is a pinned dev dependency")
        pytest.skip("tritonclient not installed")
    publish(seed=1)
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}
    with running_service(env, tmp_path / "service.log") as url:
        client = triton.InferenceServerClient(url=url.removeprefix("http://"))
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("imdb-sentiment")
        assert client.is_model_ready("imdb-sentiment", "1")
        assert not client.is_model_ready("imdb-sentiment", "99")
        meta = client.get_model_metadata("imdb-sentiment")
        assert meta["versions"] == ["1"] and meta["inputs"][0]["datatype"] == "BYTES"

        tensor = triton.InferInput("text", [len(TEXTS)], "BYTES")
        tensor.set_data_from_numpy(np.array(TEXTS, dtype=object), binary_data=False)
        wanted = [triton.InferRequestedOutput(n, binary_data=False)
                  for n in ("probability", "label", "predict_proba")]  # fmt: skip
        result = client.infer("imdb-sentiment", [tensor], outputs=wanted, model_version="1")
        probability = result.as_numpy("probability")
        labels = [x.decode() if isinstance(x, bytes) else x for x in result.as_numpy("label")]
        proba = result.as_numpy("predict_proba")
        assert result.get_response()["model_version"] == "1"

        api = requests.post(f"{url}/api/v1/predict", json={"texts": TEXTS}, timeout=10).json()
        expected = np.array([p["scores"]["positive"] for p in api["predictions"]])
        assert np.abs(probability - expected).max() <= 1e-12
        assert labels == [p["label"] for p in api["predictions"]]
        assert proba.shape == (len(TEXTS), 2)
        assert np.abs(proba[:, 1] - expected).max() <= 1e-12


def test_the_kserve_sdk_speaks_to_the_service(tmp_path: Path) -> None:
    """KServe's own REST client (kserve SDK, in its tool venv) gets what /api/v1/predict says."""
    from tests.integration.test_kserve import kserve_python

    python = kserve_python()
    publish(seed=1)
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}
    with running_service(env, tmp_path / "service.log") as url:
        client = Path(__file__).with_name("kserve_client.py")
        said = subprocess.run(
            [python, str(client), url, "imdb-sentiment", *TEXTS],
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
