"""SparseParts: a matrix in row blocks on disk, written all or nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from imdb_sentiment.core.io import SparseParts, load_sparse, save_parts


def blocks(sizes: list[int], width: int = 9) -> list[sp.csr_matrix]:
    return [sp.random(n, width, density=0.3, random_state=n, format="csr") for n in sizes]


def test_parts_read_back_in_row_order(tmp_path: Path) -> None:
    written = blocks([3, 5, 1])
    assert save_parts(written, tmp_path / "m") == 9
    matrix = SparseParts(tmp_path / "m")
    assert matrix.shape == (9, 9)
    assert [(s.start, s.stop) for s, _ in matrix] == [(0, 3), (3, 8), (8, 9)]
    assert abs(matrix.to_csr() - sp.vstack(written)).max() == 0


def test_the_cache_keeps_parts_up_to_its_budget(tmp_path: Path) -> None:
    save_parts(blocks([4, 4, 4]), tmp_path / "m")
    one = SparseParts(tmp_path / "m").part(0)
    size = one.data.nbytes + one.indices.nbytes + one.indptr.nbytes
    matrix = SparseParts(tmp_path / "m", cache_bytes=size * 2)
    first = [part for _, part in matrix]
    second = [part for _, part in matrix]
    assert [a is b for a, b in zip(first, second, strict=True)] == [True, True, False]
    assert [
        a is b for a, b in zip(first, [p for _, p in SparseParts(tmp_path / "m")], strict=True)
    ] == [False] * 3


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    def failing() -> Iterator[sp.csr_matrix]:
        yield blocks([2])[0]
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_parts(failing(), tmp_path / "m")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="no matrix parts"):
        SparseParts(tmp_path / "m")
    assert np.isfinite(0)


@pytest.mark.parametrize(
    ("values", "stored"),
    [
        (np.ones(6), np.uint8),  # binary features
        (np.array([1.0, 2.0, 3.0, 300.0, 7.0, 1.0]), np.int32),  # counts
        (np.array([0.5, 0.25, 1.0, 2.0, 3.0, 4.0]), np.float32),
        (np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]), np.float64),  # tf-idf weights
    ],
)
def test_parts_are_stored_narrow_and_read_back_exact(
    tmp_path: Path, values: np.ndarray, stored: type
) -> None:
    matrix = sp.csr_matrix((values, [0, 3, 1, 2, 4, 0], [0, 2, 4, 6]), shape=(3, 5))
    save_parts([matrix], tmp_path / "m")
    with np.load(tmp_path / "m" / "part-00000.npz") as archive:
        assert archive["data"].dtype == stored
    back = SparseParts(tmp_path / "m").part(0)
    assert back.dtype == np.float64
    np.testing.assert_array_equal(back.toarray(), matrix.toarray())
    assert isinstance(load_sparse(tmp_path / "m" / "part-00000.npz"), sp.csr_matrix)
