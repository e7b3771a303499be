"""deploy/kserve: a ServingRuntime for this image and an InferenceService on it, validated
against KServe's published resource schemas (the kserve SDK's generated models, in the tool venv
`make install-dev` builds) and consistent with the service and the plain Deployment's settings."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import IN_CI, require_tool
from tests.project import ROOT

KSERVE = ROOT / "deploy/kserve"
CHECK = Path(__file__).with_name("kserve_schema.py")
TOOL_PYTHON = ROOT / ".venv/tools-kserve/bin/python"
# Paths the Deployment mounts volumes at; the runtime keeps the image's writable defaults.
IMAGE_DEFAULTS = {"MODEL_CACHE_DIR", "PROMETHEUS_MULTIPROC_DIR"}


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
    from imdb_sentiment.serving.settings import load_settings

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
        if key in IMAGE_DEFAULTS or key == "PORT":
            assert key not in env or key == "PORT", key
            continue
        assert env.get(key) == value, (key, env.get(key), value)
    secrets = {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
    assert secrets == {"imdb-sentiment-database"}  # the shared prediction store


def test_kustomize_builds_the_kserve_directory() -> None:
    kubectl = require_tool("kubectl")
    built = subprocess.run(
        [kubectl, "kustomize", str(KSERVE)], capture_output=True, text=True, check=True
    ).stdout
    kinds = [(d["kind"], d["metadata"]["namespace"]) for d in yaml.safe_load_all(built)]
    assert sorted(kinds) == [
        ("InferenceService", "imdb-sentiment"), ("ServingRuntime", "imdb-sentiment")
    ]  # fmt: skip
