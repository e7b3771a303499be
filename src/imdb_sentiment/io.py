"""Small file helpers: every output is written to a temp file and renamed, so a failed stage
never leaves a file behind that looks valid."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import joblib
import scipy.sparse as sp


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        tmp_path.chmod(0o644)  # mkstemp creates 0600; outputs are ordinary shared files
        tmp_path.replace(path)
    finally:
        tmp_path.unlink(missing_ok=True)


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
