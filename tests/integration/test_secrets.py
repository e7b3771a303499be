"""No secret in the repository: detect-secrets (pinned in requirements/dev.txt) over every
tracked file, against the reviewed baseline `.secrets.baseline`.

A finding passes only if the baseline lists the same file, type and hashed value and a reviewer
marked it `is_secret: false` (today: the workflow's `secrets:` build-arg block and moto's fake
"testing" credentials). Line numbers are not compared, so editing around them needs no update.
To accept a new false positive: `detect-secrets scan $(git ls-files) > .secrets.baseline`, then
set `"is_secret": false` on the reviewed entries.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.project import ROOT

SCANNER = Path(sys.executable).parent / "detect-secrets"


def scan(files: list[str], cwd: Path) -> dict[str, list[dict[str, Any]]]:
    assert SCANNER.exists(), "detect-secrets is a pinned dev dependency (make install-dev)"
    result = subprocess.run(
        [str(SCANNER), "scan", *files], cwd=cwd, capture_output=True, text=True, check=True
    )
    return dict(json.loads(result.stdout)["results"])


def reviewed() -> set[tuple[str, str, str]]:
    baseline = json.loads((ROOT / ".secrets.baseline").read_text())
    return {
        (name, s["type"], s["hashed_secret"])
        for name, found in baseline["results"].items()
        for s in found
        if s.get("is_secret") is False
    }


def test_no_unreviewed_secret_in_tracked_files() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    tracked.remove(".secrets.baseline")  # hashes of reviewed findings, not secrets
    found = {
        (name, s["type"], s["hashed_secret"])
        for name, items in scan(tracked, ROOT).items()
        for s in items
    }
    assert found - reviewed() == set()


def test_the_scanner_catches_a_planted_key(tmp_path: Path) -> None:
    planted = tmp_path / "settings.py"
    # Split so that this file itself holds no key-shaped string.
    planted.write_text(
        'AWS_SECRET_ACCESS_KEY = "' + "wJalrXUtnFEMI/K7MDENG/" + 'bPxRfiCYzEXAMPLEKEYz9"\n'
    )
    results = scan([planted.name], tmp_path)
    assert results.get(planted.name), "detect-secrets found nothing"
