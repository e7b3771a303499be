"""The compiled kernel reproduces the Python path exactly: token for token on any text it
accepts (generated Unicode text included: it accepts Latin-1 only and hands the rest back; every
Latin-1 character in every position the cleaning treats specially), and
the scorer's probabilities to 1e-12 for every weighting the vectorizer offers.

In CI the kernel must be there (`make install` builds it); with IMDB_SENTIMENT_KERNEL=python
(the Makefile's second pass) these tests check that the fallback is the one in use."""

from __future__ import annotations

import os
from dataclasses import fields
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.pipeline import Pipeline

from imdb_sentiment.core.config import FeatureParams
from imdb_sentiment.core.text import RECOMMENDED, CleanOptions, clean_words
from imdb_sentiment.model.classifier import NBLogisticRegression
from imdb_sentiment.model.features import build_featurizer
from imdb_sentiment.runtime import kernel
from imdb_sentiment.runtime.compile import compile_pipeline
from imdb_sentiment.runtime.scorer import FastScorer, _score_batch
from tests.conftest import IN_CI
from tests.helpers import tiny_texts

FORCED_PYTHON = os.environ.get("IMDB_SENTIMENT_KERNEL", "").lower() == "python"
needs_kernel = pytest.mark.skipif(
    kernel.KERNEL != "compiled" and (FORCED_PYTHON or not IN_CI),
    reason="no compiled kernel here (built where a C compiler exists)",
)

# Pieces the cleaning treats specially, in every case, plus what the kernel must hand back.
PIECES = [
    "<br />", "<b>", "<>", "< a >", "<" + "x" * 199 + ">", "<" + "x" * 200 + ">", ">", "<",
    "http://x.y/z", "HTTPS://Example.com", "https://", "http:// ", "www.", "WWW.imdb.com",
    "wwww.a", "isn't", "can't", "Can't", "WON'T", "won't", "scan't", "n't", "N'T", "n'tx", "n't_",
    "don't!", "8/10", "!!", "?", "...", '"', "(", ")", ";", ":", ",", "a", "I", "_", "0",
    " ", "  ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "\x00", "\x7f",
    "é", "É", "ß", "ÿ", "µ", "ª", "²", "½", "\xd7", "\x85", "\x96", "\xa0", "\xad",
    "n'té", "n'T\xa0", "\xe9n't", "caN't", "http://\x85", "www.\xa0x", "HTTP://É", "<\xe9>",
    "İ", "\u0301", "\u2028", "\u2019", "n\u2019t", "٣", "😊", "\uff21",
]  # fmt: skip
LATIN1 = st.characters(max_codepoint=0xFF)
texts = st.lists(
    st.one_of(st.sampled_from(PIECES), st.text(max_size=8), st.text(LATIN1, max_size=8)),
    max_size=40,
).map("".join)
options = st.builds(
    CleanOptions,
    **{f.name: st.booleans() for f in fields(CleanOptions) if f.name in kernel._NATIVE_SWITCHES},
)


def test_the_kernel_in_use_is_the_one_asked_for() -> None:
    if FORCED_PYTHON:
        assert kernel.KERNEL == "python"
    elif IN_CI:
        assert kernel.KERNEL == "compiled", "CI builds the kernel: make install needs gcc"


@needs_kernel
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts, opts=options)
def test_tokens_equal_the_python_cleaning_or_are_handed_back(text: str, opts: CleanOptions) -> None:
    found = kernel.clean_tokens(text, opts)
    if not kernel.handled(text):
        assert found is None  # the Python path's, counted
    else:
        assert found == clean_words(text, opts)


# Where each character's class decides the cleaning: a word's edge, a negation's \b, a URL's
# prefix and end, a tag's inside, case.
TEMPLATES = ["{c}", "n't{c}", "{c}n't x", "x {c}an't", "Wo{c}'t", "http://{c}", "www.{c}x y",
             "a{c}b", "<{c}>", "{c}<b>{c}", "CAN'T{c}", "{c}.{c}"]  # fmt: skip


@needs_kernel
@pytest.mark.parametrize(
    "opts", [RECOMMENDED, CleanOptions(lowercase=False)], ids=["default", "cased"]
)
def test_every_latin1_character_is_cleaned_as_in_python(opts: CleanOptions) -> None:
    for c in map(chr, range(256)):
        for template in TEMPLATES:
            text = template.format(c=c)
            assert kernel.handled(text)
            assert kernel.clean_tokens(text, opts) == clean_words(text, opts), repr(text)
    assert not kernel.handled("\u0100") and kernel.clean_tokens("\u0100", RECOMMENDED) is None


def model(features: FeatureParams, nb: bool = True) -> Pipeline:
    texts, labels = tiny_texts(120, seed=3)
    featurizer = build_featurizer(RECOMMENDED, features)
    x = featurizer.fit_transform(texts)
    clf = NBLogisticRegression(C=10.0, nb=nb, nb_normalize=nb).fit(x, np.array(labels))
    return Pipeline([*featurizer.steps, ("clf", clf)])


DEFAULT = {"binary": True, "use_idf": False, "norm": None}
WEIGHTINGS: dict[str, tuple[dict[str, Any], bool]] = {
    "binary, NB, re-normalised (the default)": (DEFAULT, True),
    "counts, idf, l2": ({"binary": False, "use_idf": True, "norm": "l2"}, True),
    "sublinear counts, idf, l1, no NB": (
        {"binary": False, "use_idf": True, "norm": "l1", "sublinear_tf": True},
        False,
    ),
    "bigrams and trigrams only": ({**DEFAULT, "ngram_range": (2, 3)}, True),
}


@needs_kernel
@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_scores_equal_the_python_path(name: str) -> None:
    overrides, nb = WEIGHTINGS[name]
    base = {"tokens": "whitespace", "ngram_range": (1, 3), "max_features": None, "min_df": 1}
    scorer = compile_pipeline(model(FeatureParams(**{**base, **overrides}), nb), 0.5)
    assert scorer.native is not None
    reviews, _ = tiny_texts(300, seed=9)
    reviews += ["", "   ", "Café crème, 8/10 !", "<br />Isn't it GREAT? http://x.y", "won\u2019t."]
    native = scorer.score_batch(reviews)
    python = _score_batch(scorer._word_block, scorer.linear, scorer.options, reviews, 0.5)  # type: ignore[arg-type]
    assert scorer.native.python_path == 1  # the one beyond Latin-1 (a curly quote)
    np.testing.assert_allclose(
        [s.p_positive for s in native], [s.p_positive for s in python], rtol=0, atol=1e-12
    )
    assert [(s.label, s.tokens, s.unknown_share) for s in native] == [
        (s.label, s.tokens, s.unknown_share) for s in python
    ]


# Tokens kept in their slot (up to 16 UTF-8 bytes) and in the arena (longer), and near misses:
# one byte more, one byte different at the end, the same first 16 bytes.
LONG = ["abcdefghijklmno", "abcdefghijklmnop", "abcdefghijklmnopq", "éééééééé", "ééééééééé",
        "a" * 40, "supercalifragilisticexpialidocious"]  # fmt: skip
NEAR = ["abcdefghijklmnoq", "abcdefghijklmnopqr", "éééééééè", "a" * 41, "a" * 39,
        "supercalifragilisticexpialidociouz", "abcdefghijklmnopX"]  # fmt: skip


@needs_kernel
def test_long_tokens_and_near_misses_score_as_in_python() -> None:
    texts, labels = tiny_texts(120, seed=3)
    texts = [f"{t} {LONG[i % len(LONG)]}" for i, t in enumerate(texts)]
    features = FeatureParams(tokens="whitespace", ngram_range=(1, 3), max_features=None, min_df=1)
    featurizer = build_featurizer(RECOMMENDED, features)
    x = featurizer.fit_transform(texts)
    clf = NBLogisticRegression(C=10.0).fit(x, np.array(labels))
    scorer = compile_pipeline(Pipeline([*featurizer.steps, ("clf", clf)]), 0.5)
    assert scorer.native is not None
    reviews = [" ".join(words) for words in (LONG, NEAR, LONG[::-1] + NEAR, [*NEAR, "good"])]
    native = scorer.score_batch(reviews)
    python = _score_batch(scorer._word_block, scorer.linear, scorer.options, reviews, 0.5)  # type: ignore[arg-type]
    assert [(s.tokens, s.unknown_share) for s in native] == [
        (s.tokens, s.unknown_share) for s in python
    ]
    assert native[1].unknown_share == 1.0 and native[0].unknown_share == 0.0
    np.testing.assert_allclose(
        [s.p_positive for s in native], [s.p_positive for s in python], rtol=0, atol=1e-12
    )


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(reviews=st.lists(texts, min_size=1, max_size=8))
def test_generated_reviews_score_as_in_python(reviews: list[str]) -> None:
    scorer = _default_scorer()
    native = scorer.score_batch(reviews)
    python = _score_batch(scorer._word_block, scorer.linear, scorer.options, reviews, 0.5)  # type: ignore[arg-type]
    np.testing.assert_allclose(
        [s.p_positive for s in native], [s.p_positive for s in python], rtol=0, atol=1e-12
    )
    assert [s.tokens for s in native] == [s.tokens for s in python]


_SCORERS: list[FastScorer] = []


def _default_scorer() -> FastScorer:
    if not _SCORERS:
        features = FeatureParams(tokens="whitespace", ngram_range=(1, 3), max_features=None)
        _SCORERS.append(compile_pipeline(model(features), 0.5))
    return _SCORERS[0]


def test_options_the_kernel_does_not_reproduce_take_the_python_path() -> None:
    features = FeatureParams(tokens="whitespace", ngram_range=(1, 2), max_features=None)
    texts, labels = tiny_texts(60)
    for clean in (CleanOptions(remove_stopwords=True), CleanOptions(remove_digits=True)):
        featurizer = build_featurizer(clean, features)
        x = featurizer.fit_transform(texts)
        clf = NBLogisticRegression(C=1.0).fit(x, np.array(labels))
        scorer = compile_pipeline(Pipeline([*featurizer.steps, ("clf", clf)]), 0.5)
        assert scorer.native is None
        assert len(scorer.score_batch(texts)) == len(texts)
    words = FeatureParams(tokens="words", ngram_range=(1, 2), max_features=None)
    assert compile_pipeline(model(words), 0.5).native is None


def test_each_thread_reads_its_own_calls_python_path_count() -> None:
    """gRPC threads score at once: each reads how many of *its* reviews took the Python path
    (a difference of the process's totals read across threads could even be negative)."""
    import threading

    from imdb_sentiment.runtime.kernel import KERNEL

    if KERNEL != "compiled":
        pytest.skip("the compiled kernel is not built here")
    features = FeatureParams(tokens="whitespace", ngram_range=(1, 3), max_features=None)
    native = compile_pipeline(model(features), 0.5).native
    assert native is not None
    seen: dict[str, list[int]] = {"latin": [], "beyond": []}
    batches = {"latin": ["a fine film"] * 20, "beyond": ["ein schöner Film ☃"] * 20}
    barrier = threading.Barrier(2)

    def score(kind: str) -> None:
        barrier.wait()
        for _ in range(200):
            native.decisions(batches[kind])
            seen[kind].append(native.last_python_path)

    threads = [threading.Thread(target=score, args=(k,)) for k in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(seen["latin"]) == {0} and set(seen["beyond"]) == {20}
