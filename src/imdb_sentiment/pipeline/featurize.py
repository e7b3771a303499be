"""Featurize any number of reviews in bounded memory: chunks of the Parquet file, counted on every
core, the vocabulary reduced one hash range at a time (`model.vocabulary`), matrices written as
parts (`core.io.SparseParts`) that training streams. Peak memory follows `chunk_rows` and the kept
vocabulary, not the number of reviews."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as pf
import scipy.sparse as sp
from joblib import Parallel, delayed
from joblib.externals.loky import get_reusable_executor
from numpy.typing import NDArray
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline

from imdb_sentiment.core.config import FeatureParams
from imdb_sentiment.core.io import dump, load_sparse, save_parts, streaming_parquet, write_sparse
from imdb_sentiment.core.text import CleanOptions
from imdb_sentiment.model.features import TextCleaner, build_featurizer
from imdb_sentiment.model.vocabulary import (
    ChunkCounts,
    Records,
    Renumbering,
    count_chunk,
    doc_bounds,
    fitted_vectorizer,
    kept,
    limit,
    reduce_records,
    weighting,
)

PARTITIONS = 32  # hash ranges reduced one at a time: ~1/32 of all chunks' records in memory


@dataclass
class Featurized:
    features: int
    train_rows: int
    test_rows: int


def text_chunks(parquet: Path, rows: int) -> Iterator[list[str]]:
    """The `text` column, `rows` reviews at a time (never the whole column)."""
    for batch in streaming_parquet(parquet).iter_batches(batch_size=rows, columns=["text"]):
        yield batch.column("text").to_pylist()


def vectorizers(featurizer: Pipeline) -> list[TfidfVectorizer]:
    """The n-gram vectorizers, in the order their columns are stacked."""
    step = featurizer.named_steps["tfidf"]
    if isinstance(step, FeatureUnion):
        return [part for _, part in step.transformer_list]
    return [step]


def _map_chunk(stem: Path, texts: list[str], cleaner: TextCleaner,
               parts: list[TfidfVectorizer], fit: bool) -> int:  # fmt: skip
    """Clean and count one chunk; per vectorizer its matrix and hashes, and for the chunks the
    vocabulary is fitted on (`fit`) their counts and terms."""
    cleaned = cleaner.transform(texts)
    for number, part in enumerate(parts):
        counts = count_chunk(part, cleaned)
        write_sparse(counts.matrix, f"{stem}-{number}-matrix.npz")
        records = counts.records()
        np.save(f"{stem}-{number}-hash.npy", records.hash)
        if fit:  # counts within one chunk: int32 holds them (summed as int64)
            np.save(f"{stem}-{number}-df.npy", records.df.astype(np.int32))
            np.save(f"{stem}-{number}-tf.npy", records.tf.astype(np.int32))
            _write_terms(Path(f"{stem}-{number}-terms.arrow"), counts.terms)
    return len(texts)


def _load_counts(path: str) -> sp.csr_matrix:
    """A chunk's counts (written by `write_sparse`, 1 byte a value when binary) as floats, the
    file removed (read once): with the parts, these files are the stage's disk."""
    matrix = load_sparse(path)
    Path(path).unlink()
    return matrix


def _map(parquet: Path, prefix: Path, cleaner: TextCleaner, parts: list[TfidfVectorizer],
         rows: int, fit: bool) -> list[int]:  # fmt: skip
    """Every chunk of `parquet` counted, on every core; the chunks' sizes."""
    jobs = max(1, min(os.cpu_count() or 1, 8))
    # As a generator: a returned list keeps every task's arguments (its chunk's texts) alive
    # until the last task ends — memory growing with the reviews (9 MB a chunk, measured).
    done = Parallel(n_jobs=jobs, return_as="generator")(
        delayed(_map_chunk)(Path(f"{prefix}{i:05d}"), texts, cleaner, parts, fit)
        for i, texts in enumerate(text_chunks(parquet, rows))
    )
    return list(done)


def _reduce(part: TfidfVectorizer, stems: list[str], documents: int) -> tuple[list[str], Records]:
    """The part's kept terms (sorted) and their summed records, aligned."""
    low, high = doc_bounds(part, documents)
    edges = np.array([(2**64 // PARTITIONS) * p for p in range(1, PARTITIONS)], dtype=np.uint64)
    cuts = [np.r_[0, np.searchsorted(np.load(f"{stem}-hash.npy"), edges), -1] for stem in stems]
    survivors = []
    for p in range(PARTITIONS):  # one hash range of every chunk at a time
        pieces = [Records(*(_rows(f"{stem}-{name}.npy", c[p], c[p + 1])
                            for name in ("hash", "df", "tf")))
                  for stem, c in zip(stems, cuts, strict=True)]  # fmt: skip
        survivors.append(kept(reduce_records(pieces), low, high))
    found = reduce_records(survivors)  # disjoint ranges: a concatenation, sorted
    found = found.take(limit(found, part.max_features))  # texts for the chosen terms only
    return chosen_terms(part, _texts(found.hash, stems), found)


def _rows(path: str, start: int, stop: int) -> NDArray[Any]:
    """Rows [start, stop) of a saved array (stop -1: to the end), copied out of a mapping that
    is closed at once: mapped pages count in the process's RSS while the file stays mapped
    (5 GB of them at 1M reviews when every chunk's records stayed mapped, measured)."""
    mapped = np.load(path, mmap_mode="r")
    rows = mapped[start : None if stop < 0 else stop]
    return np.array(rows, dtype=np.int64 if rows.dtype == np.int32 else rows.dtype)


def _write_terms(path: Path, terms: list[str]) -> None:
    """A chunk's terms (aligned with its hashes), zstd-compressed: 19 MB for a chunk of 10,000
    reviews' 2.3 M n-grams, 51 MB uncompressed."""
    pf.write_feather(pa.table({"term": pa.array(terms, pa.large_string())}), path,
                     compression="zstd")  # fmt: skip


def _texts(hashes: NDArray[np.uint64], stems: list[str]) -> pa.Array:
    """The text of each of `hashes` (sorted), from the first chunk that has it: an Arrow array
    (a few bytes per term, where a list of Python strings costs ~70)."""
    slots, pieces = [], []
    missing = np.ones(len(hashes), dtype=bool)
    for stem in stems:
        if not missing.any():
            break
        local = np.load(f"{stem}-hash.npy")
        at = np.minimum(np.searchsorted(hashes, local), max(len(hashes) - 1, 0))
        wanted = np.flatnonzero((hashes[at] == local) & missing[at]) if len(hashes) else at[:0]
        if len(wanted):
            terms = pf.read_table(f"{stem}-terms.arrow", memory_map=True).column("term")
            pieces.append(terms.take(pa.array(wanted)).combine_chunks())
            slots.append(at[wanted])
            missing[at[wanted]] = False
    if not pieces:
        return pa.array([], pa.large_string())
    texts = pa.concat_arrays(pieces)
    return texts.take(pa.array(np.argsort(np.concatenate(slots))))


def chosen_terms(part: TfidfVectorizer, terms: pa.Array | list[str],
                 records: Records) -> tuple[list[str], Records]:  # fmt: skip
    """At most `max_features` of the kept terms (`limit`), in sklearn's order (sorted), their
    records aligned. Only the chosen terms become Python strings (the vocabulary's own)."""
    texts = terms if isinstance(terms, pa.Array) else pa.array(terms, pa.large_string())
    keep = limit(records, part.max_features)
    texts, records = texts.take(pa.array(keep)), records.take(keep)
    order = pc.sort_indices(texts).to_numpy()  # UTF-8 byte order: Python's str order
    return texts.take(pa.array(order)).to_pylist(), records.take(order)


def _renumbered(parts: list[TfidfVectorizer], renumber: list[Renumbering],
                stems: list[str]) -> Iterator[sp.csr_matrix]:  # fmt: skip
    """Each chunk's counts renumbered into the vocabulary and weighted, parts side by side."""
    weights = [weighting(part) for part in parts]
    for stem in stems:
        blocks = []
        for number, (r, w) in enumerate(zip(renumber, weights, strict=True)):
            counts = ChunkCounts(_load_counts(f"{stem}-{number}-matrix.npz"), [],
                                 np.load(f"{stem}-{number}-hash.npy"))  # fmt: skip
            Path(f"{stem}-{number}-hash.npy").unlink()  # each chunk's files go once used
            blocks.append(w.transform(r.matrix(counts)))
        yield sp.csr_matrix(sp.hstack(blocks)) if len(blocks) > 1 else sp.csr_matrix(blocks[0])


def run_featurize(train: Path, test: Path, out: Path, clean: CleanOptions,
                  features: FeatureParams, work_dir: Path | None = None) -> Featurized:  # fmt: skip
    """Fit on `train`'s texts; write `out`/featurizer.joblib, `out`/train and `out`/test parts.
    Test chunks are counted like train chunks and renumbered into the fitted vocabulary: the
    same matrix as the fitted vectorizer's `transform`, without sending it to every core."""
    featurizer = build_featurizer(clean, features)
    cleaner = featurizer.named_steps["clean"]
    parts = vectorizers(featurizer)
    work = Path(tempfile.mkdtemp(prefix="featurize-", dir=work_dir))
    try:
        train_sizes = _map(train, work / "train-", cleaner, parts, features.chunk_rows, True)
        test_sizes = _map(test, work / "test-", cleaner, parts, features.chunk_rows, False)
        # Idle workers keep the memory their chunks grew (CPython rarely returns it): end
        # them before the vocabulary is built here.
        get_reusable_executor().shutdown(wait=True)
        train_stems = [str(work / f"train-{i:05d}") for i in range(len(train_sizes))]
        test_stems = [str(work / f"test-{i:05d}") for i in range(len(test_sizes))]
        renumber = []
        for number, part in enumerate(parts):
            terms, records = _reduce(part, [f"{s}-{number}" for s in train_stems], sum(train_sizes))
            fitted_vectorizer(part, terms, records.df, sum(train_sizes))
            renumber.append(Renumbering(records.hash))
            del terms, records  # the vectorizer holds the vocabulary now
        for leftover in (*work.glob("*-df.npy"), *work.glob("*-tf.npy"), *work.glob("*.arrow")):
            leftover.unlink()  # the vocabulary's inputs, before the parts take their disk
        for folder in (out / "train", out / "test"):
            shutil.rmtree(folder, ignore_errors=True)  # a rerun replaces, never merges
        save_parts(_renumbered(parts, renumber, train_stems), out / "train")
        save_parts(_renumbered(parts, renumber, test_stems), out / "test")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    dump(featurizer, out / "featurizer.joblib")
    width = sum(len(part.vocabulary_) for part in parts)
    return Featurized(width, sum(train_sizes), sum(test_sizes))
