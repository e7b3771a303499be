"""The one text-cleaning implementation, used by training, evaluation and serving alike.

`features.TextCleaner` wraps `clean_text` as the first step of the model pipeline, so the
cleaning that produced the training features travels inside the registered artifact and serving
can never disagree with training. This module imports only the standard library: serving
workers clean text without loading scikit-learn (~140 MB per process).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from functools import cache, lru_cache
from importlib import resources
from typing import Any, ClassVar

_HTML_TAG = re.compile(r"<[^>]{1,200}>")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_DIGITS = re.compile(r"\d+")
# Every "n't" (a cheap pattern: it starts with a character class, so the scan is fast); whether
# it ends "can't"/"won't" (irregular: "can not", "will not") is decided per match. Explicit
# letter classes instead of IGNORECASE: no other Unicode letter folds to these.
_NEGATION = re.compile(r"[nN]['\u2019][tT]\b")
_WORD_CHAR = re.compile(r"\w")
_IRREGULAR_STEM = {"can": "can", "won": "will"}
_NON_WORD = re.compile(r"[^\w\s]|_")
_NON_WORD_OR_DIGIT = re.compile(r"[^\w\s]|[_\d]")
# The same substitutions as tables for ASCII text (most reviews): str.translate is ~10x faster
# than a regex sub with hundreds of matches. Built from the regexes, so they cannot disagree.
_ASCII = [chr(i) for i in range(128)]
_NON_WORD_TABLE = str.maketrans({c: " " for c in _ASCII if _NON_WORD.match(c)})
_NON_WORD_OR_DIGIT_TABLE = str.maketrans({c: " " for c in _ASCII if _NON_WORD_OR_DIGIT.match(c)})
# Marks that carry sentiment or structure ("!", "?", quotes) and that `separate_punctuation`
# turns into tokens of their own. Others stay attached: "8/10", "well-made", "*****" are tokens.
SEPARATED_MARKS = '.,!?;:"()'
TOKEN_PATTERN = r"(?u)\b\w\w+\b"  # sklearn's default token_pattern: words of 2+ characters
WHITESPACE_TOKEN_PATTERN = r"\S+"  # every cleaned word is a token (punctuation, "8/10", "a")
_TOKEN = re.compile(TOKEN_PATTERN)


@dataclass(frozen=True)
class CleanOptions:
    """The cleaning switches: their one declaration. `params.yaml`'s `clean:` section validates
    into it (config.Params), the model's `TextCleaner` holds one, the compiled scorer saves it.
    The defaults are the recommended recipe, the one `params.yaml` ships; the seed project's is
    the `seed` preset."""

    # pydantic validates this stdlib dataclass inside `config.Params`: unknown keys are errors.
    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}

    remove_html: bool = True
    remove_urls: bool = True
    remove_digits: bool = False  # keeps ratings: "8/10" and "1/10" are strong n-grams
    lowercase: bool = True
    remove_punctuation: bool = False
    separate_punctuation: bool = True  # ". , ! ? ; : \" ( )" become tokens of their own
    expand_negations: bool = True
    remove_stopwords: bool = False
    lemmatize: bool = False  # no accuracy gain measured, and the costliest step

    def __post_init__(self) -> None:
        if self.remove_punctuation and self.separate_punctuation:
            raise ValueError("separate_punctuation needs remove_punctuation: false")


CLEAN_OPTIONS = tuple(field.name for field in fields(CleanOptions))
RECOMMENDED = CleanOptions()


@lru_cache(maxsize=200_000)
def lemma(token: str) -> str:
    """English lemma from simplemma's bundled tables (offline; no corpus download)."""
    import simplemma  # only models that lemmatize pay for it

    return str(simplemma.lemmatize(token, lang="en"))


def _may_have_url(text: str) -> bool:
    # The URL regex is slow (case-insensitive, tried at every position); it can only match
    # where one of these lowercase substrings exists.
    lowered = text.lower()
    return "http" in lowered or "www." in lowered


def _expand_negations(text: str) -> str:
    parts, done = [], 0
    for match in _NEGATION.finditer(text):
        n = match.start()
        stem = _IRREGULAR_STEM.get(text[max(n - 2, 0) : n].lower() + "n")
        if stem is not None and n >= 2 and (n == 2 or not _WORD_CHAR.match(text[n - 3])):
            parts += [text[done : n - 2], stem]
        else:
            parts.append(text[done:n])
        parts.append(" not")
        done = match.end()
    return "".join(parts) + text[done:] if parts else text


def _replace(text: str, pattern: re.Pattern[str], table: dict[int, str]) -> str:
    return text.translate(table) if text.isascii() else pattern.sub(" ", text)


STOP_WORDS_FILE = "english_stop_words.txt"


@cache
def stop_words() -> frozenset[str]:
    """scikit-learn's English list (`ENGLISH_STOP_WORDS`, the one the seed project used), kept
    as a file beside this module so a serving image without scikit-learn cleans the same way;
    tests/unit/core/test_text.py checks it equals scikit-learn's. Read as a package resource:
    Spark executors import this package from a zip, where a file path does not open."""
    words = resources.files(__package__).joinpath(STOP_WORDS_FILE).read_text("utf-8").split()
    return frozenset(words)


def _separate_marks(text: str) -> str:
    # Nine str.replace passes (memchr-fast) cost ~5 µs per review; str.translate with
    # multi-character replacements ~75 µs, a regex sub ~30 µs.
    for mark in SEPARATED_MARKS:
        if mark in text:
            text = text.replace(mark, f" {mark} ")
    return text


def clean_text(text: str, options: CleanOptions = RECOMMENDED) -> str:
    """Normalise one review."""
    return " ".join(clean_words(text, options))


def clean_words(text: str, options: CleanOptions = RECOMMENDED) -> list[str]:
    """`clean_text` before the final join: its words, none empty, none with whitespace."""
    if options.remove_html:
        text = _HTML_TAG.sub(" ", text)  # <br /> included
    if options.remove_urls and _may_have_url(text):
        text = _URL.sub(" ", text)
    if options.expand_negations:
        # "isn't" would otherwise become "isn t" and lemmatise to "be": the negation is lost.
        text = _expand_negations(text)
    if options.lowercase:
        text = text.lower()
    if options.remove_digits and options.remove_punctuation:
        text = _replace(text, _NON_WORD_OR_DIGIT, _NON_WORD_OR_DIGIT_TABLE)  # the hot path
    elif options.remove_digits:
        text = _DIGITS.sub(" ", text)
    elif options.remove_punctuation:
        text = _replace(text, _NON_WORD, _NON_WORD_TABLE)
    if options.separate_punctuation and not options.remove_punctuation:
        text = _separate_marks(text)
    tokens = text.split()
    if options.remove_stopwords:
        stop = stop_words()
        tokens = [t for t in tokens if t.lower() not in stop]
    if options.lemmatize:
        tokens = [lemma(t) for t in tokens]
    return tokens


def tokenize(cleaned: str, plain: bool = False, whitespace: bool = False) -> list[str]:
    """Word tokens as the vectorizers see them.

    `whitespace`: the vectorizer's pattern is `WHITESPACE_TOKEN_PATTERN`, every word a token.
    Otherwise sklearn's default pattern; `plain`: the text is known to hold only word characters
    and single spaces (punctuation removed, no lemmatizer), so the pattern reduces to
    "space-separated, 2+ characters"."""
    if whitespace:
        return cleaned.split()
    if plain:
        return plain_tokens(cleaned.split(" "))
    return _TOKEN.findall(cleaned)


def plain_tokens(words: list[str]) -> list[str]:
    """The tokens of plain words (see `tokenize`): the pattern drops 1-character words."""
    return [word for word in words if len(word) > 1]


def plain_words(options: CleanOptions) -> bool:
    """Whether `clean_text` with these options yields only word characters and single spaces."""
    return options.remove_punctuation and not options.lemmatize
