"""Promotion on live evidence, end to end: two instances of the real service (gunicorn, their
sync sidecars) on one real PostgreSQL server shadow the staged candidate on every request while
serving production; feedback, sent to the instance that did *not* answer, labels a few hundred
real IMDB test reviews; `imdb-sentiment shadow report` counts the discordant pairs as a
direct computation with both models does, its p-value is scipy's exact binomial test on them,
and `imdb-sentiment promote` refuses a worse candidate and accepts a better one — the responses
equal to production's scorer throughout."""

from __future__ import annotations

import json
import random
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from mlflow import MlflowClient
from prometheus_client.parser import text_string_to_metric_families
from scipy.stats import binomtest
from sklearn.pipeline import Pipeline

from harness.postgres import PostgresServer
from harness.project import ROOT, run
from harness.server import Pod
from imdb_sentiment.core.config import FeatureParams
from imdb_sentiment.core.evidence import outcome
from imdb_sentiment.model.classifier import NBLogisticRegression
from imdb_sentiment.model.features import build_featurizer
from imdb_sentiment.runtime.cache import ModelCache
from tests.conftest import FULL_DATA_SOURCE, IN_CI
from tests.helpers import SEED_CLEANING
from tests.unit.serving.test_live_model import publish

pytestmark = pytest.mark.slow
NAME = "imdb-sentiment"


def reviews(source: str, per_bucket: int) -> dict[str, list[tuple[str, str]]]:
    """The first `per_bucket` reviews of train/pos, train/neg, test/pos, test/neg."""
    found: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}
    counts: dict[tuple[str, str], int] = {}
    with tarfile.open(source, "r:gz") as archive:
        for member in archive:
            parts = member.name.split("/")
            if len(parts) != 4 or parts[2] not in ("pos", "neg") or not member.isfile():
                continue
            key = (parts[1], parts[2])
            if parts[1] not in found or counts.get(key, 0) >= per_bucket:
                continue
            data = archive.extractfile(member)
            assert data is not None
            label = "positive" if parts[2] == "pos" else "negative"
            found[parts[1]].append((data.read().decode("utf-8"), label))
            counts[key] = counts.get(key, 0) + 1
            if len(counts) == 4 and min(counts.values()) >= per_bucket:
                break
    return found


def trained(train: list[tuple[str, str]], flip: float, seed: int) -> Pipeline:
    """NB-LR on real reviews, with a share `flip` of the labels inverted."""
    rng = random.Random(seed)
    texts = [t for t, _ in train]
    labels = [int(label == "positive") ^ (rng.random() < flip) for _, label in train]
    featurizer = build_featurizer(SEED_CLEANING, FeatureParams(max_features=None,
                                                                ngram_range=(1, 2)))  # fmt: skip
    x = featurizer.fit_transform(texts)
    clf = NBLogisticRegression(C=1.0).fit(x, np.array(labels))
    return Pipeline([*featurizer.steps, ("clf", clf)])


def wait_for_shadow(pod: Pod, version: str) -> None:
    """Until every live worker of the pod shadows `version` (`/version` is one worker's
    answer; `shadow_model_info` keeps an old version at 1 while any worker still has it)."""
    deadline = time.monotonic() + 60
    while True:
        text = requests.get(f"{pod.url}/metrics", timeout=10).text
        loaded = {
            s.labels["version"]
            for family in text_string_to_metric_families(text)
            if family.name == "shadow_model_info"
            for s in family.samples
            if s.value == 1
        }
        if loaded == {version}:
            return
        assert time.monotonic() < deadline, f"the workers shadow {loaded}, never only {version}"
        time.sleep(0.2)


def serve_and_label(pods: list[Pod], items: list[tuple[str, str]], production: str) -> None:
    """Predict every review (batches of 25, the pods in turn), check each answer is
    production's, label it through the other pod."""
    scorer = ModelCache(pods[0].home / "model-cache", NAME).load_scorer(production)
    for number, start in enumerate(range(0, len(items), 25)):
        answering, labelling = pods[number % 2], pods[(number + 1) % 2]
        batch = items[start : start + 25]
        texts = [t for t, _ in batch]
        answer = requests.post(f"{answering.url}/api/v1/predict", json={"texts": texts},
                               timeout=30)  # fmt: skip
        assert answer.status_code == 200, answer.text
        got = answer.json()["predictions"]
        assert {p["model"]["version"] for p in got} == {production}
        expected = [round(s.p_positive, 6) for s in scorer.score_batch(texts)]
        assert [p["scores"]["positive"] for p in got] == expected  # production's, exactly
        request_id = answer.headers["X-Request-ID"]
        for item, (_, label) in enumerate(batch):
            body = {"request_id": request_id, "item": item, "label": label}
            for _ in range(100):  # 404 until the answering pod's spool reaches the database
                labelled = requests.post(f"{labelling.url}/api/v1/feedback", json=body,
                                         timeout=10)  # fmt: skip
                if labelled.status_code not in (404, 503):
                    break
                time.sleep(0.1)
            assert labelled.status_code == 201, labelled.text


def direct_pairs(pod: Pod, items: list[tuple[str, str]], production: str,
                 candidate: str) -> dict[str, int]:  # fmt: skip
    cache = ModelCache(pod.home / "model-cache", NAME)
    texts = [t for t, _ in items]
    prod = cache.load_scorer(production).score_batch(texts)
    cand = cache.load_scorer(candidate).score_batch(texts)
    pairs: dict[str, int] = dict.fromkeys(
        ("both_right", "both_wrong", "production_only", "candidate_only"), 0
    )
    for p, c, (_, actual) in zip(prod, cand, items, strict=True):
        pairs[outcome(p.label, c.label, actual)] += 1
    return pairs


def report(pod: Pod, env: dict[str, str], candidate: str) -> dict[str, object]:
    out = pod.home / f"report-{candidate}"
    run(["imdb-sentiment", "shadow", "report", "--out", str(out)], ROOT, env)
    assert "McNemar exact p-value" in (out / "shadow.html").read_text()
    body = json.loads((out / "shadow.json").read_text())
    [found] = [c for c in body["comparisons"] if c["candidate_version"] == candidate]
    return dict(found)


@dataclass
class LiveSetup:
    """Two pods on one real PostgreSQL: production and a staged candidate, real reviews."""

    env: dict[str, str]
    registry: str
    pods: list[Pod]
    production: str
    candidate: str
    train: list[tuple[str, str]]
    test: list[tuple[str, str]]

    def unpack(self) -> tuple[Any, ...]:
        """env, registry, pods, train, test, production, candidate."""
        return (self.env, self.registry, self.pods, self.train, self.test, self.production,
                self.candidate)  # fmt: skip


def live_setup(tmp_path: Path, postgres: PostgresServer, flips: tuple[float, float], seed: int,
               **serving: str) -> LiveSetup:  # fmt: skip
    """Real reviews (or a skip off CI), a migrated store, a production model and a staged one
    trained on labels flipped at the given rates, and two started pods shadowing it."""
    if not FULL_DATA_SOURCE:
        if IN_CI:
            pytest.fail("CI must set IMDB_SOURCE to the real archive")
        pytest.skip("IMDB_SOURCE not set: this test labels real reviews")
    data = reviews(FULL_DATA_SOURCE, per_bucket=1000)
    train, test = data["train"], data["test"]
    random.Random(seed).shuffle(test)
    registry = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {"MLFLOW_TRACKING_URI": registry, "DATABASE_URL": postgres.new_database()}
    run(["imdb-sentiment", "db", "upgrade"], ROOT, env)  # the release step
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", registry)
        production = publish(0, model=trained(train, flip=flips[0], seed=1))
        candidate = publish(0, alias="staging", model=trained(train, flip=flips[1], seed=2))
    # No shadow budget: these tests count every shadowed pair, and on a loaded machine 25
    # reviews can cost the candidate over the 50 ms default, which leaves requests unshadowed
    # as designed (tests/unit/serving/test_scoring_shadow.py) and the counts short.
    settings = {**env, "SHADOW_SAMPLE": "1.0", "SHADOW_BUDGET_MS": "0",
                "MODEL_RELOAD_INTERVAL": "0.5", "DATABASE_MIGRATE": "off", **serving}  # fmt: skip
    pods = [Pod(tmp_path / name, settings) for name in ("pod-a", "pod-b")]
    for pod in pods:
        pod.start()
    return LiveSetup(env, registry, pods, production, candidate, train, test)


def test_promotion_follows_the_live_evidence(tmp_path: Path, postgres: PostgresServer) -> None:
    setup = live_setup(tmp_path, postgres, (0.35, 0.65), seed=0, PREDICTION_LOG_TEXT="true")
    env, registry, pods, train, test, production, worse = setup.unpack()
    pod = pods[0]
    try:
        # A worse candidate: refused on live evidence although offline it looks as good.
        for each in pods:
            wait_for_shadow(each, worse)
        serve_and_label(pods, test[:300], production)
        found = report(pod, env, worse)
        direct = direct_pairs(pod, test[:300], production, worse)
        evidence = found["evidence"]
        assert isinstance(evidence, dict)
        assert {k: evidence[k] for k in direct} == direct
        b, c = direct["production_only"], direct["candidate_only"]
        assert evidence["p_value"] == pytest.approx(binomtest(c, b + c, 0.5).pvalue, rel=1e-9)
        assert evidence["verdict"] == "worse" and found["shadowed"] == 300
        refused = run(["imdb-sentiment", "promote"], ROOT, env, check=False)
        assert refused.returncode != 0 and "significantly worse" in refused.stderr, refused
        client = MlflowClient(registry)
        assert str(client.get_model_version_by_alias(NAME, "production").version) == production

        # A better candidate: promoted on live evidence although offline it is outside the
        # tolerance (0.85 against production's 0.90).
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_URI", registry)
            better = publish(0, alias="staging", metrics={"test_accuracy": 0.85},
                             model=trained(train, flip=0.0, seed=3))  # fmt: skip
        for each in pods:
            wait_for_shadow(each, better)
        serve_and_label(pods, test[300:600], production)
        found = report(pod, env, better)
        direct = direct_pairs(pod, test[300:600], production, better)
        evidence = found["evidence"]
        assert isinstance(evidence, dict)
        assert {k: evidence[k] for k in direct} == direct and evidence["verdict"] == "better"
        accepted = run(["imdb-sentiment", "promote"], ROOT, env)
        assert "better" in accepted.stdout, accepted.stdout
        assert str(client.get_model_version_by_alias(NAME, "production").version) == better
    finally:
        assert [each.stop() for each in pods] == [0, 0]


def test_evidence_that_cannot_be_read_in_time_is_an_error_never_a_fallback(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    """The gate reads the live evidence under its own statement timeout; a store that does not
    answer in it fails the gate with one line (the offline gate does not silently decide)."""
    from sqlalchemy import create_engine, text

    registry = f"sqlite:///{tmp_path / 'mlflow.db'}"
    url = postgres.new_database()
    env = {"MLFLOW_TRACKING_URI": registry, "DATABASE_URL": url,
           "DATABASE_EVIDENCE_STATEMENT_TIMEOUT_S": "1"}  # fmt: skip
    run(["imdb-sentiment", "db", "upgrade"], ROOT, env)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", registry)
        publish(1)
        publish(2, alias="staging")
    holder = create_engine(url).connect()
    try:
        holder.execute(text("LOCK TABLE predictions IN ACCESS EXCLUSIVE MODE"))
        refused = run(["imdb-sentiment", "promote", "--check-only"], ROOT, env, check=False)
    finally:
        holder.rollback()
        holder.close()
    assert refused.returncode == 1, refused
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot read the live evidence") and "Traceback" not in last
    # Without any store (no DATABASE_URL), the offline gate decides, and says so.
    alone = run(["imdb-sentiment", "promote", "--check-only"], ROOT, {**env, "DATABASE_URL": ""})
    assert "the offline gate decides" in alone.stderr


def when_ready_command() -> list[str]:
    """promote.yaml's decision, as its `decide` job runs it (the staged version substituted)."""
    import shlex

    import yaml

    flow = (ROOT / ".github/workflows/promote.yaml").read_text()
    decide = yaml.safe_load(flow)["jobs"]["decide"]
    body = "\n".join(str(s.get("run", "")) for s in decide["steps"])
    line = next(x for x in body.splitlines() if "promote --when-ready" in x)
    command = line.split("$(", 1)[1].rsplit(")", 1)[0]
    return [w.removeprefix(".venv/bin/") for w in shlex.split(command)]


def test_the_scheduled_path_promotes_a_better_candidate_and_withdraws_a_worse_one(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    """Two instances on one real PostgreSQL, real IMDB test reviews as traffic and their labels
    through feedback: promote.yaml's own decision command, run as the hourly job would after
    each batch of traffic, withdraws a worse candidate (production stops shadowing it) and
    promotes a better one, whose alias then moves as the deploy job moves it — nobody decides."""
    setup = live_setup(tmp_path, postgres, (0.30, 0.60), seed=1)
    env, registry, pods, train, test, production, worse = setup.unpack()
    decide = when_ready_command()
    client = MlflowClient(registry)

    def hourly(version: str, items: list[tuple[str, str]]) -> str:
        """Traffic in batches; the scheduled decision after each, until it is not `wait`."""
        for start in range(0, len(items), 50):
            serve_and_label(pods, items[start : start + 50], production)
            said = run([*decide[:-1], version], ROOT, env)
            if said.stdout.split()[0] != "wait":
                print(f"\nafter {start + 50} labelled reviews: {said.stderr.strip()}")
                return said.stdout.split()[0]
        return "wait"

    try:
        for each in pods:
            wait_for_shadow(each, worse)
        assert hourly(worse, test[:600]) == "withdraw"
        with pytest.raises(Exception, match="alias"):
            client.get_model_version_by_alias(NAME, "staging")
        for each in pods:
            wait_for_shadow_none(each)  # production stopped shadowing the withdrawn one
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_URI", registry)
            better = publish(0, alias="staging", model=trained(train, flip=0.0, seed=3))
        for each in pods:
            wait_for_shadow(each, better)
        assert hourly(better, test[600:1400]) == "promote"
        # `shadow report` shows the same running decision, and the boundary it crossed.
        found = report(pods[0], env, better)
        sequential = found["sequential"]
        assert isinstance(sequential, dict) and sequential["decision"] == "promote"
        plot = pods[0].home / f"report-{better}" / str(sequential["plot"])
        assert plot.read_bytes().startswith(b"\x89PNG")
        # The deploy job, after its rollout: only the alias moves, to what it deployed.
        run(["imdb-sentiment", "promote", "--version", better, "--force"], ROOT, env)
        assert str(client.get_model_version_by_alias(NAME, "production").version) == better
    finally:
        assert [each.stop() for each in pods] == [0, 0]


def wait_for_shadow_none(pod: Pod) -> None:
    deadline = time.monotonic() + 60
    while True:
        text = requests.get(f"{pod.url}/metrics", timeout=10).text
        loaded = {
            s.labels["version"]
            for family in text_string_to_metric_families(text)
            if family.name == "shadow_model_info"
            for s in family.samples
            if s.value == 1
        }
        if not loaded:
            return
        assert time.monotonic() < deadline, f"the workers still shadow {loaded}"
        time.sleep(0.2)
