"""The n-gram vocabulary of any number of reviews in bounded memory: map, reduce, transform.

sklearn's vectorizer counts every n-gram of the whole corpus in one dict before pruning by
`min_df`; with 1-3-grams that dict outgrows memory long before the kept vocabulary does. Here a
chunk of reviews is counted alone (`count_chunk`: its own small vocabulary and matrix), each of
its n-grams reduced to a stable 64-bit hash with its document and term frequency. Summing those
records per hash (`reduce_records`, one hash range at a time) gives every n-gram's exact corpus
counts, so the same `min_df`/`max_df` rules keep the same terms as sklearn's `fit` (and
`max_features` the most frequent, ties broken by hash: `Cut`); a chunk's matrix is then
renumbered into the kept vocabulary (`Renumbering`) without analysing its texts again.
`fitted_vectorizer` returns an ordinary fitted vectorizer, so the registered model does not
know how it was fitted.

A collision of two n-grams' 64-bit hashes (expected ~0.01 times in 5·10^8 distinct n-grams)
would add their counts: a kept term that should have been pruned, never the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.feature_extraction.text import TfidfTransformer, TfidfVectorizer

from imdb_sentiment.core.errors import DataError


def hash_terms(terms: list[str]) -> NDArray[np.uint64]:
    """A stable 64-bit hash per term (the same in every process and release)."""
    values = np.asarray(terms, dtype=object)
    return np.asarray(pd.util.hash_array(values, categorize=False), dtype=np.uint64)


@dataclass
class Records:
    """Per distinct n-gram, sorted by hash: its hash, document and term frequency."""

    hash: NDArray[np.uint64]
    df: NDArray[np.int64]
    tf: NDArray[np.int64]

    def take(self, index: Any) -> Records:
        return Records(self.hash[index], self.df[index], self.tf[index])

    def __len__(self) -> int:
        return len(self.hash)


@dataclass
class ChunkCounts:
    """One chunk of reviews counted alone: its matrix over its own terms (columns in hash
    order), the terms and their hashes, aligned with the columns."""

    matrix: sp.csr_matrix  # documents x local terms: counts (or 1s when binary)
    terms: list[str]
    hashes: NDArray[np.uint64]

    def records(self) -> Records:
        df = np.bincount(self.matrix.indices, minlength=len(self.terms)).astype(np.int64)
        tf = np.bincount(self.matrix.indices, weights=self.matrix.data,
                         minlength=len(self.terms)).astype(np.int64)  # fmt: skip
        return Records(self.hashes, df, tf)


def count_chunk(vectorizer: TfidfVectorizer, texts: list[str]) -> ChunkCounts:
    """Count `texts` with `vectorizer`'s own analyzer and no pruning (as sklearn's counting
    does, without sorting terms by name: here they are ordered by hash)."""
    analyze = vectorizer.build_analyzer()
    vocabulary: dict[str, int] = {}
    indices: list[int] = []
    values: list[int] = []
    indptr = [0]
    for text in texts:
        counts: dict[int, int] = {}
        for term in analyze(text):
            column = vocabulary.setdefault(term, len(vocabulary))
            counts[column] = counts.get(column, 0) + 1
        indices.extend(counts)
        values.extend(counts.values())
        indptr.append(len(indices))
    terms = list(vocabulary)
    del vocabulary
    hashes = hash_terms(terms)
    order = np.argsort(hashes)  # local column j -> the j-th smallest hash
    where = np.empty_like(order)
    where[order] = np.arange(len(order))
    data = np.ones(len(values)) if vectorizer.binary else np.asarray(values, dtype=np.float64)
    matrix = sp.csr_matrix((data, where[np.asarray(indices, dtype=np.int64)], indptr),
                           shape=(len(texts), len(terms)))  # fmt: skip
    matrix.sort_indices()
    return ChunkCounts(matrix, [terms[i] for i in order], hashes[order])


def reduce_records(parts: list[Records]) -> Records:
    """Sum records of the same hash (from many chunks) into one each, sorted by hash."""
    if not parts:
        return Records(np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    hashes = np.concatenate([p.hash for p in parts])
    order = np.argsort(hashes, kind="stable")
    hashes = hashes[order]
    if not len(hashes):
        return Records(hashes, np.zeros(0, np.int64), np.zeros(0, np.int64))
    starts = np.flatnonzero(np.r_[True, hashes[1:] != hashes[:-1]])
    df = np.add.reduceat(np.concatenate([p.df for p in parts])[order], starts)
    tf = np.add.reduceat(np.concatenate([p.tf for p in parts])[order], starts)
    return Records(hashes[starts], df, tf)


def reduce_named(parts: list[tuple[Records, list[str]]]) -> tuple[Records, list[str]]:
    """`reduce_records` for records that carry their terms (aligned): each hash's term from
    the first part that has it."""
    found = reduce_records([records for records, _ in parts])
    if not len(found):
        return found, []
    hashes = np.concatenate([records.hash for records, _ in parts])
    order = np.argsort(hashes, kind="stable")
    ordered = hashes[order]
    firsts = order[np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])]
    terms = [term for _, named in parts for term in named]
    return found, [terms[i] for i in firsts.tolist()]


def doc_bounds(vectorizer: TfidfVectorizer, documents: int) -> tuple[float, float]:
    """sklearn's `min_df`/`max_df` as document counts (an int is a count, a float a share)."""
    low, high = vectorizer.min_df, vectorizer.max_df
    low = low if isinstance(low, int) else low * documents
    high = high if isinstance(high, int) else high * documents
    if high < low:
        raise DataError("features: max_df keeps fewer documents than min_df")
    return low, high


def kept(records: Records, low: float, high: float) -> Records:
    return records.take((records.df >= low) & (records.df <= high))


@dataclass(frozen=True)
class Cut:
    """The `max_features` rule: the most frequent terms, ties at the cut broken by the smaller
    hash. Unlike sklearn's unstable sort (which of the tied terms it keeps depends on numpy's
    sort implementation and the whole array), this keeps the same terms on any machine and can
    be found from a histogram of corpus counts and the hashes of one count's terms, so a cluster
    never sends every candidate term to its driver."""

    tf: int  # terms counted more often are kept
    hash: int  # and of those counted exactly `tf` times, the ones with a hash up to this

    def keeps(self, records: Records) -> NDArray[np.bool_]:
        return (records.tf > self.tf) | ((records.tf == self.tf) & (records.hash <= self.hash))


def cut_count(counts: dict[int, int], max_features: int) -> tuple[int, int] | None:
    """From how many terms have each corpus count: the count at the cut and how many of its
    terms are kept; None when every term fits."""
    taken = 0
    for tf in sorted(counts, reverse=True):
        if taken + counts[tf] >= max_features:
            return tf, max_features - taken
        taken += counts[tf]
    return None


def tf_histogram(records: Records) -> dict[int, int]:
    values, counts = np.unique(records.tf, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist(), strict=True))


def tied_cut(tf: int, wanted: int, tied: NDArray[np.uint64]) -> Cut:
    """The cut keeping the `wanted` smallest of the hashes `tied` of terms counted `tf` times."""
    return Cut(tf, int(np.partition(tied, wanted - 1)[wanted - 1]))


def limit(records: Records, max_features: int | None) -> NDArray[np.int64]:
    """Positions of the `max_features` most frequent of `records` (`Cut`'s rule), in order."""
    if max_features is None or len(records) <= max_features:
        return np.arange(len(records))
    found = cut_count(tf_histogram(records), max_features)
    if found is None:
        return np.arange(len(records))
    tf, wanted = found
    cut = tied_cut(tf, wanted, records.hash[records.tf == tf])
    return np.flatnonzero(cut.keeps(records))


class Renumbering:
    """Chunk-local term numbers to the kept vocabulary's (sklearn's: sorted term order), by
    the kept terms' hashes in that order (no term text needed)."""

    def __init__(self, hashes: NDArray[np.uint64]) -> None:
        self.order = np.argsort(hashes)
        self.sorted_hashes = hashes[self.order]
        self.width = len(hashes)

    def columns(self, hashes: NDArray[np.uint64]) -> NDArray[np.int64]:
        """Each hash's column in the vocabulary, -1 for a pruned term."""
        if not self.width:
            return np.full(len(hashes), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.sorted_hashes, hashes), self.width - 1)
        found = self.sorted_hashes[at] == hashes
        return np.where(found, self.order[at], -1).astype(np.int64)

    def matrix(self, chunk: ChunkCounts) -> sp.csr_matrix:
        """The chunk's counts in the vocabulary's columns (pruned terms dropped)."""
        mapped = self.columns(chunk.hashes)[chunk.matrix.indices]
        keep = mapped >= 0
        rows = np.repeat(np.arange(chunk.matrix.shape[0]), np.diff(chunk.matrix.indptr))
        out = sp.csr_matrix((chunk.matrix.data[keep], (rows[keep], mapped[keep])),
                            shape=(chunk.matrix.shape[0], self.width))  # fmt: skip
        out.sort_indices()
        return out


def fitted_vectorizer(template: TfidfVectorizer, terms: list[str],
                      df: NDArray[np.int64], documents: int) -> TfidfVectorizer:  # fmt: skip
    """`template` fitted as sklearn's `fit` would on the whole corpus: `terms` sorted, their
    document frequencies `df` (same order) over `documents` reviews."""
    if not terms:
        raise DataError("features: after pruning no n-gram remains (lower min_df)")
    template.vocabulary_ = {term: index for index, term in enumerate(terms)}
    template.fixed_vocabulary_ = False
    transformer = TfidfTransformer(norm=template.norm, use_idf=template.use_idf,
                                   smooth_idf=template.smooth_idf,
                                   sublinear_tf=template.sublinear_tf)  # fmt: skip
    transformer.fit(sp.csr_matrix((1, len(terms))))  # the shape; idf_ is the corpus's, below
    if template.use_idf:
        transformer.idf_ = idf(df, documents, template.smooth_idf)
    # The state TfidfVectorizer.fit leaves (its weighting step is a private attribute). Fitting
    # with a given vocabulary instead would copy the dict and build a set of its values: three
    # times the vocabulary's memory at the peak. tests/unit/pipeline/test_featurize.py checks
    # the result against sklearn's own fit.
    template._tfidf = transformer
    return template


def idf(df: NDArray[np.int64], documents: int, smooth: bool) -> NDArray[np.float64]:
    """sklearn's TfidfTransformer.fit idf from document frequencies."""
    return np.log((documents + int(smooth)) / (df.astype(np.float64) + int(smooth))) + 1.0


def weighting(vectorizer: TfidfVectorizer) -> TfidfTransformer:
    """The fitted vectorizer's tf-idf step, to apply to counts renumbered from chunks."""
    transformer: TfidfTransformer = vectorizer._tfidf
    return transformer
