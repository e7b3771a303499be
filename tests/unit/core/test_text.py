from __future__ import annotations

from dataclasses import asdict, replace

import pandas as pd
import pytest

from harness.project import ROOT
from imdb_sentiment.core.config import load_params, parse_params
from imdb_sentiment.core.errors import ConfigError
from imdb_sentiment.core.text import CleanOptions, clean_text, tokenize
from imdb_sentiment.model.features import TextCleaner
from tests.helpers import PUNCTUATION_TOKENS, SEED_CLEANING

RAW = replace(SEED_CLEANING, remove_stopwords=False, lemmatize=False)  # the steps alone


def test_seed_cleaning_steps() -> None:
    raw = "I LOVED the 2 movies!<br /><br />See http://example.com/x www.imdb.com now."
    cleaned = clean_text(raw, SEED_CLEANING)
    assert "<br" not in cleaned and "http" not in cleaned and "imdb" not in cleaned
    assert "2" not in cleaned
    assert cleaned == cleaned.lower()
    assert "movie" in cleaned.split()  # lemmatised from "movies"
    assert "the" not in cleaned.split()  # stop word


def test_switches_are_independent() -> None:
    raw = "The Movies, 10/10!"
    assert clean_text(raw, replace(RAW, lowercase=False)) == "The Movies"
    kept = clean_text(raw, replace(RAW, remove_digits=False, remove_punctuation=False))
    assert kept == "the movies, 10/10!"


def test_negations_survive_when_expanded() -> None:
    text = "It isn't good and I can't recommend it"
    seed = replace(SEED_CLEANING, remove_stopwords=False)
    assert "not" in clean_text(text, replace(seed, expand_negations=True)).split()
    assert "not" not in clean_text(text, replace(seed, expand_negations=False)).split()


def test_irregular_negations() -> None:
    curly = "\u2019"  # typographic apostrophe, common in pasted reviews
    expected = "i can not it will not it did not"
    options = replace(RAW, expand_negations=True)
    assert clean_text(f"I can't, it won't, it didn{curly}t", options) == expected


def test_lemmatizer_is_offline_and_deterministic() -> None:
    assert clean_text("running films", replace(SEED_CLEANING, remove_stopwords=False)) == "run film"


def test_cleaner_accepts_common_containers() -> None:
    cleaner = TextCleaner(replace(SEED_CLEANING, remove_stopwords=False))
    expected = ["great film"]
    assert cleaner.transform(["Great films"]) == expected
    assert cleaner.transform(pd.Series(["Great films"])) == expected
    assert cleaner.transform(pd.DataFrame({"text": ["Great films"]})) == expected
    assert cleaner.transform(pd.DataFrame({"review": ["Great films"]})) == expected


def test_cleaner_rejects_non_strings() -> None:
    with pytest.raises(TypeError, match="string"):
        TextCleaner().transform(["ok", None])
    with pytest.raises(TypeError, match="single string"):
        TextCleaner().transform("a bare string")


def test_one_declaration_of_the_cleaning_switches() -> None:
    """params.yaml's `clean:` validates into CleanOptions itself; the model step holds one."""
    params = parse_params({"clean": {"lemmatize": True}}, origin="test")
    assert params.clean == replace(CleanOptions(), lemmatize=True)
    assert TextCleaner(params.clean).get_params() == {"options": params.clean}
    shipped = load_params(ROOT / "params.yaml")
    assert isinstance(shipped.clean, CleanOptions)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"lematize": True}, "lematize"),  # a typo is an error, not a silent default
        ({"remove_punctuation": True, "separate_punctuation": True}, "separate_punctuation"),
        ({"lowercase": "sometimes"}, "lowercase"),
    ],
)
def test_bad_cleaning_options_are_rejected(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_params({"clean": section}, origin="test")


def test_cleaner_loads_the_old_nine_attribute_state() -> None:
    """Models registered before CleanOptions stored each switch as an attribute."""
    cleaner = TextCleaner.__new__(TextCleaner)
    cleaner.__setstate__({**asdict(SEED_CLEANING), "_sklearn_version": "1.7.0"})
    assert cleaner.options == SEED_CLEANING
    assert cleaner.transform(["Running films!"]) == ["run film"]


@pytest.mark.parametrize(
    "options",
    [
        {"remove_digits": True, "remove_punctuation": True, "separate_punctuation": False},
        {"remove_digits": False, "remove_punctuation": True, "separate_punctuation": False},
        {"remove_digits": False, "remove_punctuation": False, "separate_punctuation": True},
    ],
)
def test_ascii_fast_path_equals_the_regex_path(options: dict[str, bool]) -> None:
    # ASCII text is cleaned with str.translate, other text with the regex: a non-ASCII word
    # appended must not change how the rest is cleaned.
    text = "It's 10/10 -- a_b (great!) \"film\" #1; can't, won't, isn't ~ [x]{y}|z\\w @ $5 ^^"
    common = CleanOptions(**options, remove_stopwords=False, lemmatize=False)
    assert clean_text(text + " café", common) == clean_text(text, common) + " café"


def test_negations_expand_in_one_pass() -> None:
    out = clean_text("Can't WON'T isn\u2019t wocan't", replace(RAW, expand_negations=True))
    assert out == "can not will not is not woca not"


def test_separated_punctuation_marks_become_tokens() -> None:
    text = 'Wow!! "Best" film (8/10), well-made; isn\'t it?'
    out = clean_text(text, PUNCTUATION_TOKENS)
    assert out == 'wow ! ! " best " film ( 8/10 ) , well-made ; is not it ?'
    assert tokenize(out, whitespace=True) == out.split(" ")
    # sklearn's default pattern would drop every mark, "8/10" and one-letter words.
    assert "!" not in tokenize(out) and "10" in tokenize(out)


def test_the_stop_word_list_is_scikit_learns() -> None:
    """The list ships beside core/text.py (the serving image has no scikit-learn); it must be
    exactly the one models were trained with."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    from imdb_sentiment.core.text import stop_words

    assert stop_words() == frozenset(ENGLISH_STOP_WORDS)
