"""Packaging agrees with itself: one version per package across the pin files, the serving pins
satisfy the package's core requirements, and the dev environment is consistent (pip check)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

from packaging.requirements import Requirement

from tests.project import ROOT

PIN_FILES = ["pipeline.txt", "serve.txt", "dev.txt", "spark.txt"]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(name: str) -> dict[str, str]:
    found = {}
    for line in (ROOT / "requirements" / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            package, _, version = line.partition("==")
            assert version, f"{name}: {line} is not an exact pin"
            found[canonical(package)] = version
    return found


def test_one_version_per_package_across_pin_files() -> None:
    seen: dict[str, tuple[str, str]] = {}
    for name in PIN_FILES:
        for package, version in pins(name).items():
            if package in seen:
                assert seen[package][0] == version, (package, seen[package], (version, name))
            seen[package] = (version, name)


def test_serving_pins_satisfy_the_core_requirements() -> None:
    """The image installs serve.txt, then the package with --no-deps: nothing may be missing."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    serve = pins("serve.txt")
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        version = serve.get(canonical(requirement.name))
        assert version is not None, f"{requirement.name} is not pinned in serve.txt"
        assert requirement.specifier.contains(version, prereleases=True), (spec, version)
    assert "mlflow" not in serve  # the lean client only; the full server is a pipeline extra


def test_the_installed_environment_is_consistent() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
