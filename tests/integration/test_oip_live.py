"""Open Inference Protocol clients against the real service (gunicorn, 2 workers): Triton's
`tritonclient.http` — the client KServe, Triton and MLServer users have — gets the same numbers
as /api/v1/predict."""

from __future__ import annotations

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
