"""Shadow scoring in the app: the candidate's answer is recorded beside production's and never
changes or fails a response; labelled shadowed reviews are counted as pairs by outcome."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from sklearn.pipeline import Pipeline

from imdb_sentiment.serving.http.app import create_app
from imdb_sentiment.serving.http.context import service_of
from imdb_sentiment.serving.service_settings import load_settings
from tests.helpers import tiny_model
from tests.unit.serving.http.test_web_metrics_openapi import samples

TEXTS = ["A wonderful, moving film.", "Dull and far too long.", "Brilliant acting, superb.",
         "The worst plot, a waste of time."]  # fmt: skip


def shadowing(small_model: Pipeline, database_url: str, sample: float) -> Flask:
    settings = load_settings(database_url=database_url, shadow_sample=sample)
    return create_app(settings, model=small_model, shadow_model=tiny_model(flipped=True))


def test_the_candidate_is_recorded_beside_production_never_returned(
    small_model: Pipeline, database_url: str
) -> None:
    app = shadowing(small_model, database_url, sample=1.0)
    ctx = service_of(app)
    client = app.test_client()
    assert client.get("/version").get_json()["shadow"] == {"version": "shadow", "sample": 1.0}
    response = client.post("/api/v1/predict", json={"texts": TEXTS})
    assert response.status_code == 200
    production = ctx.model.current.scorer.score_batch(TEXTS)  # type: ignore[union-attr]
    candidate = ctx.shadow_model.current.scorer.score_batch(TEXTS)  # type: ignore[union-attr]
    got = [p["scores"]["positive"] for p in response.get_json()["predictions"]]
    assert got == [round(s.p_positive, 6) for s in production]  # production's, exactly
    assert all(p.label != c.label for p, c in zip(production, candidate, strict=True))
    request_id = response.headers["X-Request-ID"]
    for item, text in enumerate(TEXTS):
        actual = production[item].label if item % 2 else candidate[item].label
        body = {"request_id": request_id, "item": item, "label": actual}
        answer = client.post("/api/v1/feedback", json=body)
        assert answer.status_code == 201, answer.get_json()
        stored = ctx.prediction_store.lookup(request_id, item)  # type: ignore[union-attr]
        assert (stored.shadow_version, stored.shadow_label) == ("shadow", candidate[item].label)
        assert stored.shadow_probability == round(candidate[item].p_positive, 6), text
    pairs = {dict(k[1])["outcome"]: v for k, v in samples(client).items()
             if k[0] == "shadow_labelled_pairs_total"}  # fmt: skip
    assert pairs == {"production_only": 2.0, "candidate_only": 2.0}
    shadowed = {dict(k[1])["agreement"]: v for k, v in samples(client).items()
                if k[0] == "shadow_predictions_total"}  # fmt: skip
    assert shadowed == {"disagree": 4.0}
    loaded = {k[0]: dict(k[1])["version"] for k, v in samples(client).items() if v == 1
              and k[0] in ("model_info", "shadow_model_info")}  # fmt: skip
    assert loaded == {"model_info": "injected", "shadow_model_info": "shadow"}


def test_feedback_with_a_text_is_always_a_labelled_pair(
    small_model: Pipeline, database_url: str
) -> None:
    client = shadowing(small_model, database_url, sample=0.0).test_client()
    answer = client.post("/api/v1/feedback", json={"text": TEXTS[0], "label": "positive"})
    assert answer.status_code == 201
    pairs = [k for k in samples(client) if k[0] == "shadow_labelled_pairs_total"]
    assert len(pairs) == 1 and ("outcome", "production_only") in pairs[0][1]


def test_a_failing_candidate_never_fails_the_request(
    small_model: Pipeline, database_url: str, tmp_path: Path
) -> None:
    app = shadowing(small_model, database_url, sample=1.0)
    ctx = service_of(app)

    class Broken:
        def score(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("candidate exploded")

        score_batch = score

    current = ctx.shadow_model.current  # type: ignore[union-attr]
    object.__setattr__(current, "scorer", Broken())
    client = app.test_client()
    for body in ({"text": TEXTS[0]}, {"texts": TEXTS}):
        response = client.post("/api/v1/predict", json=body)
        assert response.status_code == 200
        request_id = response.headers["X-Request-ID"]
        stored = ctx.prediction_store.lookup(request_id, 0)  # type: ignore[union-attr]
        assert stored.shadow_version is None and stored.shadow_label is None
    assert samples(client)[("shadow_errors_total", ())] == 2.0


def test_sample_zero_shadows_nothing(small_model: Pipeline, database_url: str) -> None:
    app = shadowing(small_model, database_url, sample=0.0)
    client = app.test_client()
    response = client.post("/api/v1/predict", json={"texts": TEXTS})
    records = service_of(app).prediction_store
    assert records is not None
    stored = records.lookup(response.headers["X-Request-ID"], 1)
    assert stored.shadow_version is None
    assert not [k for k in samples(client) if k[0] == "shadow_predictions_total"]


def test_a_withdrawn_candidate_leaves_the_shadow_gauge(
    small_model: Pipeline, database_url: str, tmp_path: Path
) -> None:
    from imdb_sentiment.runtime.cache import Pointer

    settings = load_settings(database_url=database_url, shadow_sample=1.0,
                             model_cache_dir=str(tmp_path))  # fmt: skip
    app = create_app(settings, model=small_model, shadow_model=tiny_model(flipped=True))
    shadow = service_of(app).shadow_model
    assert shadow is not None
    shadow.cache.write_pointer(Pointer("imdb-sentiment", None, None, "registry", "promoted"))
    assert shadow.follow() and shadow.current is None
    gauge = {dict(k[1])["version"]: v for k, v in samples(app.test_client()).items()
             if k[0] == "shadow_model_info"}  # fmt: skip
    assert gauge == {"shadow": 0.0}


def test_a_slow_candidate_is_skipped_past_its_budget_and_a_failing_one_logged_once(
    small_model: Pipeline, database_url: str, monkeypatch: Any, caplog: Any
) -> None:
    """SHADOW_BUDGET_MS bounds what shadowing adds to a request: a candidate measured slower
    than that goes unshadowed (counted), measured again every 100th sampled request; a failing
    candidate is counted on every request, its traceback logged once a minute."""
    import time

    settings = load_settings(database_url=database_url, shadow_sample=1.0, shadow_budget_ms=5)
    app = create_app(settings, model=small_model, shadow_model=tiny_model(flipped=True))
    ctx = service_of(app)
    scorer = ctx.shadow_model.current.scorer  # type: ignore[union-attr]
    slow = scorer.score

    def crawl(text: str, **kwargs: Any) -> Any:
        time.sleep(0.02)
        return slow(text, **kwargs)

    monkeypatch.setattr(scorer, "score", crawl)
    client = app.test_client()
    for _ in range(10):
        assert client.post("/api/v1/predict", json={"text": "fine"}).status_code == 200
    counted = samples(client)
    assert counted[("shadow_skipped_total", (("reason", "budget"),))] == 9.0  # the first measured
    monkeypatch.setattr(scorer, "score", lambda *a, **k: 1 / 0)
    ctx.scoring.shadow_budget.per_review = 0.0  # as fast as ever, now failing
    with caplog.at_level("ERROR"):
        for _ in range(5):
            assert client.post("/api/v1/predict", json={"text": "fine"}).status_code == 200
    assert samples(client)[("shadow_errors_total", ())] == 5.0
    assert sum("shadow scoring with version" in r.message for r in caplog.records) == 1
