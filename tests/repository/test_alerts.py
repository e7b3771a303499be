"""Alert rules against what the app really exports and what the manifests really run: bucket
bounds read from `serving.metrics`, budgets from the HPA and the ConfigMap."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from imdb_sentiment.serving.metrics import CONFIDENCE_BUCKETS, LATENCY_BUCKETS

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy/monitoring"
BUCKETS = {
    "app_request_latency_seconds_bucket": LATENCY_BUCKETS,
    "model_prediction_confidence_bucket": CONFIDENCE_BUCKETS,
}


def alerts() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}


def test_every_quantile_threshold_is_below_the_largest_exported_bucket() -> None:
    """histogram_quantile never exceeds the largest finite bucket: a threshold at or above it
    can never fire (HighBatchLatencyP99 at 2.5 s against a 2.5 s top bucket did not)."""
    checked = 0
    for name, rule in alerts().items():
        expr = rule["expr"]
        if "histogram_quantile" not in expr:
            continue
        metric = re.search(r"(\w+_bucket)\{", expr)
        threshold = re.search(r"\)\s*>\s*([\d.]+)\s*$", expr.strip())
        assert metric and threshold, name
        assert float(threshold[1]) < max(BUCKETS[metric[1]]), name
        checked += 1
    assert checked >= 2


def test_alert_unit_tests_feed_only_buckets_the_app_exports() -> None:
    tests = (MONITORING / "tests/alerts_test.yml").read_text()
    for metric, bounds in BUCKETS.items():
        exported = {f"{b:g}" for b in bounds} | {"+Inf"}
        fed = set(re.findall(rf'{metric}\{{[^}}]*le="([^"]+)"', tests))
        assert fed <= exported, f"{metric}: {sorted(fed - exported)} are not exported"
    for rule in alerts().values():
        for metric, bound in re.findall(r'(\w+_bucket)\{le="([^"]+)"', rule["expr"]):
            assert float(bound) in BUCKETS[metric], (metric, bound)


def test_no_scrape_job_that_target_down_covers_is_a_static_localhost() -> None:
    covered = re.search(r'job=~"([^"]+)"', alerts()["TargetDown"]["expr"])
    assert covered
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    for job in config["scrape_configs"]:
        if re.fullmatch(covered[1], job["job_name"]):
            targets = [t for c in job.get("static_configs", []) for t in c["targets"]]
            assert not any("localhost" in t or "127.0.0.1" in t for t in targets), job


def test_idle_dev_namespaces_page_nobody() -> None:
    assert 'namespace!~".*-dev"' in alerts()["NoTraffic"]["expr"]


def test_the_cost_budget_lies_above_the_hpa_minimum_and_below_its_maximum() -> None:
    base = ROOT / "deploy/k8s/base"
    hpa = yaml.safe_load((base / "hpa.yaml").read_text())["spec"]
    env = dict(
        line.split("=", 1)
        for line in (base / "config.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    prod = yaml.safe_load((ROOT / "deploy/k8s/overlays/prod/kustomization.yaml").read_text())
    max_replicas = next(
        op["value"]
        for patch in prod["patches"]
        for op in yaml.safe_load(patch["patch"])
        if op["path"] == "/spec/maxReplicas"
    )
    worker_hour = int(env["WORKERS"]) * float(env["INSTANCE_COST_PER_HOUR"])
    budget = float(re.search(r">\s*([\d.]+)", alerts()["CostOverBudget"]["expr"])[1])  # type: ignore[index]
    assert hpa["minReplicas"] * worker_hour < budget < max_replicas * worker_hour


def test_candidate_worse_in_shadow_tests_at_the_promotion_gates_alpha_and_pairs() -> None:
    """The alert's z threshold is the normal quantile of params.yaml's promote.live.alpha
    (two-sided) and its minimum pairs promote.live.min_pairs: one decision, two places."""
    from scipy.stats import norm

    from imdb_sentiment.core.config import load_params

    gate = load_params(ROOT / "params.yaml").promote.live
    expr = alerts()["CandidateWorseInShadow"]["expr"]
    z = re.search(r"\)\s*>\s*([\d.]+)\s*\n", expr)
    pairs = re.search(r"increase7d\)\s*>=\s*(\d+)", expr)
    assert z and pairs, expr
    assert float(z[1]) == round(float(norm.ppf(1 - gate.alpha / 2)), 2)
    assert int(pairs[1]) == gate.min_pairs
