"""One release lock around everything that changes production: promote.yaml's deploy and
rollback.yaml's steps, run as written (bash -eo pipefail, each job in its own checkout) against
one cluster state that both change — a file-backed stand-in for the API server whose every call
is one atomic read-modify-write (tests/integration/stubs/kubectl: ConfigMaps, the Lease, the
Deployment's image, the migration Job) — and one registry alias.

A release's end state is consistent when the Deployment's image, the `production` alias and the
release record's `current` all name the same release. With the lock, a deploy and a rollback
started together end consistent in every run, whichever gets the lock first. Without it (the
lock steps left out, everything else as written), running the same steps in chosen orders
finds interleavings that leave pods, alias and record disagreeing: what the lock prevents."""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.project import ROOT
from tests.integration.test_workflows import WORKFLOWS, jobs, rollback_file

pytestmark = pytest.mark.slow
STUBS = Path(__file__).with_name("stubs")
NAMESPACE = yaml.safe_load((WORKFLOWS / "ci.yaml").read_text())["env"]["NAMESPACE"]
IMAGE = "ecr/imdb-sentiment@sha256:v{}"
LOCK = ("Take the release lock", "Let go of the release lock")
# The deploy job's steps that change production, in order (the Secrets and kubeconfig before
# them touch nothing these steps read).
DEPLOY = (LOCK[0], "Pin the release", "Migrate the prediction store", "Apply manifests",
          "Wait for the rollout", "Production alias", "Record the release", LOCK[1])  # fmt: skip
ROLLBACK = (LOCK[0], "Redeploy the last release", "Production alias", LOCK[1])


@dataclass
class Cluster:
    """The shared state: the API server's objects and the registry's alias."""

    root: Path

    @property
    def state(self) -> Path:
        return self.root / "cluster.json"

    def seed(self, current: int, previous: int) -> None:
        self.state.write_text(json.dumps({
            f"configmap/{NAMESPACE}/imdb-sentiment-releases": {
                "current": f"{IMAGE.format(current)} {current}",
                "previous": f"{IMAGE.format(previous)} {previous}",
            },
            f"deployment/{NAMESPACE}/imdb-sentiment": {"image": IMAGE.format(current),
                                                       "before": IMAGE.format(previous)},
        }))  # fmt: skip
        (self.root / "alias").write_text(str(current))

    def end_state(self) -> tuple[str, str, str]:
        state = json.loads(self.state.read_text())
        record = state[f"configmap/{NAMESPACE}/imdb-sentiment-releases"]["current"]
        pods = state[f"deployment/{NAMESPACE}/imdb-sentiment"]["image"]
        return pods, (self.root / "alias").read_text().strip(), record

    def consistent(self) -> bool:
        pods, alias, record = self.end_state()
        return record == f"{pods} {alias}" and pods == IMAGE.format(alias)


@dataclass
class Job:
    """One job's checkout (its own working tree, as each runner has) and environment."""

    name: str
    steps: list[dict[str, Any]]
    home: Path
    env: dict[str, str]
    outputs: dict[str, str] = field(default_factory=dict)

    def run(self, step: dict[str, Any], cluster: Cluster) -> None:
        output = self.home / "github_output"
        output.write_text("")
        env = {**os.environ, **self.env, **self.outputs, "GITHUB_OUTPUT": str(output),
               "PATH": f"{STUBS}:{self.home / 'bin'}:{Path(sys.executable).parent}:"
                       f"{os.environ['PATH']}",
               "STUB_STATE": str(cluster.state), "STUB_LOG": str(self.home / "calls.log"),
               "ALIAS_FILE": str(cluster.root / "alias"), "NAMESPACE": NAMESPACE,
               "RELEASE_LOCK_POLL_S": "0.05", "RELEASE_LOCK_WAIT_S": "60"}  # fmt: skip
        cwd = self.home / step.get("working-directory", ".")
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
                               step["run"]], cwd=cwd, env=env, capture_output=True, text=True,
                              check=False, timeout=120)  # fmt: skip
        assert done.returncode == 0, (self.name, step["name"], done.stderr)
        for line in output.read_text().splitlines():
            key, value = line.split("=", 1)
            self.outputs[key.upper()] = value  # the next step's env (VERSION from `target`)


def checkout(home: Path) -> Path:
    """A runner's checkout: deploy/ as committed, `make install` a no-op, imdb-sentiment a stub
    that moves the alias (`promote --version V --force`) in the shared registry."""
    shutil.copytree(ROOT / "deploy", home / "deploy")
    (home / "Makefile").write_text("install:\n\t@true\n")
    cli = home / ".venv/bin/imdb-sentiment"
    cli.parent.mkdir(parents=True)
    cli.write_text('#!/bin/sh\n[ "$1" = promote ] && [ "$2" = --version ] || exit 3\n'
                   'printf %s "$3" > "$ALIAS_FILE.tmp.$$" && mv "$ALIAS_FILE.tmp.$$" '
                   '"$ALIAS_FILE"\n')  # fmt: skip
    cli.chmod(0o755)
    return home


def pick(job: dict[str, Any], names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [next(s for s in job["steps"] if s.get("name", "").startswith(n)) for n in names]


def deploy_and_rollback(root: Path, version: int, locked: bool) -> tuple[Job, Job]:
    skip = () if locked else LOCK
    steps = pick(jobs("promote.yaml")["deploy"], DEPLOY)
    deploy = Job("deploy", [s for s in steps if s["name"] not in skip],
                 checkout(root / "deploy-runner"),
                 {"IMAGE": IMAGE.format(version), "VERSION": str(version),
                  "GITHUB_RUN_ID": "101"})  # fmt: skip
    back = jobs(rollback_file())["rollback"]
    rollback = Job("rollback", [s for s in pick(back, ROLLBACK) if s["name"] not in skip],
                   checkout(root / "rollback-runner"), {"GITHUB_RUN_ID": "202"})  # fmt: skip
    return deploy, rollback


def test_the_steps_named_here_are_the_workflows_own() -> None:
    for job, names in (
        (jobs("promote.yaml")["deploy"], DEPLOY),
        (jobs(rollback_file())["rollback"], ROLLBACK),
    ):
        steps = pick(job, names)
        assert steps[0]["run"].startswith("bash deploy/release-lock.sh acquire")
        assert steps[-1]["if"] == "always()" and "release-lock.sh release" in steps[-1]["run"]
        found = [s.get("name", "") for s in job["steps"]]
        first, last = found.index(steps[0]["name"]), found.index(steps[-1]["name"])
        outside = job["steps"][:first] + job["steps"][last + 1 :]
        changes = ("kubectl apply -k", "rollout", "promote", "edit set image", "configmap imdb")
        # Nothing outside the lock changes production (the Secrets' `apply -f` is not a
        # release's: they are the same for every release).
        assert not [s["name"] for s in outside if any(c in str(s.get("run", "")) for c in changes)]


@pytest.mark.parametrize("trial", range(8))
def test_a_deploy_and_a_rollback_started_together_end_consistent(
    tmp_path: Path, trial: int
) -> None:
    cluster = Cluster(tmp_path)
    cluster.seed(current=3, previous=2)
    deploy, rollback = deploy_and_rollback(tmp_path, 4, locked=True)
    os.environ["STUB_JITTER_S"] = "0.03"
    try:
        rng = random.Random(trial)
        errors: list[BaseException] = []

        def run(job: Job, delay: float) -> None:
            threading.Event().wait(delay)
            try:
                for step in job.steps:
                    job.run(step, cluster)
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(job, rng.uniform(0, 0.3)))
                   for job in (deploy, rollback)]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    finally:
        os.environ.pop("STUB_JITTER_S", None)
    assert not errors, errors
    assert cluster.consistent(), cluster.end_state()
    pods, alias, _ = cluster.end_state()
    # Deploy first then rollback (back to 3), or rollback first (to 2) then deploy (4).
    assert (pods, alias) in ((IMAGE.format(3), "3"), (IMAGE.format(4), "4"))
    assert not [k for k in json.loads(cluster.state.read_text()) if k.startswith("lease/")]


def test_without_the_lock_some_interleavings_disagree(tmp_path: Path) -> None:
    """Every way of merging the rollback's two steps into the deploy's six (28 orders), each on
    a fresh copy of the same state: some end with pods, alias and record disagreeing."""
    bad, orders = [], list(itertools.combinations(range(8), 2))
    for slots in orders:
        root = tmp_path / f"order-{'-'.join(map(str, slots))}"
        root.mkdir()
        cluster = Cluster(root)
        cluster.seed(current=3, previous=2)
        deploy, rollback = deploy_and_rollback(root, 4, locked=False)
        queue = {"deploy": iter(deploy.steps), "rollback": iter(rollback.steps)}
        for position in range(8):
            job = rollback if position in slots else deploy
            job.run(next(queue[job.name]), cluster)
        if not cluster.consistent():
            bad.append((slots, cluster.end_state()))
    print(f"\nwithout the lock, {len(bad)} of {len(orders)} interleavings end inconsistent, e.g. "
          f"{bad[0] if bad else None}")  # fmt: skip
    assert bad


def test_a_failed_migration_job_fails_the_deploy_at_once(tmp_path: Path) -> None:
    """The Job's Failed condition ends the wait (not the wait's 900 s), and its log is shown."""
    import time

    cluster = Cluster(tmp_path)
    cluster.seed(current=3, previous=2)
    deploy, _ = deploy_and_rollback(tmp_path, 4, locked=True)
    migrate = next(s for s in deploy.steps if s["name"].startswith("Migrate"))
    deploy.env["STUB_JOB_FAILS"] = "1"
    started = time.monotonic()
    with pytest.raises(AssertionError, match="Migrate"):
        deploy.run(migrate, cluster)
    assert time.monotonic() - started < 15
    assert "kubectl logs job/imdb-sentiment-db-upgrade" in " ".join(
        (deploy.home / "calls.log").read_text().splitlines()[-1:]
    ).replace(f"-n {NAMESPACE} ", "")
