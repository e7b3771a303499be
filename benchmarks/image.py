"""What the serving image carries, and what serving imports of it.

Usage:  python benchmarks/image.py [--workdir DIR]

No Docker engine here: the image's Python layer is rebuilt as the Dockerfile builds it (its own
`pip install` lines, read from the Dockerfile, in a fresh venv, as tests/integration/
test_serving_install.py does). Prints the venv's size, the largest distributions, and for each
whether a serving process imports it: a worker (the app factory and the compiled scorer) and the
registry sync process (MLflow's client; compiling a version that has no compiled scorer yet).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.test_serving_install import (  # noqa: E402
    build_context,
    build_pip_commands,
)

PROBE = """
import importlib.metadata as md, json, sys
import imdb_sentiment.serving.http.app, imdb_sentiment.serving.http.wsgi  # noqa: F401
worker = {m.split('.')[0] for m in sys.modules}
import imdb_sentiment.serving.server, imdb_sentiment.runtime.compile  # noqa: F401
import mlflow.sklearn  # noqa: F401  (the sync loads a version to compile it)
sync = {m.split('.')[0] for m in sys.modules}
owners = md.packages_distributions()
def dists(mods): return sorted({d for m in mods for d in owners.get(m, [])})
print(json.dumps({"worker": dists(worker), "sync": dists(sync)}))
"""


def size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.mkdtemp(prefix="image-")))
    args = parser.parse_args()
    context, venv = args.workdir / "src", args.workdir / "venv"
    for name in build_context():
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, context / name)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "PIP_NO_INPUT": "1"}
    for command in build_pip_commands():
        subprocess.run([*command, "-q"], cwd=context, env=env, check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    imported = json.loads(  # the last line: building the app (wsgi) logs JSON lines before it
        subprocess.run(
            ["python", "-c", PROBE],
            # As gunicorn.conf.py runs workers: the sync is a separate process (sidecar).
            env={**env, "MODEL_SYNC": "sidecar", "MODEL_CACHE_DIR": str(args.workdir / "cache")},
            cwd=args.workdir,
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    listed = json.loads(
        subprocess.run(
            ["pip", "list", "--format", "json"], env=env, capture_output=True, text=True, check=True
        ).stdout
    )
    sizes = {}
    for info in site.glob("*.dist-info"):
        name = info.name.split("-")[0]
        record = info / "RECORD"
        files = (
            [line.split(",")[0] for line in record.read_text().splitlines()]
            if record.exists()
            else []
        )
        sizes[name] = sum((site / f).stat().st_size for f in files if (site / f).is_file())
    worker = {d.lower().replace("-", "_") for d in imported["worker"]}
    sync = {d.lower().replace("-", "_") for d in imported["sync"]}
    print(f"serving venv: {size(venv) / 1e6:.0f} MB, {len(listed)} distributions")
    print(f"imported by a worker: {len(worker)}; by the sync process: {len(sync)}")
    print(f"{'distribution':28} {'MB':>6}  imported by")
    for name, nbytes in sorted(sizes.items(), key=lambda kv: -kv[1])[:20]:
        key = name.lower().replace("-", "_")
        where = "worker+sync" if key in worker else "sync" if key in sync else "-"
        print(f"{name:28} {nbytes / 1e6:6.1f}  {where}")
    unused = sum(n for name, n in sizes.items() if name.lower().replace("-", "_") not in sync)
    print(f"never imported by serving: {unused / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
