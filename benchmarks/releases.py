"""This commit's service against another commit's, on the same registered model: the same
answers, and throughput within noise (issue 34: a restructure must change no behaviour).

Usage (after `make pipeline promote`; needs `hey`):

    python benchmarks/releases.py --ref 84c0602 [--seconds 15] [--clients 8] [--rounds 3] \
        [--fail-below 0.9]

The other commit runs from a git worktree (its `src/` first on PYTHONPATH, this venv's
packages), each service under gunicorn with its defaults, 2 workers, its own model cache and
store. Both answer the same 500 test reviews through `/api/v1/predict` identically (the API
rounds to 6 digits), and each side's own scorer, loaded from its model cache by its own code,
gives P(positive) for all 25,000 test reviews within 1e-12 of the other's (exit 1 otherwise).
Then, rounds interleaved (this host drifts from minute to minute) with the sides' order
alternating (ABBA), `hey` posts the median-length test review, then batches of 100 test
reviews (2 clients). Prints req/s, p50/p99 and reviews/s per side, and the ratio this/other
per round. With `--fail-below R` it is a regression guard (CI's `speed` job, each push
against the commit it follows): exit 1 also when the geometric mean of the per-round ratios
this/other, single reviews or batches, is below R (docs/benchmarks.md says how R was chosen
from the spread of this script run against itself).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.pipeline import machine  # noqa: E402
from benchmarks.serve import hey, measured, median_review, start, stop  # noqa: E402

TEST = ROOT / "data/raw/test.parquet"


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def environment(src: Path | None) -> dict[str, str]:
    env = {"DATABASE_URL": f"sqlite:///{tempfile.mkdtemp()}/predictions.db",
           "MODEL_CACHE_DIR": tempfile.mkdtemp(), "DATABASE_MIGRATE": "auto"}  # fmt: skip
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return env


def build_kernel(tree: Path) -> None:
    """The other side's compiled scorer kernel, built in its worktree as `make install` builds
    ours (a worktree has the C source, not the build): without it that side would score on
    the pure-Python path and every comparison would flatter this one."""
    if (tree / "src/imdb_sentiment/runtime/_kernel.c").exists():
        subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=tree,
                       check=True, capture_output=True)  # fmt: skip


def kernel(env: dict[str, str]) -> str:
    """Which scorer path this side's code takes ("compiled" or "python")."""
    code = ("try:\n from imdb_sentiment.runtime.kernel import KERNEL\nexcept ImportError:\n"
            " KERNEL = 'python'\nprint(KERNEL)")  # fmt: skip
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip


def probabilities(url: str, texts: list[str]) -> np.ndarray:
    found: list[float] = []
    for start_at in range(0, len(texts), 50):
        body = {"texts": texts[start_at : start_at + 50]}
        answer = requests.post(url + "/api/v1/predict", json=body, timeout=60).json()
        found += [
            p["probability"] if p["label"] == "positive" else 1 - p["probability"]
            for p in answer["predictions"]
        ]
    return np.array(found)


SCORE = """
import sys, numpy as np, pandas as pd
from pathlib import Path
try:  # each side's own code: load_scorer since the scorer's files got a module of their own
    from imdb_sentiment.runtime.scorer_files import load_scorer
except ImportError:
    from imdb_sentiment.runtime.scorer import FastScorer
    load_scorer = FastScorer.load
texts = pd.read_parquet(sys.argv[2]).text.tolist()
scorer = load_scorer(next(Path(sys.argv[1]).glob("*/v*/scorer")))
np.save(sys.argv[3], np.array([s.p_positive for s in scorer.score_batch(texts)]))
"""


def all_test_reviews(env: dict[str, str]) -> np.ndarray:
    """P(positive) of every test review by this side's code and cached scorer."""
    out = Path(tempfile.mkdtemp()) / "p.npy"
    args = [sys.executable, "-c", SCORE, env["MODEL_CACHE_DIR"], str(TEST), str(out)]
    subprocess.run(args, env={**os.environ, **env}, check=True)
    return np.load(out)


def run(env: dict[str, str], median: str, batch: list[str], args: argparse.Namespace,
        sample: list[str]) -> dict[str, object]:  # fmt: skip
    proc, url = start("service", env)
    try:
        answers = probabilities(url, sample)
        hey(url + "/api/v1/predict", {"text": median}, 3, args.clients)  # warm-up
        single = measured(proc, url + "/api/v1/predict", {"text": median}, args)
        batched = hey(url + "/api/v1/predict", {"texts": batch}, args.seconds, 2)
    finally:
        stop(proc)
    return {"single": single, "batch": batched, "answers": answers}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", required=True, help="the other commit")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fail-below", type=float, default=0.0, metavar="RATIO",
                        help="exit 1 when this/other throughput (geometric mean over rounds, "
                             "single reviews or batches) is below RATIO")  # fmt: skip
    args = parser.parse_args()
    if shutil.which("hey") is None:
        print("error: `hey` is not installed (apt-get install hey)", file=sys.stderr)
        return 1
    texts = pd.read_parquet(TEST).text
    median = median_review(texts)
    batch = texts.sample(100, random_state=0).tolist()
    sample = texts.sample(500, random_state=1).tolist()
    tree = Path(tempfile.mkdtemp()) / "other"
    git("worktree", "add", "--detach", str(tree), args.ref)
    build_kernel(tree)
    sides = {"this": environment(None), args.ref: environment(tree / "src")}
    results: dict[str, list[dict[str, object]]] = {side: [] for side in sides}
    kernels = {side: kernel(env) for side, env in sides.items()}
    print(f"kernels:  {kernels}")
    if len(set(kernels.values())) > 1:
        git("worktree", "remove", "--force", str(tree))
        print("error: the sides score on different paths; nothing compared", file=sys.stderr)
        return 1
    try:
        for round_ in range(args.rounds):
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))  # ABBA: no order bias
            for side in order:
                results[side].append(run(sides[side], median, batch, args, sample))
        scored = {side: all_test_reviews(env) for side, env in sides.items()}
    finally:
        git("worktree", "remove", "--force", str(tree))
    return report(results, scored, args, git("rev-parse", "--short", "HEAD"), len(median))


def report(results: dict[str, list[dict[str, object]]], scored: dict[str, np.ndarray],
           args: argparse.Namespace, head: str, chars: int) -> int:  # fmt: skip
    this, other = results
    same_answers = all(np.array_equal(a["answers"], b["answers"])  # type: ignore[arg-type]
                       for a, b in zip(results[this], results[other], strict=True))  # fmt: skip
    gap = float(np.max(np.abs(scored[this] - scored[other])))
    print(f"machine:  {machine()}")
    print(f"scenario: this ({head}) vs {other}, gunicorn 2 workers, {args.clients} clients, "
          f"{args.seconds} s, the median test review ({chars} chars), then batches of 100 "
          f"(2 clients); {args.rounds} rounds interleaved, medians")  # fmt: skip
    print(f"answers:  500 test reviews through the API, identical: {same_answers}; "
          f"{len(scored[this]):,} test reviews by each side's scorer, largest |difference| in "
          f"P(positive) {gap:.1e}")  # fmt: skip

    def med(side: str, part: str, key: str) -> float:
        return statistics.median(float(r[part][key]) for r in results[side])  # type: ignore[index]

    for side in results:
        print(f"{side:8s} {med(side, 'single', 'rps'):7.0f} req/s  "
              f"p50 {med(side, 'single', 'p50_ms'):5.2f} ms  "
              f"p99 {med(side, 'single', 'p99_ms'):5.2f} ms  "
              f"batch {med(side, 'batch', 'rps') * 100:6.0f} reviews/s")  # fmt: skip
    slower = []
    for part, what in (("single", "single-review req/s"), ("batch", "batch reviews/s")):
        ratios = [float(a[part]["rps"]) / float(b[part]["rps"])  # type: ignore[index]
                  for a, b in zip(results[this], results[other], strict=True)]  # fmt: skip
        # The geometric mean: over ABBA rounds it cancels whatever running first in a round
        # does to a side (an A/A run here: the first side ~20 % slower, round after round).
        paired = statistics.geometric_mean(ratios)
        print(f"this/other {what} per round: {', '.join(f'{r:.3f}' for r in ratios)}; "
              f"geometric mean {paired:.3f}")  # fmt: skip
        if paired < args.fail_below:
            slower.append(f"{what} {paired:.3f} of {other}'s, below {args.fail_below}")
    for found in slower:
        print(f"regression: {found}")
    return 0 if same_answers and gap <= 1e-12 and not slower else 1


if __name__ == "__main__":
    raise SystemExit(main())
