"""A git worktree of an earlier release, for tests that run the previous code against this one's
schema or models: the commit before the one that added a given file."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.project import ROOT
from tests.conftest import IN_CI


def git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip())
    return done.stdout.strip()


@contextmanager
def release_before(added: Path | str, tree: Path) -> Iterator[Path]:
    """A worktree at `tree` of the commit before the one that added `added`, removed after."""
    try:
        commits = git("log", "--diff-filter=A", "--format=%H", "--", str(added))
        commit = git("rev-parse", f"{commits.splitlines()[-1]}^")
    except (RuntimeError, IndexError, FileNotFoundError) as exc:
        if IN_CI:
            pytest.fail(f"CI needs the git history (fetch-depth: 0): {exc}")
        pytest.skip(f"no git history here: {exc}")
    git("worktree", "add", "--detach", str(tree), commit)
    try:
        yield tree
    finally:
        git("worktree", "remove", "--force", str(tree))
