"""Release rehearsal: the release path of ci.yaml, run here without Docker or a cluster.

Everything that decides behaviour is read from the shipped files, not retyped: the MLflow
server's arguments from docker-compose.yml, the bake command and the runtime environment from the
Dockerfile, the pod environment from the rendered prod overlay, the promote/rollback commands
from the workflow. Only ports and filesystem roots are moved into the test's directory.

1. a real `mlflow server`, reached as http://mlflow:<port> (an /etc/hosts alias, like the
   compose network's name), rejects a foreign Host header and accepts its own name;
2. the pipeline registers over HTTP; the gate names the version (`promote --check-only`);
3. `fetch-model` bakes that version as the image build does; the service starts with the
   image's ENV + the prod overlay's environment and serves exactly that version; only then does
   `production` move to it;
4. a second release likewise; the registry goes down; a new pod still serves its version;
5. rollback: the previous image comes back and the alias follows it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from harness.project import ROOT, bin_dir, make_project, run, update_params
from harness.server import free_port, running_service
from imdb_sentiment.serving.auth import digest
from tests.conftest import IN_CI
from tests.helpers import review_files, write_archive
from tests.integration.test_deploy import render

pytestmark = pytest.mark.slow

HOSTS = Path("/etc/hosts")
SMALL = {
    "data": {"expected_per_label": 40},
    "features": {"min_df": 1},
    "train": {"val_size": 0.25},
    "promote": {"min_accuracy": 0.5},
}


# --- what the shipped files say -----------------------------------------------------------
def compose_mlflow() -> tuple[str, list[str]]:
    """(service name, `mlflow server` arguments) of docker-compose.yml."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    name = next(n for n, s in services.items() if "mlflow server" in str(s.get("command", "")))
    return name, shlex.split(services[name]["command"])


def dockerfile_stage(stage: str) -> str:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    start = re.search(rf"^FROM .* AS {stage}$", text, re.M)
    assert start, stage
    end = re.search(r"^FROM ", text[start.end() :], re.M)
    return text[start.end() : start.end() + end.start() if end else len(text)]


def dockerfile_env(stage: str, args: dict[str, str]) -> dict[str, str]:
    """ENV of a stage, with ARGs and earlier ENV values substituted."""
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV (.*)$", dockerfile_stage(stage), re.M):
        for key, value in re.findall(r"(\w+)=(\S+)", line):
            env[key] = re.sub(r"\$\{?(\w+)\}?", lambda m: {**args, **env}.get(m[1], m[0]), value)
    return env


def bake_command() -> list[str]:
    """The model stage's `imdb-sentiment fetch-model …` command line."""
    found = re.search(r"(imdb-sentiment fetch-model [^;]*);", dockerfile_stage("model"))
    assert found, "the Dockerfile's model stage bakes with fetch-model"
    return shlex.split(found[1])


def workflow_run(job: str, needle: str) -> str:
    """The line of `job` (in whichever workflow defines it) that runs `needle`."""
    jobs: dict[str, Any] = {}
    for path in sorted((ROOT / ".github/workflows").glob("*.yaml")):
        jobs |= yaml.safe_load(path.read_text())["jobs"]
    for step in jobs[job]["steps"]:
        for line in str(step.get("run", "")).splitlines():
            if needle in line:
                return line.strip()
    raise AssertionError(f"{job} runs no `{needle}`")


def prod_pod_env() -> dict[str, str]:
    docs = render("prod")
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    refs = [e["configMapRef"]["name"] for e in container["envFrom"] if "configMapRef" in e]
    assert refs == [config["metadata"]["name"]]
    # The shared prediction store's URL is a Secret's, never the ConfigMap's or the image's.
    database = next(e for e in container["env"] if e["name"] == "DATABASE_URL")
    assert database["valueFrom"]["secretKeyRef"] == {
        "name": "imdb-sentiment-database",
        "key": "DATABASE_URL",
    }
    assert "DATABASE_URL" not in config["data"]
    return {str(k): str(v) for k, v in config["data"].items()}


# --- the pieces ---------------------------------------------------------------------------
@contextmanager
def host_alias(name: str) -> Iterator[None]:
    """`name` resolves to 127.0.0.1, as the compose service name does on its network."""
    if os.geteuid() != 0 or not os.access(HOSTS, os.W_OK):
        if IN_CI:
            pytest.fail("the release rehearsal needs root in CI (an /etc/hosts alias)")
        pytest.skip("needs root to add an /etc/hosts alias")
    original = HOSTS.read_text()
    HOSTS.write_text(original.rstrip("\n") + f"\n127.0.0.1 {name}  # imdb-sentiment test\n")
    try:
        yield
    finally:
        HOSTS.write_text(original)


@contextmanager
def mlflow_server(args: list[str], root: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """compose's arguments; the port, the bind address and /mlflow moved under the test."""
    moved = [
        a.replace("5000", str(port)).replace("/mlflow/", f"{root}/").replace("0.0.0.0", "127.0.0.1")
        for a in args
    ]
    assert moved[:2] == ["mlflow", "server"]
    log = (root / "mlflow.log").open("ab")
    proc = subprocess.Popen([str(bin_dir() / "mlflow"), *moved[1:]], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None, (root / "mlflow.log").read_text()
            assert time.monotonic() < deadline, "mlflow server not up"
            time.sleep(0.5)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def release(project: Path, env: dict[str, str], root: Path, c: float) -> str:
    """The release job: train + register, then the gate names the version."""
    update_params(project, {"train": {"C": c}})
    run(["dvc", "repro"], project, env)
    registered = yaml.safe_load((project / "reports/registration.json").read_text())["version"]
    gate = run(["imdb-sentiment", "promote", "--check-only", "--version", registered], project, env)
    assert gate.stdout.strip() == registered
    return str(registered)


def bake(version: str, env: dict[str, str], root: Path) -> Path:
    """The image build's model stage, into a directory that plays /model-cache."""
    baked = root / f"image-v{version}" / "model-cache"
    command = [
        part.replace("$MODEL_NAME", "imdb-sentiment").replace("$MODEL_VERSION", version)
        for part in bake_command()
    ]
    run(command, root, {**env, "MODEL_CACHE_DIR": str(baked)})
    return baked


def pod_env(version: str, baked: Path, root: Path, registry: str) -> dict[str, str]:
    """The container's environment: image ENV, then the pod's ConfigMap and Secret."""
    image = dockerfile_env("runtime", {"MODEL_NAME": "imdb-sentiment", "MODEL_VERSION": version})
    pod = root / f"pod-v{version}-{time.monotonic_ns()}"
    # The Secrets' values: the registry, and the shared store (a file standing in for RDS).
    secrets = {"MLFLOW_TRACKING_URI": registry, "DATABASE_URL": f"sqlite:///{root}/store.db"}
    env = {**image, **prod_pod_env(), **secrets}
    env.pop("PATH", None)
    for key, value in env.items():
        if value.startswith(("/app/", "/var/", "/tmp/")):
            env[key] = str(pod / value.lstrip("/"))
    # The mounted Secret of token digests (prod asks a token for feedback).
    tokens = Path(env["API_TOKENS_FILE"])
    tokens.parent.mkdir(parents=True, exist_ok=True)
    tokens.write_text(f"{digest('release-rehearsal-token')}\n")
    # The image's /app/model-baked is the model stage's /model-cache.
    baked_in_image = image["MODEL_BAKED_DIR"]
    env["MODEL_BAKED_DIR"] = str(baked)
    assert baked_in_image.startswith("/app/")
    env.pop("PORT", None)  # running_service picks a free one
    env["HOST"] = "127.0.0.1"
    return env


def migration_job(root: Path) -> None:
    """The release's db-upgrade Job (before its rollout): its command, with the same Secret."""
    job = next(d for d in render("prod") if d["kind"] == "Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    secrets = {e["name"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert secrets == {"DATABASE_URL"}
    done = run(container["command"], root, {"DATABASE_URL": f"sqlite:///{root}/store.db"})
    assert "prediction store: schema at revision" in done.stdout


def served(url: str) -> dict[str, Any]:
    model = requests.get(f"{url}/version", timeout=5).json()["model"]
    assert requests.post(f"{url}/api/v1/predict", json={"text": "great"}, timeout=5).ok
    return dict(model)


def production(env: dict[str, str], root: Path) -> str:
    code = (
        "from mlflow import MlflowClient; "
        "print(MlflowClient().get_model_version_by_alias('imdb-sentiment', 'production').version)"
    )
    return run([str(bin_dir() / "python"), "-c", code], root, env).stdout.strip()


# --- the rehearsal ------------------------------------------------------------------------
def test_release_path_end_to_end(tmp_path: Path) -> None:
    name, args = compose_mlflow()
    port = free_port()
    registry = f"http://{name}:{port}"
    archive = write_archive(tmp_path / "aclImdb_v1.tar.gz", review_files(per_label=40, seed=4))
    env = {
        "IMDB_SOURCE": str(archive),
        "MLFLOW_TRACKING_URI": registry,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    }
    project = make_project(tmp_path / "project", SMALL)
    promote_line = workflow_run("deploy", "promote --version")
    rollback_line = workflow_run("rollback", "promote --version")
    # The gate ran once, in the release job (promote --check-only): after the rollout, and in
    # a rollback, only the alias moves, to exactly what the pods serve.
    assert "--force" in rollback_line and "--force" in promote_line

    with host_alias(name), mlflow_server(args, tmp_path, port) as server:
        # The compose arguments let clients in by the service's name, and only by known names.
        search = "/api/2.0/mlflow/registered-models/search"
        base = f"http://127.0.0.1:{port}{search}"
        assert requests.get(base, headers={"Host": "evil.example"}, timeout=5).status_code == 403
        assert requests.get(f"{registry}{search}", timeout=5).status_code == 200

        first = release(project, env, tmp_path, c=10.0)
        baked_first = bake(first, env, tmp_path)
        migration_job(tmp_path)
        with running_service(
            pod_env(first, baked_first, tmp_path, registry), tmp_path / "v1.log"
        ) as url:
            model = served(url)
            assert (model["version"], model["source"]) == (first, "image")
        run(
            ["imdb-sentiment", "promote", "--version", first, "--force"], project, env
        )  # after rollout
        assert production(env, tmp_path) == first

        second = release(project, env, tmp_path, c=3.0)
        assert second != first
        assert production(env, tmp_path) == first  # the release moved nothing yet
        baked_second = bake(second, env, tmp_path)
        migration_job(tmp_path)
        second_env = pod_env(second, baked_second, tmp_path, registry)
        with running_service(second_env, tmp_path / "v2.log") as url:
            assert served(url)["version"] == second
        run(["imdb-sentiment", "promote", "--version", second, "--force"], project, env)
        assert production(env, tmp_path) == second

        server.terminate()
        server.wait(timeout=30)
        # The registry is down: a new pod (an HPA scale-out, a node replaced) still serves.
        fresh = pod_env(second, baked_second, tmp_path, registry)
        with running_service(fresh, tmp_path / "v2-outage.log") as url:
            model = served(url)
            assert (model["version"], model["source"]) == (second, "image")

    with host_alias(name), mlflow_server(args, tmp_path, port):
        # Rollback: the previous image (which bakes the previous version) and the alias.
        with running_service(
            pod_env(first, baked_first, tmp_path, registry), tmp_path / "rb.log"
        ) as url:
            assert served(url)["version"] == first
        run(["imdb-sentiment", "promote", "--version", first, "--force"], project, env)
        assert production(env, tmp_path) == first
