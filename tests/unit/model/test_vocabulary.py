"""`max_features`: the most frequent terms, ties at the cut broken by the smaller hash, found
alike from whole records (one machine) and from per-range histograms (a cluster)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from imdb_sentiment.model.vocabulary import (
    Records,
    cut_count,
    hash_terms,
    limit,
    tf_histogram,
    tied_cut,
)


def records(n: int, seed: int) -> Records:
    rng = np.random.default_rng(seed)
    hashes = hash_terms([f"term {seed} {i}" for i in range(n)])  # distinct, in any order
    tf = rng.integers(1, 6, size=n)  # a few counts: large tie groups at any cut
    return Records(hashes, np.ones(n, np.int64), tf.astype(np.int64))


def test_the_most_frequent_are_kept_and_ties_go_to_the_smaller_hash() -> None:
    found = records(1000, seed=1)
    chosen = found.take(limit(found, 300))
    assert len(chosen) == 300
    dropped = np.setdiff1d(np.arange(len(found)), limit(found, 300))
    at_cut = chosen.tf.min()
    assert (found.tf[dropped] <= at_cut).all()
    tied_out = found.hash[dropped][found.tf[dropped] == at_cut]
    tied_in = chosen.hash[chosen.tf == at_cut]
    assert len(tied_out) and len(tied_in) and tied_in.max() < tied_out.min()


def test_the_choice_does_not_depend_on_the_records_order() -> None:
    found = records(500, seed=2)
    shuffled = found.take(np.random.default_rng(3).permutation(len(found)))
    assert set(found.hash[limit(found, 123)]) == set(shuffled.hash[limit(shuffled, 123)])


def test_a_cluster_finds_the_same_cut_from_histograms_and_one_counts_hashes() -> None:
    found = records(2000, seed=4)
    ranges = [found.take(slice(i, i + 250)) for i in range(0, len(found), 250)]
    histogram: Counter[int] = Counter()
    for piece in ranges:
        histogram.update(tf_histogram(piece))
    at = cut_count(histogram, 777)
    assert at is not None
    tf, wanted = at
    cut = tied_cut(tf, wanted, np.concatenate([p.hash[p.tf == tf] for p in ranges]))
    kept = np.concatenate([p.hash[cut.keeps(p)] for p in ranges])
    assert set(kept) == set(found.hash[limit(found, 777)]) and len(kept) == 777


def test_no_cut_when_every_term_fits() -> None:
    found = records(50, seed=5)
    assert cut_count(tf_histogram(found), 50) is not None  # exactly full: the cut is the last
    assert cut_count(tf_histogram(found), 51) is None
    assert (limit(found, 50) == np.arange(50)).all() and (limit(found, None) == np.arange(50)).all()
