"""What 200,000 more reviews cost on a real Spark cluster: this engine (with the compiled kernel
on the executors, and with the pure-Python zip) against `mlflow.pyfunc.spark_udf`.

Usage (after `make pipeline promote` and `make install-spark`; Java 17):

    IMDB_SOURCE=../shared/data/aclImdb_v1.tar.gz python benchmarks/spark_marginal.py [--rounds 1]

A loopback standalone cluster (master and one worker with 2 cores, separate JVMs from PySpark's
`bin/spark-class`, harness/spark_cluster.py). Inputs as pandas writes them: the archive's 100,000
reviews and a 300,000-row file of three copies. Each job is one `spark-submit`, timed from its
start to its output committed; the marginal cost of 200k reviews is the 300k time minus the
100k time (the JVMs, the context, executor start-up and the model's loading cancel out). Jobs:
- `installed`: this engine's entry point with `--installed-package`, no `--py-files`: the
  executors import the package installed in their Python, compiled kernel included;
- `zip`: the same entry point with `--py-files imdb_sentiment.zip` (the documented route for
  executors without the package): the scorer's pure-Python path;
- `spark_udf`: MLflow's `spark_udf` on the registered model (scikit-learn on the executors).
Prints each time, the marginal costs and their ratios to spark_udf's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.batch import MODEL, UDF_JOB, make_data, submit  # noqa: E402
from benchmarks.pipeline import machine  # noqa: E402


def jobs(workdir: Path, package: Path, udf_job: Path) -> dict[str, list[str]]:
    entry = str(ROOT / "src/imdb_sentiment/batch/spark.py")
    return {
        "installed": [entry, "{input}", "{output}", "--model", MODEL, "--overwrite",
                      "--installed-package"],
        "zip": ["--py-files", str(package), entry, "{input}", "{output}", "--model", MODEL,
                "--overwrite"],
        "spark_udf": [str(udf_job), "{input}", "{output}", MODEL],
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "imdb-batch")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    source = Path(os.environ.get("IMDB_SOURCE", ROOT.parent / "shared/data/aclImdb_v1.tar.gz"))
    args.workdir.mkdir(parents=True, exist_ok=True)
    small, large = make_data(source, args.workdir, copies=3)
    package = args.workdir / "imdb_sentiment.zip"
    subprocess.run([sys.executable, "-m", "zipfile", "-c", str(package),
                    str(ROOT / "src/imdb_sentiment")], check=True)  # fmt: skip
    udf_job = args.workdir / "spark_udf_job.py"
    udf_job.write_text(UDF_JOB)
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    from harness.spark_cluster import standalone_cluster

    times: dict[tuple[str, str], list[float]] = {}
    with standalone_cluster(args.workdir / "cluster") as master:
        for _ in range(args.rounds):
            for name, template in jobs(args.workdir, package, udf_job).items():
                for size, data in (("100k", small), ("300k", large)):
                    output = args.workdir / f"marginal-{name}-{size}.parquet"
                    argv = [a.format(input=data, output=output) for a in template]
                    times.setdefault((name, size), []).append(submit(master, argv, env))
    print(f"machine:  {machine()}")
    print("scenario: standalone master + 1 worker (2 cores), one spark-submit per figure, "
          f"{args.rounds} round(s), medians")  # fmt: skip
    marginal = {}
    for name in ("installed", "zip", "spark_udf"):
        t100 = statistics.median(times[(name, "100k")])
        t300 = statistics.median(times[(name, "300k")])
        marginal[name] = t300 - t100
        print(f"{name:10s} 100k {t100:6.1f} s   300k {t300:6.1f} s   200k more: "
              f"{marginal[name]:6.1f} s ({200_000 / marginal[name]:,.0f} reviews/s)")  # fmt: skip
    for name in ("installed", "zip"):
        print(
            f"spark_udf's marginal cost / {name}'s: x{marginal['spark_udf'] / marginal[name]:.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
