"""MLflow wiring: tracking URI and run metadata. Called from jobs only, never at import."""

from __future__ import annotations

import logging
import subprocess
from typing import TYPE_CHECKING

import mlflow

from imdb_sentiment.core.config import MODEL_SECTIONS, Params, flatten
from imdb_sentiment.core.model_settings import ModelSettings

if TYPE_CHECKING:
    from imdb_sentiment.pipeline.selection import CVResult

SELECTION_EXPERIMENT = "model-selection"

log = logging.getLogger(__name__)


def configure(settings: ModelSettings) -> None:
    """Point MLflow at the configured tracking server (the registry lives there too).

    Hosted servers such as DAGsHub read MLFLOW_TRACKING_USERNAME/PASSWORD from the
    environment themselves; nothing to pass here.
    """
    # The registry follows the tracking URI unless MLFLOW_REGISTRY_URI says otherwise.
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def log_selection(result: CVResult, params: Params) -> str:
    """One MLflow run per cross-validated variant (`imdb-sentiment select`); its run id."""
    mlflow.set_experiment(SELECTION_EXPERIMENT)
    with mlflow.start_run(run_name=result.name) as run:
        dumped = params.model_dump(mode="json", by_alias=True)
        for section in MODEL_SECTIONS:
            mlflow.log_params(flatten(section, dumped[section]))
        mlflow.log_metrics({"cv_accuracy": result.accuracy, "cv_std_error": result.std_error})
        mlflow.log_metrics({f"fold{i}_accuracy": a for i, a in enumerate(result.fold_accuracy)})
        mlflow.set_tags({"variant": result.name, "git_commit": git_commit() or "unknown"})
    return str(run.info.run_id)
