"""Small file helpers for pipeline stages: every output goes through `atomic.atomic_path`, so a
failed stage never leaves a file behind that looks valid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import scipy.sparse as sp

from imdb_sentiment.core.atomic import atomic_path


def write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def dump(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        joblib.dump(obj, tmp)


def load(path: Path) -> Any:
    return joblib.load(path)


def save_sparse(matrix: sp.spmatrix, path: Path) -> None:
    with atomic_path(path) as tmp:
        sp.save_npz(tmp, sp.csr_matrix(matrix), compressed=False)


def load_sparse(path: Path) -> sp.csr_matrix:
    return sp.csr_matrix(sp.load_npz(path))
