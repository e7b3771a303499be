"""The code's shape: no import cycles in src/, and each DVC stage depends on exactly the source
files its command imports (so editing any of them reruns the stage, and nothing else does).
Stages run `python -m imdb_sentiment.cli.pipeline <stage>`: the pipeline's command module, not
the whole `imdb-sentiment` program."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import yaml

from tests.project import ROOT

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


def test_no_import_cycles() -> None:
    """Counting imports inside functions too: a lazy import is still a dependency."""
    modules = {module_name(p) for p in (SRC / PACKAGE).rglob("*.py") if "." not in p.stem}
    graph = {m: {d for d in imports_of(m) if d in modules} for m in modules}
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph[module]):
            if dep.startswith(module + "."):
                continue  # a package importing its own submodule is not a cycle
            if state.get(dep) == 1:
                raise AssertionError(" -> ".join([*path[path.index(dep) :], dep]))
            if dep not in state:
                visit(dep, [*path, dep])
        state[module] = 2

    for module in sorted(modules):
        if module not in state:
            visit(module, [module])


# What a package must never import (its docstring says so): our own modules by prefix,
# third-party packages by top-level name, counting lazy imports too — which import-linter's
# contracts (pyproject.toml) do not tell apart from module-level ones.
SERVING = f"{PACKAGE}.serving"
RUNTIME = f"{PACKAGE}.runtime"
LAYER_FORBIDS = {
    RUNTIME: (SERVING, f"{PACKAGE}.batch", f"{PACKAGE}.monitoring", f"{PACKAGE}.store", "flask"),
    f"{SERVING}.model": (f"{SERVING}.http", "flask"),
}
# What serving workers and Spark executors import: never scikit-learn, MLflow or Flask.
WORKER_MODULES = [f"{RUNTIME}.scorer", f"{RUNTIME}.highlight", f"{RUNTIME}.records"]
WORKER_FORBIDS = ("sklearn", "mlflow", "flask")


def third_party_imports(module: str) -> set[str]:
    path = module_file(module)
    assert path is not None
    found = set()
    for item in _walk(ast.parse(path.read_text())):
        if isinstance(item, ast.Import):
            found |= {alias.name.split(".")[0] for alias in item.names}
        elif isinstance(item, ast.ImportFrom) and item.module and not item.level:
            found.add(item.module.split(".")[0])
    return found - {PACKAGE}


def test_layers_import_only_downwards_lazy_imports_included() -> None:
    problems = []
    for module in WORKER_MODULES:
        bad = third_party_imports(module) & set(WORKER_FORBIDS)
        bad |= {m for m in imports_of(module) if m.startswith(f"{RUNTIME}.compile")}
        if bad:
            problems.append(f"{module} imports {sorted(bad)}")
    for layer, forbidden in LAYER_FORBIDS.items():
        for path in module_file(layer).parent.glob("*.py"):  # type: ignore[union-attr]
            module = module_name(path)
            ours = {m for m in imports_of(module) if not m.startswith(layer)}
            bad = {m for m in ours if m.startswith(forbidden)}
            bad |= third_party_imports(module) & set(forbidden)
            if bad:
                problems.append(f"{module} imports {sorted(bad)}")
    assert not problems, "\n".join(problems)


def test_the_layer_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    tree = ast.parse(
        "def f():\n    from imdb_sentiment.serving.http import app\n    import flask\n"
    )
    assert f"{SERVING}.http.app" in _imports(tree, f"{RUNTIME}.scorer")
    assert "flask" in {a.name for n in _walk(tree) if isinstance(n, ast.Import) for a in n.names}


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


if __name__ == "__main__":  # python -m tests.unit.test_structure: fix dvc.yaml after a change
    rewrite_dvc_deps()


def declared_imports(path: Path) -> list[str] | None:
    """The package modules a docstring's "Imports:" paragraph allows (`config`, `runtime.*`),
    or None without one."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    paragraph = next((p for p in doc.split("\n\n") if p.startswith("Imports:")), None)
    if paragraph is None:
        return None
    allowed = re.split(r"\.\s+(?:Never|Nothing)\b", paragraph)[0]  # not what it forbids
    return [f"{PACKAGE}.{name.removesuffix('.*')}" for name in re.findall(r"`([\w.*]+)`", allowed)]


def test_docstrings_say_what_their_modules_import() -> None:
    """An "Imports:" sentence in a module's docstring (or its package's, for the package's
    modules) names every module of ours it imports, lazy imports included."""
    problems = []
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        if "." in path.stem or "migrations" in path.parts:  # gunicorn.conf.py, Alembic's
            continue
        module = module_name(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        rules = [(module, declared_imports(path))]
        if path.name != "__init__.py":
            rules.append(
                (package, declared_imports(SRC / Path(*package.split(".")) / "__init__.py"))
            )
        for owner, allowed in rules:
            if allowed is None or owner == PACKAGE:
                continue
            used = {
                m
                for m in imports_of(module)
                if not (m == owner or m.startswith(owner + ".") or module.startswith(m + "."))
            }
            used = {m for m in used if not any(u.startswith(m + ".") for u in used)}  # leaves
            stray = sorted(
                m for m in used if not any(m == a or m.startswith(a + ".") for a in allowed)
            )
            if stray:
                problems.append(f"{module}: imports {stray}, not in {owner}'s 'Imports:'")
    assert not problems, "\n".join(problems)
