"""A model registered by the release before the package was split into rooms still loads,
compiles and scores after the upgrade, exactly: its skops file names its estimators by the old
module paths (`imdb_sentiment.features.TextCleaner`, ...), which the registry sync accepts
(`model.legacy`). The old release's code registers the version and scores with it (a git
worktree of the commit before `model/features.py` was added); this release's sync then serves
it, and the probabilities agree to 1e-12."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from harness.project import run
from imdb_sentiment.core import tracking
from imdb_sentiment.runtime.cache import ModelCache
from imdb_sentiment.runtime.sync import RegistrySync
from imdb_sentiment.serving.service_settings import load_settings
from tests.git_history import release_before
from tests.helpers import tiny_texts

pytestmark = pytest.mark.slow
SPLIT = "src/imdb_sentiment/model/features.py"  # added when the root became rooms

OLD_SIDE = """
import json, sys
import mlflow
from mlflow import MlflowClient
from tests.unit.serving.test_model_store import publish
from imdb_sentiment.runtime.scorer import FastScorer
import imdb_sentiment.features as old_features  # the old layout, or this fails
texts = json.load(open(sys.argv[1]))
version = publish(seed=3)
model = mlflow.sklearn.load_model(f"models:/imdb-sentiment/{version}")
assert type(model.steps[0][1]).__module__ == "imdb_sentiment.features"
json.dump({"version": version,
           "proba": model.predict_proba(texts)[:, 1].tolist()}, open(sys.argv[2], "w"))
"""


@pytest.fixture
def release_before_rooms(tmp_path: Path) -> Iterator[Path]:
    with release_before(SPLIT, tmp_path / "before") as tree:
        yield tree


def test_a_version_registered_before_the_split_serves_the_same(
    release_before_rooms: Path, tmp_path: Path
) -> None:
    texts, _ = tiny_texts(300)
    texts += ["Ça m'a plu, 8/10 !", "<br />Not good... at ALL: http://x.y/z", "naïve café 😊"]
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    out = tmp_path / "old.json"
    env = {"PYTHONPATH": f"{release_before_rooms / 'src'}:{release_before_rooms}"}
    run(["python", "-c", OLD_SIDE, str(tmp_path / "texts.json"), str(out)], tmp_path, env)
    old = json.loads(out.read_text())

    settings = load_settings()  # the same registry (MLFLOW_TRACKING_URI of this test)
    tracking.configure(
        settings.model
    )  # as the sync process does (an earlier test may have set another)
    cache = ModelCache(settings.model.model_cache_dir, settings.model.model_name)
    pointer = RegistrySync(settings.model, cache).sync()  # downloads and compiles with today's code
    assert pointer.version == old["version"] is not None
    compiled = cache.compile_model(old["version"])  # loads the old skops file
    served = cache.load_scorer(old["version"])
    for scorer in (compiled, served):
        p = np.array([s.p_positive for s in scorer.score_batch(texts)])
        np.testing.assert_allclose(p, old["proba"], rtol=0, atol=1e-12)
