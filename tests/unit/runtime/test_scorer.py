"""The fast scorer must reproduce the pipeline exactly, for every supported configuration."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from imdb_sentiment.core.config import FeatureParams
from imdb_sentiment.core.text import CleanOptions
from imdb_sentiment.model.classifier import NBLogisticRegression
from imdb_sentiment.model.features import build_featurizer
from imdb_sentiment.runtime.compile import compile_pipeline
from imdb_sentiment.runtime.scorer_files import load_scorer, read_threshold, save_scorer
from tests.helpers import PUNCTUATION_TOKENS, SEED_CLEANING, tiny_texts

NB_BINARY = {"binary": True, "use_idf": False, "norm": None, "sublinear_tf": False}
CONFIGS: dict[
    str, tuple[FeatureParams, bool, bool] | tuple[FeatureParams, bool, bool, CleanOptions]
]
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
    "punctuation-tokens": (
        FeatureParams(tokens="whitespace", ngram_range=(1, 3), max_features=None, **NB_BINARY),
        True,
        True,
        PUNCTUATION_TOKENS,
    ),
}


def build(
    features: FeatureParams, nb: bool, renorm: bool, clean: CleanOptions | None = None
) -> Pipeline:
    texts, labels = tiny_texts(80, seed=3)
    featurizer = build_featurizer(
        clean or replace(SEED_CLEANING, remove_stopwords=False, expand_negations=True), features
    )
    x = featurizer.fit_transform(texts)
    clf = NBLogisticRegression(C=5.0, nb=nb, nb_normalize=renorm).fit(x, np.array(labels))
    return Pipeline([*featurizer.steps, ("clf", clf)])


@pytest.mark.parametrize("name", CONFIGS)
def test_fast_scorer_matches_the_pipeline(name: str) -> None:
    model = build(*CONFIGS[name])
    texts, _ = tiny_texts(50, seed=11)
    texts += ["", "zzz unknown words only", "Film! FILM? film... 10/10 <br /> isn't it"]
    scorer = compile_pipeline(model, 0.5)
    np.testing.assert_allclose(
        scorer.predict_proba(texts), model.predict_proba(texts), rtol=0, atol=1e-12
    )


def test_explanations_add_up_to_the_decision() -> None:
    model = build(*CONFIGS["binary-nb"])
    text = tiny_texts(1, seed=5)[0][0]
    scorer = compile_pipeline(model, 0.5)
    score = scorer.score(text, explain=10_000)
    decision = model.decision_function([text])[0]
    total = sum(c.weight for c in score.contributions) + float(model[-1].intercept_[0])
    assert total == pytest.approx(decision, abs=1e-9)


def test_unknown_share_and_tokens() -> None:
    scorer = compile_pipeline(build(*CONFIGS["tfidf-lr"]), 0.5)
    score = scorer.score("film film qwertyuiop")
    assert score.tokens == 3 and score.unknown_share == pytest.approx(1 / 3)


def test_rejects_pipelines_it_cannot_reproduce() -> None:
    from sklearn.linear_model import LogisticRegression

    model = build(*CONFIGS["tfidf-lr"])
    other = Pipeline([*model.steps[:-1], ("clf", LogisticRegression())])
    with pytest.raises(TypeError, match="NBLogisticRegression"):
        compile_pipeline(other, 0.5)


def test_saved_scorer_reloads_identically(tmp_path: Path) -> None:
    model = build(*CONFIGS["binary-nb"])
    texts, _ = tiny_texts(50, seed=12)
    compiled = compile_pipeline(model, 0.5)
    save_scorer(compiled, tmp_path / "scorer")
    loaded = load_scorer(tmp_path / "scorer")
    np.testing.assert_array_equal(loaded.predict_proba(texts), compiled.predict_proba(texts))
    text = texts[0]
    assert loaded.score(text, explain=5) == compiled.score(text, explain=5)


def test_explanation_terms_are_the_vocabulary_terms() -> None:
    """The scorer numbers its columns in n-gram key order: every column's term, coefficient
    and NB ratio are still the pipeline's for that term."""
    model = build(*CONFIGS["binary-nb"])
    scorer = compile_pipeline(model, 0.5)
    vocabulary = model.named_steps["tfidf"].vocabulary_
    classifier = model.named_steps["clf"]
    assert scorer.linear.ratio is not None
    columns = range(len(vocabulary))
    terms = [scorer.term(column) for column in columns]
    assert sorted(terms) == sorted(vocabulary)
    original = np.array([vocabulary[term] for term in terms])
    np.testing.assert_array_equal(scorer.linear.coef, classifier.coef_[0][original])
    np.testing.assert_array_equal(scorer.linear.ratio, classifier.ratio_[original])
    assert original.tolist() != list(columns)  # renumbered indeed (the vocabulary is unsorted)


def test_only_word_ngram_scorers_can_be_saved(tmp_path: Path) -> None:
    scorer = compile_pipeline(build(*CONFIGS["l1-chars-nb"]), 0.5)
    with pytest.raises(TypeError, match="only word n-gram"):
        save_scorer(scorer, tmp_path / "scorer")


@pytest.mark.parametrize("name", ["binary-nb", "punctuation-tokens"])
def test_direct_word_path_equals_the_string_path(name: str) -> None:
    # These cleanings yield the tokens directly, so the scorer skips join + split; forcing the
    # generic path (cleaned string, tokenizer) must give the very same probabilities.
    plain = replace(SEED_CLEANING, remove_stopwords=False, expand_negations=True, lemmatize=False)
    features, nb, renorm, *clean = CONFIGS[name]
    model = build(features, nb, renorm, clean[0] if clean else plain)
    scorer = compile_pipeline(model, 0.5)
    assert scorer._word_block is not None
    texts, _ = tiny_texts(40, seed=13)
    texts += ["a b c d", "x", "I can't, won't; a-b c_d 1 2 3 é ü", 'Wow!! "Best" (8/10).']
    fast = [scorer.score(text).p_positive for text in texts]
    scorer._word_block = None
    np.testing.assert_array_equal([scorer.score(text).p_positive for text in texts], fast)
    np.testing.assert_allclose(fast, model.predict_proba(texts)[:, 1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("kernel", [True, False], ids=["kernel if built", "numpy"])
@pytest.mark.parametrize("name", CONFIGS)
def test_batch_scoring_equals_one_by_one_and_the_pipeline(name: str, kernel: bool) -> None:
    plain = replace(SEED_CLEANING, remove_stopwords=False, expand_negations=True, lemmatize=False)
    features, nb, renorm, *clean = CONFIGS[name]
    model = build(features, nb, renorm, clean[0] if clean else plain)
    scorer = compile_pipeline(model, 0.5)
    if not kernel:
        scorer.__dict__["native"] = None  # the cached property: the vectorised Python path
    texts, _ = tiny_texts(60, seed=14)
    # Empty and one-word reviews next to each other: n-grams must not span reviews.
    texts += ["", "great", "", "film", "not good", "a", "zzz qqq", "bad bad bad"]
    batch = scorer.score_batch(texts)
    single = [scorer.score(text) for text in texts]
    for b, s in zip(batch, single, strict=True):
        assert (type(b.p_positive), type(b.unknown_share), type(b.tokens)) == (float, float, int)
        assert b.p_positive == pytest.approx(s.p_positive, abs=1e-12)
        assert (b.tokens, b.unknown_share) == (s.tokens, pytest.approx(s.unknown_share))
    np.testing.assert_allclose(
        [b.p_positive for b in batch], model.predict_proba(texts)[:, 1], rtol=0, atol=1e-12
    )
    assert scorer.score_batch([]) == []


def test_highlights_cover_ratings_as_one_piece() -> None:
    from imdb_sentiment.runtime.scorer import Contribution
    from imdb_sentiment.serving.http.highlight import segments

    def clean(piece: str) -> str:
        return piece.lower()

    marked = segments("Great: 9/10!", [Contribution("9/10", 2.0)], clean)
    assert [(s.text, s.direction) for s in marked] == [
        ("Great", ""),
        (": ", ""),
        ("9/10", "pos"),
        ("!", ""),
    ]


def test_the_decision_threshold_labels_and_survives_saving(tmp_path: Path) -> None:
    model = build(*CONFIGS["binary-nb"])
    texts = ["a wonderful moving film", "dull and boring", "fine I guess", "great acting"]
    at_half = compile_pipeline(model, 0.5)
    strict = compile_pipeline(model, threshold=0.9)
    for text in texts:
        p = at_half.score(text).p_positive
        assert at_half.score(text).label == ("positive" if p >= 0.5 else "negative")
        assert strict.score(text).label == ("positive" if p >= 0.9 else "negative")
    batch = strict.score_batch(texts)
    assert [s.label for s in batch] == [strict.score(t).label for t in texts]
    assert [s.label for s in at_half.score_batch(texts)] != [s.label for s in batch]
    save_scorer(strict, tmp_path / "scorer")
    assert load_scorer(tmp_path / "scorer").threshold == 0.9
    assert read_threshold(tmp_path / "scorer") == 0.9
    meta = json.loads((tmp_path / "scorer" / "scorer.json").read_text())
    del meta["threshold"]  # a scorer saved before thresholds were kept
    (tmp_path / "scorer" / "scorer.json").write_text(json.dumps(meta))
    assert load_scorer(tmp_path / "scorer").threshold == 0.5
    with pytest.raises(ValueError, match="between 0 and 1"):
        compile_pipeline(model, threshold=1.0)
