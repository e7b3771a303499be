"""Packaging agrees with itself: one hashed lock (requirements/lock.txt) from which every
requirements file is derived with the same versions and hashes, serving pins that satisfy the
package's core requirements, and a consistent dev environment (pip check)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

from packaging.requirements import Requirement

from tests.project import ROOT

LOCK = "lock.txt"
DERIVED = ["serve.txt", "pipeline.txt", "dev.txt", "spark.txt"]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(name: str) -> dict[str, tuple[str, frozenset[str]]]:
    """package → (version, hashes) of a pip requirements file in hash-checking form."""
    text = (ROOT / "requirements" / name).read_text().replace("\\\n", " ")
    found = {}
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        requirement, *options = line.split()
        package, _, version = requirement.partition("==")
        assert version, f"{name}: {requirement} is not an exact pin"
        hashes = frozenset(o.removeprefix("--hash=") for o in options if o.startswith("--hash="))
        assert hashes, f"{name}: {package} has no --hash"
        found[canonical(package.split("[")[0])] = (version, hashes)
    return found


def test_every_requirements_file_is_derived_from_the_lock() -> None:
    lock = pins(LOCK)
    for name in DERIVED:
        for package, pinned in pins(name).items():
            assert package in lock, f"{name}: {package} is not in the lock (run `make lock`)"
            assert pinned == lock[package], f"{name}: {package} differs from the lock"


def test_the_lock_covers_every_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = pins(LOCK)
    specs = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        specs += extra
    for spec in specs:
        requirement = Requirement(spec)
        version = lock.get(canonical(requirement.name), ("", frozenset()))[0]
        assert version, f"{requirement.name} is not in the lock"
        assert requirement.specifier.contains(version, prereleases=True), (spec, version)


def test_serving_pins_satisfy_the_core_requirements() -> None:
    """The image installs serve.txt, then the package with --no-deps: nothing may be missing."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    serve = pins("serve.txt")
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        assert canonical(requirement.name) in serve, f"{requirement.name} not in serve.txt"
    assert "mlflow" not in serve  # the lean client only; the full server is a pipeline extra
    assert "scikit-learn" in serve and "dvc" not in serve


def test_the_installed_environment_is_consistent() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_kserve_tool_venv_is_locked_with_hashes() -> None:
    """The kserve SDK (tests only) lives in a venv of its own, from its own hashed lock."""
    lines = (ROOT / "requirements/tools-kserve.in").read_text().splitlines()
    (spec,) = [line for line in lines if line and not line.startswith("#")]
    wanted = Requirement(spec)
    locked = pins("tools-kserve.txt")
    assert wanted.specifier.contains(locked[canonical(wanted.name)][0])
