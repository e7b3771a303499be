"""A real Docker daemon for the tests that build and run the image, and a pod's container run
the way the kubelet runs it: the rendered Deployment's user, groups, read-only root, dropped
capabilities, an emptyDir (a tmpfs owned by the fsGroup) at each mount path, its ConfigMap's
environment. Only ports are moved (the containers share the host's network here).

BuildKit is required (the Dockerfile's `RUN --mount=type=secret`): Debian's CLI at /usr/bin/docker
has it built in. Builds use the host's network (`--network=host`), as the daemon on these
machines has no default bridge; on a laptop or GitHub's runner that changes nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.project import ROOT
from tests.conftest import IN_CI


def base_image() -> str:
    """The Dockerfile's base image (its `ARG PYTHON_IMAGE=` default)."""
    found = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert found, "the Dockerfile names its base image in ARG PYTHON_IMAGE"
    return found[1]


class Docker:
    def __init__(self, cli: str) -> None:
        self.cli = cli

    def __call__(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 900,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.cli, *args], capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "DOCKER_BUILDKIT": "1", **(env or {})}, check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)}:\n{result.stdout}\n{result.stderr}")
        return result

    def has_image(self, tag: str) -> bool:
        return self("image", "inspect", tag, check=False).returncode == 0

    def build(
        self, tag: str, context: Path = ROOT, args: dict[str, str] | None = None,
        secrets: dict[str, Path] | None = None, dockerfile: Path | None = None,
    ) -> float:  # fmt: skip
        """Build `context` (its own .dockerignore applies); the seconds it took."""
        command = ["build", "--network=host", "-t", tag]
        for key, value in (args or {}).items():
            command += ["--build-arg", f"{key}={value}"]
        for key, path in (secrets or {}).items():
            command += ["--secret", f"id={key},src={path}"]
        if dockerfile is not None:
            command += ["-f", str(dockerfile)]
        started = time.monotonic()
        self(*command, str(context))
        return time.monotonic() - started

    def inspect(self, name: str, template: str) -> str:
        return self("inspect", "-f", template, name).stdout.strip()

    def health(self, name: str) -> str:
        return self.inspect(name, "{{if .State.Health}}{{.State.Health.Status}}{{end}}")

    def uids(self, name: str) -> set[str]:
        """The user id of every process in the container."""
        rows = self("top", name, "-eo", "uid,pid").stdout.splitlines()[1:]
        return {row.split()[0] for row in rows}


def require_docker() -> Docker:
    """Debian's CLI (BuildKit built in) or any `docker`, with a daemon answering; skip without
    one on a laptop, fail in CI (.ci/run starts one)."""
    cli = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else shutil.which("docker")
    reason = "no docker CLI"
    if cli is not None:
        version = [cli, "version", "--format", "{{.Server.Version}}"]
        answer = subprocess.run(version, capture_output=True, text=True, timeout=30, check=False)
        if answer.returncode == 0:
            docker = Docker(cli)
            if (
                not docker.has_image(base_image())
                and docker("pull", base_image(), check=False).returncode
            ):
                reason = f"the base image {base_image()} is neither present nor pullable"
            else:
                return docker
        else:
            reason = f"no Docker daemon answers: {answer.stderr.strip()}"
    elsewhere = os.environ.get("DOCKER_TESTS_JOB")
    if IN_CI and not elsewhere:
        pytest.fail(f"Docker is required in CI: {reason}")
    pytest.skip(f"{reason}; the {elsewhere} job runs these" if elsewhere else reason)


@dataclass
class Container:
    docker: Docker
    name: str
    port: int  # HTTP, on the host's network
    grpc_port: int
    started: float = field(default_factory=time.monotonic)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        result = self.docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def wait_ready(self, timeout: float, path: str = "/readyz") -> float:
        """Seconds from `docker run` until `path` answered 200."""
        deadline = self.started + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.docker.inspect(self.name, "{{.State.Running}}") != "true":
                raise AssertionError(f"{self.name} exited:\n{self.logs()[-4000:]}")
            try:
                answer = requests.get(self.url + path, timeout=2)
                if answer.status_code == 200:
                    return time.monotonic() - self.started
                last = f"{answer.status_code} {answer.text}"
            except requests.RequestException as exc:
                last = str(exc)
            time.sleep(0.2)
        logs = "\n".join(line for line in self.logs().splitlines() if "gunicorn.access" not in line)
        raise AssertionError(f"{self.name} not ready in {timeout} s ({last}):\n{logs[-4000:]}")

    def wait_health(self, wanted: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (status := self.docker.health(self.name)) != wanted:
            assert time.monotonic() < deadline, f"health {status!r}, never {wanted!r}"
            time.sleep(0.5)

    def stop(self, grace: int) -> tuple[float, int]:
        """`docker stop` with the pod's grace period: (seconds taken, exit code)."""
        started = time.monotonic()
        self.docker("stop", "-t", str(grace), self.name, timeout=grace + 30)
        taken = time.monotonic() - started
        return taken, int(self.docker.inspect(self.name, "{{.State.ExitCode}}"))


@contextmanager
def container(
    docker: Docker, image: str, env: dict[str, str], args: Sequence[str] = (),
    command: Sequence[str] = (), port: int | None = None, grpc_port: int | None = None,
) -> Iterator[Container]:  # fmt: skip
    """`docker run -d` on the host's network; removed afterwards (its log kept on failure)."""
    from harness.server import free_port

    name = f"imdb-test-{uuid.uuid4().hex[:8]}"
    port = port or free_port()
    grpc_port = grpc_port or free_port()
    full_env = {**env, "PORT": str(port)}
    if "GRPC_PORT" in env and env["GRPC_PORT"] != "0":
        full_env["GRPC_PORT"] = str(grpc_port)
    env_args = [item for k, v in full_env.items() for item in ("-e", f"{k}={v}")]
    docker("run", "-d", "--name", name, "--network=host", *env_args, *args, image, *command)
    box = Container(docker, name, port, grpc_port)
    try:
        yield box
    finally:
        docker("rm", "-f", name, check=False)


def pod_spec(docs: list[dict[str, Any]], kind: str = "Deployment") -> dict[str, Any]:
    found = next(d for d in docs if d["kind"] == kind)
    return dict(found["spec"]["template"]["spec"])


def kubelet_args(pod: dict[str, Any], container_name: str | None = None) -> list[str]:
    """`docker run` flags for a pod's container as the kubelet runs it: user and groups, the
    container's security context, and each emptyDir volume as a tmpfs owned by the fsGroup
    (0o2777, root:fsGroup, as the kubelet sets an emptyDir's ownership). Secret volumes are
    left out: a test mounts the ones it gives."""
    (spec,) = [c for c in pod["containers"] if container_name in (None, c["name"])]
    pod_sc, sc = pod.get("securityContext", {}), spec.get("securityContext", {})
    user = sc.get("runAsUser", pod_sc.get("runAsUser"))
    group = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
    args = ["--user", f"{user}:{group}"]
    fs_group = pod_sc.get("fsGroup")
    if fs_group is not None:
        args += ["--group-add", str(fs_group)]
    if sc.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    for cap in sc.get("capabilities", {}).get("drop", []):
        args += ["--cap-drop", cap]
    if sc.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in spec.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "emptyDir" not in volume:
            continue
        options = f"mode=2777,uid=0,gid={fs_group if fs_group is not None else 0}"
        limit = (volume["emptyDir"] or {}).get("sizeLimit")
        if limit:
            options += f",size={tmpfs_size(limit)}"
        args += ["--tmpfs", f"{mount['mountPath']}:{options}"]
    return args


def tmpfs_size(quantity: str) -> str:
    number, unit = re.fullmatch(r"(\d+)([KMG]i)?", quantity).groups()  # type: ignore[union-attr]
    return number + {"Ki": "k", "Mi": "m", "Gi": "g", None: ""}[unit]


def config_env(docs: list[dict[str, Any]], pod: dict[str, Any]) -> dict[str, str]:
    """The environment the container gets from its ConfigMaps (envFrom), as rendered."""
    (spec,) = pod["containers"][:1]
    maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref:
            env.update({str(k): str(v) for k, v in maps[ref["name"]]["data"].items()})
    return env


def secret_env(pod: dict[str, Any], values: dict[str, dict[str, str]]) -> dict[str, str]:
    """Variables from Secrets (`env[].valueFrom.secretKeyRef` and `envFrom[].secretRef`): those
    whose Secret `values` holds; a missing Secret must be optional, as the kubelet requires."""
    (spec,) = pod["containers"][:1]
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        ref = source.get("secretRef")
        if ref is None:
            continue
        if ref["name"] in values:
            env.update(values[ref["name"]])
        else:
            assert ref.get("optional"), f"the pod needs Secret {ref['name']}"
    for item in spec.get("env", []):
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref is None:
            continue
        if ref["name"] in values:
            env[item["name"]] = values[ref["name"]][ref["key"]]
        else:
            assert ref.get("optional"), f"the pod needs Secret {ref['name']}"
    return env


def image_size_mb(docker: Docker, tag: str) -> float:
    return int(docker.inspect(tag, "{{.Size}}")) / 1e6


def image_env(docker: Docker, tag: str) -> dict[str, str]:
    pairs = json.loads(docker.inspect(tag, "{{json .Config.Env}}"))
    return dict(p.split("=", 1) for p in pairs)
