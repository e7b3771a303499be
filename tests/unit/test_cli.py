"""Every command: --help works, and bad input gives one clear line and a non-zero exit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from imdb_sentiment.cli.main import app
from tests.helpers import review_files, write_archive

runner = CliRunner()


@pytest.fixture(autouse=True)
def _project_params(tmp_path: Path) -> None:
    """Commands read ./params.yaml by default; tests run in a temp directory."""
    from harness.project import ROOT

    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())


COMMANDS = [
    "ingest",
    "validate",
    "featurize",
    "train",
    "evaluate",
    "register",
    "promote",
    "rollback",
    "serve",
    "preset",
    "select",
]


def relabel_one_negative(files: dict[str, bytes]) -> None:
    """Keep the counts, but give one negative review a positive star rating."""
    name = next(k for k in files if k.startswith("aclImdb/test/neg/"))
    files["aclImdb/test/neg/999_9.txt"] = files.pop(name)


def write_params(tmp_path: Path, source: Path | str, **data: object) -> Path:
    params = {
        "data": {
            "source": str(source),
            "cache_dir": str(tmp_path / "cache"),
            "expected_per_label": 20,
            **data,
        }
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def assert_one_line_error(code: int, output: str, match: str) -> None:
    assert code == 1, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and match in lines[-1], output
    assert "Traceback" not in output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    code, output = invoke(command, "--help")
    assert code == 0 and "Usage" in output


def test_ingest_writes_parquet(tmp_path: Path, small_archive: Path) -> None:
    out = tmp_path / "raw"
    code, output = invoke(
        "ingest", "--params", str(write_params(tmp_path, small_archive)), "--out", str(out)
    )
    assert code == 0, output
    assert sorted(p.name for p in out.iterdir()) == ["test.parquet", "train.parquet"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda files: files.pop(next(iter(files))), "wrong count in train/pos"),
        (lambda files: files.update({"aclImdb/train/pos/77_9.txt": b""}), "empty review file"),
        (relabel_one_negative, "contradicts"),
    ],
)
def test_bad_archives_fail_cleanly_and_write_nothing(
    tmp_path: Path, mutate: Callable[[dict[str, bytes]], object], message: str
) -> None:
    files = review_files(per_label=20)
    mutate(files)
    archive = write_archive(tmp_path / "bad.tar.gz", files)
    out = tmp_path / "raw"
    code, output = invoke(
        "ingest", "--params", str(write_params(tmp_path, archive)), "--out", str(out)
    )
    assert_one_line_error(code, output, message)
    assert not out.exists() or not list(out.iterdir())


def test_missing_source(tmp_path: Path) -> None:
    params = write_params(tmp_path, tmp_path / "nowhere.tar.gz")
    code, output = invoke("ingest", "--params", str(params), "--out", str(tmp_path / "raw"))
    assert_one_line_error(code, output, "dataset source not found")


def test_truncated_archive(tmp_path: Path, small_archive: Path) -> None:
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(small_archive.read_bytes()[:-200])
    out = tmp_path / "raw"
    code, output = invoke("ingest", "--params", str(write_params(tmp_path, cut)), "--out", str(out))
    assert_one_line_error(code, output, "corrupt or truncated")
    assert not out.exists() or not list(out.iterdir())


def test_unknown_params_key(tmp_path: Path, small_archive: Path) -> None:
    params = write_params(tmp_path, small_archive, colour="blue")
    code, output = invoke("ingest", "--params", str(params))
    assert_one_line_error(code, output, "data.colour: Extra inputs are not permitted")


def test_validation_failure_removes_stale_report(tmp_path: Path, small_archive: Path) -> None:
    params = write_params(tmp_path, small_archive)
    raw = tmp_path / "raw"
    assert invoke("ingest", "--params", str(params), "--out", str(raw))[0] == 0
    report = tmp_path / "report.json"
    report.write_text('{"passed": true}')
    train = pd.read_parquet(raw / "train.parquet")
    train[train.label == 1].to_parquet(raw / "train.parquet")  # positives only
    code, output = invoke(
        "validate", "--params", str(params), "--data", str(raw), "--report", str(report)
    )
    assert_one_line_error(code, output, "class balance")
    assert not report.exists()


def test_stage_without_inputs_names_the_missing_file(tmp_path: Path) -> None:
    code, output = invoke("train", "--features", str(tmp_path / "none"), "--data", str(tmp_path))
    assert_one_line_error(code, output, "missing input")


def test_promote_without_registry_entries() -> None:
    code, output = invoke("promote")
    assert_one_line_error(code, output, "no 'staging' version")


def test_preset_prints_dvc_overrides() -> None:
    code, output = invoke("preset", "seed")
    assert code == 0
    assert "-S features.max_features=20000" in output
    assert "-S clean.remove_stopwords=true" in output
    code, output = invoke("preset", "nope")
    assert_one_line_error(code, output, "unknown preset 'nope'")


def test_the_spark_engine_without_a_master_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPARK_MASTER", raising=False)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["train"]["engine"] = "spark"
    (tmp_path / "spark.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "features"
    code, output = invoke("featurize", "--params", str(tmp_path / "spark.yaml"),
                          "--data", str(tmp_path), "--out", str(out))  # fmt: skip
    assert_one_line_error(code, output, "train.engine: spark needs SPARK_MASTER")
    assert not out.exists()
