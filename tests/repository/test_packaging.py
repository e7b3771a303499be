"""Packaging agrees with itself: one hashed lock (requirements/lock.txt) from which every
requirements file is derived with the same versions and hashes, serving pins that satisfy the
package's core requirements, and a consistent dev environment (pip check)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from harness.project import ROOT

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
    # Training, evaluation and files are the pipeline's: the image scores with compiled scorers.
    for heavy in ("scikit-learn", "scipy", "pandas", "pyarrow", "dvc"):
        assert heavy not in serve, f"{heavy} in the serving pins"


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


# --- installs that are the same next month -------------------------------------------------
INSTALL_FILES = ("Makefile", "Dockerfile", ".ci/run", *(
    str(p.relative_to(ROOT)) for p in sorted((ROOT / ".github/workflows").glob("*.yaml"))
))  # fmt: skip


def install_commands() -> list[tuple[str, str]]:
    """Every `pip install` these files run, as (file, command line)."""
    found = []
    for name in INSTALL_FILES:
        text = (ROOT / name).read_text().replace("\\\n", " ")
        # The Makefile's installer options, as its recipes expand them.
        defined = re.search(r"^PIP_INSTALL = (.*)$", text, re.M)
        if defined:
            text = text.replace(defined[0], "").replace("$(PIP_INSTALL)", defined[1])
        for line in text.splitlines():
            for part in re.split(r"&&|;|\|\|", line.split("#")[0]):
                if re.search(r"\bpip install\b", part):
                    found.append((name, " ".join(part.split())))
    return found


def unpinned(command: str) -> str | None:
    """Why an install could take something the lock does not name, or None."""
    words = command.split()
    if "--no-deps" not in words:
        return "resolves dependencies (--no-deps: the lock names every package)"
    if re.search(r"(^|[\s,])-r\s", command):  # from lock files (also in a make foreach)
        if "--require-hashes" not in words:
            return "no --require-hashes"
        return None
    if words[-1] in {".", "-e ."} or words[-2:] == ["-e", "."]:  # the project itself
        return None if "--no-build-isolation" in words else "builds with the newest setuptools"
    return "installs packages by name, outside any lock"


def test_every_install_takes_exactly_a_hashed_lock() -> None:
    commands = install_commands()
    assert len(commands) >= 6, commands  # Makefile venv + project, Dockerfile's three
    assert [(f, c, unpinned(c)) for f, c in commands if unpinned(c)] == []
    for _, command in commands:
        for lock in re.findall(r"-r (\S+)", command):
            if "$(" not in lock:
                pins(Path(lock).name)  # exact pins, each with a hash
    # ...and the check does catch what broke CI: an unpinned installer, an unlocked tool.
    for bad in ("pip install -q --upgrade 'pip>=24'", "pip install -q 'checkov==3.3.30'",
                "pip install -q -r requirements/tools-kserve.txt"):  # fmt: skip
        assert unpinned(bad) is not None, bad


def test_every_venv_is_made_one_way() -> None:
    make = (ROOT / "Makefile").read_text()
    assert len(re.findall(r"-m venv", make)) == 1  # inside `define venv` only
    calls = re.findall(r"\$\(call venv,([^,]+),([^)]+)\)", make)
    assert {lock.strip() for _, lock in calls} >= {
        "requirements/pipeline.txt", "requirements/dev.txt", "requirements/spark.txt",
        "requirements/tools-kserve.txt", "requirements/tools-checkov.txt",
    }  # fmt: skip
    body = make[make.index("define venv") : make.index("endef")]
    assert "requirements/bootstrap.txt" in body and "pip check" in body


def test_every_lock_is_hashed_and_every_tool_pinned_exactly() -> None:
    locks = sorted(p.name for p in (ROOT / "requirements").glob("*.txt"))
    assert {"bootstrap.txt", "tools-checkov.txt", "tools-kserve.txt"} <= set(locks)
    pinned = {name: pins(name) for name in locks}  # each line: == and --hash
    for source in (ROOT / "requirements").glob("*.in"):
        for line in source.read_text().splitlines():
            line = line.split("#")[0].strip()
            if line:
                assert re.fullmatch(r"[\w.\-\[\],]+==[\w.]+", line), (source.name, line)
    # The installer and build backend are the same wherever a lock also names them.
    for package, version in pinned["bootstrap.txt"].items():
        for name, found in pinned.items():
            if package in found:
                assert found[package] == version, (name, package)
