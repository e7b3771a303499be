"""Cold pipeline benchmark: raw archive → registered, promoted model, in a throwaway copy.

Usage: IMDB_SOURCE=../shared/data/aclImdb_v1.tar.gz python benchmarks/pipeline.py
Prints wall time and peak RSS of the cold run (empty DVC cache, empty MLflow store), the no-op
`dvc repro` time, and the registered artifact's size. Dependencies are assumed installed.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.project import make_project, run


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cores = os.cpu_count()
    return f"{platform.system()} {platform.machine()}, {cores} cores ({cpu}), {mem:.0f} GiB"


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    source = os.environ.get("IMDB_SOURCE")
    if not source:
        print("error: set IMDB_SOURCE to the IMDB archive", file=sys.stderr)
        return 1
    if "://" not in source:
        source = str(Path(source).resolve())
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        base = Path(tmp)
        env = {"IMDB_SOURCE": source, "MLFLOW_TRACKING_URI": f"sqlite:///{base / 'mlflow.db'}"}
        project = make_project(base / "project")
        started = time.perf_counter()
        run(["dvc", "repro"], project, env)
        run(["imdb-sentiment", "promote"], project, env)
        cold = time.perf_counter() - started
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        started = time.perf_counter()
        noop = run(["dvc", "repro"], project, env)
        noop_s = time.perf_counter() - started
        assert "Data and pipelines are up to date" in noop.stdout, noop.stdout
        artifact = max((p for p in (project / "mlruns").rglob("model.skops")), key=os.path.getmtime)
        artifact_mib = artifact.stat().st_size / 2**20
        accuracy = (project / "reports/metrics.json").read_text()
    print(f"machine:              {machine()}")
    print(f"cold pipeline:        {cold:7.1f} s   (target <= 180 s)")
    print(f"peak RSS (one stage): {peak_gb:7.2f} GB  (target <= 6 GB)")
    print(f"no-op dvc repro:      {noop_s:7.2f} s   (target <= 3 s)")
    print(f"registered artifact:  {artifact_mib:7.1f} MiB (model.skops)")
    print(f"metrics:              {' '.join(accuracy.split())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
