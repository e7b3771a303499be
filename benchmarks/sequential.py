"""The scheduled promotion's sequential decision (core/sequential.py) by simulation: streams of
labelled shadow pairs, the decision checked after every label, as if the scheduled job looked
that often.

Usage:  python benchmarks/sequential.py [--streams 10000] [--horizon 10000] [--seed 0]
                                       [--tolerance 0.0]   # params.yaml promote.live.tolerance

Pairs are drawn as live traffic gives them: production right on ~92 % of reviews, the two models
disagreeing on a share `discordant` of them (8 %, as two IMDB models of this project do), split
between candidate-only and production-only by the accuracy difference d. Printed, each against
its bound or its reference in the same run:

- equal models (d = 0): the share of streams ever declared *better* and ever *withdrawn* (each
  must stay ≤ alpha = 0.05);
- equal models, with tolerance 0 (the default: promote only a better candidate): the share
  ever *promoted* — the false promotions (≤ alpha); with a tolerance > 0 an as-good candidate
  is promoted by design, and the least favourable null is a candidate worse by exactly the
  tolerance (d = -tolerance): the share of those ever promoted (≤ alpha);
- a candidate 2 points better (d = +0.02): the median number of labels to a decision (and how
  often it is promote), against the labels a fixed-sample McNemar test at alpha 0.05 and 80 %
  power needs for the same d and discordance.
"""

from __future__ import annotations

import argparse
import math
import time
from statistics import NormalDist

import numpy as np

from imdb_sentiment.core.sequential import log_wealth

ALPHA, DISCORDANT = 0.05, 0.08


def simulate(d: float, tolerance: float, streams: int, horizon: int,
             rng: np.random.Generator) -> dict[str, float]:  # fmt: skip
    """Decision time and kind per stream, checking after every label."""
    p_cand, p_prod = (DISCORDANT + d) / 2, (DISCORDANT - d) / 2
    bar = math.log(1 / ALPHA)
    c = np.zeros(streams)
    b = np.zeros(streams)
    n = np.zeros(streams)
    decided = np.zeros(streams, dtype=np.int64)  # the label at which, 0: not yet
    kind = np.zeros(streams, dtype=np.int8)  # 1 promote, -1 withdraw
    ever_better = np.zeros(streams, dtype=bool)
    for label in range(1, horizon + 1):
        draw = rng.random(streams)
        c += draw < p_cand
        b += (draw >= p_cand) & (draw < p_cand + p_prod)
        n += 1
        ties = n - b - c
        ever_better |= log_wealth(c, b, ties, 0.0) >= bar
        open_ = decided == 0
        if not open_.any():
            continue
        worse = log_wealth(b[open_], c[open_], ties[open_], 0.0) >= bar
        promote = log_wealth(c[open_], b[open_], ties[open_], tolerance) >= bar
        index = np.flatnonzero(open_)
        now = index[worse | promote]
        decided[now] = label
        kind[index[worse]] = -1
        kind[index[promote & ~worse]] = 1
    done = decided > 0
    return {
        "promoted": float((kind == 1).mean()),
        "withdrawn": float((kind == -1).mean()),
        "better": float(ever_better.mean()),
        "decided": float(done.mean()),
        "median_labels": float(np.median(np.where(done, decided, horizon + 1))),
    }


def mcnemar_labels(d: float, discordant: float, alpha: float, power: float) -> int:
    """Labels a fixed-sample (two-sided) McNemar test needs (Connor's normal approximation)."""
    z = NormalDist().inv_cdf
    root = z(1 - alpha / 2) * math.sqrt(discordant) + z(power) * math.sqrt(discordant - d * d)
    return math.ceil(root**2 / d**2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--horizon", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=0.0)
    args = parser.parse_args()
    tolerance = args.tolerance
    rng = np.random.default_rng(args.seed)
    started = time.monotonic()
    equal = simulate(0.0, tolerance, args.streams, args.horizon, rng)
    boundary = (
        simulate(-tolerance, tolerance, args.streams, args.horizon, rng) if tolerance else equal
    )
    better = simulate(0.02, tolerance, args.streams, args.horizon, rng)
    fixed = mcnemar_labels(0.02, DISCORDANT, ALPHA, 0.8)
    print(f"{args.streams:,} streams per case, up to {args.horizon:,} labels, checked after "
          f"every label; alpha {ALPHA}, tolerance {tolerance}, "
          f"discordance {DISCORDANT}")  # fmt: skip
    print(f"equal models: declared better {equal['better']:.2%}, withdrawn "
          f"{equal['withdrawn']:.2%}, promoted {equal['promoted']:.2%} (each ≤ {ALPHA:.0%} "
          f"when the tolerance is 0)")  # fmt: skip
    print(f"worse by the tolerance ({tolerance}): promoted {boundary['promoted']:.2%} — false "
          f"promotions (≤ {ALPHA:.0%})")  # fmt: skip
    print(f"2 points better: median {better['median_labels']:,.0f} labels to a decision "
          f"({better['promoted']:.1%} promoted, {better['withdrawn']:.2%} withdrawn); "
          f"fixed-sample McNemar at 80 % power: {fixed:,} labels")  # fmt: skip
    print(f"({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
