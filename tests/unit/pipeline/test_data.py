from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pandas as pd
import pytest

from imdb_sentiment.core.errors import DataError
from imdb_sentiment.pipeline.data.archive import iter_reviews
from imdb_sentiment.pipeline.data.ingest import ingest, write_frames
from imdb_sentiment.pipeline.data.source import resolve_source
from tests.helpers import review_files, write_archive, write_directory


def _ingest(
    source: Path, per_label: int = 5, **kwargs: object
) -> tuple[pd.DataFrame, pd.DataFrame]:
    return ingest(iter_reviews(source, show_progress=False), expected_per_label=per_label, **kwargs)  # type: ignore[arg-type]


def test_archive_and_directory_give_identical_frames(tmp_path: Path) -> None:
    files = review_files(per_label=5)
    from_tar = _ingest(write_archive(tmp_path / "a.tar.gz", files))
    from_dir = _ingest(write_directory(tmp_path / "x", files))
    for a, b in zip(from_tar, from_dir, strict=True):
        pd.testing.assert_frame_equal(a, b)
    train, test = from_tar
    assert list(train.columns) == ["id", "rating", "label", "movie", "text"]
    # Each review carries its movie's IMDb title id, from urls_{pos,neg}.txt line <id>.
    assert train.movie.str.fullmatch(r"tt\d{7}").all()
    assert set(train.movie).isdisjoint(set(test.movie))
    first = train[(train.label == 1) & (train.id == 4)].movie.item()
    assert first == "tt0000001"
    assert len(train) == len(test) == 10
    assert set(train.label) == {0, 1}
    assert (train[train.label == 1].rating >= 7).all()


def test_unsup_reviews_are_skipped(tmp_path: Path) -> None:
    train, _ = _ingest(write_archive(tmp_path / "a.tar.gz", review_files(per_label=5)))
    assert "unlabelled review" not in set(train.text)


def test_random_split_is_seeded_and_stratified(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "a.tar.gz", review_files(per_label=10))
    first = _ingest(archive, per_label=10, split="random", test_size=0.25, seed=3)
    second = _ingest(archive, per_label=10, split="random", test_size=0.25, seed=3)
    pd.testing.assert_frame_equal(first[0], second[0])
    assert len(first[1]) == 10 and first[1].label.mean() == 0.5


def test_wrong_count_is_reported(tmp_path: Path) -> None:
    files = review_files(per_label=5)
    del files[
        "aclImdb/test/neg/0_"
        + next(k for k in files if k.startswith("aclImdb/test/neg/0_")).split("_")[-1]
    ]
    with pytest.raises(DataError, match=r"wrong count in test/neg: expected 5 reviews, found 4"):
        _ingest(write_archive(tmp_path / "a.tar.gz", files))


def test_label_contradicting_rating_is_reported(tmp_path: Path) -> None:
    files = review_files(per_label=5)
    files["aclImdb/train/pos/999_2.txt"] = b"a positive review with a bad rating"
    with pytest.raises(DataError, match="contradicts their label"):
        _ingest(write_archive(tmp_path / "a.tar.gz", files), per_label=None)  # type: ignore[arg-type]


def test_empty_review_file_is_reported(tmp_path: Path) -> None:
    files = review_files(per_label=5)
    files["aclImdb/train/neg/3_1.txt"] = b"   \n"
    with pytest.raises(DataError, match=r"empty review file: aclImdb/train/neg/3_1\.txt"):
        _ingest(write_archive(tmp_path / "a.tar.gz", files), per_label=None)  # type: ignore[arg-type]


def test_invalid_utf8_is_reported(tmp_path: Path) -> None:
    files = review_files(per_label=5)
    files["aclImdb/train/neg/3_1.txt"] = b"bad \xff\xfe bytes"
    with pytest.raises(DataError, match="not valid UTF-8"):
        _ingest(write_archive(tmp_path / "a.tar.gz", files), per_label=None)  # type: ignore[arg-type]


def test_truncated_archive_is_reported(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "a.tar.gz", review_files(per_label=50))
    truncated = tmp_path / "t.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError, match="corrupt or truncated"):
        _ingest(truncated, per_label=50)


def test_corrupt_archive_is_reported(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(gzip.compress(b"this is not a tar file" * 100))
    with pytest.raises(DataError, match="corrupt or truncated"):
        _ingest(junk)


def test_wrong_layout_is_reported(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "a.tar.gz", {"reviews/good/1.txt": b"great"})
    with pytest.raises(DataError, match="no reviews found"):
        _ingest(archive)
    with pytest.raises(DataError, match="not an aclImdb directory"):
        _ingest(tmp_path)


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="dataset source not found"):
        resolve_source(str(tmp_path / "nope.tar.gz"), tmp_path / "cache")


def test_checksum_is_verified(tmp_path: Path, small_archive: Path) -> None:
    good = hashlib.sha256(small_archive.read_bytes()).hexdigest()
    assert resolve_source(str(small_archive), tmp_path, good) == small_archive
    with pytest.raises(DataError, match="checksum mismatch"):
        resolve_source(str(small_archive), tmp_path, "0" * 64)


def test_http_source_is_downloaded_once_into_the_cache(tmp_path: Path, small_archive: Path) -> None:
    import functools
    import http.server
    import threading

    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            hits.append(self.path)

    handler = functools.partial(Handler, directory=str(small_archive.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/{small_archive.name}"
        cache = tmp_path / "cache"
        first = resolve_source(url, cache)
        second = resolve_source(url, cache)
        missing = url.replace(small_archive.name, "missing.tar.gz")
        with pytest.raises(DataError, match="cannot download") as failure:
            resolve_source(missing, cache)
        assert "IMDB_SOURCE" in str(failure.value)  # the way out when offline
        assert not list(cache.glob(".missing*"))  # no partial download left behind
    finally:
        server.shutdown()
    assert first == second == cache / small_archive.name
    assert first.read_bytes() == small_archive.read_bytes()
    assert sum(small_archive.name in hit for hit in hits) == 1
    assert not list(cache.glob("*.part"))


def test_write_frames_is_all_or_nothing(tmp_path: Path) -> None:
    good = pd.DataFrame({"a": [1]})

    class Exploding(pd.DataFrame):
        def to_parquet(self, *args: object, **kwargs: object) -> None:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_frames({"train": good, "test": Exploding({"a": [1]})}, tmp_path)
    assert list(tmp_path.iterdir()) == []
    write_frames({"train": good, "test": good}, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.parquet", "train.parquet"]


def test_source_without_movie_lists_has_empty_movies(tmp_path: Path) -> None:
    files = {k: v for k, v in review_files(per_label=5).items() if "urls_" not in k}
    train, _ = _ingest(write_archive(tmp_path / "a.tar.gz", files))
    assert (train.movie == "").all()
