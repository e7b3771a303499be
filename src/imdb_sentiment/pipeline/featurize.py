"""Featurize any number of reviews in bounded memory: chunks of the Parquet file, counted on every
core, the vocabulary reduced one hash range at a time (`model.vocabulary`), matrices written as
parts (`core.io.SparseParts`) that training streams. Peak memory follows `chunk_rows` and the kept
vocabulary, not the number of reviews."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import scipy.sparse as sp
from joblib import Parallel, delayed
from numpy.typing import NDArray
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline

from imdb_sentiment.core.config import FeatureParams
from imdb_sentiment.core.io import dump, save_parts
from imdb_sentiment.core.text import CleanOptions
from imdb_sentiment.model.features import TextCleaner, build_featurizer, parallel_map
from imdb_sentiment.model.vocabulary import (
    RECORD,
    ChunkCounts,
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
    for batch in pq.ParquetFile(parquet).iter_batches(batch_size=rows, columns=["text"]):
        yield batch.column("text").to_pylist()


def vectorizers(featurizer: Pipeline) -> list[TfidfVectorizer]:
    """The n-gram vectorizers, in the order their columns are stacked."""
    step = featurizer.named_steps["tfidf"]
    if isinstance(step, FeatureUnion):
        return [part for _, part in step.transformer_list]
    return [step]


def _map_chunk(index: int, texts: list[str], cleaner: TextCleaner,
               parts: list[TfidfVectorizer], work: Path) -> int:  # fmt: skip
    """Clean and count one chunk; its counts, terms and records go to `work`."""
    cleaned = cleaner.transform(texts)
    for number, part in enumerate(parts):
        counts = count_chunk(part, cleaned)
        stem = work / f"{index:05d}-{number}"
        sp.save_npz(f"{stem}-matrix.npz", counts.matrix, compressed=False)
        np.save(f"{stem}-hashes.npy", counts.hashes)
        np.save(f"{stem}-records.npy", counts.records())
        Path(f"{stem}-terms.json").write_text(json.dumps(counts.terms), encoding="utf-8")
    return len(texts)


def _reduce(part: TfidfVectorizer, number: int, chunks: int, documents: int,
            work: Path) -> tuple[list[str], NDArray[Any]]:  # fmt: skip
    """The part's kept terms (sorted) and their summed records, aligned."""
    low, high = doc_bounds(part, documents)
    edges = np.array([(2**64 // PARTITIONS) * p for p in range(1, PARTITIONS)], dtype=np.uint64)
    files = [np.load(work / f"{c:05d}-{number}-records.npy", mmap_mode="r") for c in range(chunks)]
    cuts = [np.r_[0, np.searchsorted(f["hash"], edges), len(f)] for f in files]
    survivors = []
    for p in range(PARTITIONS):  # one hash range of every chunk at a time
        pieces = [np.asarray(f[c[p] : c[p + 1]]) for f, c in zip(files, cuts, strict=True)]
        survivors.append(kept(reduce_records(pieces), low, high))
    found = np.concatenate(survivors) if survivors else np.empty(0, RECORD)
    terms: dict[int, str] = {}
    for c in range(chunks):
        hashes = np.load(work / f"{c:05d}-{number}-hashes.npy")
        wanted = np.flatnonzero(np.isin(hashes, found["hash"]))
        if len(wanted):
            local = json.loads((work / f"{c:05d}-{number}-terms.json").read_text("utf-8"))
            for i in wanted.tolist():
                terms.setdefault(int(hashes[i]), local[i])
    by_hash = {int(h): i for i, h in enumerate(found["hash"].tolist())}
    ordered = sorted(terms.values())
    records = found[[by_hash[h] for h in sorted(terms, key=terms.__getitem__)]]
    chosen = limit(ordered, records, part.max_features)
    return [ordered[i] for i in chosen], records[chosen]


def _train_parts(parts: list[TfidfVectorizer], terms: list[list[str]], chunks: int,
                 work: Path) -> Iterator[sp.csr_matrix]:  # fmt: skip
    """Each chunk's counts renumbered into the vocabulary and weighted, parts side by side."""
    renumber = [Renumbering(columns) for columns in terms]
    weights = [weighting(part) for part in parts]
    for c in range(chunks):
        blocks = []
        for number, (r, w) in enumerate(zip(renumber, weights, strict=True)):
            stem = work / f"{c:05d}-{number}"
            counts = ChunkCounts(sp.csr_matrix(sp.load_npz(f"{stem}-matrix.npz")), [],
                                 np.load(f"{stem}-hashes.npy"))  # fmt: skip
            blocks.append(w.transform(r.matrix(counts)))
        yield sp.csr_matrix(sp.hstack(blocks)) if len(blocks) > 1 else sp.csr_matrix(blocks[0])


def run_featurize(train: Path, test: Path, out: Path, clean: CleanOptions,
                  features: FeatureParams, work_dir: Path | None = None) -> Featurized:  # fmt: skip
    """Fit on `train`'s texts; write `out`/featurizer.joblib, `out`/train and `out`/test parts."""
    featurizer = build_featurizer(clean, features)
    cleaner = featurizer.named_steps["clean"]
    parts = vectorizers(featurizer)
    jobs = max(1, min(os.cpu_count() or 1, 8))
    work = Path(tempfile.mkdtemp(prefix="featurize-", dir=work_dir))
    try:
        sizes = Parallel(n_jobs=jobs)(
            delayed(_map_chunk)(i, texts, cleaner, parts, work)
            for i, texts in enumerate(text_chunks(train, features.chunk_rows))
        )
        documents, chunks = sum(sizes), len(sizes)
        vocabularies = []
        for number, part in enumerate(parts):
            terms, records = _reduce(part, number, chunks, documents, work)
            fitted_vectorizer(part, terms, records["df"], documents)
            vocabularies.append(terms)
        for folder in (out / "train", out / "test"):
            shutil.rmtree(folder, ignore_errors=True)  # a rerun replaces, never merges
        train_rows = save_parts(_train_parts(parts, vocabularies, chunks, work), out / "train")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    test_rows = save_parts(
        (sp.csr_matrix(sp.vstack(parallel_map(featurizer.transform, texts, concat=False)))
         for texts in text_chunks(test, features.chunk_rows)),
        out / "test",
    )  # fmt: skip
    dump(featurizer, out / "featurizer.joblib")
    width = sum(len(part.vocabulary_) for part in parts)
    return Featurized(width, train_rows, test_rows)
