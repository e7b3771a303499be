from __future__ import annotations

import pandas as pd
import pytest

from imdb_sentiment.features import TextCleaner
from imdb_sentiment.text import clean_text, tokenize
from tests.helpers import PUNCTUATION_TOKENS


def test_seed_cleaning_steps() -> None:
    raw = "I LOVED the 2 movies!<br /><br />See http://example.com/x www.imdb.com now."
    cleaned = clean_text(raw)
    assert "<br" not in cleaned and "http" not in cleaned and "imdb" not in cleaned
    assert "2" not in cleaned
    assert cleaned == cleaned.lower()
    assert "movie" in cleaned.split()  # lemmatised from "movies"
    assert "the" not in cleaned.split()  # stop word


def test_switches_are_independent() -> None:
    raw = "The Movies, 10/10!"
    assert clean_text(raw, lowercase=False, remove_stopwords=False, lemmatize=False) == "The Movies"
    kept = clean_text(
        raw, remove_digits=False, remove_punctuation=False, remove_stopwords=False, lemmatize=False
    )
    assert kept == "the movies, 10/10!"


def test_negations_survive_when_expanded() -> None:
    text = "It isn't good and I can't recommend it"
    assert "not" in clean_text(text, expand_negations=True, remove_stopwords=False).split()
    assert "not" not in clean_text(text, expand_negations=False, remove_stopwords=False).split()


def test_irregular_negations() -> None:
    options = {"expand_negations": True, "remove_stopwords": False, "lemmatize": False}
    curly = "\u2019"  # typographic apostrophe, common in pasted reviews
    expected = "i can not it will not it did not"
    assert clean_text(f"I can't, it won't, it didn{curly}t", **options) == expected


def test_lemmatizer_is_offline_and_deterministic() -> None:
    assert clean_text("running films", remove_stopwords=False) == "run film"


def test_cleaner_accepts_common_containers() -> None:
    cleaner = TextCleaner(remove_stopwords=False)
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


def test_cleaner_params_mirror_clean_params() -> None:
    from imdb_sentiment.config import CleanParams

    assert set(TextCleaner().get_params()) == set(CleanParams.model_fields)


@pytest.mark.parametrize(
    "options",
    [
        {"remove_digits": True, "remove_punctuation": True},
        {"remove_digits": False, "remove_punctuation": True},
        {"remove_digits": False, "remove_punctuation": False, "separate_punctuation": True},
    ],
)
def test_ascii_fast_path_equals_the_regex_path(options: dict[str, bool]) -> None:
    # ASCII text is cleaned with str.translate, other text with the regex: a non-ASCII word
    # appended must not change how the rest is cleaned.
    text = "It's 10/10 -- a_b (great!) \"film\" #1; can't, won't, isn't ~ [x]{y}|z\\w @ $5 ^^"
    common = {**options, "remove_stopwords": False, "lemmatize": False}
    assert clean_text(text + " café", **common) == clean_text(text, **common) + " café"


def test_negations_expand_in_one_pass() -> None:
    out = clean_text(
        "Can't WON'T isn\u2019t wocan't",
        expand_negations=True,
        lemmatize=False,
        remove_stopwords=False,
    )
    assert out == "can not will not is not woca not"


def test_separated_punctuation_marks_become_tokens() -> None:
    text = 'Wow!! "Best" film (8/10), well-made; isn\'t it?'
    out = clean_text(text, **PUNCTUATION_TOKENS.model_dump())
    assert out == 'wow ! ! " best " film ( 8/10 ) , well-made ; is not it ?'
    assert tokenize(out, whitespace=True) == out.split(" ")
    # sklearn's default pattern would drop every mark, "8/10" and one-letter words.
    assert "!" not in tokenize(out) and "10" in tokenize(out)
