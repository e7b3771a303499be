"""Loading from the registry, the local cache fallback, and hot reload."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from sklearn.pipeline import Pipeline

from imdb_sentiment.core import tracking
from imdb_sentiment.core.config import load_params
from imdb_sentiment.core.text import CleanOptions
from imdb_sentiment.pipeline.registry import register
from imdb_sentiment.runtime.cache import ModelCache
from imdb_sentiment.serving.http.app import create_app
from imdb_sentiment.serving.service_settings import Settings, load_settings
from tests.helpers import tiny_model, tiny_texts
from tests.unit.serving.http.test_web_metrics_openapi import samples

DEAD_REGISTRY = "http://127.0.0.1:9"  # nothing listens on the discard port


def publish(
    seed: int,
    alias: str = "production",
    clean: CleanOptions | None = None,
    metrics: dict[str, float] | None = None,
    threshold: float = 0.5,
    model: Pipeline | None = None,
) -> str:
    settings = load_settings()
    tracking.configure(settings.model)
    record = register.log_and_register(
        model if model is not None else tiny_model(seed=seed, clean=clean),
        model_name=settings.model.model_name,
        experiment="serving",
        params={},
        metrics=metrics or {"test_accuracy": 0.9},
        artifacts=[],
        dataset={},
        threshold=threshold,
    )
    MlflowClient().set_registered_model_alias(settings.model.model_name, alias, record.version)
    return record.version


@pytest.fixture
def quick_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")


def settings(**overrides: object) -> Settings:
    return load_settings(reload_interval=0, **overrides)


def test_loads_the_production_alias_from_the_registry() -> None:
    version = publish(seed=1)
    client = create_app(settings()).test_client()
    body = client.get("/version").get_json()["model"]
    assert body["version"] == version and body["source"] == "registry" and body["run_id"]
    assert client.post("/api/v1/predict", json={"text": "wonderful"}).status_code == 200


def test_serves_the_cached_copy_when_the_registry_is_unreachable(quick_http: None) -> None:
    version = publish(seed=1)
    create_app(settings())  # first start: caches the model locally
    client = create_app(settings(mlflow_tracking_uri=DEAD_REGISTRY)).test_client()
    body = client.get("/version").get_json()["model"]
    assert (body["version"], body["source"]) == (version, "cache")
    assert client.get("/readyz").status_code == 200
    assert client.post("/api/v1/predict", json={"text": "wonderful"}).status_code == 200


def test_without_registry_or_cache_it_runs_but_is_not_ready(
    quick_http: None, tmp_path: Path
) -> None:
    app = create_app(
        settings(mlflow_tracking_uri=DEAD_REGISTRY, model_cache_dir=str(tmp_path / "empty"))
    )
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["reason"]
    # The details (registry URL, error, cache path) are for the log, never for clients.
    store = app.extensions["imdb_sentiment"].model
    assert "registry unavailable" in store.reason and str(tmp_path) in store.reason
    for leak in ("127.0.0.1:9", str(tmp_path), "Error", "registry"):
        assert leak not in ready.get_data(as_text=True)
    for path, payload in [
        ("/api/v1/predict", {"text": "hi"}),
        ("/invocations", {"inputs": ["hi"]}),
    ]:
        response = client.post(path, json=payload)
        assert response.status_code == 503
        assert response.get_json()["error"] == "model_unavailable"
    page = client.post("/predict", data={"text": "hi"})
    assert page.status_code == 503 and 'role="alert"' in page.get_data(as_text=True)


def test_hot_reload_swaps_when_the_alias_moves() -> None:
    first = publish(seed=1, metrics={"test_accuracy": 0.9, "test_f1": 0.8, "test_ece": 0.02})
    app = create_app(load_settings(reload_interval=0.2))
    store = app.extensions["imdb_sentiment"].model
    client = app.test_client()
    assert store.current.version == first
    second = publish(seed=2, metrics={"test_accuracy": 0.93, "test_roc_auc": 0.97})
    deadline = time.monotonic() + 20
    while store.current.version != second and time.monotonic() < deadline:
        time.sleep(0.1)
    store.stop()
    assert store.current.version == second
    m = samples(client)
    assert m[("model_reload_total", (("result", "success"),))] == 2
    assert m[("model_info", (("name", "imdb-sentiment"), ("version", second)))] == 1
    assert m[("model_info", (("name", "imdb-sentiment"), ("version", first)))] == 0
    # The evaluated quality follows the reload: the new version's test metrics, the old at 0.
    quality = {
        (dict(labels)["version"], dict(labels)["metric"]): value
        for (name, labels), value in m.items()
        if name == "model_evaluated_quality"
    }
    assert quality == {
        (first, "accuracy"): 0,
        (first, "f1"): 0,
        (first, "ece"): 0,
        (second, "accuracy"): 0.93,
        (second, "roc_auc"): 0.97,
    }


def test_a_failed_load_keeps_the_old_model_and_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    first = publish(seed=1)
    app = create_app(settings())
    store = app.extensions["imdb_sentiment"].model
    publish(seed=2)

    def broken(*args: object) -> None:
        raise OSError("artifact store down")

    monkeypatch.setattr(store.sync, "download", broken)
    with pytest.raises(OSError, match="artifact store down"):
        store.refresh()
    assert store.current.version == first
    assert app.test_client().post("/api/v1/predict", json={"text": "great"}).status_code == 200
    m = samples(app.test_client())
    assert m[("model_reload_total", (("result", "failure"),))] == 1


def test_a_sidecar_worker_serves_the_synced_model_without_sklearn_or_mlflow() -> None:
    """Under gunicorn, workers only follow the cache the sync process fills: they must not
    import scikit-learn or MLflow (~190 MB per worker). (A model that removes stop words does
    load scikit-learn's list; the default configuration does not.)"""
    import json
    import os
    import subprocess
    import sys

    from imdb_sentiment.runtime.cache import ModelCache
    from imdb_sentiment.runtime.sync import RegistrySync

    default_clean = load_params(Path(__file__).parents[3] / "params.yaml").clean
    version = publish(seed=1, clean=default_clean)
    current = load_settings()
    RegistrySync(
        current.model, ModelCache(current.model.model_cache_dir, current.model.model_name)
    ).sync()
    probe = (
        "import json, sys\n"
        "from imdb_sentiment.serving.http.app import create_app\n"
        "client = create_app().test_client()\n"
        "body = client.post('/api/v1/predict', json={'text': 'wonderful'}).get_json()\n"
        "heavy = [m for m in ('sklearn', 'mlflow', 'scipy', 'pandas') if m in sys.modules]\n"
        "print(json.dumps({'version': body['model']['version'], 'heavy': heavy}))\n"
    )
    # No prediction log: its 1 % sample would print a record after the probe's own line.
    env = {**os.environ, "MODEL_SYNC": "sidecar", "MODEL_RELOAD_INTERVAL": "0",
           "PREDICTION_LOG_RATE": "0"}  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.splitlines()[-1]) == {"version": version, "heavy": []}


def test_a_sidecar_worker_follows_the_pointer_when_it_moves() -> None:
    from imdb_sentiment.runtime.cache import ModelCache
    from imdb_sentiment.runtime.sync import RegistrySync

    first = publish(seed=1)
    current = load_settings()
    sync = RegistrySync(
        current.model, ModelCache(current.model.model_cache_dir, current.model.model_name)
    )
    sync.sync()
    app = create_app(load_settings(model_sync="sidecar", reload_interval=0))
    store = app.extensions["imdb_sentiment"].model
    assert (store.current.version, store.current.source) == (first, "registry")
    second = publish(seed=2)
    assert store.refresh() is False  # the registry moved, the cache did not: no change
    sync.sync()
    assert store.refresh() is True and store.current.version == second


def test_model_uri_pins_a_version_or_follows_an_alias(quick_http: None) -> None:
    first = publish(seed=1)
    second = publish(seed=2)  # production now names the second version
    pinned = create_app(settings(model_uri=f"models:/imdb-sentiment/{first}")).test_client()
    assert pinned.get("/version").get_json()["model"]["version"] == first
    following = create_app(settings(model_uri="models:/imdb-sentiment@production")).test_client()
    assert following.get("/version").get_json()["model"]["version"] == second


def test_the_service_labels_at_the_registered_threshold_even_when_it_compiles_itself() -> None:
    version = publish(seed=1, threshold=0.965)
    client = create_app(settings()).test_client()
    texts = tiny_texts(n=40, seed=7)[0]
    bodies = client.post("/api/v1/predict", json={"texts": texts}).get_json()["predictions"]
    positive = [b["scores"]["positive"] for b in bodies]
    assert [b["label"] for b in bodies] == [
        "positive" if p >= 0.965 else "negative" for p in positive
    ]
    assert any(0.5 <= p < 0.965 for p in positive)  # at 0.5 some labels would differ
    # A version served without its shipped scorer is compiled where it is served, from the
    # MLflow model, whose metadata carries the same threshold.
    cache = ModelCache(load_settings().model.model_cache_dir, load_settings().model.model_name)
    assert cache.compile_model(version).threshold == 0.965


def test_a_registry_that_does_not_exist_is_absent_at_once(tmp_path: Path) -> None:
    """A container without MLFLOW_TRACKING_URI has the default SQLite registry on a read-only
    disk: the sync says "no registry" at once instead of MLflow's minute of retries creating it
    (a release image's start waited 122 s for its shadow lookup)."""
    from imdb_sentiment.runtime.sync import RegistrySync, RegistryUnavailableError, ShadowSync

    missing = settings(mlflow_tracking_uri=f"sqlite:///{tmp_path / 'none' / 'mlflow.db'}")
    cache = ModelCache(tmp_path / "cache", missing.model.model_name)
    started = time.monotonic()
    with pytest.raises(RegistryUnavailableError, match="does not exist"):
        RegistrySync(missing.model, cache).sync()
    candidate = ShadowSync(missing.model, cache, None).sync()
    assert candidate.version is None and "does not exist" in candidate.reason
    assert time.monotonic() - started < 2
    assert not (tmp_path / "none").exists()  # nothing created
