"""The image, built from the committed Dockerfile and .dockerignore on a real Docker daemon, and
run as each platform runs it, with the settings read from the shipped files:

- the prod overlay's Deployment (its user, read-only root, dropped capabilities, emptyDirs, its
  ConfigMap), on a real PostgreSQL that the image's own `db upgrade` (the Job's command, with the
  Job's security context) migrated, with no registry: ready, predicts, answers gRPC, refuses
  writes without a token file, every process its user, stops within its grace period;
- the dev overlay's Deployment, with no database Secret: it starts on an embedded store;
- a release image (MODEL_VERSION + the `mlflow_uri` build secret, baked from a real
  `mlflow server`) with no registry reachable: serves exactly its baked version, quickly;
- Docker's health is not `healthy` while no model can load;
- `docker-compose.yml` as written (Debian's docker-compose; stand-ins for images no registry here
  serves, tests/integration/standins): app healthy, predictions, feedback, metrics.

Figures (build time, size, time to ready, stop time) are printed; docs/benchmarks.md has them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from harness.postgres import PostgresServer
from harness.project import ROOT, bin_dir
from harness.server import free_port
from tests.conftest import IN_CI
from tests.docker import (
    Docker,
    base_image,
    config_env,
    container,
    image_env,
    image_size_mb,
    kubelet_args,
    pod_spec,
    require_docker,
    secret_env,
)
from tests.integration.test_deploy import render
from tests.integration.test_release import compose_mlflow, mlflow_server

pytestmark = pytest.mark.slow

STANDINS = Path(__file__).parent / "standins"
REGISTER = """
import sys
from mlflow import MlflowClient
from imdb_sentiment.pipeline.registry.register import log_and_register
from tests.helpers import tiny_model
record = log_and_register(tiny_model(seed=int(sys.argv[1])), model_name="imdb-sentiment",
    experiment="image", params={}, metrics={"test_accuracy": 0.9}, artifacts=[], dataset={},
    threshold=0.5)
for alias in sys.argv[2:]:
    MlflowClient().set_registered_model_alias("imdb-sentiment", alias, record.version)
print(record.version)
"""
FIGURES: dict[str, float] = {}


def register(uri: str, seed: int, *aliases: str) -> str:
    """A small real model, registered over HTTP as the pipeline's register stage does."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [str(bin_dir() / "python"), "-c", REGISTER, str(seed), *aliases],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def record(name: str, value: float) -> None:
    FIGURES[name] = round(value, 1)
    print(f"figure: {name} = {value:.1f}")


# --- the images ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def docker() -> Docker:
    return require_docker()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` with compose's arguments, one version registered (production)."""
    root = tmp_path_factory.mktemp("registry")
    _, args = compose_mlflow()
    port = free_port()
    with mlflow_server(args, root, port):
        uri = f"http://127.0.0.1:{port}"
        register(uri, 1, "production")
        yield uri


@pytest.fixture(scope="module")
def release_image(docker: Docker, registry: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The release job's build: MODEL_VERSION and the registry URI as a build secret."""
    secret = tmp_path_factory.mktemp("secrets") / "mlflow_uri"
    secret.write_text(registry)
    tag = "imdb-sentiment:test-release"
    seconds = docker.build(tag, args={"MODEL_VERSION": "1"}, secrets={"mlflow_uri": secret})
    record("build seconds (release image, layers cached or not)", seconds)
    record("image MB (on this base)", image_size_mb(docker, tag))
    return tag


@pytest.fixture(scope="module")
def alias_image(docker: Docker) -> str:
    """The image built as compose builds it: no MODEL_VERSION, it follows the alias."""
    tag = "imdb-sentiment:test-alias"
    docker.build(tag)
    return tag


# --- what the image holds -----------------------------------------------------------------
def test_the_image_holds_what_serving_needs_and_no_more(docker: Docker, release_image: str) -> None:
    env = image_env(docker, release_image)
    assert env["MODEL_VERSION"] == "1"
    assert docker.inspect(release_image, "{{.Config.User}}") == "10001:10001"
    probe = (
        "import importlib.util as u, json; "
        "print(json.dumps({m: bool(u.find_spec(m)) for m in "
        "('sklearn', 'scipy', 'pandas', 'pyarrow', 'pip', 'imdb_sentiment.runtime._kernel')}))"
    )
    found = docker("run", "--rm", "--entrypoint", "python", release_image, "-c", probe).stdout
    assert yaml.safe_load(found) == {
        "sklearn": False, "scipy": False, "pandas": False, "pyarrow": False, "pip": False,
        "imdb_sentiment.runtime._kernel": True,
    }  # fmt: skip
    venv = docker("run", "--rm", "--entrypoint", "du", release_image, "-sm", "/opt/venv").stdout
    record("venv MB", float(venv.split()[0]))
    assert float(venv.split()[0]) <= 300
    # The baked model is readable by the service's user (the bake runs as root).
    listing = docker("run", "--rm", "--entrypoint", "find", release_image, "/app/model-baked",
                     "!", "-perm", "-o+r").stdout  # fmt: skip
    assert listing.strip() == "", f"not readable by others: {listing}"


# --- as the prod Deployment runs it -------------------------------------------------------
def test_runs_as_the_prod_deployment_runs_it(
    docker: Docker, release_image: str, postgres: PostgresServer
) -> None:
    docs = render("prod")
    url = postgres.new_database()
    database = {"imdb-sentiment-database": {"DATABASE_URL": url},
                "imdb-sentiment-database-migrate": {"DATABASE_URL": url}}  # fmt: skip
    # The release step: the Job's command, with the Job's security context and Secret.
    job = pod_spec(docs, "Job")
    (job_container,) = job["containers"]
    entrypoint, *arguments = job_container["command"]
    job_env = env_args(secret_env(job, database))
    migrated = docker("run", "--rm", "--network=host", *kubelet_args(job), *job_env,
                      "--entrypoint", entrypoint, release_image, *arguments)  # fmt: skip
    assert "schema at revision" in migrated.stdout, migrated.stdout + migrated.stderr

    pod = pod_spec(docs)
    env = {**config_env(docs, pod), **secret_env(pod, database)}  # no registry Secret
    assert "MLFLOW_TRACKING_URI" not in env
    with container(docker, release_image, env, kubelet_args(pod)) as box:
        record("seconds to ready (prod Deployment, no registry)", box.wait_ready(60))
        version = requests.get(f"{box.url}/version", timeout=5).json()["model"]
        assert (version["version"], version["source"]) == ("1", "image")
        answer = requests.post(f"{box.url}/api/v1/predict", json={"text": "A wonderful film"},
                               timeout=5)  # fmt: skip
        assert answer.status_code == 200 and answer.json()["label"] in ("positive", "negative")
        request_id = answer.headers["X-Request-ID"]
        feedback = {"request_id": request_id, "label": "positive"}
        refused = requests.post(f"{box.url}/api/v1/feedback", json=feedback, timeout=5)
        assert refused.status_code == 401  # the token Secret is absent: nobody may write
        assert_grpc_answers(box.grpc_port)
        user = str(pod["securityContext"]["runAsUser"])
        assert docker.uids(box.name) == {user}
        box.wait_health("healthy", 40)
        grace = int(pod["terminationGracePeriodSeconds"])
        taken, code = box.stop(grace)
        record("docker stop seconds (prod Deployment)", taken)
        assert code == 0 and taken < grace, box.logs()[-2000:]


def env_args(env: dict[str, str]) -> list[str]:
    return [item for k, v in env.items() for item in ("-e", f"{k}={v}")]


def assert_grpc_answers(port: int) -> None:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    deadline = time.monotonic() + 20
    while not client.is_server_ready():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    tensor = grpcclient.InferInput("text", [1], "BYTES")
    import numpy as np

    tensor.set_data_from_numpy(np.array([b"a wonderful film"], dtype=object))
    result = client.infer("imdb-sentiment", [tensor])
    assert 0.0 <= float(result.as_numpy("probability")[0]) <= 1.0


# --- the dev overlay ----------------------------------------------------------------------
def test_the_dev_overlay_starts_without_a_database_secret(
    docker: Docker, alias_image: str, registry: str
) -> None:
    """Dev follows `staging` through the registry Secret; with no database Secret of its own it
    keeps predictions on an embedded store on its volume, migrated by the pod itself."""
    docs = render("dev")
    assert not [d for d in docs if d["kind"] == "Job"], "dev pods migrate their own store"
    pod = pod_spec(docs)
    (registry_secret,) = [s["secretRef"]["name"] for s in pod["containers"][0]["envFrom"]
                          if "secretRef" in s]  # fmt: skip
    secrets = {registry_secret: {"MLFLOW_TRACKING_URI": registry}}
    env = {**config_env(docs, pod), **secret_env(pod, secrets)}
    with container(docker, alias_image, env, kubelet_args(pod)) as box:
        record("seconds to ready (dev Deployment)", box.wait_ready(60))
        staged = register_staging_version(registry)
        assert requests.post(f"{box.url}/api/v1/predict", json={"text": "fine"}, timeout=5).ok
        ready = requests.get(f"{box.url}/readyz", timeout=5).json()
        assert ready["store"]["schema"] == "current"
        deadline = time.monotonic() + 60  # MODEL_RELOAD_INTERVAL in dev: 10 s
        while requests.get(f"{box.url}/version", timeout=5).json()["model"]["version"] != staged:
            assert time.monotonic() < deadline, "dev never followed staging"
            time.sleep(1)


def register_staging_version(registry: str) -> str:
    return register(registry, 2)  # the register stage points `staging` at it


# --- a release image without a registry ---------------------------------------------------
@pytest.mark.parametrize("registry_env", ["unset", "unreachable"])
def test_a_release_image_serves_its_baked_version_without_a_registry(
    docker: Docker, release_image: str, registry_env: str
) -> None:
    """`docker run` of the release image with its own defaults (the embedded SQLite store in
    /app/data, every worker migrating it at once), no registry configured or none answering."""
    env = (
        {}
        if registry_env == "unset"
        else {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}
    )
    with container(docker, release_image, env) as box:
        seconds = box.wait_ready(45)
        record(f"seconds to ready (release image, registry {registry_env})", seconds)
        assert seconds <= 30, box.logs()[-3000:]
        version = requests.get(f"{box.url}/version", timeout=5).json()["model"]
        assert (version["version"], version["source"]) == ("1", "image")
        logs = box.logs()
        assert "already exists" not in logs and "no schema" not in logs, logs[-3000:]


# --- health -------------------------------------------------------------------------------
def test_docker_health_is_not_healthy_while_no_model_can_load(
    docker: Docker, alias_image: str
) -> None:
    """The image's own HEALTHCHECK command, on a short interval: a server that answers /healthz
    but has no model (no registry, nothing cached) is `unhealthy`, never `healthy`."""
    env = {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}
    timing = ["--health-interval", "1s", "--health-start-period", "1s", "--health-retries", "2"]
    with container(docker, alias_image, env, timing) as box:
        box.wait_ready(60, path="/healthz")
        box.wait_health("unhealthy", 30)
        assert requests.get(f"{box.url}/readyz", timeout=5).status_code == 503


# --- docker-compose.yml -------------------------------------------------------------------
def compose_cli() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        if IN_CI:
            pytest.fail("docker-compose is required in CI (.ci/run installs Debian's)")
        pytest.skip("docker-compose not installed")
    return found


def ensure_standin(docker: Docker, tag: str, folder: Path, args: dict[str, str]) -> None:
    """`tag` as it is when present or pullable, else the stand-in built from `folder`."""
    if docker.has_image(tag) or docker("pull", tag, check=False).returncode == 0:
        return
    docker.build(tag, context=folder, args=args)


def mlflow_constraints(folder: Path) -> None:
    """The lock's versions, without their hashes, as pip constraints for the stand-in."""
    lock = (ROOT / "requirements/lock.txt").read_text()
    pins = re.findall(r"^([A-Za-z0-9_.\-]+==[^\s\\]+)", lock, re.M)
    (folder / "constraints.txt").write_text("\n".join(pins) + "\n")


def test_compose_stack_serves(docker: Docker, tmp_path: Path) -> None:
    cli = compose_cli()
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    images = {name: s["image"] for name, s in compose.items() if "image" in s}
    mlflow_dir = tmp_path / "mlflow"
    shutil.copytree(STANDINS / "mlflow", mlflow_dir)
    mlflow_constraints(mlflow_dir)
    ensure_standin(docker, images["mlflow"], mlflow_dir, {"PYTHON_IMAGE": base_image()})
    debian = (
        "local/debian:bookworm" if docker.has_image("local/debian:bookworm") else "debian:bookworm"
    )
    ensure_standin(docker, images["postgres"], STANDINS / "postgres", {"DEBIAN_IMAGE": debian})
    # compose's own build of `app` is the Dockerfile with BuildKit (a build secret mount).
    docker.build(images["app"])
    for port in (5000, 5005):
        assert free(port), f"docker-compose.yml publishes {port}, which is taken on this host"
    project = f"imdbtest{os.getpid()}"
    base = [cli, "-p", project, "-f", str(ROOT / "docker-compose.yml")]

    def compose_run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*base, *args], capture_output=True, text=True, cwd=ROOT,
                              check=False, timeout=600)  # fmt: skip
        if check:
            assert done.returncode == 0, done.stdout + done.stderr
        return done

    try:
        compose_run("up", "-d", "--no-build", "mlflow", "postgres")
        wait_for(lambda: health_of(docker, project, "mlflow") == "healthy", 180, "mlflow healthy")
        register("http://127.0.0.1:5000", 1, "production")  # compose's header: pipeline, promote
        started = time.monotonic()
        compose_run("up", "-d", "--no-build", "app")
        logs = lambda: compose_run("logs", "--tail=80", "app", "migrate", check=False).stdout  # noqa: E731
        wait_for(lambda: health_of(docker, project, "app") == "healthy", 150, "app healthy", logs)
        record("seconds to healthy (compose app)", time.monotonic() - started)
        url = "http://127.0.0.1:5005"
        answer = requests.post(f"{url}/api/v1/predict", json={"text": "Loved it"}, timeout=5)
        assert answer.status_code == 200
        label = {"request_id": answer.headers["X-Request-ID"], "label": "positive"}
        feedback = post_until_stored(f"{url}/api/v1/feedback", label)
        assert feedback.status_code == 201, feedback.text
        metrics = requests.get(f"{url}/metrics", timeout=5)
        assert metrics.status_code == 200
        assert (
            "model_prediction_count_total" in metrics.text
            and "model_feedback_total" in metrics.text
        )
    finally:
        compose_run("down", "-v", "--remove-orphans", check=False)


def post_until_stored(url: str, body: dict[str, Any]) -> requests.Response:
    """Feedback on a prediction still on its way to the database is a 404 for a moment."""
    deadline = time.monotonic() + 10
    while True:
        response = requests.post(url, json=body, timeout=10)
        if response.status_code != 404 or time.monotonic() > deadline:
            return response
        time.sleep(0.3)


def health_of(docker: Docker, project: str, service: str) -> str:
    labels = [f"project={project}", f"service={service}"]
    filters = [x for label in labels for x in ("--filter", f"label=com.docker.compose.{label}")]
    ids = docker("ps", "-aq", *filters).stdout.split()
    return docker.health(ids[0]) if ids else "absent"


def wait_for(check: Any, timeout: float, what: str, explain: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never {what}" + (f":\n{explain()}" if explain else ""))
        time.sleep(1)


def free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0
