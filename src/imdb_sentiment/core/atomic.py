"""Write to a temporary name beside the target, rename only on success: the one implementation
of "never leave a half-written output". Standard library only, so every layer (pipeline,
serving workers, batch executors) can use it.

`atomic_path` stages one file; `atomic_dir` one directory; `staged_paths` several files that
appear together or not at all.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path, suffix: str | None = None) -> Iterator[Path]:
    """A temporary file beside `path`; it becomes `path` if the block completes."""
    with staged_paths([path], suffix) as (tmp,):
        yield tmp


@contextmanager
def staged_paths(paths: Sequence[Path], suffix: str | None = None) -> Iterator[list[Path]]:
    """Temporary files beside each of `paths`, renamed into place only when the block completes
    (after all of them are written: a failure leaves none)."""
    staged: list[Path] = []
    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            end = path.suffix if suffix is None else suffix
            fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=end)
            os.close(fd)
            staged.append(Path(name))
        yield list(staged)
        for tmp, path in zip(staged, paths, strict=True):
            tmp.chmod(0o644)  # mkstemp creates 0600; outputs are ordinary shared files
            tmp.replace(path)
    finally:
        for tmp in staged:
            tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """An empty temporary directory beside `path`; it becomes `path` if the block completes
    (replacing an existing `path` only if the caller removed it: never merged)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        yield staging
        publish_dir(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish_dir(staging: Path, path: Path) -> None:
    """Rename a staged directory to `path`, readable by every user: mkdtemp makes it 0700, and
    a directory staged by root while building an image is read by the service's own user."""
    staging.chmod(0o755)
    os.replace(staging, path)
