"""The retraining loop: retrain.yaml's drift step, run here as written on a prediction store the
service wrote (DATABASE_URL as the workflow's secret gives it), and the release path it calls in
ci.yaml."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from harness.project import ROOT, bin_dir
from imdb_sentiment.serving.http.app import create_app
from imdb_sentiment.serving.http.context import service_of
from imdb_sentiment.serving.service_settings import load_settings
from imdb_sentiment.store.migrate import upgrade
from tests.helpers import review_text
from tests.integration.test_deploy import actionlint
from tests.unit.serving.test_live_model import publish

WORKFLOWS = ROOT / ".github" / "workflows"


def flow(name: str) -> dict[Any, Any]:
    return dict(yaml.safe_load((WORKFLOWS / name).read_text()))


def drift_step() -> str:
    steps = flow("retrain.yaml")["jobs"]["drift"]["steps"]
    return str(next(s for s in steps if s.get("id") == "check")["run"])


def reviews(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [review_text(i % 2, rng) for i in range(n)]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """What the drift job's checkout holds by the check: params.yaml, the reference split and a
    venv; the prediction store is written by the service itself (`log_predictions`)."""
    publish(seed=1)
    work = tmp_path / "work"
    (work / "data" / "raw").mkdir(parents=True)
    shutil.copy(ROOT / "params.yaml", work / "params.yaml")
    (work / ".venv").symlink_to(bin_dir().parent)
    pd.DataFrame({"text": reviews(3000, seed=11)}).to_parquet(work / "data/raw/test.parquet")
    return work


def store_url(work: Path) -> str:
    return f"sqlite:///{work.parent / 'store' / 'predictions.db'}"


def log_predictions(work: Path, texts: list[str]) -> None:
    url = store_url(work)
    upgrade(url)
    app = create_app(load_settings(database_url=url))  # serves the registered production model
    client = app.test_client()
    for start in range(0, len(texts), 4):
        assert (
            client.post("/api/v1/predict", json={"texts": texts[start : start + 4]}).status_code
            == 200
        )
    service_of(app).close()


def run_check(work: Path) -> tuple[int, dict[str, str]]:
    output = work / "github_output"
    output.write_text("")
    env = {"PATH": "/usr/bin:/bin", "SINCE_HOURS": "168", "GITHUB_OUTPUT": str(output),
           "DATABASE_URL": store_url(work)}  # fmt: skip
    env |= {k: v for k, v in os.environ.items() if k.startswith(("MLFLOW", "MODEL"))}
    done = subprocess.run(
        ["bash", "-e", "-c", drift_step()], cwd=work, env=env, capture_output=True, text=True
    )
    values = dict(line.split("=", 1) for line in output.read_text().splitlines())
    return done.returncode, values


def test_same_distribution_predictions_do_not_retrain(workspace: Path) -> None:
    log_predictions(workspace, reviews(600, seed=12))
    code, outputs = run_check(workspace)
    assert code == 0 and outputs == {"drifted": "false"}
    assert (workspace / "reports/drift/drift.html").exists()


def test_drifted_predictions_trigger_the_release_path(workspace: Path) -> None:
    log_predictions(workspace, [t.split(".")[0] + "." for t in reviews(600, seed=13)])
    code, outputs = run_check(workspace)
    assert code == 0 and outputs == {"drifted": "true"}
    summary = json.loads((workspace / "reports/drift/drift.json").read_text())
    assert summary["drift"] and summary["context"]["stored model versions"] == "1"


def test_no_verdict_fails_the_job_and_releases_nothing(workspace: Path) -> None:
    log_predictions(workspace, reviews(40, seed=14))  # below drift.min_rows
    code, outputs = run_check(workspace)
    assert code == 2 and outputs == {}


def test_the_retrain_job_is_the_release_path_and_only_on_drift() -> None:
    jobs = flow("retrain.yaml")["jobs"]
    retrain = jobs["retrain"]
    assert retrain["uses"] == "./.github/workflows/ci.yaml"
    assert retrain["with"] == {"retrain": True} and retrain["needs"] == "drift"
    assert retrain["if"] == "needs.drift.outputs.drifted == 'true'"
    ci = flow("ci.yaml")
    triggers = ci.get(True) or ci["on"]
    assert "retrain" in triggers["workflow_call"]["inputs"]
    release = ci["jobs"]["release"]["if"]
    assert "github.ref == 'refs/heads/main'" in release and "inputs.retrain" in release
    # The gate still decides: the release job gates, deploy promotes only after the rollout.
    assert "promote --check-only" in json.dumps(ci["jobs"]["release"])


@pytest.mark.parametrize("name", ["ci.yaml", "retrain.yaml", "rollback.yaml"])
def test_workflows_are_actionlint_clean(name: str) -> None:
    result = actionlint(WORKFLOWS / name)
    assert result.returncode == 0, result.stdout + result.stderr
