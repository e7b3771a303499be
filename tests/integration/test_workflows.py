"""The release path's guarantees, read from the workflows themselves: one concurrency group for
everything that changes production, rollback on main only and to the last release recorded as
healthy, deploy by digest from an immutable repository, the Secrets every overlay's pods need
created in its namespace, and zizmor (GitHub Actions security lint) clean."""

from __future__ import annotations

import json
import os
import re
import shutil
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


def run_step(step: dict[str, Any], work: Path, env: dict[str, str]) -> dict[str, str]:
    """One workflow step's `run`, as GitHub runs it (bash -eo pipefail), with kubectl and
    kustomize stubbed (tests/integration/stubs); returns what it wrote to GITHUB_OUTPUT."""
    output = work / "github_output"
    output.write_text("")
    stubs = Path(__file__).with_name("stubs")
    full = {
        **os.environ, **env, "GITHUB_OUTPUT": str(output),
        "PATH": f"{stubs}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        "STUB_STATE": str(work / "state.json"), "STUB_LOG": str(work / "calls.log"),
    }  # fmt: skip
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=work, env=full, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return dict(line.split("=", 1) for line in output.read_text().splitlines())


def step(job: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in job["steps"] if s.get("name", "").startswith(name))


def test_rollback_steps_run_as_written_return_to_the_last_healthy_release(
    tmp_path: Path,
) -> None:
    ci = jobs()
    namespace = yaml.safe_load((WORKFLOWS / "ci.yaml").read_text())["env"]["NAMESPACE"]
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    (tmp_path / "Makefile").write_text("install:\n\t@true\n")
    venv = tmp_path / ".venv/bin"
    venv.mkdir(parents=True)
    (venv / "imdb-sentiment").write_text(
        f'#!/bin/sh\necho "imdb-sentiment $*" >> {tmp_path}/calls.log\n'
    )
    (venv / "imdb-sentiment").chmod(0o755)
    record = step(ci["deploy"], "Record the release")
    base = {"NAMESPACE": namespace}
    for image, version in (
        ("ecr/imdb-sentiment@sha256:aaa", "3"),
        ("ecr/imdb-sentiment@sha256:bbb", "4"),
    ):
        run_step(record, tmp_path, {**base, "IMAGE": image, "VERSION": version})
    # Release 5 fails its rollout: deploy stops before recording (the undo is Kubernetes').
    state = json.loads((tmp_path / "state.json").read_text())
    assert state[f"{namespace}/imdb-sentiment-releases"] == {
        "current": "ecr/imdb-sentiment@sha256:bbb 4", "previous": "ecr/imdb-sentiment@sha256:aaa 3"
    }  # fmt: skip
    target = run_step(step(ci["rollback"], "Redeploy the last release"), tmp_path, base)
    assert target == {"version": "3"}
    run_step(step(ci["rollback"], "Production alias"), tmp_path, {**base, "VERSION": "3"})
    calls = (tmp_path / "calls.log").read_text()
    assert "kustomize edit set image imdb-sentiment=ecr/imdb-sentiment@sha256:aaa" in calls
    assert "kustomize edit add annotation --force imdb-sentiment.io/model-version:3" in calls
    assert "imdb-sentiment promote --version 3 --force" in calls
    assert "rollout undo" not in calls
    state = json.loads((tmp_path / "state.json").read_text())
    assert state[f"{namespace}/imdb-sentiment-releases"] == {
        "current": "ecr/imdb-sentiment@sha256:aaa 3", "previous": ""
    }  # fmt: skip
