"""The one text-cleaning implementation, used by training, evaluation and serving alike.

`TextCleaner` is the first step of the model pipeline, so the cleaning that produced the training
features travels inside the registered artifact and serving can never disagree with training.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import simplemma
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

_HTML_TAG = re.compile(r"<[^>]{1,200}>")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_DIGITS = re.compile(r"\d+")
_NEGATION = re.compile(r"n['\u2019]t\b", re.IGNORECASE)
_IRREGULAR = re.compile(r"\b(can|won)['\u2019]t\b", re.IGNORECASE)
_IRREGULAR_STEM = {"can": "can", "won": "will"}
_NON_WORD = re.compile(r"[^\w\s]|_")
_NON_WORD_OR_DIGIT = re.compile(r"[^\w\s]|[_\d]")
TOKEN_PATTERN = r"(?u)\b\w\w+\b"  # sklearn's default token_pattern
_TOKEN = re.compile(TOKEN_PATTERN)

STOP_WORDS = frozenset(ENGLISH_STOP_WORDS)
CLEAN_OPTIONS = (
    "remove_html",
    "remove_urls",
    "remove_digits",
    "lowercase",
    "remove_punctuation",
    "expand_negations",
    "remove_stopwords",
    "lemmatize",
)


@lru_cache(maxsize=200_000)
def lemma(token: str) -> str:
    """English lemma from simplemma's bundled tables (offline; no corpus download)."""
    return str(simplemma.lemmatize(token, lang="en"))


def clean_text(
    text: str,
    *,
    remove_html: bool = True,
    remove_urls: bool = True,
    remove_digits: bool = True,
    lowercase: bool = True,
    remove_punctuation: bool = True,
    expand_negations: bool = False,
    remove_stopwords: bool = True,
    lemmatize: bool = True,
) -> str:
    """Normalise one review; the defaults reproduce the seed project's cleaning."""
    if remove_html:
        text = _HTML_TAG.sub(" ", text)  # <br /> included
    if remove_urls:
        text = _URL.sub(" ", text)
    if expand_negations:
        # "isn't" would otherwise become "isn t" and lemmatise to "be": the negation is lost.
        text = _IRREGULAR.sub(lambda m: _IRREGULAR_STEM[m.group(1).lower()] + " not", text)
        text = _NEGATION.sub(" not", text)
    if lowercase:
        text = text.lower()
    if remove_digits and remove_punctuation:
        text = _NON_WORD_OR_DIGIT.sub(" ", text)  # one pass instead of two: the hot path
    elif remove_digits:
        text = _DIGITS.sub(" ", text)
    elif remove_punctuation:
        text = _NON_WORD.sub(" ", text)
    if not (remove_stopwords or lemmatize):
        return " ".join(text.split())
    tokens: Iterable[str] = text.split()
    if remove_stopwords:
        tokens = (t for t in tokens if t.lower() not in STOP_WORDS)
    if lemmatize:
        tokens = (lemma(t) for t in tokens)
    return " ".join(tokens)


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
    """Stateless sklearn step wrapping `clean_text`; its params mirror `CleanParams`."""

    def __init__(
        self,
        remove_html: bool = True,
        remove_urls: bool = True,
        remove_digits: bool = True,
        lowercase: bool = True,
        remove_punctuation: bool = True,
        expand_negations: bool = False,
        remove_stopwords: bool = True,
        lemmatize: bool = True,
    ) -> None:
        self.remove_html = remove_html
        self.remove_urls = remove_urls
        self.remove_digits = remove_digits
        self.lowercase = lowercase
        self.remove_punctuation = remove_punctuation
        self.expand_negations = expand_negations
        self.remove_stopwords = remove_stopwords
        self.lemmatize = lemmatize

    def fit(self, X: Any, y: Any = None) -> TextCleaner:
        return self

    def options(self) -> dict[str, bool]:
        """The cleaning switches, read directly (get_params introspects and is slow)."""
        return {name: bool(getattr(self, name)) for name in CLEAN_OPTIONS}

    def transform(self, X: Any) -> list[str]:
        options = self.options()
        return [clean_text(text, **options) for text in as_text_list(X)]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.requires_fit = False
        return tags


def tokenize(cleaned: str) -> list[str]:
    """Word tokens as the vectorizers see them (sklearn's default token pattern)."""
    return _TOKEN.findall(cleaned)
