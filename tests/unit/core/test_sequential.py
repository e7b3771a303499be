"""The sequential decision on live evidence: each bettor's stake keeps its wealth a
supermartingale under its null (so Ville's bound holds however often one looks), the decision
goes the right way on clear evidence, and a small simulation stays within alpha
(benchmarks/sequential.py runs the full one)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from imdb_sentiment.core.evidence import PairedCounts
from imdb_sentiment.core.sequential import STAKES, boundary, decide, log_wealth, wealth


@pytest.mark.parametrize("shift", [0.0, 0.005, 0.05])
def test_every_stake_is_fair_or_worse_for_the_bettor_at_its_null(shift: float) -> None:
    """At the null's edge (E[X] = -shift, any discordance) each label multiplies the wealth by
    1 on average, and by more than 0 always: a nonnegative (super)martingale."""
    lam = STAKES / (1 - shift)
    for discordant in (0.02, 0.1, 0.5):
        win, lose = (discordant - shift) / 2, (discordant + shift) / 2
        tie = 1 - win - lose
        mean = win * (1 + lam * (1 + shift)) + lose * (1 - lam * (1 - shift)) + tie * (
            1 + lam * shift)  # fmt: skip
        assert np.allclose(mean, 1.0) and (1 - lam * (1 - shift) > 0).all()


def test_clear_evidence_decides_and_little_evidence_waits() -> None:
    assert decide(PairedCounts(900, 40, 10, 50), 0.005, 0.05) == "promote"
    assert decide(PairedCounts(900, 40, 50, 10), 0.005, 0.05) == "withdraw"
    assert decide(PairedCounts(90, 4, 3, 3), 0.005, 0.05) == "wait"
    assert decide(PairedCounts(), 0.005, 0.05) == "wait"
    found = wealth(PairedCounts(900, 40, 10, 50), 0.005)
    assert found.better > math.log(20) and found.worse < 0


def test_the_boundary_is_where_the_decision_flips() -> None:
    edge = boundary(2000, 120, 0.005, 0.05)
    assert edge.promote_at is not None and edge.withdraw_at is not None
    assert edge.withdraw_at < 0 < edge.promote_at
    split = (120 + edge.promote_at) // 2  # candidate-only pairs at the promotion margin
    at = PairedCounts(2000 - 120, 0, 120 - split, split)
    below = PairedCounts(2000 - 120, 0, 121 - split, split - 1)
    assert decide(at, 0.005, 0.05) == "promote" and decide(below, 0.005, 0.05) == "wait"


def test_false_promotions_stay_under_alpha_when_checked_after_every_label() -> None:
    rng = np.random.default_rng(3)
    streams, horizon, tolerance, alpha = 400, 3000, 0.005, 0.05
    p_win, p_lose = (0.08 - tolerance) / 2, (0.08 + tolerance) / 2
    draws = rng.random((streams, horizon))
    wins = np.cumsum(draws < p_win, axis=1)
    losses = np.cumsum((draws >= p_win) & (draws < p_win + p_lose), axis=1)
    ties = np.arange(1, horizon + 1) - wins - losses
    promoted = (log_wealth(wins, losses, ties, tolerance) >= math.log(1 / alpha)).any(axis=1)
    assert promoted.mean() <= alpha
