"""MLflow wiring: tracking URI and run metadata. Called from jobs only, never at import."""

from __future__ import annotations

import logging
import subprocess

import mlflow

from imdb_sentiment.core.model_settings import ModelSettings

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
