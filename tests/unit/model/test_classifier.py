"""`fit_streamed` reaches sklearn's own fit a block of rows at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from imdb_sentiment.core.io import SparseParts, save_parts
from imdb_sentiment.model.classifier import NBLogisticRegression, fit_streamed


def data(rows: int = 400, width: int = 300, seed: int = 0) -> tuple[sp.csr_matrix, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = sp.random(rows, width, density=0.05, random_state=seed, format="csr")
    x.data[:] = 1.0
    truth = rng.normal(size=width)
    y = (x @ truth + rng.normal(scale=0.5, size=rows) > 0).astype(int)  # the labels: 0 and 1
    x.data[x.indptr[7] : x.indptr[8]] = 0.0  # an empty review: normalisation leaves it empty
    x.eliminate_zeros()
    return x, y


def parts(tmp_path: Path, x: sp.csr_matrix, size: int, cache: int = 0) -> SparseParts:
    save_parts((x[i : i + size] for i in range(0, x.shape[0], size)), tmp_path / "parts")
    return SparseParts(tmp_path / "parts", cache_bytes=cache)


@pytest.mark.parametrize(("nb", "normalize"), [(True, True), (True, False), (False, False)])
def test_streamed_fit_is_sklearns_fit(tmp_path: Path, nb: bool, normalize: bool) -> None:
    x, y = data()
    weight = np.ones(len(y))
    weight[::5] = 0.0  # a validation split: these rows take no part
    chosen = weight > 0

    def build() -> NBLogisticRegression:
        return NBLogisticRegression(C=30.0, nb=nb, nb_normalize=normalize)

    reference = build().fit(x[chosen], y[chosen])
    streamed = fit_streamed(build(), parts(tmp_path, x, 37), y, weight)
    np.testing.assert_allclose(streamed.predict_proba(x), reference.predict_proba(x), atol=1e-6)
    np.testing.assert_allclose(streamed.ratio_, reference.ratio_, rtol=1e-12)
    assert list(streamed.classes_) == [0, 1]
    assert streamed.lr_.n_iter_[0] == pytest.approx(reference.lr_.n_iter_[0], abs=3)


def test_the_cache_and_the_block_size_change_nothing(tmp_path: Path) -> None:
    x, y = data(seed=1)
    weight = np.ones(len(y))
    from_disk = fit_streamed(NBLogisticRegression(C=5.0), parts(tmp_path / "a", x, 11), y, weight)
    cached = parts(tmp_path / "b", x, 400, cache=1 << 30)
    in_memory = fit_streamed(NBLogisticRegression(C=5.0), cached, y, weight)
    np.testing.assert_allclose(from_disk.lr_.coef_, in_memory.lr_.coef_, atol=1e-8)


def test_other_solvers_fit_the_chosen_rows_in_memory(tmp_path: Path) -> None:
    x, y = data(seed=2)
    weight = np.r_[np.zeros(100), np.ones(300)]
    got = fit_streamed(NBLogisticRegression(solver="liblinear"), parts(tmp_path, x, 50), y, weight)
    expected = NBLogisticRegression(solver="liblinear").fit(x[100:], y[100:])
    np.testing.assert_allclose(got.predict_proba(x), expected.predict_proba(x))


def test_one_class_is_refused(tmp_path: Path) -> None:
    x, _ = data(seed=3)
    with pytest.raises(ValueError, match="two classes"):
        fit_streamed(NBLogisticRegression(), parts(tmp_path, x, 100), np.ones(400), np.ones(400))


def test_byte_weights_fit_as_float_weights(tmp_path: Path) -> None:
    """0/1 weights as bytes (what `train` passes: 1 byte a review, broadcast to a cluster's
    tasks) give the float weights' fit exactly."""
    x, y = data(seed=4)
    weight = np.ones(len(y))
    weight[::7] = 0.0
    as_floats = fit_streamed(NBLogisticRegression(C=30.0), parts(tmp_path / "f", x, 37), y, weight)
    as_bytes = fit_streamed(NBLogisticRegression(C=30.0), parts(tmp_path / "b", x, 37), y,
                            weight.astype(np.uint8))  # fmt: skip
    np.testing.assert_array_equal(as_bytes.lr_.coef_, as_floats.lr_.coef_)
    np.testing.assert_array_equal(as_bytes.ratio_, as_floats.ratio_)
