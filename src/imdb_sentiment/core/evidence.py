"""Paired evidence between two models scored on the same labelled reviews, and McNemar's exact
test on it: the service counts the pairs as feedback arrives (Prometheus), the shadow report and
the promotion gate decide with them.

On a labelled review both models are right, both wrong, or exactly one is right (a *discordant*
pair). Only discordant pairs say which model is better: under "equally good" each is as likely to
be the production-only as the candidate-only kind, so their split is Binomial(b + c, 1/2), and
the two-sided exact p-value is the probability of a split at least as uneven as the observed one
(what `scipy.stats.binomtest(c, b + c, 0.5)` returns; tests compare).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb
from typing import Literal

# Which of the two models was right on one labelled review.
Outcome = Literal["both_right", "both_wrong", "production_only", "candidate_only"]
OUTCOMES: tuple[Outcome, ...] = ("both_right", "both_wrong", "production_only", "candidate_only")
Verdict = Literal["better", "worse", "no_evidence", "too_few_pairs"]


def outcome(production_label: str, candidate_label: str, actual: str) -> Outcome:
    prod, cand = production_label == actual, candidate_label == actual
    if prod and cand:
        return "both_right"
    if prod:
        return "production_only"
    return "candidate_only" if cand else "both_wrong"


def mcnemar_exact_p(production_only: int, candidate_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (1.0 with none)."""
    n = production_only + candidate_only
    if n == 0:
        return 1.0
    k = min(production_only, candidate_only)
    tail = sum(comb(n, i) for i in range(k + 1))
    # Both tails are equal at p = 1/2; the split exactly in half is counted once.
    return min(1.0, 2 * tail / 2**n)


@dataclass(frozen=True)
class PairedCounts:
    both_right: int = 0
    both_wrong: int = 0
    production_only: int = 0
    candidate_only: int = 0

    @property
    def pairs(self) -> int:
        return self.both_right + self.both_wrong + self.production_only + self.candidate_only

    @property
    def discordant(self) -> int:
        return self.production_only + self.candidate_only

    @property
    def p_value(self) -> float:
        return mcnemar_exact_p(self.production_only, self.candidate_only)

    def accuracy(self, model: Literal["production", "candidate"]) -> float | None:
        if not self.pairs:
            return None
        alone = self.production_only if model == "production" else self.candidate_only
        return (self.both_right + alone) / self.pairs

    def verdict(self, alpha: float, min_pairs: int) -> Verdict:
        """better / worse (the candidate, significant at `alpha`), no_evidence, or
        too_few_pairs (fewer labelled pairs than `min_pairs`: the offline gate decides)."""
        if self.pairs < min_pairs:
            return "too_few_pairs"
        if self.p_value >= alpha or self.production_only == self.candidate_only:
            return "no_evidence"
        return "better" if self.candidate_only > self.production_only else "worse"

    def as_json(self, alpha: float, min_pairs: int) -> dict[str, object]:
        return {"pairs": self.pairs, "both_right": self.both_right,
                "both_wrong": self.both_wrong, "production_only": self.production_only,
                "candidate_only": self.candidate_only, "p_value": self.p_value,
                "production_accuracy": self.accuracy("production"),
                "candidate_accuracy": self.accuracy("candidate"),
                "alpha": alpha, "min_pairs": min_pairs,
                "verdict": self.verdict(alpha, min_pairs)}  # fmt: skip
