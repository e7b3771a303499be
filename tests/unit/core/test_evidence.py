"""McNemar's exact test on paired shadow outcomes: the p-value is scipy's exact binomial test on
the discordant pairs, and the verdict's edges (too few pairs, ties, all agree, one-sided)."""

from __future__ import annotations

import pytest
from scipy.stats import binomtest

from imdb_sentiment.core.evidence import PairedCounts, mcnemar_exact_p, outcome


@pytest.mark.parametrize("b", [0, 1, 2, 7, 20, 61])
@pytest.mark.parametrize("c", [0, 1, 3, 7, 19, 90])
def test_p_value_is_the_exact_binomial_test_on_the_discordant_pairs(b: int, c: int) -> None:
    expected = 1.0 if b + c == 0 else binomtest(c, b + c, 0.5).pvalue
    assert mcnemar_exact_p(b, c) == pytest.approx(expected, rel=1e-12, abs=1e-300)


def test_outcomes_say_which_model_was_right() -> None:
    assert outcome("positive", "positive", "positive") == "both_right"
    assert outcome("negative", "negative", "positive") == "both_wrong"
    assert outcome("positive", "negative", "positive") == "production_only"
    assert outcome("positive", "negative", "negative") == "candidate_only"


def test_too_few_pairs_leaves_it_to_the_offline_gate() -> None:
    lopsided = PairedCounts(both_right=10, candidate_only=40)  # p ~ 1.8e-12, but 50 < 100
    assert lopsided.verdict(alpha=0.05, min_pairs=100) == "too_few_pairs"
    assert lopsided.verdict(alpha=0.05, min_pairs=50) == "better"


def test_ties_and_full_agreement_are_no_evidence() -> None:
    assert PairedCounts(both_right=300, production_only=9, candidate_only=9).p_value == 1.0
    tie = PairedCounts(both_right=300, production_only=9, candidate_only=9)
    assert tie.verdict(0.05, 100) == "no_evidence"
    agree = PairedCounts(both_right=250, both_wrong=50)
    assert (agree.discordant, agree.p_value, agree.verdict(0.05, 100)) == (0, 1.0, "no_evidence")
    assert agree.accuracy("production") == agree.accuracy("candidate") == 250 / 300


def test_one_sided_splits_decide_both_ways_at_alpha() -> None:
    # 0 vs 10 discordant: p = 2 / 2**10 = 0.00195; 2 vs 8: p = 0.109 (no evidence at 0.05).
    better = PairedCounts(both_right=200, candidate_only=10)
    worse = PairedCounts(both_right=200, production_only=10)
    assert better.p_value == pytest.approx(2 / 1024)
    assert (better.verdict(0.05, 100), worse.verdict(0.05, 100)) == ("better", "worse")
    assert better.verdict(0.001, 100) == "no_evidence"  # not significant at a stricter alpha
    close = PairedCounts(both_right=200, production_only=2, candidate_only=8)
    assert close.verdict(0.05, 100) == "no_evidence"
    assert close.as_json(0.05, 100)["p_value"] == pytest.approx(binomtest(8, 10).pvalue)
