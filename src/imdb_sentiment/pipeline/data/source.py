"""Resolve a dataset source (URL, S3 object, local archive or directory) to a local path."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from imdb_sentiment.core.atomic import atomic_path
from imdb_sentiment.core.errors import DataError

_CHUNK = 1 << 20
_Fetch = Callable[[str, Path], None]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str | None) -> None:
    """Raise DataError if `path` does not hash to `expected` (skipped when None)."""
    if expected is None:
        return
    actual = sha256_of(path)
    if actual.lower() != expected.lower():
        raise DataError(f"checksum mismatch for {path}: expected sha256 {expected}, got {actual}")


def resolve_source(source: str, cache_dir: Path, sha256: str | None = None) -> Path:
    """Return a local archive or directory for `source`, downloading remote ones once."""
    scheme = urlparse(source).scheme
    if scheme in {"http", "https"}:
        path = _cached(source, cache_dir, sha256, _download_http)
    elif scheme == "s3":
        path = _cached(source, cache_dir, sha256, _download_s3)
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise DataError(f"dataset source not found: {source}")
        if path.is_file():
            verify_sha256(path, sha256)
    return path


def _cached(source: str, cache_dir: Path, sha256: str | None, fetch: _Fetch) -> Path:
    name = Path(urlparse(source).path).name or "dataset.tar.gz"
    target = cache_dir / name
    if target.exists():
        try:
            verify_sha256(target, sha256)
            return target
        except DataError:
            target.unlink()  # a stale or corrupt cache entry: fetch again
    # Download beside the target and rename, so an interrupted fetch never looks complete.
    with atomic_path(target, suffix=".part") as tmp:
        fetch(source, tmp)
        verify_sha256(tmp, sha256)
    return target


def _progress() -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=True,
    )


def _download_http(url: str, dest: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with _progress() as progress, dest.open("wb") as out:
                task = progress.add_task(f"download {Path(url).name}", total=total)
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    progress.advance(task, len(chunk))
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DataError(
            f"cannot download {url}: {exc} (offline? point IMDB_SOURCE at a local copy of "
            "aclImdb_v1.tar.gz, e.g. IMDB_SOURCE=/path/to/aclImdb_v1.tar.gz make run)"
        ) from exc


def _download_s3(url: str, dest: Path) -> None:
    """Fetch s3://bucket/key with boto3 (AWS_ENDPOINT_URL selects an S3-compatible server)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    parsed = urlparse(url)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if not bucket or not key:
        raise DataError(f"invalid S3 URL (want s3://bucket/key): {url}")
    try:
        client = boto3.client("s3")
        size = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
        with _progress() as progress:
            task = progress.add_task(f"download {Path(key).name}", total=size)
            client.download_file(
                bucket, key, str(dest), Callback=lambda n: progress.advance(task, n)
            )
    except (BotoCoreError, ClientError) as exc:
        raise DataError(f"cannot download {url}: {exc}") from exc
