"""The release path's guarantees, read from the workflows themselves and run under GitHub's
concurrency rules (tests/github_actions.py): a release run is never cancelled once its image is
pushed, a rollback neither waits for nor is cancelled by anything else; rollback on main only and
to the last release recorded as healthy, deploy by digest from an immutable repository, the
migration Job once per release before the rollout, production's Secrets in production's
namespace only, and zizmor (GitHub Actions security lint) clean."""

from __future__ import annotations

import itertools
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

from harness.project import ROOT
from tests.github_actions import World, evaluate
from tests.integration.test_deploy import render

WORKFLOWS = ROOT / ".github/workflows"


def jobs(name: str = "ci.yaml") -> dict[str, Any]:
    return dict(yaml.safe_load((WORKFLOWS / name).read_text())["jobs"])


def script(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in job["steps"])


# --- concurrency, as GitHub applies it ------------------------------------------------------
def push(world: World) -> Any:
    return world.trigger("ci.yaml", "push")


def rollback(world: World) -> Any:
    return world.trigger(rollback_file(), "workflow_dispatch")


def rollback_file() -> str:
    return next(p.name for p in sorted(WORKFLOWS.glob("*.yaml")) if "rollback" in jobs(p.name))


def retrain(world: World) -> Any:
    return world.trigger("retrain.yaml", "schedule")


def simulate(world: World, events: list[tuple[float, str]]) -> list[Any]:
    runs = []
    for at, kind in events:
        world.advance(at)
        start = {
            "push": push,
            "rollback": rollback,
            "retrain": retrain,
            "schedule": lambda w: w.trigger("ci.yaml", "schedule"),
            "promote": lambda w: w.trigger("promote.yaml", "schedule"),
            "pr": lambda w: w.trigger("ci.yaml", "pull_request", ref="refs/pull/7/merge"),
        }[kind]
        run = start(world)
        runs.append(run)
    world.advance(10_000)
    return runs


def rollback_before(world: World, run: Any) -> bool:
    """Another rollback was dispatched before this one ended (or started)."""
    end = run.unit.finished if run.unit.finished is not None else float("inf")
    return any(
        r is not run and r.workflow == run.workflow and r.arrived <= end
        and (r.unit.finished is None or r.unit.finished >= run.arrived)
        for r in world.runs
    )  # fmt: skip


def deploys(world: World) -> list[Any]:
    """The release runs' last job (ci.yaml's `stage`: what promote.yaml later deploys)."""
    return [u for r in world.runs for u in r.jobs if u.name == "stage" and u.state != "skipped"]


def promote_flow() -> dict[str, Any]:
    return jobs("promote.yaml")


def problems(world: World, runs: list[Any]) -> list[str]:
    """Everything GitHub's rules did to our release path that they must never do."""
    found = []
    for run in world.runs:
        images = [u for u in run.jobs if u.name == "image" and u.state == "done"]
        for unit in run.jobs:
            if unit.name == "stage" and images and unit.state == "cancelled":
                found.append(f"run {run.number}: stage cancelled after its image was pushed")
        # Only another rollback (the same request again) may hold a rollback back or replace
        # it while it is pending: pushes, retrains and schedules never. It waits for nothing
        # but the release lock (a production change half-way), never for a release run.
        if run.workflow == rollback_file() and not rollback_before(world, run):
            for unit in [run.unit, *run.jobs]:
                if unit.state == "cancelled":
                    found.append(f"run {run.number}: rollback cancelled")
                elif (unit.started is not None
                      and unit.started - unit.waited > run.arrived):  # fmt: skip
                    found.append(f"run {run.number}: rollback waited {unit.started - run.arrived}")
    spans = sorted((u.started, u.finished) for u in deploys(world) if u.state == "done")
    for (_, end), (start, _) in itertools.pairwise(spans):
        if start < end:
            found.append("two stages at once")
    # Everything that changes production holds the release lock: never two at once.
    changing = sorted((u.started or 0.0, u.finished or 0.0, u.name) for r in world.runs
                      for u in r.jobs if u.state == "done" and world._takes_lock(u))  # fmt: skip
    for (_, end, a), (start, _, b) in itertools.pairwise(changing):
        if start < end:
            found.append(f"{a} and {b} changed production at once")
    found += [line for line in world.log if "deadlock" in line]
    return found


def test_rollback_neither_waits_for_nor_is_cancelled_by_pushes() -> None:
    world = World(WORKFLOWS)
    runs = simulate(world, [(0, "push"), (30, "rollback"), (31, "push"), (32, "push")])
    assert problems(world, runs) == []
    assert [u.state for u in runs[1].jobs] == ["done"]


def test_stage_promotion_and_rollback_change_production_one_at_a_time() -> None:
    """A release staging, the hourly promotion deploying and a rollback, arriving within
    seconds: the release lock makes them take turns (GitHub's groups would not), nothing is
    cancelled, and the rollback waits only for the lock."""
    world = World(WORKFLOWS)
    runs = simulate(world, [(0, "push"), (36, "promote"), (40, "rollback"), (41, "promote")])
    assert problems(world, runs) == []
    changes = [(u.name, u.started, u.finished) for r in world.runs for u in r.jobs
               if u.state == "done" and world._takes_lock(u)]  # fmt: skip
    assert {name for name, _, _ in changes} >= {"stage", "deploy", "rollback"}
    rollback_job = runs[2].jobs[0]
    assert rollback_job.state == "done" and rollback_job.waited > 0  # it waited for the lock


def test_the_simulation_catches_a_production_change_outside_the_lock() -> None:
    world = World(WORKFLOWS)
    back = world.flows[rollback_file()]["jobs"]["rollback"]
    back["steps"] = [s for s in back["steps"] if "release-lock.sh" not in str(s.get("run", ""))]
    runs = simulate(world, [(0, "promote"), (1, "rollback")])
    deploy = runs[0].jobs[1]
    rollback_job = runs[1].jobs[0]
    assert deploy.state == rollback_job.state == "done"
    assert rollback_job.started < deploy.finished  # they overlapped: what the lock prevents


def test_a_push_never_cancels_a_deploy_whose_image_is_pushed() -> None:
    """Pushes in quick succession, a retrain while a release deploys: only runs that have not
    started are replaced, and the newest push is the one that ends up deployed."""
    world = World(WORKFLOWS)
    runs = simulate(world, [(0, "push"), (25, "retrain"), (36, "push"), (38, "push"),
                            (40, "schedule"), (41, "pr"), (90, "push")])  # fmt: skip
    assert problems(world, runs) == []
    done = [u.run.number for u in deploys(world) if u.state == "done"]
    assert done[-1] == runs[-1].number


@pytest.mark.parametrize("seed", range(40))
def test_random_event_sequences_keep_every_guarantee(seed: int) -> None:
    import random

    rnd = random.Random(seed)
    at, events = 0.0, []
    for _ in range(12):
        at += rnd.choice([0.5, 1, 3, 8, 15, 30])
        events.append(
            (
                at,
                rnd.choice(
                    ["push", "push", "push", "rollback", "retrain", "schedule", "pr", "promote"]
                ),
            )
        )
    world = World(WORKFLOWS)
    runs = simulate(world, events)
    assert problems(world, runs) == [], events
    # Liveness: what deployed last came from a run that started after the newest push arrived
    # (every release run checks out main's head), so the newest push is in production.
    pushes = [r for r in runs if r.event == "push"]
    done = [u for u in deploys(world) if u.state == "done"]
    assert not pushes or (done and done[-1].run.unit.started >= pushes[-1].arrived), events


def job_level_groups(flow: dict[str, Any], workflow_group: str) -> dict[str, Any]:
    """`flow` with one workflow-level group and release, image and deploy in one job group."""
    changed = yaml.safe_load(yaml.safe_dump(flow))
    changed["concurrency"] = {
        "group": workflow_group,
        "cancel-in-progress": "${{ github.event_name == 'pull_request' }}",
    }
    for name in ("release", "image", "stage"):
        changed["jobs"][name]["concurrency"] = {"group": "imdb-sentiment-production",
                                                "cancel-in-progress": False}  # fmt: skip
    return changed


def test_the_simulation_catches_the_old_design() -> None:
    """The design before: pushes and the rollback dispatch in one workflow-level group per ref,
    job-level groups for release, image, deploy and rollback. The rollback waits for a whole
    push run, and the next push cancels it."""
    ci = yaml.safe_load((WORKFLOWS / "ci.yaml").read_text())
    old = job_level_groups(ci, "${{ github.workflow }}-${{ github.ref }}")
    back = yaml.safe_load((WORKFLOWS / rollback_file()).read_text())["jobs"]["rollback"]
    old["jobs"]["rollback"] = {**back, "if": "github.event_name == 'workflow_dispatch'",
                               "concurrency": old["jobs"]["stage"]["concurrency"]}  # fmt: skip
    for name in ("test", "release"):  # a dispatch ran only the rollback
        old["jobs"][name]["if"] = "github.event_name != 'workflow_dispatch'"
    world = World(WORKFLOWS)
    world.flows["ci.yaml"] = old
    push(world)
    world.advance(30)
    gone = world.trigger("ci.yaml", "workflow_dispatch")  # the rollback, as dispatched then
    world.advance(31)
    push(world)
    world.advance(10_000)
    assert gone.unit.state == "cancelled" and gone.jobs == []


def test_the_simulation_catches_a_pending_deploy_cancelled_by_a_push() -> None:
    """Release runs left free to overlap, serialised by job-level groups only: a newer run's
    release job, queued in the group, replaces an older run's pending deploy after its image
    was pushed."""
    ci = yaml.safe_load((WORKFLOWS / "ci.yaml").read_text())
    world = World(WORKFLOWS)
    world.flows["ci.yaml"] = job_level_groups(ci, "ci-cd-${{ github.run_id }}")
    runs = simulate(world, [(0, "push"), (1, "push"), (26, "push")])
    assert any("stage cancelled after its image was pushed" in p for p in problems(world, runs))


def test_the_expression_reader_reads_as_github_does() -> None:
    context = {"github": {"event_name": "push", "ref": "refs/heads/main", "run_id": "9"},
               "inputs": {}}  # fmt: skip
    flow = yaml.safe_load((WORKFLOWS / "ci.yaml").read_text())
    group = flow["concurrency"]["group"]
    assert evaluate(group, context) == "imdb-sentiment-release"
    pr = {**context, "github": {**context["github"], "event_name": "pull_request",
                                "ref": "refs/pull/3/merge"}}  # fmt: skip
    assert evaluate(group, pr) == "ci-cd-pr-refs/pull/3/merge"
    assert evaluate(flow["concurrency"]["cancel-in-progress"], pr) is True
    schedule = {**context, "github": {**context["github"], "event_name": "schedule"}}
    assert evaluate(group, schedule) == "ci-cd-run-9"
    called = {**schedule, "inputs": {"retrain": True}}
    assert evaluate(group, called) == "imdb-sentiment-release"
    assert evaluate("${{ 'A' == 'a' && format('x{0}y{1}', 1, true) }}", {}) == "x1ytrue"


def test_retrain_releases_through_the_release_group_without_deadlock() -> None:
    world = World(WORKFLOWS)
    runs = simulate(world, [(0, "retrain")])
    assert problems(world, runs) == []
    called = [r for r in world.runs if r.parent is runs[0]]
    # test, image-tests, speed (nothing to compare with: it passes), release, image, stage
    states = [u.state for u in called[0].jobs]
    assert states == ["done"] * 6
    retrain = jobs("retrain.yaml")["retrain"]
    assert retrain["uses"].endswith(".github/workflows/ci.yaml")


def test_rollback_is_main_only_and_returns_to_the_recorded_healthy_release() -> None:
    rollback, deploy = jobs(rollback_file())["rollback"], promote_flow()["deploy"]
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
    # What is deployed is what a release run staged: its image by digest, from the record.
    decide = promote_flow()["decide"]
    assert deploy["env"]["IMAGE"] == "${{ needs.decide.outputs.image }}"
    assert "{.data.staged}" in script(decide) and "promote --when-ready" in script(decide)
    assert 'staged="$IMAGE $VERSION"' in script(jobs()["stage"])


def test_images_are_deployed_by_digest_from_an_immutable_repository() -> None:
    ci = jobs()
    image = ci["image"]
    assert "@$DIGEST" in script(image) and "--image-tag-mutability IMMUTABLE" in script(image)
    digest = next(s for s in image["steps"] if s.get("id") == "digest")
    assert digest["env"]["DIGEST"] == "${{ steps.build.outputs.digest }}"
    assert image["outputs"]["image"] == "${{ steps.digest.outputs.image }}"
    assert ci["stage"]["env"]["IMAGE"] == "${{ needs.image.outputs.image }}"
    assert 'kustomize edit set image "imdb-sentiment=$IMAGE"' in script(promote_flow()["deploy"])


def test_production_secrets_reach_production_only_and_cover_what_its_pods_need() -> None:
    """Every Secret the prod overlay's pods (and the migration Job) read is created by the stage
    job in production's namespace, and in no other: dev has credentials of its own."""
    docs = render("prod")
    needed: set[str] = set()
    for workload in (d for d in docs if d["kind"] in ("Deployment", "Job")):
        spec = workload["spec"]["template"]["spec"]
        for container in spec["containers"]:
            needed |= {e["secretRef"]["name"] for e in container.get("envFrom", [])
                       if "secretRef" in e}  # fmt: skip
            needed |= {
                e["valueFrom"]["secretKeyRef"]["name"]
                for e in container.get("env", [])
                if "secretKeyRef" in e.get("valueFrom", {})
            }
        needed |= {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
    body = script(jobs()["stage"])
    created = re.findall(r'kubectl -n "([^"]+)" create secret generic ([\w-]+)', body)
    prod = yaml.safe_load((WORKFLOWS / "ci.yaml").read_text())["env"]["NAMESPACE"]
    assert {ns for ns, _ in created} == {"$NAMESPACE"}, created
    assert docs[0]["metadata"].get("namespace", prod) == prod
    assert needed <= {name for _, name in created}, needed
    assert "-dev" not in body and "for ns in" not in body


def test_the_migration_job_runs_once_per_release_before_the_rollout() -> None:
    deploy = promote_flow()["deploy"]
    names = [s.get("name", "") for s in deploy["steps"]]
    pin = next(i for i, n in enumerate(names) if n.startswith("Pin the release"))
    migrate = next(i for i, n in enumerate(names) if n.startswith("Migrate the prediction store"))
    apply = next(i for i, n in enumerate(names) if n.startswith("Apply manifests"))
    rollout = next(i for i, n in enumerate(names) if n.startswith("Wait for the rollout"))
    assert pin < migrate < apply < rollout
    job = next(d for d in render("prod") if d["kind"] == "Job")
    label = job["metadata"]["labels"]["app.kubernetes.io/component"]
    steps = deploy["steps"]
    assert f"-l app.kubernetes.io/component={label}" in steps[migrate]["run"]
    assert f"delete job {job['metadata']['name']}" in steps[migrate]["run"]
    # Complete or Failed ends the wait (tests/integration/test_release_lock.py runs it).
    assert "*Complete*|*Failed*" in steps[migrate]["run"]
    # The rollout (and a rollback) never re-applies the Job: its template is immutable, and a
    # rollback must not run the older release's migration.
    for body in (steps[apply]["run"], script(jobs(rollback_file())["rollback"])):
        applies = re.findall(r"kubectl apply -k [^\n]*", body)
        assert applies and all(f"'app.kubernetes.io/component!={label}'" in a for a in applies)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["imdb-sentiment", "db", "upgrade"]
    deployment = next(d for d in render("prod") if d["kind"] == "Deployment")
    assert container["image"] == deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    config = next(d for d in render("prod") if d["kind"] == "ConfigMap")
    assert config["data"]["DATABASE_MIGRATE"] == "off"  # pods never migrate


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
    namespace = yaml.safe_load((WORKFLOWS / "ci.yaml").read_text())["env"]["NAMESPACE"]
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    (tmp_path / "Makefile").write_text("install:\n\t@true\n")
    venv = tmp_path / ".venv/bin"
    venv.mkdir(parents=True)
    (venv / "imdb-sentiment").write_text(
        f'#!/bin/sh\necho "imdb-sentiment $*" >> {tmp_path}/calls.log\n'
    )
    (venv / "imdb-sentiment").chmod(0o755)
    record = step(promote_flow()["deploy"], "Record the release")
    base = {"NAMESPACE": namespace}
    for image, version in (
        ("ecr/imdb-sentiment@sha256:aaa", "3"),
        ("ecr/imdb-sentiment@sha256:bbb", "4"),
    ):
        run_step(record, tmp_path, {**base, "IMAGE": image, "VERSION": version})
    # Release 5 fails its rollout: deploy stops before recording (the undo is Kubernetes').
    state = json.loads((tmp_path / "state.json").read_text())
    assert state[f"configmap/{namespace}/imdb-sentiment-releases"] == {
        "current": "ecr/imdb-sentiment@sha256:bbb 4", "previous": "ecr/imdb-sentiment@sha256:aaa 3",
        "staged": "",
    }  # fmt: skip
    back = jobs(rollback_file())["rollback"]
    target = run_step(step(back, "Redeploy the last release"), tmp_path, base)
    assert target == {"version": "3"}
    run_step(step(back, "Production alias"), tmp_path, {**base, "VERSION": "3"})
    calls = (tmp_path / "calls.log").read_text()
    assert "kustomize edit set image imdb-sentiment=ecr/imdb-sentiment@sha256:aaa" in calls
    assert "kustomize edit add annotation --force imdb-sentiment.io/model-version:3" in calls
    assert "imdb-sentiment promote --version 3 --force" in calls
    assert "rollout undo" not in calls
    state = json.loads((tmp_path / "state.json").read_text())
    assert state[f"configmap/{namespace}/imdb-sentiment-releases"] == {
        "current": "ecr/imdb-sentiment@sha256:aaa 3", "previous": ""
    }  # fmt: skip
