"""Bring your own labelled data, and close the loop (real archive; CI sets IMDB_SOURCE):
- the seed project's data.csv shape (review,sentiment), built from the archive's 50,000
  labelled reviews, through `dvc repro` end to end with the `seed-csv` preset;
- service → predictions → feedback → `feedback export` → the file as `data.extra_train` →
  `dvc repro` → a new registered version whose MLflow run names the extra source and its rows
  → the promotion gate decides.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import requests
from mlflow import MlflowClient

from harness.project import make_project, run, stages_run, update_params
from harness.server import running_service
from imdb_sentiment.presets import load_preset

pytestmark = [pytest.mark.fulldata, pytest.mark.slow]


def test_the_seed_projects_csv_trains_end_to_end(
    full_pipeline: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    project, _ = full_pipeline
    labelled = pd.concat(
        [pd.read_parquet(project / f"data/raw/{split}.parquet") for split in ("train", "test")]
    )
    names = labelled.label.map({1: "positive", 0: "negative"})
    csv = tmp_path / "data.csv"
    pd.DataFrame({"review": labelled.text, "sentiment": names}).to_csv(csv, index=False)
    assert len(labelled) == 50_000

    own = make_project(tmp_path / "project", load_preset("seed-csv"))
    env = {"IMDB_SOURCE": str(csv), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'ml.db'}"}
    run(["dvc", "repro"], own, env)
    report = json.loads((own / "reports/ingest.json").read_text())
    source = report["sources"][0]
    assert source["format"] == "csv" and source["rows"] == 50_000
    # The archive repeats ~400 reviews: dropped before the split, or they would leak across it.
    kept = 50_000 - source["dropped"]["repeated"]
    assert 0 < source["dropped"]["repeated"] < 1_000
    assert report["train"] + report["test"] == kept and abs(report["test"] - kept / 5) <= 1
    metrics = json.loads((own / "reports/metrics.json").read_text())
    assert metrics["accuracy"] >= 0.88, metrics


REVIEWS = [
    f"{opening} {middle} {ending}"
    for opening in ("Saw it last night.", "Watched this with my family.", "Caught it on TV.")
    for middle in ("The cast is wonderful and the story moved me.",
                   "The plot is a mess and the dialogue is painful.",
                   "A gorgeous, heartfelt film with a brilliant score.",
                   "Two hours I will never get back, dull and lifeless.")
    for ending in ("Loved it.", "Hated it.", "Enough said.")
]  # fmt: skip


def test_feedback_returns_to_training_through_dvc(
    full_pipeline: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    shared, shared_env = full_pipeline
    project = tmp_path / "project"
    shutil.copytree(shared, project, symlinks=True)  # the shared run stays as other tests see it
    database = tmp_path / "mlflow.db"
    shutil.copy2(Path(shared_env["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///")), database)
    env = {**shared_env, "MLFLOW_TRACKING_URI": f"sqlite:///{database}"}
    store = f"sqlite:///{tmp_path / 'predictions.db'}"

    # The service answers; people say which answers were right (every third one was not).
    serving = {
        **env,
        "DATABASE_URL": store,
        "MODEL_CACHE_DIR": str(tmp_path / "cache"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        "PREDICTION_LOG_TEXT": "true",
    }
    with running_service(serving, tmp_path / "service.log", cwd=tmp_path) as url:
        for i, text in enumerate(REVIEWS):
            answer = requests.post(f"{url}/api/v1/predict", json={"text": text}, timeout=10)
            predicted = answer.json()["label"]
            truth = predicted if i % 3 else {"positive": "negative"}.get(predicted, "positive")
            body = {"request_id": answer.headers["X-Request-ID"], "label": truth}
            sent = requests.post(f"{url}/api/v1/feedback", json=body, timeout=10)
            assert sent.status_code == 201, sent.text

    # Exported, reviewed (here: all kept), versioned with DVC, named in params.yaml.
    export = "data/extra/feedback.parquet"
    done = run(["imdb-sentiment", "feedback", "export", export], project, {"DATABASE_URL": store})
    assert f"wrote {len(REVIEWS)} labelled rows ({len(REVIEWS)} with text)" in done.stdout
    run(["dvc", "add", export], project, env)
    assert (project / f"{export}.dvc").exists()
    update_params(project, {"data": {"extra_train": [export]}})
    repro = run(["dvc", "repro"], project, env)
    assert stages_run(repro.stdout)[0] == "ingest", repro.stdout

    provenance = json.loads((project / "reports/ingest.json").read_text())["sources"][1]
    assert provenance["uri"] == export and provenance["used"] == len(REVIEWS), provenance
    registration = json.loads((project / "reports/registration.json").read_text())
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    tags = MlflowClient().get_run(registration["run_id"]).data.tags
    assert tags["data.extra_train.0.uri"] == export
    assert tags["data.extra_train.0.used"] == str(len(REVIEWS))
    assert tags["data.extra_train.0.rows"] == str(len(REVIEWS))
    train = pd.read_parquet(project / "data/raw/train.parquet")
    assert (train.movie == f"extra:{export}").sum() == len(REVIEWS)

    # The gate decides: promoted, or refused with its reason; either way it says which.
    gate = run(["imdb-sentiment", "promote"], project, env, check=False)
    said = gate.stdout + gate.stderr
    assert f"version {registration['version']}" in said, said
    production = MlflowClient().get_model_version_by_alias("imdb-sentiment", "production")
    assert (str(production.version) == str(registration["version"])) == (gate.returncode == 0), said
    assert run(["dvc", "status"], project, env).stdout.strip().endswith("up to date.")
