"""The scorer's hot loop, compiled: cleaning, whitespace tokens, token and n-gram lookup,
weighting and the linear decision for a batch of reviews, in C (`_kernel.c`, built with the
package wherever a C compiler and Python's headers exist: `make install`, the image's builder
stage). It reproduces `core.text.clean_words` and `FastScorer`'s batch arithmetic exactly for
what it handles — Latin-1 reviews (no character from U+0100 up: ASCII and 99 % of the rest of
IMDB's), the cleaning switches `remove_html`, `remove_urls`, `expand_negations`, `lowercase` and
`separate_punctuation`, whitespace tokens, 1- to 3-grams. Any other review (curly quotes, other
scripts, emoji) takes the Python path for its cleaning (`clean_words`, the reference), counted,
and the kernel for the rest.

Chosen once, at import: `KERNEL` is "compiled", or "python" when the extension is absent (a
machine without a compiler, a Spark executor given only the zipped package) or
IMDB_SENTIMENT_KERNEL=python asks for the fallback (CI runs the scorer's tests both ways).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from imdb_sentiment.core.text import CleanOptions, clean_words

if TYPE_CHECKING:
    from collections.abc import Sequence

_kernel: Any
try:
    from imdb_sentiment.runtime import _kernel  # type: ignore[attr-defined,no-redef]
except ImportError:  # built without a compiler: every review takes the Python path
    _kernel = None
if os.environ.get("IMDB_SENTIMENT_KERNEL", "").strip().lower() == "python":
    _kernel = None
KERNEL = "compiled" if _kernel is not None else "python"

_NATIVE_SWITCHES = ("remove_html", "remove_urls", "expand_negations", "lowercase",
                    "separate_punctuation")  # fmt: skip
_NORMS = {None: 0, "l2": 1, "l1": 2}


def handles(options: CleanOptions) -> bool:
    """Whether the kernel cleans text with these options as `clean_words` does."""
    return not (
        options.remove_digits
        or options.remove_punctuation
        or options.remove_stopwords
        or options.lemmatize
    )


def scores(options: CleanOptions, whitespace: bool, high: int) -> bool:
    """Whether the kernel scores the batches of a one-block word n-gram model with these
    cleaning options, token pattern (`whitespace`) and longest n-gram."""
    return _kernel is not None and handles(options) and whitespace and high <= 3


def scores_saved(meta: dict[str, Any]) -> bool:
    """`scores` for a saved scorer (its scorer.json), without loading its arrays."""
    blocks = meta["blocks"]
    return len(blocks) == 1 and scores(
        CleanOptions(**meta["options"]), blocks[0]["whitespace"], blocks[0]["ngram_range"][1]
    )


def handled(text: object) -> bool:
    """Whether the kernel scores this review itself (else it takes the Python path): Latin-1."""
    return isinstance(text, str) and (text.isascii() or max(text) < "\u0100")


def clean_tokens(text: str, options: CleanOptions) -> list[str] | None:
    """The kernel's tokens of `text` (what `clean_words` gives), or None where it does not
    handle the text (or there is no kernel)."""
    if _kernel is None or not handles(options):
        return None
    switches = (getattr(options, name) for name in _NATIVE_SWITCHES)
    tokens: list[str] | None = _kernel.clean(text, *switches)
    return tokens


@dataclass
class Decisions:
    """One batch: the linear decision, token count and known unigrams of every review;
    `native`: cleaned by the kernel (False: by `clean_words`, the Python path's cleaning)."""

    decision: NDArray[np.float64]
    tokens: NDArray[np.int64]
    known: NDArray[np.int64]
    native: NDArray[np.bool_]


@dataclass
class NativeScorer:
    """The kernel, loaded with one word block and its classifier."""

    kernel: Any
    options: CleanOptions
    reviews: int = 0  # cleaned and scored here
    python_path: int = field(default=0)  # cleaned in Python (not Latin-1), then scored here
    # This thread's last call's Python-path count: the totals above are one process's (batch
    # scoring reads them from one thread); threads serving at once read this one (a difference
    # of the totals across threads could even come out negative).
    _last: threading.local = field(default_factory=threading.local, repr=False)

    @property
    def last_python_path(self) -> int:
        """How many reviews of this thread's last `decisions` call took the Python path."""
        return int(getattr(self._last, "python_path", 0))

    def decisions(self, texts: Sequence[str]) -> Decisions:
        n = len(texts)
        out = Decisions(np.empty(n), np.empty(n, np.int64), np.empty(n, np.int64),
                        np.zeros(n, np.bool_))  # fmt: skip
        handled = self.kernel.score(texts, out.decision, out.tokens, out.known, out.native)
        self.reviews += handled
        self._last.python_path = n - handled
        if handled < n:  # cleaned by the reference implementation, looked up and weighed here
            rest = np.flatnonzero(~out.native)
            words = [clean_words(texts[int(i)], self.options) for i in rest]
            decision, tokens, known = np.empty(len(rest)), np.empty(len(rest), np.int64), \
                np.empty(len(rest), np.int64)  # fmt: skip
            self.kernel.score_tokens(words, decision, tokens, known)
            out.decision[rest], out.tokens[rest], out.known[rest] = decision, tokens, known
            self.python_path += len(rest)
        return out


def native_scorer(block: Any, linear: Any, options: CleanOptions) -> NativeScorer | None:
    """The kernel for a `scorer.WordBlock` and its `scorer.Linear` (typed loosely: the scorer
    imports this module, not the other way round), or None: no kernel, or a shape it does not
    reproduce."""
    if not scores(options, block.whitespace, block.high):
        return None
    w = block.weighting
    kernel = _kernel.Kernel(
        tokens=list(block.tokens),
        keys=np.ascontiguousarray(block.keys, dtype=np.int64),
        unigram_column=np.ascontiguousarray(block.unigram_column, dtype=np.int64),
        base=block.base,
        starts=[int(s) for s in block.starts],
        low=block.low,
        high=block.high,
        offset=block.offset,
        coef=np.ascontiguousarray(linear.coef, dtype=np.float64),
        ratio=None if linear.ratio is None else np.ascontiguousarray(linear.ratio, np.float64),
        renorm=linear.renorm,
        intercept=float(linear.intercept),
        binary=w.binary,
        sublinear=w.sublinear,
        idf=None if w.idf is None else np.ascontiguousarray(w.idf, dtype=np.float64),
        norm=_NORMS[w.norm],
        **{name: getattr(options, name) for name in _NATIVE_SWITCHES},
    )
    return NativeScorer(kernel, options)
