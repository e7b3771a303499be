"""How much Arrow's C++ compute kernels could take off the batch scorer (issue 19's option).

Usage (after `make pipeline promote`, with benchmarks/batch.py's data in its work directory):

    python benchmarks/scorer_kernels.py [--rows 10000]

On one core, one Arrow batch of the 100k archive reviews as pandas wrote them:
- the scorer as executors run it (`batch.executor.probabilities`): µs per review;
- its front half (clean, split into tokens, token ids) in Python, as it runs today;
- the same front half with Arrow kernels (regex replace, ASCII lower, whitespace split,
  `index_in`) on the ASCII rows without URLs, checked token for token against `clean_words`.
The back half (n-gram keys, lookup, distinct columns, weighting) is numpy over cache-sized
sub-batches already; the kernels replace only the front half, so the figures bound the gain.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from itertools import chain
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imdb_sentiment.batch.executor import probabilities
from imdb_sentiment.core.text import SEPARATED_MARKS, clean_words
from imdb_sentiment.runtime.scorer import WordBlock
from imdb_sentiment.runtime.scorer_files import load_scorer

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(tempfile.gettempdir()) / "imdb-batch" / "reviews-100k-pandas.parquet"


def arrow_front(texts: pa.Array, block: WordBlock) -> tuple[pa.ListArray, np.ndarray]:
    """Clean, split and look up token ids with Arrow kernels (ASCII input, recommended options)."""
    x = pc.replace_substring_regex(texts, r"<[^>]{1,200}>", " ")
    x = pc.replace_substring_regex(x, r"\b[cC][aA][nN]['][tT]\b", "can not")
    x = pc.replace_substring_regex(x, r"\b[wW][oO][nN]['][tT]\b", "will not")
    x = pc.replace_substring_regex(x, r"[nN]['][tT]\b", " not")
    x = pc.ascii_lower(x)
    for mark in SEPARATED_MARKS:
        x = pc.replace_substring(x, mark, f" {mark} ")
    tokens = pc.ascii_split_whitespace(x)
    flat = pc.list_flatten(tokens)
    flat = flat.filter(pc.not_equal(flat, ""))
    ids = pc.index_in(flat, value_set=pa.array(block.tokens)).fill_null(block.base - 1)
    return tokens, ids.to_numpy()


def python_front(texts: list[str], block: WordBlock) -> np.ndarray:
    words = [block.tokens_of(clean_words(text)) for text in texts]
    flat = list(chain.from_iterable(words))
    return np.fromiter((block.token_ids[w] for w in flat), dtype=np.int64, count=len(flat))


def timed(fn, *args):  # type: ignore[no-untyped-def]
    best, out = float("inf"), None
    for _ in range(3):
        started = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - started)
    return best, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000, help="one Arrow batch (Spark's)")
    parser.add_argument(
        "--scorer", type=Path, default=ROOT / ".cache/model/imdb-sentiment/v1/scorer"
    )
    args = parser.parse_args()
    scorer = load_scorer(args.scorer)
    block = scorer.blocks[0]
    assert isinstance(block, WordBlock)
    texts = pq.read_table(DATA, columns=["text"]).column("text").combine_chunks()
    texts = texts.slice(0, args.rows)
    plain = pc.and_(pc.string_is_ascii(texts), pc.invert(pc.match_substring_regex(
        texts, r"(?i)https?://|www\.")))  # fmt: skip
    texts = texts.filter(plain)
    rows, pylist = len(texts), texts.to_pylist()
    whole, _ = timed(probabilities, scorer, pylist)
    front_py, ids_py = timed(python_front, pylist, block)
    front_arrow, (tokens, ids_arrow) = timed(arrow_front, texts, block)
    same = tokens_equal(tokens.to_pylist(), pylist) and np.array_equal(ids_py, ids_arrow)
    per = 1e6 / rows
    print(f"{rows:,} ASCII reviews without URLs, one core")
    print(f"scorer as executors run it:        {whole * per:6.1f} µs/review")
    print(f"  front half in Python (today):    {front_py * per:6.1f} µs/review")
    print(f"  front half with Arrow kernels:   {front_arrow * per:6.1f} µs/review  "
          f"(tokens and ids equal: {same})")  # fmt: skip
    best = whole - front_py + front_arrow
    print(f"scorer with the Arrow front half:  {best * per:6.1f} µs/review "
          f"({whole / best:.2f}x)")  # fmt: skip
    return 0


def tokens_equal(tokens: list[list[str]], texts: list[str]) -> bool:
    return all(
        [t for t in got if t] == clean_words(text) for got, text in zip(tokens, texts, strict=True)
    )


if __name__ == "__main__":
    raise SystemExit(main())
