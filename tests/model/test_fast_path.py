"""The service's fast scorer reproduces the registered pipeline on every test review."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from imdb_sentiment.runtime.compile import compile_pipeline
from imdb_sentiment.runtime.scorer_files import load_scorer, save_scorer

pytestmark = [pytest.mark.fulldata, pytest.mark.slow]


def test_fast_scorer_matches_pipeline_on_all_test_reviews(
    full_pipeline: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    project, env = full_pipeline
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    model = mlflow.sklearn.load_model("models:/imdb-sentiment@production")
    texts = pd.read_parquet(project / "data/raw/test.parquet").text.tolist()
    assert len(texts) == 25_000
    # What workers serve: compiled, saved to the model cache, loaded back without sklearn.
    save_scorer(compile_pipeline(model, 0.5), tmp_path / "scorer")
    scorer = load_scorer(tmp_path / "scorer")
    reference = model.predict_proba(texts)
    batched = scorer.predict_proba(texts)  # the batch path
    assert np.abs(batched - reference).max() <= 1e-9
    one_by_one = np.array([scorer.score(text).p_positive for text in texts])  # single requests
    assert np.abs(one_by_one - reference[:, 1]).max() <= 1e-9
