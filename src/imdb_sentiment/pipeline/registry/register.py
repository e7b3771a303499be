"""The register stage: log a run with params, metrics, reports, data provenance and the model
(the whole pipeline with its signature, the compiled scorer, the test metrics), register it as a
new version and point `staging` at it."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn.pipeline import Pipeline

from imdb_sentiment.core.config import Params, flatten
from imdb_sentiment.core.model_settings import ModelSettings
from imdb_sentiment.core.tracking import git_commit
from imdb_sentiment.pipeline.registry import ACCURACY_TAG, STAGING
from imdb_sentiment.runtime.scorer_files import THRESHOLD_METADATA, save_scorer

log = logging.getLogger(__name__)

# skops refuses to load types it does not know; ours are listed so loading stays safe.
TRUSTED_TYPES = [
    "imdb_sentiment.model.features.TextCleaner",
    "imdb_sentiment.core.text.CleanOptions",
    "imdb_sentiment.model.classifier.NBLogisticRegression",
    "imdb_sentiment.model.features.CompactTfidfVectorizer",
]
INPUT_EXAMPLE = ["A moving, beautifully acted film.", "Dull plot and wooden acting."]


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    version: str
    model_uri: str


def model_requirements() -> list[str]:
    """Exact pins of what unpickling and scoring the pipeline imports.

    Given explicitly, MLflow skips its slow requirement inference (a subprocess that loads
    the model again) and the artifact states precisely what it needs.
    """
    from importlib.metadata import version

    packages = [
        "mlflow",
        "scikit-learn",
        "scipy",
        "numpy",
        "pandas",
        "simplemma",
        "skops",
        "pydantic",
        "pyyaml",
        "joblib",
    ]
    return [f"{name}=={version(name)}" for name in packages]


def package_dir() -> str:
    """The `imdb_sentiment` package, shipped with the model (`code_paths`)."""
    import imdb_sentiment

    return str(Path(imdb_sentiment.__file__).resolve().parent)


def log_and_register(
    model: Pipeline,
    *,
    model_name: str,
    experiment: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    artifacts: list[Path],
    dataset: dict[str, Any],
    threshold: float,
) -> RunRecord:
    """One MLflow run holding params, metrics, plots, data info, commit and the model itself."""
    mlflow.set_experiment(experiment)
    # A list-inferred signature (one unnamed string column) accepts a plain list of texts as
    # well as any one-column DataFrame, so pyfunc clients need no particular column name.
    example = list(INPUT_EXAMPLE)
    signature = infer_signature(example, model.predict_proba(example))
    with mlflow.start_run() as run:
        mlflow.log_params(flatten("", params))
        mlflow.log_metrics(metrics)
        mlflow.set_tags({"git_commit": git_commit() or "unknown", **flatten("data", dataset)})
        for path in artifacts:
            mlflow.log_artifact(str(path), artifact_path="reports")
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=example,
            pyfunc_predict_fn="predict_proba",
            serialization_format="skops",
            skops_trusted_types=TRUSTED_TYPES,
            # Ship our package with the model: pyfunc.load_model works without installing it.
            code_paths=[package_dir()],
            pip_requirements=model_requirements(),
            # The decision threshold travels with the model: every consumer labels with it.
            metadata={THRESHOLD_METADATA: threshold},
        )
        client = MlflowClient()
        _log_scorer(client, info.model_id, model, threshold)
        _log_quality(client, info.model_id, metrics)
        # Registered only once complete: a version never exists without its compiled scorer.
        version = str(mlflow.register_model(info.model_uri, model_name).version)
    client.set_model_version_tag(model_name, version, ACCURACY_TAG, str(metrics["test_accuracy"]))
    client.set_registered_model_alias(model_name, STAGING, version)
    log.info("registered %s version %s (alias %s)", model_name, version, STAGING)
    return RunRecord(run.info.run_id, version, f"models:/{model_name}/{version}")


def _log_scorer(client: MlflowClient, model_id: str, model: Pipeline, threshold: float) -> None:
    """Add the compiled scorer to the logged model (artifact folder `scorer/`), so the service,
    `imdb-sentiment predict` and Spark executors load numpy arrays and never recompile.
    Configurations the compiler cannot save (character n-grams) are left without one."""
    from imdb_sentiment.runtime.compile import compile_pipeline
    from imdb_sentiment.runtime.scorer_files import SCORER_DIR

    with tempfile.TemporaryDirectory() as tmp:
        try:
            save_scorer(compile_pipeline(model, threshold), Path(tmp))
        except TypeError as exc:
            log.info("no compiled scorer shipped with this model: %s", exc)
            return
        client.log_model_artifacts(model_id, tmp, artifact_path=SCORER_DIR)


def _log_quality(client: MlflowClient, model_id: str, metrics: dict[str, float]) -> None:
    """The test-split metrics travel with the model (artifact folder `quality/`): the service
    exports them for the version it serves, baked images included, with no registry call."""
    import json

    from imdb_sentiment.runtime.cache import QUALITY_DIR, QUALITY_FILE, QUALITY_METRICS

    quality = {m: metrics[f"test_{m}"] for m in QUALITY_METRICS if f"test_{m}" in metrics}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / QUALITY_FILE).write_text(json.dumps(quality))
        client.log_model_artifacts(model_id, tmp, artifact_path=QUALITY_DIR)


def register_model(
    params: Params, settings: ModelSettings, model_path: Path, metrics_path: Path, out: Path
) -> RunRecord:
    """The register stage: gather the stage outputs, log them to MLflow, write a record."""
    from imdb_sentiment.core.io import load, read_json, write_json
    from imdb_sentiment.core.tracking import configure

    configure(settings)
    reports = metrics_path.parent  # the other stage reports sit beside metrics.json
    metrics = {f"test_{k}": float(v) for k, v in read_json(metrics_path).items()}
    train_report = reports / "train.json"
    if train_report.exists():
        validation = read_json(train_report)["validation"]
        metrics.update({f"val_{k}": float(v) for k, v in validation.items()})
    artifacts = sorted(p for p in reports.glob("*.json") if p.name != "registration.json")
    artifacts += sorted((reports / "plots").glob("*.png"))
    record = log_and_register(
        load(model_path),
        model_name=settings.model_name,
        experiment=settings.experiment_name,
        params=params.model_dump(by_alias=True, mode="json"),
        metrics=metrics,
        artifacts=artifacts,
        dataset=_dataset_info(params, reports / "ingest.json"),
        threshold=params.model.threshold,
    )
    write_json(out, {"run_id": record.run_id, "version": record.version, "uri": record.model_uri})
    return record


def _dataset_info(params: Params, provenance: Path) -> dict[str, Any]:
    """The run's `data.*` tags: each source's URI, checksum and row counts, and the rows of
    extra training sources dropped and why (from the ingest stage's report)."""
    from imdb_sentiment.core.io import read_json

    info: dict[str, Any] = {"split": params.data.split}
    if not provenance.exists():  # a model trained before provenance was recorded
        return {**info, "source": params.data.source, "sha256": params.data.sha256 or "unchecked"}
    report = read_json(provenance)
    main, *extras = report["sources"]
    info.update(source=main["uri"], sha256=main["sha256"], rows=main["rows"],
                train_rows=report["train"], test_rows=report["test"])  # fmt: skip
    for i, extra in enumerate(extras):
        info[f"extra_train.{i}"] = {k: v for k, v in extra.items() if k != "role"}
    return info
