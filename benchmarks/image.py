"""The serving image, built on a real Docker daemon from the committed context, and run each way.

Usage:  python benchmarks/image.py [--skip-runs]

Prints: a cold build (`--no-cache`) and a rebuild after a source change, the image's size and
its base's (the figure a user sees is the difference plus their base), the venv's size and its
largest distributions with what a worker and the sync process import of them. Then it runs
tests/integration/test_image.py, which starts the image as the prod and dev Deployments, as a
release with no registry, and as compose, and prints its `figure:` lines (time to ready, time to
stop). Needs BuildKit (Debian's /usr/bin/docker, or DOCKER_BUILDKIT=1) and the base image.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKER = (
    "/usr/bin/docker" if Path("/usr/bin/docker").exists() else shutil.which("docker") or "docker"
)
TAG = "imdb-sentiment:bench"
PROBE = """
import importlib.metadata as md, json, os, sys
sizes = {}
for dist in md.distributions():
    files = [f for f in (dist.files or []) if not str(f).startswith("..")]
    sizes[dist.metadata["Name"]] = sum(os.path.getsize(f.locate()) for f in files
                                       if os.path.isfile(f.locate()))
import imdb_sentiment.serving.http.wsgi  # noqa: F401  (a worker: the app factory)
worker = {m.split(".")[0] for m in sys.modules}
import imdb_sentiment.serving.server, imdb_sentiment.runtime.sync, mlflow.artifacts  # noqa
sync = {m.split(".")[0] for m in sys.modules}
owners = md.packages_distributions()
dists = lambda mods: sorted({d for m in mods for d in owners.get(m, [])})
print(json.dumps({"sizes": sizes, "worker": dists(worker), "sync": dists(sync)}))
"""


def docker(*args: str) -> str:
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    return subprocess.run([DOCKER, *args], env=env, check=True, capture_output=True,
                          text=True).stdout  # fmt: skip


def timed_build(*extra: str, context: Path = ROOT) -> float:
    started = time.monotonic()
    docker("build", "--network=host", "-t", TAG, *extra, str(context))
    return time.monotonic() - started


def base_image() -> str:
    found = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert found
    return found[1]


def source_change_rebuild() -> float:
    """A rebuild after a one-line change under src/, in a copy of the committed context."""
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp) / "context"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(context)],
                       check=True)  # fmt: skip
        try:
            init = context / "src/imdb_sentiment/__init__.py"
            init.write_text(init.read_text() + f"\n# rebuilt at {time.time()}\n")  # a new layer
            return timed_build(context=context)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(context)],
                           check=True)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-runs", action="store_true", help="no test_image.py run")
    args = parser.parse_args()
    print(f"cold build (--no-cache): {timed_build('--no-cache'):.0f} s")
    print(f"rebuild after a source change: {source_change_rebuild():.0f} s")
    size = int(docker("image", "inspect", "-f", "{{.Size}}", TAG)) / 1e6
    base = int(docker("image", "inspect", "-f", "{{.Size}}", base_image())) / 1e6
    print(f"image: {size:.0f} MB = base {base_image()} {base:.0f} MB + {size - base:.0f} MB")
    probe = ["run", "--rm", "--entrypoint", "sh", "-e", "MODEL_SYNC=sidecar", TAG, "-c",
             'mkdir -p "$PROMETHEUS_MULTIPROC_DIR" && exec python -c "$0"', PROBE]  # fmt: skip
    found = json.loads(docker(*probe).strip().splitlines()[-1])
    worker, sync = set(found["worker"]), set(found["sync"])
    total = sum(found["sizes"].values())
    print(f"venv: {total / 1e6:.0f} MB in {len(found['sizes'])} distributions; a worker imports "
          f"{len(worker)}, the sync process {len(sync)}")  # fmt: skip
    print(f"{'distribution':28} {'MB':>6}  imported by")
    for name, nbytes in sorted(found["sizes"].items(), key=lambda kv: -kv[1])[:15]:
        where = "worker+sync" if name in worker else "sync" if name in sync else "-"
        print(f"{name:28} {nbytes / 1e6:6.1f}  {where}")
    if args.skip_runs:
        return 0
    env = {**os.environ, "CI": os.environ.get("CI", "true")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                           "tests/integration/test_image.py"], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    for line in done.stdout.splitlines():
        if line.lstrip(". ").startswith("figure:"):
            print(line.lstrip(". ").removeprefix("figure: "))
    print(done.stdout.strip().splitlines()[-1])
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
