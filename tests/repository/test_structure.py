"""The code's shape, beyond what import-linter's contracts (pyproject.toml, `lint-imports`) say:
that each contract fails when broken, module names that mean one thing, tests that mirror src/,
the README's layout, and DVC stages that depend on exactly the source files their command
imports (so editing any of them reruns the stage, and nothing else does). Stages run
`python -m imdb_sentiment.cli.pipeline <stage>`: the pipeline's command module, not the whole
`imdb-sentiment` program."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest
import yaml

from harness.project import ROOT

SRC = ROOT / "src"
PACKAGE = "imdb_sentiment"
CLI = f"{PACKAGE}.cli"
STAGE_COMMAND = f"python -m {CLI}.pipeline "


def module_file(module: str) -> Path | None:
    base = SRC / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _walk(node: ast.AST) -> list[ast.AST]:
    """Every node, except what is under `if TYPE_CHECKING:` (never imported at run time)."""
    out = [node]
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            out.extend(n for orelse in child.orelse for n in _walk(orelse))
            continue
        out.extend(_walk(child))
    return out


def _imports(node: ast.AST, here: str) -> set[str]:
    found: set[str] = set()
    for item in _walk(node):
        if isinstance(item, ast.Import):
            found |= {alias.name for alias in item.names}
        elif isinstance(item, ast.ImportFrom) and item.module:
            base = item.module
            if item.level:  # relative import
                base = ".".join([*here.split(".")[: -item.level], item.module])
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in item.names}
    return {m for m in found if m.split(".")[0] == PACKAGE and module_file(m) is not None}


@cache
def imports_of(module: str, top_level_only: bool = False) -> frozenset[str]:
    """Our modules that `module` imports (anywhere in it, or only at import time), plus the
    packages on the way (importing a.b.c runs a/__init__ and a/b/__init__)."""
    path = module_file(module)
    assert path is not None, module
    tree = ast.parse(path.read_text())
    nodes: list[ast.AST] = list(tree.body) if top_level_only else [tree]
    if top_level_only:  # not under `if TYPE_CHECKING:`, not inside functions
        nodes = [n for n in nodes if isinstance(n, (ast.Import, ast.ImportFrom))]
    found: set[str] = set()
    for node in nodes:
        for name in _imports(node, module):
            parts = name.split(".")
            found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return frozenset(m for m in found if m != module and module_file(m) is not None)


def closure(start: set[str]) -> set[str]:
    """Everything `start` may import. Command modules count with their module-level imports
    only: the stage's command's own imports are in `start` (see stage_entry)."""
    seen: set[str] = set()
    todo = list(start)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            parts = module.split(".")
            todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # its packages
            todo.extend(imports_of(module, top_level_only=module.startswith(f"{CLI}.")))
    return seen


def stage_entry(cmd: str) -> set[str]:
    """What `python -m imdb_sentiment.cli.pipeline <command>` imports: the module's module
    level plus that command."""
    assert cmd.startswith(STAGE_COMMAND), f"a stage runs {STAGE_COMMAND}<stage>, not {cmd!r}"
    command = cmd.removeprefix(STAGE_COMMAND).split()[0]
    entry = f"{CLI}.pipeline"
    tree = ast.parse(module_file(entry).read_text())  # type: ignore[union-attr]
    function = next(
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any(
            isinstance(d, ast.Call)
            and (
                (d.args and isinstance(d.args[0], ast.Constant) and d.args[0].value == command)
                or (not d.args and node.name == command)
            )
            for d in node.decorator_list
        )
    )
    return {entry, *_imports(function, entry)}


CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
# One violation per contract, each a lazy import inside a function (import-linter counts
# those), the forbidden ones reaching what they forbid only through other modules.
PLANTS = {
    "rooms": ("core/errors.py", "imdb_sentiment.serving.metrics"),
    "pipeline": ("pipeline/data/validate.py", "imdb_sentiment.pipeline.train"),
    "core": ("core/evidence.py", "imdb_sentiment.core.io"),
    "serving": ("serving/tensors.py", "imdb_sentiment.serving.http.app"),
    "store": ("store/records.py", "imdb_sentiment.store.database"),
    "fronts": ("serving/grpc/messages.py", "imdb_sentiment.serving.http.schemas"),
    # grpc -> scoring -> live_model -> http.json_provider -> flask
    "grpc-no-web-framework": ("serving/live_model.py", "imdb_sentiment.serving.http.json_provider"),
    "runtime-apart": ("runtime/resolve.py", "imdb_sentiment.store.engine"),
    # executor -> core.labels -> core.tracking -> mlflow
    "scorer-light": ("core/labels.py", "imdb_sentiment.core.tracking"),
    # http.ops -> pipeline.evaluate -> sklearn
    "workers-light": ("serving/http/ops.py", "imdb_sentiment.pipeline.evaluate"),
    # archive <-> ingest
    "acyclic": ("pipeline/data/archive.py", "imdb_sentiment.pipeline.data.ingest"),
}


def lint_imports(src: Path, *contract: str) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on the package under `src` with this repository's contracts."""
    found = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    args = [found, "--config", str(ROOT / "pyproject.toml"), "--no-cache"]
    for name in contract:
        args += ["--contract", name]
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=src, check=False)


def test_the_contracts_hold() -> None:
    done = lint_imports(SRC)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout


def test_every_contract_has_a_planted_violation() -> None:
    assert {c["id"] for c in CONTRACTS["contracts"]} == set(PLANTS)


@pytest.mark.parametrize("contract", sorted(PLANTS))
def test_each_contract_fails_on_a_planted_violation(contract: str, tmp_path: Path) -> None:
    shutil.copytree(SRC / PACKAGE, tmp_path / PACKAGE)
    module, imported = PLANTS[contract]
    with (tmp_path / PACKAGE / module).open("a") as planted:
        planted.write(f"\n\ndef _planted() -> None:\n    import {imported}  # noqa\n")
    done = lint_imports(tmp_path, contract)
    assert done.returncode == 1, done.stdout[-3000:]
    assert "BROKEN" in done.stdout and imported.rpartition(".")[2] in done.stdout


def package_modules() -> list[Path]:
    return [
        p
        for p in (SRC / PACKAGE).rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py") and "migrations" not in p.parts
    ]


def test_no_two_modules_share_a_name() -> None:
    """`sync`, `settings`, `labels`, `store`: one meaning each, wherever they are imported."""
    by_name: dict[str, list[str]] = {}
    packages = [p.parent for p in (SRC / PACKAGE).rglob("__init__.py") if p.parent != SRC / PACKAGE]
    for path in [*package_modules(), *packages]:
        by_name.setdefault(path.stem, []).append(str(path.relative_to(SRC)))
    # A command module is named for the room it drives (cli/batch.py runs batch/).
    rooms = {p.name for p in (SRC / PACKAGE).iterdir() if (p / "__init__.py").exists()}
    shared = {
        name: paths
        for name, paths in by_name.items()
        if len([p for p in paths if not (name in rooms and p.startswith(f"{PACKAGE}/cli/"))]) > 1
    }
    assert not shared, shared


def test_unit_tests_mirror_the_package() -> None:
    """tests/unit/<package path>/test_<module>[_<topic>].py: for each test file, the module it
    tests is at the same path under src/imdb_sentiment/."""
    unit = ROOT / "tests" / "unit"
    problems = []
    for path in sorted(unit.rglob("test_*.py")):
        package = SRC / PACKAGE / path.parent.relative_to(unit)
        names = {p.stem for p in package.glob("*.py")} | {
            p.name for p in package.iterdir() if (p / "__init__.py").exists()
        }
        stem = path.stem.removeprefix("test_")
        if not any(stem == n or stem.startswith(n + "_") for n in names - {"__init__"}):
            problems.append(str(path.relative_to(ROOT)))
    assert not problems, f"no module of that name beside: {problems}"


def _expand(token: str) -> list[str]:
    """Shell-style braces: "a/{b,c}.py" → ["a/b.py", "a/c.py"] (one level)."""
    if "{" not in token:
        return [token]
    head, rest = token.split("{", 1)
    inner, tail = rest.split("}", 1)
    return [head + part + tail for part in inner.split(",")]


def test_readme_layout_matches_the_tree() -> None:
    """Every file the README's layout names exists, and it names every module of the package."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Layout", 1)[1].split("```")[1]
    lines = block.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"src/{PACKAGE}/"))
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith(" "))
    named = set()
    for line in lines[start:end]:
        for token in line.removeprefix(f"src/{PACKAGE}/").split():
            if token.endswith((".py", "/", "}")):
                named |= {f"src/{PACKAGE}/{path}" for path in _expand(token)}
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"README names what does not exist: {missing}"
    modules = {
        str(p.relative_to(ROOT))
        for p in (SRC / PACKAGE).rglob("*.py")
        if p.name != "__init__.py" and not {"presets", "migrations"} & set(p.parts)
    }
    unnamed = sorted(modules - named)
    assert not unnamed, f"README's layout omits: {unnamed}"


def test_dvc_stage_deps_are_exactly_the_code_each_stage_imports() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    problems = []
    for name, stage in stages.items():
        code = {
            str(module_file(m).relative_to(ROOT))  # type: ignore[union-attr]
            for m in closure(stage_entry(stage["cmd"]))
        }
        declared = {d for d in stage["deps"] if d.startswith("src/")}
        if code != declared:
            problems.append(
                f"{name}: missing {sorted(code - declared)}, extra {sorted(declared - code)}"
            )
    assert not problems, "\n".join(problems)


def test_no_stage_runs_application_code() -> None:
    """The applications (serving, batch, monitoring) sit above the pipeline: no stage's import
    closure reaches them, so editing any of their modules leaves `dvc status` clean."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    applications = tuple(f"{PACKAGE}.{app}" for app in ("serving", "batch", "monitoring"))
    # ... nor their commands: editing `predict`'s help text reruns nothing either.
    applications += tuple(
        f"{CLI}.{area}" for area in ("main", "release", "serve", "batch", "monitor", "experiments")
    )
    for name, stage in stages.items():
        modules = closure(stage_entry(stage["cmd"]))
        reached = sorted(m for m in modules if m.startswith(applications))
        assert not reached, f"stage {name} runs {reached}"


def rewrite_dvc_deps() -> None:
    """Set each stage's src/ deps in dvc.yaml to its import closure, keeping data deps."""
    path = ROOT / "dvc.yaml"
    text = path.read_text()
    for name, stage in yaml.safe_load(text)["stages"].items():
        code = sorted(
            str(module_file(m).relative_to(ROOT))  # type: ignore[union-attr]
            for m in closure(stage_entry(stage["cmd"]))
        )
        deps_at = text.index("    deps:\n", text.index(f"  {name}:\n")) + len("    deps:\n")
        lines = text[deps_at:].splitlines(keepends=True)
        count = next(i for i, line in enumerate(lines) if not line.startswith("      - "))
        data = [line for line in lines[:count] if not line.strip()[2:].startswith("src/")]
        block = "".join(f"      - {c}\n" for c in code) + "".join(data)
        text = text[:deps_at] + block + text[deps_at + sum(map(len, lines[:count])) :]
    path.write_text(text)


if __name__ == "__main__":  # python -m tests.repository.test_structure: fix dvc.yaml after a change
    rewrite_dvc_deps()


def test_no_large_file_is_tracked_outside_dvc() -> None:
    """Data and binaries go to DVC (a .dvc pointer in git), never into git itself."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    files = [ROOT / name for name in listed.stdout.decode().split("\0") if name]
    assert len(files) > 100
    large = [f"{p.relative_to(ROOT)}: {p.stat().st_size:,} B" for p in files
             if p.is_file() and p.stat().st_size > 1_000_000]  # fmt: skip
    assert large == []


def test_no_source_file_is_over_450_lines() -> None:
    """A module does one job: past 450 lines it is doing several (the C kernel aside)."""
    long = [f"{p.relative_to(ROOT)}: {n}" for p in sorted((ROOT / "src").rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > 450]  # fmt: skip
    assert long == []
