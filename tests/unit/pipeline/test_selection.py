"""Model selection: variants over params.yaml, cross-validation grouped by movie."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from imdb_sentiment.cli.main import app
from imdb_sentiment.core.config import Params
from imdb_sentiment.core.errors import ConfigError
from imdb_sentiment.pipeline.selection import CVResult, apply_variant, select
from imdb_sentiment.pipeline.train import group_folds
from tests.helpers import tiny_texts

BASE = {"features": {"max_features": None, "ngram_range": [1, 2]}, "train": {"C": 10.0}}


def test_variant_overrides_only_the_keys_it_names() -> None:
    params = apply_variant(BASE, "c", {"train": {"C": 3.0}, "clean": {"lemmatize": False}})
    assert params.train.C == 3.0 and params.clean.lemmatize is False
    assert params.features.ngram_range == (1, 2)  # kept from the base
    assert BASE["train"] == {"C": 10.0}  # the base is not modified


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"data": {"split": "random"}}, "may only set clean, features, train"),
        ({"train": 3}, "train must be a mapping"),
        ({"train": {"C": -1}}, r"variant 'v'.*train\.C"),
        ({"features": {"ngram": [1, 2]}}, r"features\.ngram"),
    ],
)
def test_bad_variants_are_rejected(override: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        apply_variant(BASE, "v", override)


def test_folds_never_split_a_movie() -> None:
    labels = np.array([0, 1] * 60)
    movies = np.array([f"tt{i // 6}" for i in range(120)])  # 20 movies
    folds = group_folds(labels, movies, folds=4, seed=0)
    seen = np.concatenate([held for _, held in folds])
    assert sorted(seen) == list(range(120))  # every review held out exactly once
    for fit, held in folds:
        assert not set(movies[fit]) & set(movies[held])


def test_select_scores_every_variant_on_the_same_folds() -> None:
    texts, labels = tiny_texts(120, seed=2)
    movies = np.array([f"tt{i // 4}" for i in range(120)])
    variants = {
        "nb": apply_variant(BASE, "nb", {"train": {"nb_weighting": True}}),
        "unigrams": apply_variant(BASE, "unigrams", {"features": {"ngram_range": [1, 1]}}),
    }
    logged: list[tuple[CVResult, Params]] = []

    def log(result: CVResult, params: Params) -> str:
        logged.append((result, params))
        return f"run-{len(logged)}"

    rows = select(variants, texts, np.array(labels), movies, folds=3, log=log)
    assert [row["variant"] for row in rows] == ["nb", "unigrams"]
    assert [row["run_id"] for row in rows] == ["run-1", "run-2"]
    for row, (result, params) in zip(rows, logged, strict=True):
        assert len(row["fold_accuracy"]) == 3
        assert row["cv_accuracy"] == pytest.approx(np.mean(row["fold_accuracy"]))
        assert row["cv_accuracy"] >= 0.9  # the generated reviews are easy
        assert params is variants[row["variant"]] and result.name == row["variant"]
    # Bigrams add columns: the vocabulary really is built from each variant's params.
    assert rows[0]["n_features"] > rows[1]["n_features"]


def test_select_command_logs_each_variant_to_mlflow(tmp_path: Path) -> None:
    texts, labels = tiny_texts(90, seed=4)
    raw = tmp_path / "raw"
    raw.mkdir()
    frame = pd.DataFrame(
        {"label": labels, "movie": [f"tt{i // 3}" for i in range(90)], "text": texts}
    )
    frame.to_parquet(raw / "train.parquet")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(BASE))
    variants = tmp_path / "variants.yaml"
    variants.write_text(yaml.safe_dump({"default": {}, "C-1": {"train": {"C": 1.0}}}))
    report = tmp_path / "selection.json"
    args = ["select", str(variants), "--data", str(raw), "--folds", "3", "--report", str(report)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "default" in result.output and "C-1" in result.output
    runs = mlflow.search_runs(experiment_names=["model-selection"], output_format="pandas")
    assert sorted(runs["tags.variant"]) == ["C-1", "default"]
    assert set(runs["params.train.C"]) == {"1.0", "10.0"}
    assert (runs["metrics.cv_accuracy"] > 0.8).all()
    assert "grouped_by" in report.read_text()


def test_select_command_rejects_unknown_variants(tmp_path: Path) -> None:
    variants = tmp_path / "variants.yaml"
    variants.write_text(yaml.safe_dump({"default": {}}))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(BASE))
    result = CliRunner().invoke(app, ["select", str(variants), "--only", "nope"])
    assert result.exit_code == 1
    assert "no such variant" in result.output and "Traceback" not in result.output
