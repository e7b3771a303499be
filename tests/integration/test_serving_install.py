"""The serving image's Python install, run for real: the Dockerfile's own `pip` lines (the pinned
installer, hash-checked serve.txt without resolving, `pip check`, then the package without
dependencies or build isolation) in a fresh venv, then the service's entry points. No Docker
engine here: the venv stands in for the build stage."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.integration.test_release import dockerfile_stage
from tests.project import ROOT


def build_context() -> list[str]:
    """What the Dockerfile's build stage COPYs from the build context, nothing else."""
    found = []
    for line in re.findall(r"^COPY (?!--from)(.*)$", dockerfile_stage("build"), re.M):
        found += line.split()[:-1]  # the last word is the destination
    return found


def build_checks() -> list[str]:
    """The build stage's own checks of what it built (`python -c ...` lines)."""
    return [
        part.strip()
        for line in re.findall(r"^RUN (.*)$", dockerfile_stage("build"), re.M)
        for part in line.split("&&")
        if part.strip().startswith("python -c")
    ]


def build_pip_commands() -> list[list[str]]:
    commands = []
    for line in re.findall(r"^RUN (.*)$", dockerfile_stage("build"), re.M):
        for part in line.split("&&"):
            words = shlex.split(part)
            if words[:1] == ["pip"]:
                commands.append(words)
    # bootstrap.txt, serve.txt, pip check, then the package itself
    assert [c[1] for c in commands] == ["install", "install", "check", "install"], commands
    return commands


def test_the_serving_install_is_consistent(tmp_path: Path) -> None:
    context = tmp_path / "src"  # what the Dockerfile COPYs, nothing else
    assert {"setup.py", "src", "pyproject.toml"} <= set(build_context())
    for name in build_context():
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        copy(ROOT / name, context / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "PIP_NO_INPUT": "1"}
    env.pop("PYTHONPATH", None)
    for command in build_pip_commands():
        done = subprocess.run(
            command, cwd=context, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr[-3000:]
    check = subprocess.run(  # the package's own requirements too
        ["pip", "check"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    probe = (
        "import importlib.metadata as m, imdb_sentiment.serving.http.app, "
        "imdb_sentiment.serving.server; "
        "names = {d.metadata['Name'].lower() for d in m.distributions()}; "
        "print(*(n in names for n in ('mlflow-skinny', 'mlflow', 'dvc', 'pytest')))"
    )
    done = subprocess.run(
        ["python", "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # The lean registry client; no tracking server, pipeline or test tools in the image.
    assert done.stdout.split() == ["True", "False", "False", "False"]
    # The image builds the scorer's C kernel (its builder stage has gcc): so does this venv,
    # where a compiler exists (CI installs one).
    checks = build_checks()
    assert any("KERNEL == 'compiled'" in check for check in checks), checks
    if shutil.which("gcc") is None and not IN_CI:
        pytest.skip("no C compiler here: the kernel check needs one (CI has gcc)")
    for line in checks:
        ran = subprocess.run(shlex.split(line), cwd=tmp_path, env=env, capture_output=True,
                              text=True, check=False)  # fmt: skip
        assert ran.returncode == 0, (line, ran.stderr[-2000:])
