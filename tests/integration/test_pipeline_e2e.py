"""The whole DVC pipeline, end to end, on a small generated archive in the official layout."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from harness.project import make_project, run, stages_run, update_params
from tests.helpers import review_files, write_archive

pytestmark = pytest.mark.slow

SMALL = {
    "data": {"expected_per_label": 40},
    "features": {"min_df": 1},
    "train": {"val_size": 0.25},
    "promote": {"min_accuracy": 0.5},
}
ALL_STAGES = ["ingest", "validate", "featurize", "train", "evaluate", "register"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    base = tmp_path_factory.mktemp("e2e")
    archive = write_archive(base / "aclImdb_v1.tar.gz", review_files(per_label=40, seed=4))
    env = {"IMDB_SOURCE": str(archive), "MLFLOW_TRACKING_URI": f"sqlite:///{base / 'mlflow.db'}"}
    path = make_project(base / "project", SMALL)
    result = run(["dvc", "repro"], path, env)
    assert stages_run(result.stdout) == ALL_STAGES
    run(["imdb-sentiment", "promote"], path, env)
    return path, env


def test_outputs_and_metrics(project: tuple[Path, dict[str, str]]) -> None:
    path, _ = project
    for name in [
        "data/raw/train.parquet",
        "data/raw/test.parquet",
        "data/features/train/part-00000.npz",
        "data/features/test/part-00000.npz",
        "models/model.joblib",
        "reports/data_validation.json",
        "reports/train.json",
        "reports/plots/roc_curve.png",
        "reports/plots/confusion.json",
    ]:
        assert (path / name).exists(), name
    metrics = json.loads((path / "reports/metrics.json").read_text())
    assert {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "brier"} <= set(metrics)
    assert metrics["accuracy"] >= 0.9


def test_production_alias_loads_with_pyfunc_and_scores(
    project: tuple[Path, dict[str, str]],
) -> None:
    _, env = project
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    version = MlflowClient().get_model_version_by_alias("imdb-sentiment", "production")
    assert str(version.version) == "1"
    model = mlflow.pyfunc.load_model("models:/imdb-sentiment@production")
    proba = np.asarray(
        model.predict(["Wonderful, brilliant film, loved it!", "Awful, boring waste."])
    )
    assert proba[0, 1] > 0.5 > proba[1, 1]
    assert version.run_id is not None
    run_ = MlflowClient().get_run(version.run_id)
    assert {"test_accuracy", "test_roc_auc", "val_accuracy"} <= set(run_.data.metrics)
    assert run_.data.params["train.C"]
    artifacts = {a.path for a in MlflowClient().list_artifacts(version.run_id, "reports")}
    assert "reports/roc_curve.png" in artifacts and "reports/metrics.json" in artifacts


def test_second_repro_is_a_no_op(project: tuple[Path, dict[str, str]]) -> None:
    path, env = project
    result = run(["dvc", "repro"], path, env)
    assert stages_run(result.stdout) == []
    assert "Data and pipelines are up to date" in result.stdout


def test_classifier_change_skips_ingest_and_featurize(project: tuple[Path, dict[str, str]]) -> None:
    path, env = project
    update_params(path, {"train": {"C": 3.0}})
    result = run(["dvc", "repro"], path, env)
    assert stages_run(result.stdout) == ["train", "evaluate", "register"]


def test_dvc_exp_run_with_set_param(project: tuple[Path, dict[str, str]]) -> None:
    path, env = project
    run(["git", "add", "-A"], path)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "C=3"], path)
    result = run(["dvc", "exp", "run", "-S", "train.C=0.5"], path, env)
    assert "train" in stages_run(result.stdout) and "featurize" not in stages_run(result.stdout)
    shown = run(["dvc", "exp", "show", "--json"], path, env).stdout
    assert "0.5" in shown


def test_local_remote_push_and_pull(project: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    path, env = project
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "-f", "--local", "-d", "scratch", str(remote)], path, env)
    run(["dvc", "push"], path, env)
    assert any(remote.rglob("*"))
    (path / "models/model.joblib").unlink()
    run(["dvc", "cache", "dir", "--local", str(tmp_path / "empty-cache")], path, env)
    run(["dvc", "pull"], path, env)
    assert (path / "models/model.joblib").stat().st_size > 0
