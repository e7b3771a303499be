"""Stream reviews out of the official archive layout without extracting 100k files to disk."""

from __future__ import annotations

import gzip
import re
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from imdb_sentiment.core.errors import DataError

# aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt ; train/unsup is skipped (no labels).
_MEMBER = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
# aclImdb/{train,test}/urls_{pos,neg}.txt: line i is the IMDb page of the movie review i is about.
_URLS = re.compile(r"(?:^|/)aclImdb/(train|test)/urls_(pos|neg)\.txt$")
EXPECTED_FILES = 50_000
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Review:
    split: str
    label: int
    id: int
    rating: int
    text: str
    name: str


@dataclass(frozen=True, slots=True)
class MovieUrls:
    """One urls_{pos,neg}.txt: the movie of each review, by review id (line number)."""

    split: str
    label: int
    urls: tuple[str, ...]


def _movie_urls(match: re.Match[str], raw: bytes) -> MovieUrls:
    split, sentiment = match.groups()
    lines = raw.decode("utf-8", errors="replace").splitlines()
    return MovieUrls(split, int(sentiment == "pos"), tuple(line.strip() for line in lines))


def _review(match: re.Match[str], name: str, raw: bytes) -> Review:
    split, sentiment, review_id, rating = match.groups()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{name} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    return Review(split, int(sentiment == "pos"), int(review_id), int(rating), text, name)


def iter_reviews(source: Path, show_progress: bool = True) -> Iterator[Review | MovieUrls]:
    """Yield every labelled review of an archive (.tar.gz) or an extracted directory, and the
    movie lists (urls_*.txt) where present."""
    if source.is_dir():
        yield from _iter_directory(source, show_progress)
    else:
        yield from _iter_tar(source, show_progress)


def _progress(show: bool) -> Progress:
    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn())
    return Progress(*columns, TimeElapsedColumn(), disable=not show, transient=True)


def _iter_tar(path: Path, show_progress: bool) -> Iterator[Review | MovieUrls]:
    # "r|" reads the stream sequentially: constant memory, nothing written to disk.
    try:
        with (
            _open_stream(path) as stream,
            tarfile.open(fileobj=stream, mode="r|") as archive,
            _progress(show_progress) as progress,
        ):
            task = progress.add_task("read reviews", total=EXPECTED_FILES)
            for member in archive:
                match = _MEMBER.search(member.name)
                urls = None if match else _URLS.search(member.name)
                if not ((match or urls) and member.isfile()):
                    continue
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                if urls:
                    yield _movie_urls(urls, handle.read())
                    continue
                assert match is not None
                yield _review(match, member.name, handle.read())
                progress.advance(task)
            # tarfile stops at the end-of-archive marker and ignores what follows; draining the
            # compressed stream makes a truncated download fail here instead of passing quietly.
            while stream.read(_CHUNK):
                pass
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataError(f"cannot read archive {path}: corrupt or truncated ({exc})") from exc


def _open_stream(path: Path) -> IO[bytes] | gzip.GzipFile:
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(path, "rb")
    return path.open("rb")


def _iter_directory(root: Path, show_progress: bool) -> Iterator[Review | MovieUrls]:
    base = root if root.name == "aclImdb" else root / "aclImdb"
    if not base.is_dir():
        raise DataError(
            f"{root} is not an aclImdb directory (expected aclImdb/train, aclImdb/test)"
        )
    for listing in sorted(base.glob("*/urls_*.txt")):
        urls = _URLS.search(f"aclImdb/{listing.relative_to(base).as_posix()}")
        if urls:
            yield _movie_urls(urls, listing.read_bytes())
    files = sorted(base.glob("*/*/*.txt"))
    with _progress(show_progress) as progress:
        task = progress.add_task("read reviews", total=len(files))
        for file in files:
            name = f"aclImdb/{file.relative_to(base).as_posix()}"
            match = _MEMBER.search(name)
            if match:
                yield _review(match, name, file.read_bytes())
                progress.advance(task)
