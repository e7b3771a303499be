"""deploy/kserve: a ServingRuntime for this image and an InferenceService on it, validated
against KServe's published resource schemas (the kserve SDK's generated models, in the tool venv
`make install-dev` builds), every annotation one KServe's controller reads, scaled the way its
HPA reconciler builds the HPA, and consistent with (and hardened like) the plain Deployment."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.project import ROOT
from tests.conftest import IN_CI, require_tool

KSERVE = ROOT / "deploy/kserve"
CHECK = Path(__file__).with_name("kserve_schema.py")
TOOL_PYTHON = ROOT / ".venv/tools-kserve/bin/python"
# The public annotation keys KServe's controller reads (pkg/constants/constants.go, each looked up
# in pkg/**.go outside tests) at kserve/kserve aaac4e2 (v0.20.0-rc0+104, Aug 2026), the source
# the SDK pinned in requirements/tools-kserve.txt is generated from. Not among them, though
# still declared as constants: serving.kserve.io/metrics and /targetUtilizationPercentage (unread
# since v0.15: the HPA takes the predictor's scaleMetric/scaleTarget or autoScaling).
KSERVE_READS = frozenset({
    "serving.kserve.io/autoscalerClass", "serving.kserve.io/deploymentMode",
    "serving.kserve.io/disable-auto-update", "serving.kserve.io/disable-localmodel",
    "serving.kserve.io/enable-metric-aggregation", "serving.kserve.io/enable-prometheus-scraping",
    "serving.kserve.io/enable-tag-routing", "serving.kserve.io/gke-accelerator",
    "serving.kserve.io/nodegroup", "serving.kserve.io/server-type", "serving.kserve.io/stop",
    "serving.kserve.io/exp-dra-cel-selector", "serving.kserve.io/exp-dra-container-name",
    "serving.kserve.io/exp-dra-device-class", "serving.kserve.io/exp-dra-device-count",
    "prometheus.kserve.io/path", "prometheus.kserve.io/port", "storage.kserve.io/readonly",
    "serving.knative.dev/rollout-duration",
})  # fmt: skip
# The values KServe takes for the two we set (constants.go: DeploymentModeType and
# AutoscalerClassType); RawDeployment is accepted too, a deprecated alias rewritten to Standard.
DEPLOYMENT_MODES = {"Standard", "Knative", "ModelMesh"}
AUTOSCALER_CLASSES = {"hpa", "external", "keda", "none"}
DEFAULT_CPU_UTILIZATION = 80  # constants.DefaultCPUUtilization


def manifest(name: str) -> dict[str, Any]:
    return yaml.safe_load((KSERVE / name).read_text())  # type: ignore[no-any-return,unused-ignore]


def kserve_python() -> str:
    if not TOOL_PYTHON.exists():
        if IN_CI:
            pytest.fail("the kserve tool venv is built by `make install-dev`")
        pytest.skip("no .venv/tools-kserve (make install-dev)")
    return str(TOOL_PYTHON)


def schema_errors(*paths: Path) -> tuple[int, str]:
    result = subprocess.run(
        [kserve_python(), str(CHECK), *map(str, paths)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr


def test_the_manifests_match_kserve_schemas() -> None:
    code, said = schema_errors(KSERVE / "servingruntime.yaml", KSERVE / "inferenceservice.yaml")
    assert code == 0, said


@pytest.mark.parametrize(
    ("name", "old", "new", "error"),
    [
        ("servingruntime.yaml", "protocolVersions:", "protocolVersion:", "unknown field"),
        ("servingruntime.yaml", "containerPort: 8080", 'containerPort: "8080"', "expected int"),
        ("inferenceservice.yaml", "      runtime: imdb-sentiment\n", "", None),
        ("inferenceservice.yaml", "minReplicas: 2", "minReplica: 2", "unknown field"),
    ],
)
def test_the_schema_check_rejects_a_broken_manifest(
    tmp_path: Path, name: str, old: str, new: str, error: str | None
) -> None:
    text = (KSERVE / name).read_text()
    assert old in text
    broken = tmp_path / name
    broken.write_text(text.replace(old, new))
    code, said = schema_errors(broken)
    if error is None:  # runtime is optional in the schema: KServe then picks one by format
        assert code == 0, said
        return
    assert code == 1 and error in said, said


def test_the_service_runs_on_the_runtime_it_names() -> None:
    runtime, service = manifest("servingruntime.yaml"), manifest("inferenceservice.yaml")
    model = service["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"] in [
        {"name": f["name"], "version": f["version"]}
        for f in runtime["spec"]["supportedModelFormats"]
    ]
    assert model["protocolVersion"] == "v2" and "v2" in runtime["spec"]["protocolVersions"]


def test_the_runtime_container_serves_oip_on_its_port(small_model: Any) -> None:
    from imdb_sentiment.serving.http.app import create_app
    from imdb_sentiment.serving.service_settings import load_settings

    (container,) = manifest("servingruntime.yaml")["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    port = container["ports"][0]["containerPort"]
    assert env["PORT"] == str(port) == "8080"  # KServe's convention
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": port}
    routes = {
        rule.rule
        for rule in create_app(
            load_settings(database_url=""), model=small_model
        ).url_map.iter_rules()
    }
    assert "/v2/health/ready" in routes and "/v2/models/<name>/infer" in routes
    service = manifest("inferenceservice.yaml")
    assert service["metadata"]["name"] == env["MODEL_NAME"]  # /v2/models/<its name>/infer


def test_the_runtime_has_the_deployments_settings() -> None:
    (container,) = manifest("servingruntime.yaml")["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    config = dict(
        line.split("=", 1)
        for line in (ROOT / "deploy/k8s/base/config.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for key, value in config.items():
        if key != "PORT":
            assert env.get(key) == value, (key, env.get(key), value)
    secrets = {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
    assert secrets == {"imdb-sentiment-database"}  # the shared prediction store
    assert env["DATABASE_MIGRATE"] == "off"  # the release step migrates, never these pods


def deployment() -> dict[str, Any]:
    from tests.integration.test_deploy import render

    return next(d for d in render("prod") if d["kind"] == "Deployment")


def test_every_annotation_is_one_kserve_reads() -> None:
    service, runtime = manifest("inferenceservice.yaml"), manifest("servingruntime.yaml")
    keys = {**service["metadata"].get("annotations", {}), **runtime["spec"].get("annotations", {})}
    ours = {k for k in keys if "kserve.io/" in k or "knative" in k}
    assert ours and ours <= KSERVE_READS, ours - KSERVE_READS
    annotations = service["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] in DEPLOYMENT_MODES  # not the alias
    assert annotations["serving.kserve.io/autoscalerClass"] in AUTOSCALER_CLASSES
    # ...and the check catches what the files said before.
    for stale in ("serving.kserve.io/metric", "serving.kserve.io/targetUtilizationPercentage"):
        assert stale not in KSERVE_READS


def kserve_hpa_target(predictor: dict[str, Any]) -> tuple[str, int | None]:
    """The HPA metric KServe creates for a predictor (hpa_reconciler.go, getHPAMetrics):
    autoScaling.metrics if given, else scaleMetric (default cpu) at scaleTarget (default 80 %
    for cpu, none for memory)."""
    scaling = predictor.get("autoScaling")
    if scaling is not None:
        resource = next(m["resource"] for m in scaling["metrics"] if m.get("resource"))
        utilization = resource.get("target", {}).get("averageUtilization")
        if resource["name"] == "cpu" and utilization is None:
            utilization = DEFAULT_CPU_UTILIZATION
        return resource["name"], utilization
    metric = predictor.get("scaleMetric", "cpu")
    target = predictor.get("scaleTarget")
    if metric == "cpu" and target is None:
        target = DEFAULT_CPU_UTILIZATION
    return metric, target


def test_kserve_scales_like_the_deployments_hpa() -> None:
    from tests.integration.test_deploy import render

    hpa = next(d for d in render("prod") if d["kind"] == "HorizontalPodAutoscaler")["spec"]
    (metric,) = hpa["metrics"]
    predictor = manifest("inferenceservice.yaml")["spec"]["predictor"]
    assert kserve_hpa_target(predictor) == (
        metric["resource"]["name"], metric["resource"]["target"]["averageUtilization"]
    )  # fmt: skip
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (
        hpa["minReplicas"], hpa["maxReplicas"]
    )  # fmt: skip
    # The annotations of before left KServe at its default.
    assert kserve_hpa_target({}) == ("cpu", DEFAULT_CPU_UTILIZATION)


def test_the_runtime_is_hardened_like_the_deployment() -> None:
    pod = deployment()["spec"]["template"]["spec"]
    ours = pod["containers"][0]
    (container,) = manifest("servingruntime.yaml")["spec"]["containers"]
    predictor = manifest("inferenceservice.yaml")["spec"]["predictor"]
    assert predictor["securityContext"] == pod["securityContext"]
    assert container["securityContext"] == {
        **ours["securityContext"], "seccompProfile": {"type": "RuntimeDefault"}
    }  # fmt: skip
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    for key in ("automountServiceAccountToken", "terminationGracePeriodSeconds",
                "serviceAccountName"):  # fmt: skip
        assert predictor[key] == pod[key], key
    # Probes: the same budgets; a startup probe before liveness begins.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        theirs, mine = dict(container[probe]), dict(ours[probe])
        for p in (theirs, mine):
            for kind in ("httpGet", "tcpSocket"):
                p.pop(kind, None)
        assert theirs == mine, probe
    assert container["startupProbe"]["httpGet"]["path"] == ours["startupProbe"]["httpGet"]["path"]
    assert container["resources"] == ours["resources"]
    # Every writable path and the token digests, where the Deployment has them.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {m["name"]: m["mountPath"] for m in ours["volumeMounts"]}
    volumes = {v["name"]: v for v in manifest("servingruntime.yaml")["spec"]["volumes"]}
    assert volumes == {v["name"]: v for v in pod["volumes"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["API_TOKENS_FILE"].startswith(mounts["api-tokens"] + "/")


def test_the_runtime_image_is_pinned_by_digest(tmp_path: Path) -> None:
    """No mutable tag is committed; pinned as the release pins it, the runtime runs exactly
    those bytes (kustomize's image transformer reaches the ServingRuntime's containers)."""
    kubectl = require_tool("kubectl")
    kustomization = yaml.safe_load((KSERVE / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    assert "newTag" not in image and "digest" not in image
    copy = tmp_path / "kserve"
    shutil.copytree(KSERVE, copy)
    digest = "sha256:" + "ab" * 32
    kustomization["images"] = [{**image, "digest": digest}]  # kustomize edit set image …@sha256
    (copy / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    built = subprocess.run([kubectl, "kustomize", str(copy)], capture_output=True, text=True,
                           check=True).stdout  # fmt: skip
    runtime = next(d for d in yaml.safe_load_all(built) if d["kind"] == "ServingRuntime")
    assert runtime["spec"]["containers"][0]["image"] == f"{image['newName']}@{digest}"


def test_kustomize_builds_the_kserve_directory() -> None:
    kubectl = require_tool("kubectl")
    built = subprocess.run(
        [kubectl, "kustomize", str(KSERVE)], capture_output=True, text=True, check=True
    ).stdout
    kinds = [(d["kind"], d["metadata"]["namespace"]) for d in yaml.safe_load_all(built)]
    assert sorted(kinds) == [
        ("InferenceService", "imdb-sentiment"), ("ServingRuntime", "imdb-sentiment")
    ]  # fmt: skip


def kserve_service_ports(container: dict[str, Any]) -> list[dict[str, Any]]:
    """The Service ports KServe creates for a predictor container (service_reconciler.go,
    createDefaultSvc): the first port on 80, every other as is; a name with grpc or h2c in it
    gets appProtocol kubernetes.io/h2c."""
    ports = []
    for i, port in enumerate(container["ports"]):
        grpc = any(k in port.get("name", "") for k in ("grpc", "h2c"))
        ports.append({"name": port.get("name"), "port": 80 if i == 0 else port["containerPort"],
                      "targetPort": port["containerPort"],
                      "appProtocol": "kubernetes.io/h2c" if grpc else None})  # fmt: skip
    return ports


def test_kserve_publishes_the_grpc_front_as_http2() -> None:
    (container,) = manifest("servingruntime.yaml")["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    ports = kserve_service_ports(container)
    assert ports[0] == {"name": "http", "port": 80, "targetPort": int(env["PORT"]),
                        "appProtocol": None}  # fmt: skip
    assert {"name": "grpc", "port": int(env["GRPC_PORT"]), "targetPort": int(env["GRPC_PORT"]),
            "appProtocol": "kubernetes.io/h2c"} in ports  # fmt: skip
