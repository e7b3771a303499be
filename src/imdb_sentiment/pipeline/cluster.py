"""The featurize and train stages on a Spark cluster (`train.engine: spark`): the same
vocabulary, weighting and classifier as on one machine, computed by the cluster's executors, and
the same files out, so evaluation, registration and serving cannot tell the routes apart.

**Featurize.** A task per row group of the Parquet file (ingest writes them `chunk_rows` long)
counts its reviews with the vectorizer's own analyzer (`count_chunk`); the cluster sums the
records (hash, document and term frequency, term) per hash range (`reduceByKey`, combined on the
map side) and prunes them by `min_df`/`max_df` there; the `max_features` cut (`Cut`) is found
from a histogram of counts and applied there too. Only the chosen vocabulary reaches the
driver, which orders it as sklearn does (`chosen_terms`) and fits the vectorizer.
The fitted featurizer is then broadcast, each task transforms its row group, and the driver
writes the matrices as parts, a wave of as many tasks as the cluster has cores at a time.

**Train.** A task per feature part loads it; the parts stay on the executors' disks (read
through the OS's page cache, never held in the JVMs' heaps). The NB ratios, the row norms and
every loss-and-gradient evaluation of the lbfgs solver are sums over them (`treeReduce`); the
solver itself runs on the driver (`model.classifier.fit_streamed` with `SparkPasses`), holding
vectors as long as the vocabulary.

**Paths.** Executors open the Parquet files and parts where the driver names them: on one host
(a standalone cluster beside the project) that is the project directory; across hosts, a
directory every node mounts at the same path (docs/model.md, "Training on a cluster").
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline

from imdb_sentiment.core.config import FeatureParams
from imdb_sentiment.core.io import SparseParts, dump, load_sparse, save_parts
from imdb_sentiment.core.text import CleanOptions
from imdb_sentiment.model.classifier import (
    RowData,
    block_decisions,
    block_norms,
    block_objective,
)
from imdb_sentiment.model.features import TextCleaner, build_featurizer
from imdb_sentiment.model.vocabulary import (
    Cut,
    Records,
    count_chunk,
    cut_count,
    doc_bounds,
    fitted_vectorizer,
    kept,
    reduce_named,
    tf_histogram,
    tied_cut,
)
from imdb_sentiment.pipeline.featurize import PARTITIONS, Featurized, chosen_terms, vectorizers

if TYPE_CHECKING:
    from pyspark import RDD, SparkContext

Named = tuple[Records, list[str]]  # records and their terms, aligned
Ranged = tuple[int, tuple[Records, pa.Array]]  # a hash range's kept records and their terms


@dataclass(frozen=True)
class Block:
    """One row group of a Parquet file: a task's reviews."""

    path: str
    group: int
    start: int  # its first row in the file
    rows: int


def row_groups(path: Path) -> list[Block]:
    """The file's row groups, from its footer."""
    meta = pq.ParquetFile(path).metadata
    blocks, start = [], 0
    for group in range(meta.num_row_groups):
        rows = meta.row_group(group).num_rows
        blocks.append(Block(str(path.absolute()), group, start, rows))
        start += rows
    return blocks


def read_texts(block: Block) -> list[str]:
    texts: list[str] = pq.ParquetFile(block.path).read_row_group(
        block.group, columns=["text"]).column("text").to_pylist()  # fmt: skip
    return texts


def _count(cleaner: TextCleaner, parts: list[TfidfVectorizer]
           ) -> Callable[[Block], Iterator[tuple[int, Named]]]:  # fmt: skip
    edges = np.array([(2**64 // PARTITIONS) * p for p in range(1, PARTITIONS)], dtype=np.uint64)

    def count(block: Block) -> Iterator[tuple[int, Named]]:
        """The block's records, keyed by vectorizer and hash range."""
        cleaned = cleaner.transform(read_texts(block))
        for number, part in enumerate(parts):
            counts = count_chunk(part, cleaned)
            records = counts.records()
            cuts = np.r_[0, np.searchsorted(records.hash, edges), len(records)].tolist()
            for p in range(PARTITIONS):
                piece = slice(cuts[p], cuts[p + 1])
                yield number * PARTITIONS + p, (records.take(piece), counts.terms[piece])

    return count


def _merge(a: Named, b: Named) -> Named:
    return reduce_named([a, b])


def vocabularies(sc: SparkContext, blocks: list[Block], cleaner: TextCleaner,
                 parts: list[TfidfVectorizer]) -> list[tuple[list[str], Records]]:  # fmt: skip
    """Per vectorizer, its kept terms (sklearn's order; `max_features` by `Cut`) and their
    records."""
    from pyspark import StorageLevel

    documents = sum(block.rows for block in blocks)
    bounds = [doc_bounds(part, documents) for part in parts]

    def prune(item: tuple[int, Named]) -> Ranged:
        """A hash range's kept records, their terms as one Arrow array (a few bytes a term in
        the driver, where a Python string takes ~60)."""
        key, (records, terms) = item
        low, high = bounds[key // PARTITIONS]
        keep = (records.df >= low) & (records.df <= high)
        texts = pa.array(terms, pa.large_string()).filter(pa.array(keep))
        return key, (kept(records, low, high), texts)

    pruned = (
        sc.parallelize(blocks, len(blocks))
        .flatMap(_count(cleaner, parts))
        .reduceByKey(_merge, numPartitions=PARTITIONS * len(parts), partitionFunc=lambda k: k)
        .map(prune)
        .persist(StorageLevel.DISK_ONLY)  # read by the cut's jobs, then by the collection
    )
    try:
        chosen = pruned.map(_cutting(_cuts(pruned, parts)))
        ranges: list[list[tuple[Records, pa.Array]]] = [[] for _ in parts]
        # A hash range at a time (a job each): neither the driver's JVM nor its Python holds
        # every range's serialised records at once.
        for key, named in chosen.toLocalIterator(prefetchPartitions=False):
            ranges[key // PARTITIONS].append(named)
    finally:
        pruned.unpersist()
    found = []
    for part, pieces in zip(parts, ranges, strict=True):
        records = Records(*(np.concatenate([getattr(r, n) for r, _ in pieces])
                            for n in ("hash", "df", "tf")))  # fmt: skip
        terms = pa.concat_arrays([texts for _, texts in pieces])
        pieces.clear()
        found.append(chosen_terms(part, terms, records))
    return found


def _cuts(pruned: RDD[Ranged], parts: list[TfidfVectorizer]) -> list[Cut | None]:
    """Each vectorizer's `max_features` cut, found on the cluster: the driver sees a histogram
    of corpus counts, then the hashes of the terms counted as often as the cut's term."""
    histograms: list[Counter[int]] = [Counter() for _ in parts]
    for key, histogram in pruned.map(lambda i: (i[0], tf_histogram(i[1][0]))).collect():
        histograms[key // PARTITIONS].update(histogram)
    cuts: list[Cut | None] = []
    for number, part in enumerate(parts):
        found = cut_count(histograms[number], part.max_features) if part.max_features else None
        if found is None:
            cuts.append(None)
            continue
        tf, wanted = found
        tied = pruned.flatMap(_tied(number, tf)).collect()
        cuts.append(tied_cut(tf, wanted, np.concatenate(tied)))
    return cuts


def _tied(number: int, tf: int) -> Callable[[Ranged], list[NDArray[np.uint64]]]:
    def tied(item: Ranged) -> list[NDArray[np.uint64]]:
        key, (records, _) = item
        return [records.hash[records.tf == tf]] if key // PARTITIONS == number else []

    return tied


def _cutting(cuts: list[Cut | None]) -> Callable[[Ranged], Ranged]:
    def cut(item: Ranged) -> Ranged:
        key, (records, texts) = item
        rule = cuts[key // PARTITIONS]
        if rule is None:
            return item
        keep = rule.keeps(records)
        return key, (records.take(keep), texts.filter(pa.array(keep)))

    return cut


def transformed(sc: SparkContext, featurizer: Pipeline,
                blocks: list[Block]) -> Iterator[sp.csr_matrix]:  # fmt: skip
    """Each block's feature matrix, in order, computed a wave of tasks at a time (a wave's
    matrices, not the whole set, in the driver's memory)."""
    shared = sc.broadcast(featurizer)
    matrices = sc.parallelize(blocks, len(blocks)).map(
        lambda block: sp.csr_matrix(shared.value.transform(read_texts(block)))
    )
    wave = max(1, sc.defaultParallelism)
    try:
        for first in range(0, len(blocks), wave):
            chosen = list(range(first, min(first + wave, len(blocks))))
            yield from sc.runJob(matrices, list, chosen)
    finally:
        shared.destroy()


def featurize_on_spark(sc: SparkContext, train: Path, test: Path, out: Path,
                       clean: CleanOptions, features: FeatureParams) -> Featurized:  # fmt: skip
    """`pipeline.featurize.run_featurize` on the cluster: the same files in `out`."""
    featurizer = build_featurizer(clean, features)
    cleaner = featurizer.named_steps["clean"]
    parts = vectorizers(featurizer)
    train_blocks, test_blocks = row_groups(train), row_groups(test)
    documents = sum(block.rows for block in train_blocks)
    for part, (terms, records) in zip(parts, vocabularies(sc, train_blocks, cleaner, parts),
                                      strict=True):  # fmt: skip
        fitted_vectorizer(part, terms, records.df, documents)
    for name, blocks in (("train", train_blocks), ("test", test_blocks)):
        save_parts(transformed(sc, featurizer, blocks), out / name)
    dump(featurizer, out / "featurizer.joblib")
    width = sum(len(part.vocabulary_) for part in parts)
    return Featurized(width, documents, sum(block.rows for block in test_blocks))


@dataclass(frozen=True)
class Loaded:
    """A feature part in an executor's storage: its rows in the whole matrix and the matrix,
    kept as the file holds it (`core.io.compact`: binary features 1 byte a value, not 8), so
    what every pass reads back from the executors' disks is 2.4x smaller."""

    start: int
    stop: int
    stored: sp.csr_matrix

    @property
    def rows(self) -> slice:
        return slice(self.start, self.stop)

    @property
    def matrix(self) -> sp.csr_matrix:
        """The part with float64 values, for a pass's arithmetic (uint8 squares overflow)."""
        return sp.csr_matrix(self.stored, dtype=np.float64)


def _load(task: tuple[str, int, int]) -> Loaded:
    path, start, stop = task
    return Loaded(start, stop, load_sparse(Path(path), dtype=None))


def _add3(a: tuple[float, Any, float], b: tuple[float, Any, float]) -> tuple[float, Any, float]:
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]


class SparkPasses:
    """`model.classifier.Passes` over feature parts loaded by a cluster's executors and kept
    there for every pass (memory first, then the executors' disks)."""

    def __init__(self, sc: SparkContext, folder: Path) -> None:
        from pyspark import StorageLevel

        self.sc = sc
        layout = SparseParts(folder)  # row counts from the parts' headers, no data read
        self._shape = layout.shape
        tasks = [(str(file.absolute()), int(layout.offsets[i]), int(layout.offsets[i + 1]))
                 for i, file in enumerate(layout.files)]  # fmt: skip
        # A pass is a job of a task per partition (~0.1-0.2 s each to schedule here, and the
        # solver makes hundreds of passes): one per core. Kept on the executors' disks, not in
        # their JVM heaps: caching 1.1 GB of parts (200k reviews) in memory killed executors of
        # the default 1 GiB even in partitions of 96 MB; the OS's page cache keeps what fits.
        slices = max(1, min(len(tasks), sc.defaultParallelism))
        self.blocks: RDD[Loaded] = (
            sc.parallelize(tasks, slices).map(_load).persist(StorageLevel.DISK_ONLY)
        )
        self._rows: tuple[RowData, Any] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    def _with(self, value: Any, job: Callable[[Any], Any]) -> Any:
        """`job(broadcast)`, the value broadcast for it alone (destroyed after: `unpersist`
        would leave every pass's copy in the driver's block manager)."""
        shared = self.sc.broadcast(value)
        try:
            return job(shared)
        finally:
            shared.destroy()

    def column_sums(self, values: NDArray[Any]) -> NDArray[np.float64]:
        return self._with(values, lambda v: self.blocks.map(
            lambda b: b.matrix.T @ v.value[b.rows]).treeReduce(operator.add))  # fmt: skip

    def row_norms(self, scale: NDArray[np.float64]) -> NDArray[np.float64]:
        pieces = self._with(scale, lambda s: self.blocks.map(
            lambda b: (b.start, block_norms(b.matrix, s.value))).collect())  # fmt: skip
        return np.concatenate([norms for _, norms in sorted(pieces, key=operator.itemgetter(0))])

    def objective(self, rows: RowData, folded: NDArray[np.float64],
                  intercept: float) -> tuple[float, NDArray[np.float64], float]:  # fmt: skip
        if self._rows is None or self._rows[0] is not rows:  # once per fit, not per pass
            if self._rows is not None:
                self._rows[1].destroy()
            self._rows = (rows, self.sc.broadcast(rows))
        shared_rows = self._rows[1]
        loss, gradient, slope = self._with(folded, lambda f: self.blocks.map(
            lambda b: block_objective(b.matrix, shared_rows.value.at(b.rows), f.value, intercept)
        ).treeReduce(_add3))  # fmt: skip
        return float(loss), np.asarray(gradient), float(slope)

    def decisions(self, folded: NDArray[np.float64], intercept: float,
                  norms: NDArray[np.float64] | None) -> NDArray[np.float64]:  # fmt: skip
        def job(shared: Any) -> list[tuple[int, NDArray[np.float64]]]:
            def one(b: Loaded) -> tuple[int, NDArray[np.float64]]:
                w, n = shared.value
                return b.start, block_decisions(b.matrix, w, intercept,
                                                None if n is None else n[b.rows])  # fmt: skip

            return self.blocks.map(one).collect()

        pieces = self._with((folded, norms), job)
        return np.concatenate([z for _, z in sorted(pieces, key=operator.itemgetter(0))])

    def close(self) -> None:
        if self._rows is not None:
            self._rows[1].destroy()
        self.blocks.unpersist()


# The driver holds no rows: Spark's scheduler, the vocabulary or the solver's vectors, and what
# passes through it (broadcasts, task results: 16 MB vectors at 2M features). Spark's default
# driver JVM came to 0.9-1.3 GB: a 1 GiB G1 heap, and native blocks the size of those vectors
# that a full GC does not return. A small serial heap, no cached NIO buffer over 256 KiB and an
# allocator that unmaps large blocks (`driver_environment`) took it from 0.89 to 0.55 GB at
# 200k reviews (docs/benchmarks.md, "A small driver JVM"). Measured up to 2M features; larger
# vocabularies may need SPARK_DRIVER_MEMORY.
DRIVER_MEMORY = "512m"  # Spark refuses a driver heap under 450 MB
DRIVER_JAVA_OPTIONS = (
    "-XX:+UseSerialGC -Xms64m -XX:TieredStopAtLevel=1 -Djdk.nio.maxCachedBufferSize=262144"
)
DRIVER_MALLOC = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": str(1 << 20)}


def driver_conf(environ: Mapping[str, str]) -> dict[str, str]:
    """The stages' driver settings. They are defaults: SPARK_DRIVER_MEMORY sets the heap, and
    `spark.driver.extraJavaOptions` (spark-defaults.conf) comes after these options, so its
    flags win."""
    conf = {"spark.driver.defaultJavaOptions": DRIVER_JAVA_OPTIONS}
    if not environ.get("SPARK_DRIVER_MEMORY"):
        conf["spark.driver.memory"] = DRIVER_MEMORY
    return conf


def driver_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The allocator settings the driver JVM starts with (it inherits this process's
    environment; glibc reads them at start), where the environment sets none."""
    return {key: value for key, value in DRIVER_MALLOC.items() if key not in environ}
