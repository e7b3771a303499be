"""The release path's guarantees, read from the workflows themselves: one concurrency group for
everything that changes production, rollback on main only and to the last release recorded as
healthy, deploy by digest from an immutable repository, the Secrets every overlay's pods need
created in its namespace, and zizmor (GitHub Actions security lint) clean."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.test_deploy import OVERLAYS, render
from tests.project import ROOT

WORKFLOWS = ROOT / ".github/workflows"
PRODUCTION_JOBS = ("release", "image", "deploy", "rollback")


def jobs(name: str = "ci.yaml") -> dict[str, Any]:
    return dict(yaml.safe_load((WORKFLOWS / name).read_text())["jobs"])


def script(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in job["steps"])


def test_one_concurrency_group_serialises_push_retrain_and_rollback() -> None:
    ci = jobs()
    groups = {name: ci[name].get("concurrency") for name in PRODUCTION_JOBS}
    assert all(g is not None for g in groups.values()), groups
    assert len({g["group"] for g in groups.values()}) == 1, groups
    assert "${{" not in groups["deploy"]["group"]  # the same string from any caller or ref
    assert all(g["cancel-in-progress"] is False for g in groups.values())
    # retrain.yaml releases only through ci.yaml's jobs, so through the same group.
    retrain = jobs("retrain.yaml")["retrain"]
    assert retrain["uses"].endswith(".github/workflows/ci.yaml")


def test_rollback_is_main_only_and_returns_to_the_recorded_healthy_release() -> None:
    ci = jobs()
    rollback, deploy = ci["rollback"], ci["deploy"]
    assert "github.ref == 'refs/heads/main'" in rollback["if"]
    body = script(rollback)
    assert "rollout undo" not in body  # "previous revision" may be the failed one
    assert "configmap imdb-sentiment-releases" in body and "{.data.previous}" in body
    assert "kustomize edit set image" in body and "promote --version" in body
    # Recorded by deploy only after its rollout succeeded and production was promoted.
    names = [step.get("name", "") for step in deploy["steps"]]
    record = next(i for i, n in enumerate(names) if n.startswith("Record the release"))
    promote = next(i for i, n in enumerate(names) if n.startswith("Production alias"))
    rollout = next(i for i, n in enumerate(names) if n.startswith("Wait for the rollout"))
    assert rollout < promote < record
    assert 'current="$IMAGE $VERSION"' in deploy["steps"][record]["run"]


def test_images_are_deployed_by_digest_from_an_immutable_repository() -> None:
    ci = jobs()
    image = ci["image"]
    assert "@$DIGEST" in script(image) and "--image-tag-mutability IMMUTABLE" in script(image)
    digest = next(s for s in image["steps"] if s.get("id") == "digest")
    assert digest["env"]["DIGEST"] == "${{ steps.build.outputs.digest }}"
    assert image["outputs"]["image"] == "${{ steps.digest.outputs.image }}"
    assert ci["deploy"]["env"]["IMAGE"] == "${{ needs.image.outputs.image }}"
    assert 'kustomize edit set image "imdb-sentiment=$IMAGE"' in script(ci["deploy"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_secret_an_overlay_needs_is_created_in_its_namespace(overlay: str) -> None:
    deployment = next(d for d in render(overlay) if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    needed = {e["secretRef"]["name"] for e in container["envFrom"] if "secretRef" in e}
    needed |= {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    needed |= {
        v["secret"]["secretName"]
        for v in deployment["spec"]["template"]["spec"]["volumes"]
        if "secret" in v
    }
    deploy = jobs()["deploy"]
    body = script(deploy)
    namespaces = re.search(r'for ns in ((?:"[^"]+" ?)+); do', body)
    assert namespaces, "the deploy job creates the Secrets in a loop over namespaces"
    prod = yaml.safe_load((WORKFLOWS / "ci.yaml").read_text())["env"]["NAMESPACE"]
    created_in = {n.strip('"').replace("$NAMESPACE", prod) for n in namespaces[1].split()}
    assert deployment["metadata"]["namespace"] in created_in
    created = set(re.findall(r'kubectl -n "\$ns" create secret generic ([\w-]+)', body))
    assert needed <= created, needed - created


def test_zizmor_finds_nothing() -> None:
    zizmor = Path(sys.executable).parent / "zizmor"
    assert zizmor.exists(), "zizmor is a pinned dev dependency (make install-dev)"
    result = subprocess.run(
        [str(zizmor), "--offline", str(WORKFLOWS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr
