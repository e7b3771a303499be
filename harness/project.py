"""Run the real DVC pipeline in a throwaway copy of the project."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
COPIED = [
    "dvc.yaml", "params.yaml", "pyproject.toml", ".dvcignore", ".dvc/config", "data/extra/README.md"
]  # fmt: skip


def bin_dir() -> Path:
    return Path(sys.executable).parent


def make_project(dest: Path, params: dict[str, Any] | None = None) -> Path:
    """A fresh git + DVC repo holding the pipeline definition and the package source."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for name in COPIED:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    if params:
        update_params(dest, params)
    run(["git", "init", "-q"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], dest)
    return dest


def update_params(project: Path, changes: dict[str, Any]) -> None:
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for section, values in changes.items():
        params.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env["PATH"] = f"{bin_dir()}{os.pathsep}{full_env.get('PATH', '')}"
    full_env.setdefault("MPLBACKEND", "Agg")
    result = subprocess.run(
        args, cwd=cwd, env=full_env, capture_output=True, text=True, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def stages_run(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]
