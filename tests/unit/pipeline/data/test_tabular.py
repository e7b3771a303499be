"""Your own labelled data: CSV, Parquet and JSON Lines sources with mapped columns and labels,
random and grouped splits, extra training files appended to the training split only — and every
bad file one line, a non-zero exit and no output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from imdb_sentiment.cli.main import app
from imdb_sentiment.core.config import ConfigError, DataParams, parse_params
from imdb_sentiment.pipeline.data.ingest import add_extra_train, load_sources
from imdb_sentiment.pipeline.data.tabular import detect_format
from tests.helpers import write_table

runner = CliRunner()
WORDS = ["superb", "dreadful", "moving", "boring", "clever", "clumsy", "warm", "cold"]


def table(rows: int = 40, labels: tuple[str, str] = ("positive", "negative")) -> pd.DataFrame:
    """Distinct reviews, half of each label, 4 products."""
    return pd.DataFrame(
        {
            "review": [f"Review {i}: a {WORDS[i % 8]} film, {i * 7} minutes." for i in range(rows)],
            "sentiment": [labels[i % 2] for i in range(rows)],
            "product": [f"p{i % 4}" for i in range(rows)],
        }
    )


def params(path: Path | str, **data: Any) -> Path:
    body = {"data": {"source": str(path), "split": "random", "expected_per_label": None, **data}}
    target = Path("params.yaml")
    target.write_text(yaml.safe_dump(body))
    return target


def ingest(**data: Any) -> tuple[int, str]:
    result = runner.invoke(app, ["ingest", "--params", str(params(**data))])
    return result.exit_code, result.output


def one_line_error(code: int, output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert code == 1 and lines and lines[-1].startswith("error: "), output
    assert "Traceback" not in output
    return lines[-1]


def nothing_written() -> bool:
    return not Path("data/raw").exists() and not Path("reports/ingest.json").exists()


@pytest.mark.parametrize("name", ["reviews.csv", "reviews.parquet", "reviews.jsonl"])
def test_each_table_format_is_ingested_with_mapped_columns_and_labels(
    tmp_path: Path, name: str
) -> None:
    source = write_table(table(labels=("Pos", "NEG")), tmp_path / name)
    code, output = ingest(path=source, labels={"positive": ["pos"], "negative": ["neg"]})
    assert code == 0, output
    train = pd.read_parquet("data/raw/train.parquet")
    test = pd.read_parquet("data/raw/test.parquet")
    assert (len(train), len(test)) == (32, 8)  # 80/20, stratified
    assert train.label.sum() == 16 and test.label.sum() == 4
    assert list(train.columns) == ["id", "rating", "label", "movie", "text"]
    assert train.rating.isna().all() and (train.movie == "").all()
    original = table()
    assert set(train.text) | set(test.text) == set(original.review)
    report = json.loads(Path("reports/ingest.json").read_text())
    assert report["sources"][0]["format"] == detect_format(name)
    assert report["sources"][0]["rows"] == 40 and len(report["sources"][0]["sha256"]) == 64
    code, output = runner.invoke(app, ["validate"]).exit_code, ""
    assert code == 0  # the existing pandera checks pass on a table's frames


def test_repeated_reviews_are_dropped_before_the_split_and_counted(tmp_path: Path) -> None:
    frame = table()
    copies = frame.iloc[:3].assign(review=lambda f: f.review.str.upper() + "  ")
    source = write_table(pd.concat([frame, copies]), tmp_path / "reviews.csv")
    code, output = ingest(path=source)
    assert code == 0 and "3 repeated reviews dropped" in output, output
    report = json.loads(Path("reports/ingest.json").read_text())["sources"][0]
    assert report["rows"] == 43 and report["dropped"] == {"repeated": 3}
    assert report["train"] + report["test"] == 40


def test_label_values_from_parquet_numbers(tmp_path: Path) -> None:
    frame = table().assign(sentiment=[1.0 if i % 2 == 0 else 0.0 for i in range(40)])
    code, output = ingest(path=write_table(frame, tmp_path / "numbers.parquet"))
    assert code == 0, output  # 1.0 is the label "1"


def test_the_group_split_keeps_each_group_on_one_side(tmp_path: Path) -> None:
    source = write_table(table(), tmp_path / "reviews.csv")
    code, output = ingest(path=source, split="group", columns={"text": "review",
                          "label": "sentiment", "group": "product"})  # fmt: skip
    assert code == 0, output
    train = pd.read_parquet("data/raw/train.parquet")
    test = pd.read_parquet("data/raw/test.parquet")
    assert not set(train.movie) & set(test.movie) and set(train.movie) | set(test.movie) == {
        "p0", "p1", "p2", "p3"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda f: f.rename(columns={"review": "body"}), "has no column 'review' (columns: body"),
        (lambda f: f.assign(sentiment=["neutral", *list(f.sentiment[1:])]),
         "1 row(s) have a 'sentiment' outside data.labels, e.g. row 1: 'neutral'"),
        (lambda f: f.assign(review=["  ", None, *list(f.review[2:])]),
         "2 row(s) have an empty 'review', e.g. row 1"),
        (lambda f: f.assign(review=[5, *list(f.review[1:])]),  # (written as JSON Lines)
         "column 'review' must hold text; 1 row(s) do not, e.g. row 1: 5 (int)"),
        (lambda f: f.iloc[0:0], "has no rows"),
    ],
)  # fmt: skip
def test_bad_tables_are_one_line_and_write_nothing(
    tmp_path: Path, mutate: Any, expected: str
) -> None:
    frame = mutate(table())
    mixed = (
        "review" in frame and frame.review.map(type).nunique() > 1 and frame.review.notna().all()
    )
    source = write_table(frame, tmp_path / ("bad.jsonl" if mixed else "bad.parquet"))
    line = one_line_error(*ingest(path=source))
    assert expected in line and source.name in line, line
    assert nothing_written()


def test_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    source = tmp_path / "broken.parquet"
    source.write_bytes(b"PAR1 this is not parquet")
    line = one_line_error(*ingest(path=source))
    assert "cannot read" in line and "as parquet" in line
    assert nothing_written()


def test_a_table_cannot_use_the_archives_official_split(tmp_path: Path) -> None:
    line = one_line_error(*ingest(path=write_table(table(), tmp_path / "r.csv"), split="official"))
    assert "data.split: official is the IMDB archive's own split" in line
    assert nothing_written()


def test_extra_training_files_must_live_under_data_extra() -> None:
    for bad in ("feedback.parquet", "/tmp/x.parquet", "data/extra/../x.csv", "s3://b/k.csv"):
        with pytest.raises(ConfigError, match="live under data/extra"):
            parse_params({"data": {"extra_train": [bad]}})
    assert DataParams(extra_train=("data/extra/feedback.parquet",)).extra_train


def test_extra_rows_join_training_only_and_drop_what_would_leak(tmp_path: Path) -> None:
    source = write_table(table(), tmp_path / "reviews.csv")
    code, output = ingest(path=source)
    assert code == 0, output
    test = pd.read_parquet("data/raw/test.parquet")
    train = pd.read_parquet("data/raw/train.parquet")
    # A feedback export: the dataset's schema, text null where it was not kept.
    extra = pd.DataFrame(
        {
            "id": range(6),
            "rating": pd.array([None] * 6, dtype="Int64"),
            "label": [1, 0, 1, 0, 1, 1],
            "movie": pd.array([None] * 6, dtype="string"),
            "text": [
                "A new review, loved it!",
                test.text[0].upper() + "  ",  # a test review, differently cased: dropped
                train.text[0],  # already in train: dropped
                None,  # no text kept: dropped
                "Another one. Great.",
                "A new review, loved it!",  # twice in the file: dropped once
            ],
            "feedback_request_id": [f"r{i}" for i in range(6)],
        }
    )
    Path("data/extra").mkdir(parents=True)
    write_table(extra, Path("data/extra/feedback.parquet"))
    code, output = ingest(path=source, extra_train=["data/extra/feedback.parquet"])
    assert code == 0, output
    assert "(2 from extra_train)" in output
    after = pd.read_parquet("data/raw/train.parquet")
    assert pd.read_parquet("data/raw/test.parquet").equals(test)  # the test split is untouched
    added = after[after.movie == "extra:data/extra/feedback.parquet"]
    assert sorted(added.text) == ["A new review, loved it!", "Another one. Great."]
    assert len(after) == len(train) + 2
    record = json.loads(Path("reports/ingest.json").read_text())["sources"][1]
    assert record["uri"] == "data/extra/feedback.parquet" and record["rows"] == 6
    assert record["used"] == 2 and record["no_text"] == 1
    assert record["dropped"] == {"in_test": 1, "in_train": 1, "repeated": 1}


def test_add_extra_train_is_pure() -> None:
    columns = ["id", "rating", "label", "movie", "text"]
    train = pd.DataFrame([[0, None, 1, "m", "Good."]], columns=columns).astype(
        {"rating": "Int64", "movie": "string", "text": "string"}
    )
    test = train.assign(text=["Bad film."])
    extra = train.assign(text=["bad   FILM."], movie=[""])
    combined, dropped = add_extra_train(train, test, {"x": extra})
    assert combined.equals(train) and dropped == {"x": {"in_test": 1, "in_train": 0, "repeated": 0}}


def test_the_loader_names_a_missing_extra_file(tmp_path: Path) -> None:
    source = write_table(table(), tmp_path / "reviews.csv")
    p = DataParams(source=str(source), split="random", extra_train=("data/extra/gone.csv",))
    with pytest.raises(Exception, match=r"data/extra/gone.csv not found"):
        load_sources(p)
