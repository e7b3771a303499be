"""The fast scorer must reproduce the pipeline exactly, for every supported configuration."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from imdb_sentiment.classifier import NBLogisticRegression
from imdb_sentiment.config import CleanParams, FeatureParams
from imdb_sentiment.features import build_featurizer
from imdb_sentiment.serving.scorer import FastScorer, word_ngrams
from tests.helpers import tiny_texts

CONFIGS = {
    "tfidf-lr": (FeatureParams(max_features=None, ngram_range=(1, 2)), False, False),
    "binary-nb": (
        FeatureParams(
            ngram_range=(1, 3),
            max_features=None,
            binary=True,
            use_idf=False,
            norm=None,
            sublinear_tf=False,
        ),
        True,
        True,
    ),
    "l1-chars-nb": (
        FeatureParams(ngram_range=(1, 1), max_features=50, norm="l1", char_ngram_range=(2, 4)),
        True,
        False,
    ),
    "four-grams": (FeatureParams(ngram_range=(2, 4), max_features=None), False, False),
}


def build(features: FeatureParams, nb: bool, renorm: bool) -> Pipeline:
    texts, labels = tiny_texts(80, seed=3)
    featurizer = build_featurizer(
        CleanParams(remove_stopwords=False, expand_negations=True), features
    )
    x = featurizer.fit_transform(texts)
    clf = NBLogisticRegression(C=5.0, nb=nb, nb_normalize=renorm).fit(x, np.array(labels))
    return Pipeline([*featurizer.steps, ("clf", clf)])


@pytest.mark.parametrize("name", CONFIGS)
def test_fast_scorer_matches_the_pipeline(name: str) -> None:
    model = build(*CONFIGS[name])
    texts, _ = tiny_texts(50, seed=11)
    texts += ["", "zzz unknown words only", "Film! FILM? film... 10/10 <br /> isn't it"]
    np.testing.assert_allclose(
        FastScorer(model).predict_proba(texts), model.predict_proba(texts), rtol=0, atol=1e-12
    )


def test_explanations_add_up_to_the_decision() -> None:
    model = build(*CONFIGS["binary-nb"])
    text = tiny_texts(1, seed=5)[0][0]
    scorer = FastScorer(model)
    score = scorer.score(text, explain=10_000)
    decision = model.decision_function([text])[0]
    total = sum(c.weight for c in score.contributions) + float(model[-1].intercept_[0])
    assert total == pytest.approx(decision, abs=1e-9)


def test_word_ngrams_match_sklearn_order() -> None:
    from sklearn.feature_extraction.text import CountVectorizer

    doc = "a bb cc dd ee ff"
    for low, high in [(1, 1), (1, 3), (2, 3), (2, 5)]:
        analyzer = CountVectorizer(ngram_range=(low, high), lowercase=False).build_analyzer()
        assert word_ngrams(doc.split()[1:], low, high) == analyzer(doc)


def test_unknown_share_and_tokens() -> None:
    scorer = FastScorer(build(*CONFIGS["tfidf-lr"]))
    score = scorer.score("film film qwertyuiop")
    assert score.tokens == 3 and score.unknown_share == pytest.approx(1 / 3)


def test_rejects_pipelines_it_cannot_reproduce() -> None:
    from sklearn.linear_model import LogisticRegression

    model = build(*CONFIGS["tfidf-lr"])
    other = Pipeline([*model.steps[:-1], ("clf", LogisticRegression())])
    with pytest.raises(TypeError, match="NBLogisticRegression"):
        FastScorer(other)
