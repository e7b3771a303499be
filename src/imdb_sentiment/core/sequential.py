"""An always-valid sequential decision on paired live evidence: promote the staged candidate,
withdraw it, or wait — safe to look at after every label, as the scheduled promotion does.

Each labelled shadowed review is X = +1 (only the candidate right), -1 (only production right)
or 0 (both right or both wrong); the accuracy difference is d = E[X]. Each question is a test
by betting (Waudby-Smith & Ramdas): a bettor starts with 1 and stakes a fraction λ of its wealth
on every label; against a true null its wealth is a nonnegative supermartingale, so by Ville's
inequality it ever reaches 1/alpha with probability at most alpha — however often one looks,
and for as long as one waits. Betting with a fixed λ makes the wealth a function of the counts
alone; an average over a grid of λ (a mixture, itself such a supermartingale) adapts to the
effect size:

- non-inferior (promote): null d ≤ -tolerance; wealth ∏ (1 + λ (X + tolerance)),
  0 ≤ λ < 1 / (1 - tolerance);
- worse (withdraw): null d ≥ 0; wealth ∏ (1 - λ X);
- better (said, not needed to promote): null d ≤ 0; wealth ∏ (1 + λ X).

The decision: promote once the non-inferiority wealth reaches 1/alpha, withdraw once the worse
wealth does, otherwise wait; `boundary` gives, for the pairs seen, how many more candidate-only
than production-only pairs each verdict needs (the report plots it). benchmarks/sequential.py
checks by simulation that false promotions stay under alpha and how many labels a decision takes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from imdb_sentiment.core.evidence import PairedCounts

Decision = Literal["promote", "withdraw", "wait"]
# Fractions of wealth staked per label, as shares of the largest admissible stake.
STAKES = np.array([0.01, 0.02, 0.04, 0.07, 0.1, 0.15, 0.2, 0.3, 0.45, 0.6])  # of 1 / (1 - shift)


@dataclass(frozen=True)
class Wealth:
    """Each bettor's log-wealth for the counts seen."""

    noninferior: float  # against "worse by the tolerance or more"
    worse: float  # against "not worse"
    better: float  # against "not better"


def log_wealth(wins: np.ndarray, losses: np.ndarray, ties: np.ndarray,
               shift: float) -> np.ndarray:  # fmt: skip
    """log of the mixture (mean over STAKES) of ∏ (1 + λ (X + shift)) for counts of X = +1
    (`wins`), X = -1 (`losses`) and X = 0 (`ties`), arrays of any (one) shape. λ runs up to
    just under 1 / (1 - shift), where a loss would take all the wealth."""
    lam = STAKES / (1.0 - shift)
    won, lost, tied = (np.asarray(a, dtype=float)[..., None] for a in (wins, losses, ties))
    logs = won * np.log1p(lam * (1 + shift)) + lost * np.log1p(-lam * (1 - shift))
    if shift:
        logs = logs + tied * np.log1p(lam * shift)
    top = logs.max(axis=-1, keepdims=True)
    return np.squeeze(top, -1) + np.log(np.exp(logs - top).mean(axis=-1))


def wealth(counts: PairedCounts, tolerance: float) -> Wealth:
    b, c = counts.production_only, counts.candidate_only
    z = counts.pairs - b - c
    return Wealth(
        noninferior=float(log_wealth(np.array(c), np.array(b), np.array(z), tolerance)),
        worse=float(log_wealth(np.array(b), np.array(c), np.array(z), 0.0)),  # production wins
        better=float(log_wealth(np.array(c), np.array(b), np.array(z), 0.0)),
    )


def decide(counts: PairedCounts, tolerance: float, alpha: float) -> Decision:
    """promote / withdraw / wait, valid however often it is asked."""
    found = wealth(counts, tolerance)
    bar = math.log(1 / alpha)
    if found.worse >= bar:
        return "withdraw"
    if found.noninferior >= bar:
        return "promote"
    return "wait"


@dataclass(frozen=True)
class Boundary:
    """For `pairs` labelled pairs with `discordant` of them discordant: the least margin
    (candidate-only minus production-only) at which the candidate is promoted, and the largest
    at which it is withdrawn."""

    pairs: int
    discordant: int
    promote_at: int | None  # None: no split of these discordant pairs promotes yet
    withdraw_at: int | None


def boundary(pairs: int, discordant: int, tolerance: float, alpha: float) -> Boundary:
    """Where the decision flips, for a given number of pairs and discordant pairs."""
    candidate_only = np.arange(discordant + 1)
    production_only = discordant - candidate_only
    concordant = np.full_like(candidate_only, pairs - discordant)
    bar = math.log(1 / alpha)
    noninferior = log_wealth(candidate_only, production_only, concordant, tolerance)
    worse = log_wealth(production_only, candidate_only, concordant, 0.0)
    margin = candidate_only - production_only
    promoted, withdrawn = margin[noninferior >= bar], margin[worse >= bar]
    return Boundary(
        pairs, discordant,
        int(promoted.min()) if promoted.size else None,
        int(withdrawn.max()) if withdrawn.size else None,
    )  # fmt: skip
