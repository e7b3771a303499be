"""A compiled scorer on disk: the directory a registered model version carries (`SCORER_DIR`)
and the model cache keeps — `scorer.json` (format, cleaning options, blocks, threshold) and
`scorer.npz` (the arrays) — written by `save_scorer` and read by `load_scorer`; `read_meta` and
`read_threshold` read its description without the arrays; `in_key_order` is the column layout
every scorer is built in (compiled or loaded). numpy only, as `runtime.scorer`."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imdb_sentiment.core.labels import carried_threshold
from imdb_sentiment.core.text import CleanOptions
from imdb_sentiment.runtime.scorer import Block, FastScorer, Linear, Weighting, WordBlock

FORMAT = "imdb-sentiment-scorer/1"
META_FILE, ARRAYS_FILE = "scorer.json", "scorer.npz"
# Where a registered model version carries its compiled scorer, and where the cache keeps it.
SCORER_DIR = "scorer"


# A model's decision threshold (`model.threshold` in params.yaml) travels in its scorer, put there
# by the register stage, and in the registered MLflow model's metadata (MLmodel `metadata`), for
# versions compiled from the pipeline where they are served.
THRESHOLD_METADATA = "decision_threshold"


def read_meta(directory: Path) -> dict[str, Any]:
    """A saved scorer's description (scorer.json), without loading its arrays."""
    meta: dict[str, Any] = json.loads((directory / META_FILE).read_text())
    return meta


def read_threshold(directory: Path) -> float:
    """A saved scorer's decision threshold, without loading its arrays."""
    return carried_threshold(read_meta(directory).get("threshold"))


def save_scorer(scorer: FastScorer, directory: Path) -> None:
    """Write `scorer` as a directory the model cache keeps beside the model (`load_scorer`)."""
    if not all(isinstance(block, WordBlock) for block in scorer.blocks):
        raise TypeError("only word n-gram scorers can be saved; others compile in-process")
    directory.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, NDArray[Any]] = {"coef": scorer.linear.coef}
    if scorer.linear.ratio is not None:
        arrays["ratio"] = scorer.linear.ratio
    blocks = []
    for i, block in enumerate(scorer.blocks):
        assert isinstance(block, WordBlock)
        arrays[f"keys{i}"] = block.keys
        # Tokens never contain a newline (they match \w\w+ or \S+): one joined string is exact.
        arrays[f"tokens{i}"] = np.frombuffer("\n".join(block.tokens).encode(), np.uint8)
        w = block.weighting
        if w.idf is not None:
            arrays[f"idf{i}"] = w.idf
        blocks.append(
            {
                "ngram_range": [block.low, block.high],
                "offset": block.offset,
                "sublinear": w.sublinear,
                "binary": w.binary,
                "norm": w.norm,
                "whitespace": block.whitespace,
            }
        )
    meta = {
        "format": FORMAT,
        "options": asdict(scorer.options),
        "blocks": blocks,
        "renorm": scorer.linear.renorm,
        "intercept": scorer.linear.intercept,
        "positive_is_one": scorer.linear.positive_is_one,
        "threshold": scorer.threshold,
    }
    np.savez(directory / ARRAYS_FILE, allow_pickle=False, **arrays)
    (directory / META_FILE).write_text(json.dumps(meta, indent=1))


def load_scorer(directory: Path) -> FastScorer:
    """The scorer `save_scorer` wrote into `directory`."""
    meta = json.loads((directory / META_FILE).read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"unknown scorer format {meta.get('format')!r} in {directory}")
    with np.load(directory / ARRAYS_FILE, allow_pickle=False) as arrays:
        blocks: list[Block] = []
        for i, spec in enumerate(meta["blocks"]):
            weighting = Weighting(
                arrays.get(f"idf{i}"),
                spec["sublinear"],
                spec["binary"],
                spec["norm"],
            )
            tokens = bytes(arrays[f"tokens{i}"]).decode().split("\n")
            low, high = spec["ngram_range"]
            blocks.append(
                WordBlock(
                    tokens,
                    arrays[f"keys{i}"],
                    (low, high),
                    spec["offset"],
                    weighting,
                    spec.get("whitespace", False),  # absent in scorers saved before it
                )
            )
        linear = Linear(
            arrays.get("ratio"),
            meta["renorm"],
            arrays["coef"],
            meta["intercept"],
            meta["positive_is_one"],
        )
    threshold = carried_threshold(meta.get("threshold"))  # absent before it was kept
    blocks, linear = in_key_order(blocks, linear)  # saved before scorers kept key order
    return FastScorer(CleanOptions(**meta["options"]), blocks, linear, threshold)


def in_key_order(blocks: list[Block], linear: Linear) -> tuple[list[Block], Linear]:
    """The same model with each word block's columns numbered in the order of their n-gram keys:
    a key found by binary search is then its own column (no column table to read, 4.5 MB less
    per process for the default model), and the per-column weights of a review are read in
    ascending order. Terms, scores and saved scorers are unaffected (keys travel with columns)."""
    coef, ratio = linear.coef, linear.ratio
    ordered: list[Block] = []
    for block in blocks:
        if isinstance(block, WordBlock) and block.sorted_columns is not None:
            order = block.sorted_columns
            span = slice(block.offset, block.offset + block.size)
            if coef is linear.coef:  # copy once, never write into the caller's arrays
                coef = coef.copy()
                ratio = ratio.copy() if ratio is not None else None
            coef[span] = linear.coef[span][order]
            if ratio is not None and linear.ratio is not None:
                ratio[span] = linear.ratio[span][order]
            block = block.in_order(order)
        ordered.append(block)
    if coef is linear.coef:
        return blocks, linear
    return ordered, replace(linear, coef=coef, ratio=ratio)
