"""Featurize: cleaning + TF-IDF word (and optional character) n-grams, fitted on train only."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline

from imdb_sentiment.core.config import FeatureParams
from imdb_sentiment.core.text import (
    CLEAN_OPTIONS,
    RECOMMENDED,
    TOKEN_PATTERN,
    WHITESPACE_TOKEN_PATTERN,
    CleanOptions,
    clean_text,
)


def as_text_list(X: Any) -> list[str]:
    """Accept what callers pass (list, Series, ndarray, one-column DataFrame) as a list of str."""
    if isinstance(X, pd.DataFrame):
        column = "text" if "text" in X.columns else X.columns[0]
        X = X[column]
    if isinstance(X, str):
        raise TypeError("expected a sequence of texts, got a single string")
    values = X.tolist() if isinstance(X, pd.Series | np.ndarray) else list(X)
    for value in values:
        if not isinstance(value, str):
            raise TypeError(f"every text must be a string, got {type(value).__name__}")
    return values


class TextCleaner(TransformerMixin, BaseEstimator):
    """Stateless sklearn step wrapping `clean_text` with its `CleanOptions`."""

    def __init__(self, options: CleanOptions = RECOMMENDED) -> None:
        self.options = options

    def fit(self, X: Any, y: Any = None) -> TextCleaner:
        return self

    def transform(self, X: Any) -> list[str]:
        return [clean_text(text, self.options) for text in as_text_list(X)]

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Models registered before CleanOptions held the nine switches as attributes.
        if "options" not in state:
            switches = {name: state.pop(name) for name in CLEAN_OPTIONS if name in state}
            state["options"] = CleanOptions(**switches)
        super().__setstate__(state)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.requires_fit = False
        return tags


class CompactTfidfVectorizer(TfidfVectorizer):
    """TfidfVectorizer whose saved state holds the vocabulary as one newline-joined string.

    A dict of a million n-grams costs skops (MLflow's safe sklearn format) about 20x more space
    than the terms themselves; sklearn numbers terms in sorted order, so position is index.
    """

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # a copy: never strip the live object
        vocabulary = state.pop("vocabulary_", None)
        if vocabulary is not None:
            terms = sorted(vocabulary, key=vocabulary.__getitem__)
            state["terms_"] = "\n".join(terms)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        terms = state.pop("terms_", None)
        super().__setstate__(state)
        if terms is not None:
            self.vocabulary_ = {term: index for index, term in enumerate(terms.split("\n"))}


def build_vectorizer(params: FeatureParams) -> TfidfVectorizer | FeatureUnion:
    """Word n-gram TF-IDF, unioned with character n-grams when configured."""
    common: dict[str, Any] = {
        "sublinear_tf": params.sublinear_tf,
        "binary": params.binary,
        "use_idf": params.use_idf,
        "norm": params.norm,
        "min_df": params.min_df,
        "max_df": params.max_df,
        "lowercase": False,  # cleaning already decided about case
        "dtype": np.float64,
    }
    pattern = WHITESPACE_TOKEN_PATTERN if params.tokens == "whitespace" else TOKEN_PATTERN
    words = CompactTfidfVectorizer(
        ngram_range=params.ngram_range,
        max_features=params.max_features,
        token_pattern=pattern,
        **common,
    )
    if params.char_ngram_range is None:
        return words
    chars = CompactTfidfVectorizer(
        analyzer="char_wb",
        ngram_range=params.char_ngram_range,
        max_features=params.char_max_features,
        **common,
    )
    return FeatureUnion([("words", words), ("chars", chars)])


def build_featurizer(clean: CleanOptions, features: FeatureParams) -> Pipeline:
    return Pipeline([("clean", TextCleaner(clean)), ("tfidf", build_vectorizer(features))])


def parallel_map(
    func: Callable[[list[str]], Any], texts: Sequence[str], concat: bool = True
) -> Any:
    """Apply `func` to contiguous chunks of `texts` on every core; order is preserved."""
    jobs = max(1, min(os.cpu_count() or 1, 8))
    items = list(texts)
    if jobs == 1 or len(items) < 2_000:
        return func(items) if concat else [func(items)]
    size = -(-len(items) // jobs)
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    results = Parallel(n_jobs=jobs)(delayed(func)(chunk) for chunk in chunks)
    if not concat:
        return results
    return [value for part in results for value in part]
