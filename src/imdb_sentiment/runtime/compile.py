"""Compile a fitted model pipeline (TextCleaner → TF-IDF → NBLogisticRegression) to a
`FastScorer`. This side needs scikit-learn; the compiled scorer does not."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline

from imdb_sentiment.core.text import TOKEN_PATTERN, WHITESPACE_TOKEN_PATTERN, tokenize
from imdb_sentiment.model.classifier import NBLogisticRegression
from imdb_sentiment.model.features import TextCleaner
from imdb_sentiment.runtime.scorer import (
    Block,
    FastScorer,
    Linear,
    Weighting,
    WordBlock,
    key_starts,
)
from imdb_sentiment.runtime.scorer_files import in_key_order

_NORMS = {None, "l1", "l2"}
_MAX_COMPILED_N = 3


def compile_pipeline(pipeline: Pipeline, threshold: float) -> FastScorer:
    """The pipeline's scorer; `threshold`: P(positive) from which it labels positive."""
    cleaner, vectorizer, classifier = (step for _, step in pipeline.steps)
    if not isinstance(cleaner, TextCleaner) or not isinstance(classifier, NBLogisticRegression):
        raise TypeError("FastScorer needs a TextCleaner → TF-IDF → NBLogisticRegression pipeline")
    if len(classifier.classes_) != 2:
        raise TypeError("FastScorer supports binary classifiers only")
    linear = Linear(
        np.asarray(classifier.ratio_, dtype=np.float64) if classifier.nb else None,
        bool(classifier.nb and classifier.nb_normalize),
        np.asarray(classifier.coef_[0], dtype=np.float64),
        float(classifier.intercept_[0]),
        int(classifier.classes_[1]) == 1,
    )
    blocks, linear = in_key_order(_blocks(vectorizer), linear)
    return FastScorer(cleaner.options, blocks, linear, threshold)


def _blocks(vectorizer: Any) -> list[Block]:
    parts = (
        [v for _, v in vectorizer.transformer_list]
        if isinstance(vectorizer, FeatureUnion)
        else [vectorizer]
    )
    blocks: list[Block] = []
    offset = 0
    for part in parts:
        if not isinstance(part, TfidfVectorizer):
            raise TypeError(f"unsupported vectorizer for the fast path: {type(part).__name__}")
        if part.norm not in _NORMS:
            raise TypeError(f"unsupported norm for the fast path: {part.norm}")
        blocks.append(_block(part, offset))
        offset += blocks[-1].size
    return blocks


def _weighting(part: TfidfVectorizer) -> Weighting:
    idf = np.asarray(part.idf_, dtype=np.float64) if part.use_idf else None
    return Weighting(idf, bool(part.sublinear_tf), bool(part.binary), part.norm)


def _block(part: TfidfVectorizer, offset: int) -> Block:
    if _compilable(part):
        tokens: dict[str, int] = {}
        for term in part.vocabulary_:
            for token in term.split(" "):
                tokens.setdefault(token, len(tokens))
        # int64 keys must not overflow: base**n for the longest n-gram, with headroom.
        if 2 * (len(tokens) + 1) ** part.ngram_range[1] < 2**62:
            return _word_block(part, list(tokens), offset)
    return DictBlock(part, offset)


def _word_block(part: TfidfVectorizer, tokens: list[str], offset: int) -> WordBlock:
    ids = {token: i for i, token in enumerate(tokens)}
    base = len(tokens) + 1
    starts = key_starts(base, part.ngram_range[1])
    keys = np.empty(len(part.vocabulary_), dtype=np.int64)
    for term, column in part.vocabulary_.items():
        keys[column] = ngram_key([ids[token] for token in term.split(" ")], base, starts)
    whitespace = part.token_pattern == WHITESPACE_TOKEN_PATTERN
    return WordBlock(tokens, keys, part.ngram_range, offset, _weighting(part), whitespace)


def _compilable(part: TfidfVectorizer) -> bool:
    return bool(
        part.analyzer == "word"
        and part.token_pattern in (TOKEN_PATTERN, WHITESPACE_TOKEN_PATTERN)
        and part.tokenizer is None
        and part.preprocessor is None
        and part.stop_words is None
        and not part.lowercase
        and part.strip_accents is None
        and part.ngram_range[1] <= _MAX_COMPILED_N
    )


class DictBlock(Block):
    """Any other vectorizer (character n-grams, 4-grams…): sklearn's own analyzer and
    vocabulary dict. Correct but slower, and it keeps scikit-learn in the serving process."""

    def __init__(self, part: TfidfVectorizer, offset: int) -> None:
        super().__init__(len(part.vocabulary_), offset, _weighting(part))
        self.vocabulary: dict[str, int] = part.vocabulary_
        self.analyze = part.build_analyzer()
        self.words = part.analyzer == "word"
        self.whitespace = part.token_pattern == WHITESPACE_TOKEN_PATTERN
        self.terms: NDArray[np.object_] = np.empty(self.size, dtype=object)
        for term, column in self.vocabulary.items():
            self.terms[column] = term

    def lookup(self, cleaned: str, plain: bool) -> tuple[NDArray[np.intp], int, int]:
        get = self.vocabulary.get
        found = [i for i in map(get, self.analyze(cleaned)) if i is not None]
        words = tokenize(cleaned, plain, self.whitespace) if self.words else []
        known = sum(map(self.vocabulary.__contains__, words))
        return np.asarray(found, dtype=np.intp), len(words), known

    def term(self, local: int) -> str:
        return str(self.terms[local])


def ngram_key(token_ids: Sequence[int], base: int, starts: Sequence[int]) -> int:
    """An n-gram's integer key: its token ids in base `base`, shifted by `starts` (`key_starts`)."""
    key = 0
    for token_id in token_ids:
        key = key * base + token_id
    return key + starts[len(token_ids) - 1]
