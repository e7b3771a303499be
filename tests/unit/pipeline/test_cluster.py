"""What the cluster's executors keep of a feature part (`pipeline.cluster.Loaded`): the part as
stored, narrow, and float64 values for every pass's arithmetic."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from imdb_sentiment.core.io import save_parts
from imdb_sentiment.model.classifier import block_norms
from imdb_sentiment.pipeline.cluster import _load


def test_an_executor_keeps_the_part_narrow_and_computes_in_float64(tmp_path: Path) -> None:
    counts = sp.random(50, 40, density=0.3, random_state=0, format="csr")
    counts.data = np.full_like(counts.data, 200.0)  # 200² overflows a uint8 square
    save_parts([counts], tmp_path / "m")
    loaded = _load((str(tmp_path / "m" / "part-00000.npz"), 100, 150))
    assert loaded.stored.dtype == np.uint8 and loaded.matrix.dtype == np.float64
    assert loaded.rows == slice(100, 150)
    as_floats = pickle.dumps(sp.csr_matrix(counts, dtype=np.float64))
    assert len(pickle.dumps(loaded)) < 0.5 * len(as_floats)  # what a pass reads back
    np.testing.assert_array_equal(block_norms(loaded.matrix, np.ones(40)),
                                  block_norms(counts, np.ones(40)))  # fmt: skip
