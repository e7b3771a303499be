"""Training at scale: rows vs wall time vs peak memory of the featurize and train stages.

Usage:
  python benchmarks/train_scale.py --archive ../shared/data/aclImdb_v1.tar.gz \
      --rows 50000 200000 1000000 --reference-rows 50000 200000 [--reference-commit REV] \
      [--spark-rows 50000 200000] [--local-rows 50000] [--set features.max_features=2000000] \
      [--register] [--work DIR [--train-only]] [--record docs/benchmarks/train_scale.json \
      --plot docs/benchmarks/train_scale.png]
  python benchmarks/train_scale.py --rows --record docs/benchmarks/train_scale.json \
      --plot docs/benchmarks/train_scale.png   # redraw from the recorded figures only

Training sets larger than the archive are synthesised from its 25,000 train reviews: each new
review takes the sentence count of a random review of its label and that many sentences drawn
from all reviews of the same label (so n-grams inside sentences are real, and new ones appear only
across sentence boundaries). The first 25,000 rows are the archive's own reviews, shuffled. The
test set is the archive's real 25,000 test reviews, so accuracy is always on real reviews.

Each stage runs as the DVC stage runs it (`python -m imdb_sentiment.cli.pipeline featurize|train`
with a params file: the project's `params.yaml`, `train.val_split: random`), timed from outside;
peak memory is the largest sum of RSS over the stage's whole process tree (joblib workers
included), sampled every 0.2 s. The reference is the same stages at `--reference-commit` (the
in-memory route) on the same files, in the same run.

`--spark-rows`: the same stages with `train.engine: spark` on a standalone cluster started here
(a master and a worker of 2 cores, separate JVMs, as harness/spark_cluster.py starts them): the
driver's memory is the stage's process tree (Python and its driver JVM), the cluster's the sum
over the master's and worker's process trees (executor JVM and Python workers included).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parents[1]
SENTENCE = re.compile(r"(?<=[.!?])\s+|<br\s*/?>\s*(?:<br\s*/?>)?")


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                .splitlines() if line.startswith("model name")), "unknown CPU")  # fmt: skip
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.machine()}, {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB"


def archive_reviews(archive: Path) -> dict[str, list[tuple[str, int]]]:
    from imdb_sentiment.pipeline.data.archive import Review, iter_reviews

    out: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
    for item in iter_reviews(archive, show_progress=False):
        if isinstance(item, Review):
            out[item.split].append((item.text, item.label))
    return out


Batch = tuple[int, list[tuple[str, int]]]


def write_table(path: Path, batches: Iterable[Batch]) -> None:
    """(first row id, [(text, label)]) batches as a Parquet file of 10k-row groups."""
    schema = pa.schema([("id", pa.int64()), ("rating", pa.int64()), ("label", pa.int64()),
                        ("movie", pa.large_string()), ("text", pa.large_string())])  # fmt: skip
    with pq.ParquetWriter(path, schema) as writer:
        for start, chunk in batches:
            labels = np.array([label for _, label in chunk], dtype=np.int64)
            columns = {"id": np.arange(start, start + len(chunk)),
                       "rating": np.where(labels == 1, 10, 1), "label": labels,
                       "movie": [""] * len(chunk), "text": [text for text, _ in chunk]}  # fmt: skip
            writer.write_table(pa.table(columns, schema=schema), row_group_size=10_000)


def synthesise(train: list[tuple[str, int]], rows: int, seed: int = 0) -> Iterator[Batch]:
    """The archive's reviews, then new ones of sentences from same-label reviews, 10k at a time."""
    rng = random.Random(seed)
    pools = {label: [s for text, lab in train if lab == label for s in SENTENCE.split(text) if s]
             for label in (0, 1)}  # fmt: skip
    counts = {label: [max(1, len(SENTENCE.split(t))) for t, lab in train if lab == label]
              for label in (0, 1)}  # fmt: skip
    real = rng.sample(train, min(rows, len(train)))  # the archive lists one label first
    for start in range(0, len(real), 10_000):
        yield start, real[start : start + 10_000]
    for start in range(len(real), rows, 10_000):
        batch = []
        for _ in range(min(10_000, rows - start)):
            label = rng.randrange(2)
            k = rng.choice(counts[label])
            batch.append((" ".join(rng.choices(pools[label], k=k)), label))
        yield start, batch


def tree_rss(root: psutil.Process, only: str = "") -> int:
    """The summed RSS of `root` and its descendants (`only`: of the processes so named)."""
    total = 0
    try:
        for p in [root, *root.children(recursive=True)]:
            total += p.memory_info().rss if not only or p.name() == only else 0
    except psutil.Error:
        pass
    return total


def cluster_roots() -> list[psutil.Process]:
    """A standalone cluster's master and worker JVMs on this machine."""
    names = ("org.apache.spark.deploy.master.Master", "org.apache.spark.deploy.worker.Worker")
    return [p for p in psutil.process_iter(["cmdline"])
            if set(names) & set(p.info["cmdline"] or [])]  # fmt: skip


Measured = tuple[float, float, float, float, str]


def measured(command: list[str], cwd: Path, env: dict[str, str],
             cluster: list[psutil.Process] | None = None) -> Measured:  # fmt: skip
    """(seconds, peak GB of the process tree's summed RSS, peak GB of the cluster's, peak GB of
    the tree's JVMs (a Spark driver's), output)."""
    started = time.perf_counter()
    process = psutil.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)  # fmt: skip
    peak = peak_cluster = peak_jvm = 0
    while process.poll() is None:
        peak = max(peak, tree_rss(process))
        peak_jvm = max(peak_jvm, tree_rss(process, "java"))
        peak_cluster = max(peak_cluster, sum(tree_rss(root) for root in cluster or []))
        time.sleep(0.2)
    out = process.stdout.read() if process.stdout else ""
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{out[-3000:]}")
    return time.perf_counter() - started, peak / 1e9, peak_cluster / 1e9, peak_jvm / 1e9, out


def params_for(work: Path, source: Path, drop: tuple[str, ...] = (), engine: str = "",
               overrides: tuple[str, ...] = ()) -> Path:  # fmt: skip
    params = yaml.safe_load((source / "params.yaml").read_text())
    params["train"]["val_split"] = "random"
    if engine:
        params["train"]["engine"] = engine
    for setting in overrides:  # section.key=value, the value read as YAML (dvc exp run -S)
        dotted, value = setting.split("=", 1)
        section, key = dotted.split(".")
        params[section][key] = yaml.safe_load(value)
    for dotted in drop:  # keys the reference release does not know
        section, key = dotted.split(".")
        params[section].pop(key, None)
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def accuracy(model_path: Path, features: Path, test: list[tuple[str, int]]) -> float:
    import joblib

    from imdb_sentiment.core.io import SparseParts, load_sparse

    model = joblib.load(model_path)
    x = (SparseParts(features / "test").to_csr() if (features / "test").is_dir()
         else load_sparse(features / "test.npz"))  # fmt: skip
    predicted = model[-1].predict_proba(x)[:, 1] >= 0.5
    return float((predicted == np.array([label for _, label in test])).mean())


def registered(base: list[str], params: Path, data: Path, work: Path,
               env: dict[str, str]) -> dict[str, float]:  # fmt: skip
    """Evaluate and register the trained model as the pipeline's stages do, into a registry of
    the run's own (SQLite): the seconds and peak GB of the register stage, and the version."""
    model, metrics = ["--model", str(work / "model.joblib")], ["--metrics", str(work / "m.json")]
    measured([*base, "evaluate", "--params", str(params), "--data", str(data), "--features",
              str(work / "features"), *model, *metrics, "--plots", str(work / "plots")],
             work, env)  # fmt: skip
    env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    seconds, gb, _, _, said = measured(
        [*base, "register", "--params", str(params), *model, *metrics, "--out",
         str(work / "registration.json")], work, env)  # fmt: skip
    found = re.search(r"registered version (\d+)", said)
    return {"register_s": seconds, "register_gb": gb, "version": int(found[1]) if found else -1}


def kept_width(features: Path) -> int:
    from imdb_sentiment.core.io import SparseParts

    return int(SparseParts(features / "train").shape[1])


def run_route(name: str, src: Path, data: Path, work: Path, drop: tuple[str, ...],
              test: list[tuple[str, int]], master: str = "",
              overrides: tuple[str, ...] = (), register: bool = False,
              train_only: bool = False) -> dict[str, float]:  # fmt: skip
    """Featurize, train (and register) one route; `train_only`: train on the features a kept
    earlier run left in `work` (its featurize figures are then 0)."""
    work.mkdir(parents=True, exist_ok=train_only)
    params = params_for(work, src, drop, "spark" if master else "", overrides)
    env = {**os.environ, "PYTHONPATH": str(src / "src")}
    cluster = cluster_roots() if master else []
    if master:
        env |= {"SPARK_MASTER": master, "SPARK_LOCAL_IP": "127.0.0.1",
                "PYSPARK_PYTHON": sys.executable}  # fmt: skip
    base = [sys.executable, "-m", "imdb_sentiment.cli.pipeline"]
    featurize = [*base, "featurize", "--params", str(params), "--data", str(data),
                 "--out", str(work / "features")]  # fmt: skip
    f_s, f_gb, f_cluster, f_jvm, said = (
        (0.0, 0.0, 0.0, 0.0, f"featurized: {kept_width(work / 'features')} features")
        if train_only else measured(featurize, work, env, cluster))  # fmt: skip
    t_s, t_gb, t_cluster, t_jvm, _ = measured(
        [*base, "train", "--params", str(params), "--data", str(data),
         "--features", str(work / "features"), "--model", str(work / "model.joblib"),
         "--report", str(work / "train.json")], work, env, cluster)  # fmt: skip
    acc = accuracy(work / "model.joblib", work / "features", test)
    found = re.search(r"featurized: (\d+) features", said)
    width = int(found[1]) if found else -1
    row = {"featurize_s": f_s, "featurize_gb": f_gb, "train_s": t_s, "train_gb": t_gb,
           "cluster_gb": max(f_cluster, t_cluster), "accuracy": acc, "features": width}  # fmt: skip
    if master:
        row |= {"featurize_jvm_gb": f_jvm, "train_jvm_gb": t_jvm}
    on_cluster = (f" | cluster {row['cluster_gb']:5.2f} GB | driver JVM {f_jvm:.2f} / "
                  f"{t_jvm:.2f} GB") if master else ""  # fmt: skip
    if register:
        row |= registered(base, params, data, work, env)
    then = (f" | registered version {row['version']:.0f} in {row['register_s']:.0f} s "
            f"{row['register_gb']:.2f} GB") if register else ""  # fmt: skip
    print(f"{name:>9} | featurize {f_s:7.0f} s {f_gb:5.2f} GB | train {t_s:7.0f} s "
          f"{t_gb:5.2f} GB{on_cluster} | test accuracy {acc:.4f} | {width:,} features{then}",
          flush=True)  # fmt: skip
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archive", type=Path, help="the IMDB archive (needed with --rows)")
    parser.add_argument("--rows", type=int, nargs="*", default=[50_000, 200_000])
    parser.add_argument("--reference-rows", type=int, nargs="*", default=[50_000])
    parser.add_argument("--reference-commit", default="HEAD~1")
    parser.add_argument("--spark-rows", type=int, nargs="*", default=[])
    parser.add_argument("--local-rows", type=int, nargs="*", default=None,
                        help="the local route at these sizes only (default: all)")  # fmt: skip
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="params.yaml overrides for every route, e.g. "
                             "features.max_features=2000000")  # fmt: skip
    parser.add_argument("--record", type=Path,
                        help="a JSON file of figures: this run's rows are merged into it (by "
                             "route and size) and --plot draws every row it holds")  # fmt: skip
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--work", type=Path,
                        help="keep the data and each route's files here (not a temporary "
                             "directory), and reuse the data found there")  # fmt: skip
    parser.add_argument(
        "--train-only",
        action="store_true",
        help="with --work: train on the features a kept run left there",
    )
    parser.add_argument(
        "--register",
        action="store_true",
        help="also evaluate and register each trained model (MLflow, SQLite)",
    )
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                            capture_output=True).stdout.strip()  # fmt: skip
    print(f"commit {commit}; {machine()}; reference {args.reference_commit}; "
          f"params {' '.join(args.overrides) or 'as committed'}", flush=True)  # fmt: skip
    if args.rows and args.archive is None:
        parser.error("--rows needs --archive")
    reviews = archive_reviews(args.archive) if args.rows else {"train": [], "test": []}
    results: dict[str, dict[int, dict[str, float]]] = {"streamed": {}, "reference": {},
                                                       "spark": {}}  # fmt: skip
    if args.train_only and not args.work:
        parser.error("--train-only needs --work")
    with ExitStack() as stack:
        top = args.work or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="train-scale-"))
        )
        top.mkdir(parents=True, exist_ok=True)
        master = ""
        if args.spark_rows:
            sys.path.insert(0, str(ROOT))
            from harness.spark_cluster import standalone_cluster

            master = stack.enter_context(standalone_cluster(top / "spark-cluster"))
        reference = top / "reference"
        worktree = ["git", "worktree", "add", "--detach", str(reference), args.reference_commit]
        subprocess.run(worktree, cwd=ROOT, check=True, capture_output=True)
        try:
            for rows in args.rows:
                data = top / f"data-{rows}"
                if not (data / "test.parquet").exists():  # written last: the data is whole
                    data.mkdir(exist_ok=True)
                    write_table(data / "train.parquet", synthesise(reviews["train"], rows))
                    write_table(data / "test.parquet", [(0, reviews["test"])])
                print(f"{rows:,} train reviews", flush=True)
                if args.local_rows is None or rows in args.local_rows:
                    results["streamed"][rows] = run_route(
                        "streamed", ROOT, data, top / f"new-{rows}", (), reviews["test"],
                        overrides=tuple(args.overrides), register=args.register,
                        train_only=args.train_only)  # fmt: skip
                if rows in args.spark_rows:
                    results["spark"][rows] = run_route(
                        "spark", ROOT, data, top / f"spark-{rows}", (), reviews["test"], master,
                        tuple(args.overrides), args.register, args.train_only)  # fmt: skip
                if rows in args.reference_rows:
                    results["reference"][rows] = run_route(
                        "reference", reference, data, top / f"ref-{rows}",
                        ("features.chunk_rows", "train.cache_mb"), reviews["test"],
                        overrides=tuple(args.overrides))  # fmt: skip
                if not args.work:
                    subprocess.run(["rm", "-rf", str(data), str(top / f"new-{rows}"),
                                    str(top / f"ref-{rows}"), str(top / f"spark-{rows}")],
                                   check=True)  # fmt: skip
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(reference)], cwd=ROOT,
                           capture_output=True)  # fmt: skip
    if args.record:
        results = recorded(args.record, results, commit, args.overrides)
    if args.plot:
        plot(results, args.plot)
    return 0


Results = dict[str, dict[int, dict[str, Any]]]


def recorded(path: Path, results: Results, commit: str, overrides: list[str]) -> Results:
    """`results` merged into the figures already in `path`, under the route and its params
    ("streamed", "spark features.max_features=2000000", ...): this run's replace the same
    route, params and size. Written back; the merged figures."""
    import json

    saved = json.loads(path.read_text()) if path.exists() else {}
    merged: Results = {route: {int(rows): row for rows, row in by_rows.items()}
                       for route, by_rows in saved.items()}  # fmt: skip
    params = " ".join(overrides)
    for route, by_rows in results.items():
        key = f"{route} {params}".strip()
        for rows, row in by_rows.items():
            merged.setdefault(key, {})[rows] = {**row, "commit": commit, "params": params}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n")
    return merged


def plot(results: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (memory, seconds) = plt.subplots(1, 2, figsize=(10, 4))
    names = {"streamed": "local", "reference": "in memory (before)", "spark": "spark driver"}
    for route, rows in results.items():
        if not rows:
            continue
        base, _, params = route.partition(" ")
        xs = sorted(rows)
        label = names.get(base, base) + (f" ({params})" if params else "")
        style = "s--" if params else "o-"
        memory.plot(xs, [max(rows[x]["featurize_gb"], rows[x]["train_gb"]) for x in xs], style,
                    label=label)  # fmt: skip
        seconds.plot(xs, [rows[x]["featurize_s"] + rows[x]["train_s"] for x in xs], style,
                     label=label)  # fmt: skip
    memory.set(xscale="log", xlabel="train reviews", ylabel="peak RSS, GB (process tree)")
    seconds.set(xscale="log", yscale="log", xlabel="train reviews",
                ylabel="featurize + train, s")  # fmt: skip
    memory.axhline(3.0, color="grey", linestyle=":", label="3 GB")
    for axes in (memory, seconds):
        axes.legend(fontsize=7)
        axes.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    raise SystemExit(main())
