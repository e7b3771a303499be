"""The spool's files across an upgrade and a rollback, with earlier releases' own code (git
worktrees): what the previous release (the commit before the spool's bodies went by column,
when a row was a request's array of objects) left in a shared spool volume (compose) is written
out by this release in order, its ledger carried over; this release's files are left alone by
the old code — not adopted, not deleted — until a release that reads them comes back and takes
them over. The release before that (a row per record) is no longer read: its files stay on the
volume, untouched, for it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.project import run
from imdb_sentiment.store.spool import PREFIX, Spool
from tests.git_history import release_before

pytestmark = pytest.mark.slow
# The earlier format read: a file this release added after it (the release is the commit
# before), the prefix of that release's spool files, and a name this release's spool module has
# that it did not. And the one before, whose files are left alone.
RELEASES = {
    "v2 (a request as objects)": ("tests/unit/store/test_spool_bodies.py", "spool.v2-",
                                  "encode_request"),
}  # fmt: skip
UNREAD = ("tests/integration/test_spool_across_releases.py", "spool-", "ADOPTED_PREFIXES")

# The old release's side: append a request's records and exit without closing (a killed
# worker: its claim goes with it), or adopt what it can and report its view of the spool.
OLD_SIDE = """
import json, sys
from imdb_sentiment.store.spool import Spool
spool = Spool(sys.argv[1], 1 << 20, 3600)
if sys.argv[2] == "append":
    print(spool.append(json.loads(sys.argv[3])))
else:
    moved = spool.adopt_orphans()
    print(json.dumps({"moved": moved, "records": spool.state().records}))
"""


@pytest.fixture(scope="module", params=sorted(RELEASES))
def release(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, str]]:
    """An earlier release's code (its `src`) and its spool files' prefix."""
    yield from earlier(RELEASES[request.param], tmp_path_factory)


def earlier(
    release: tuple[str, str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, str]]:
    added, prefix, newer = release
    with release_before(added, tmp_path_factory.mktemp("old") / "tree") as tree:
        source = tree / "src/imdb_sentiment/store/spool.py"
        assert newer not in source.read_text(), "the worktree has this format"
        assert f'"{prefix}' in source.read_text(), "the worktree writes another format"
        yield tree / "src", prefix


def old(code: Path, spool: Path, *args: str) -> str:
    return run(["python", "-c", OLD_SIDE, str(spool), *args], spool.parent,
               {"PYTHONPATH": str(code)}).stdout.strip()  # fmt: skip


def rows(request_id: str, count: int) -> list[dict[str, object]]:
    return [{"created": 1.0e9 + i, "request_id": request_id, "item": i, "probability": 0.5}
            for i in range(count)]  # fmt: skip


def test_what_an_earlier_release_left_is_written_out_in_order(
    release: tuple[Path, str], tmp_path: Path
) -> None:
    old_code, old_prefix = release
    spool_dir = tmp_path / "spool"
    assert old(old_code, spool_dir, "append", json.dumps(rows("old-1", 3))) == "3"
    assert old(old_code, spool_dir, "append", json.dumps(rows("old-2", 2))) == "2"
    assert len(list(spool_dir.glob(f"{old_prefix}*.db"))) == 2

    spool = Spool(spool_dir, 1 << 22, 3600)
    assert spool.state().records == 5 and spool.holds("old-2")  # seen before it is written
    spool.append(rows("new-1", 2))
    written = []
    for batch in spool.orphans():  # the flusher writes each batch to the database
        written += batch.rows()
        spool.ack(batch)
    assert not list(spool_dir.glob(f"{old_prefix}*"))  # written out files are gone
    keys = [(r["request_id"], r["item"]) for r in written]
    assert keys == [("old-1", 0), ("old-1", 1), ("old-1", 2), ("old-2", 0), ("old-2", 1)]
    assert written[0] == rows("old-1", 3)[0]  # the old record, field for field
    mine = spool.take(1000)
    assert [(r["request_id"], r["item"]) for r in mine.rows()] == [("new-1", 0), ("new-1", 1)]
    spool.ack(mine)
    state = spool.state()
    assert state.records == 0 and state.ledger["written"] == 7
    spool.close()


def test_a_rollback_leaves_this_releases_files_for_the_next_one(
    release: tuple[Path, str], tmp_path: Path
) -> None:
    old_code, _ = release
    spool_dir = tmp_path / "spool"
    spool = Spool(spool_dir, 1 << 22, 3600)
    assert spool.append(rows("new-1", 4)) == 4
    spool.close()  # this release stopped; the previous one starts on the same volume

    seen = json.loads(old(old_code, spool_dir, "adopt"))
    assert seen == {"moved": 0, "records": 0}  # not its format: not touched
    assert len(list(spool_dir.glob(f"{PREFIX}*.db"))) == 1

    again = Spool(spool_dir, 1 << 22, 3600)  # the release after the rollback takes it over
    assert [r["item"] for r in again.take(1000).rows()] == [0, 1, 2, 3]
    again.close()


def test_the_release_before_the_previous_one_is_left_alone(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """Its files (a row per record) are neither read, counted nor removed: the release that
    reads them can still write them out (CHANGELOG: upgrade through it)."""
    spool_dir = tmp_path / "spool"
    for old_code, old_prefix in earlier(UNREAD, tmp_path_factory):
        assert old(old_code, spool_dir, "append", json.dumps(rows("old-1", 3))) == "3"
        left = sorted(p.name for p in spool_dir.glob(f"{old_prefix}*"))
        assert any(name.endswith(".db") for name in left)
        before = {name: (spool_dir / name).read_bytes() for name in left}
        spool = Spool(spool_dir, 1 << 22, 3600)
        spool.append(rows("new-1", 2))
        assert list(spool.orphans()) == []
        assert spool.state().records == 2 and not spool.holds("old-1")
        spool.close()
        assert {n: (spool_dir / n).read_bytes() for n in left} == before
