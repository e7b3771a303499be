"""`imdb-sentiment predict` with the local engine: formats, pass-through, bad input, atomicity."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow import MlflowClient
from sklearn.pipeline import Pipeline
from typer.testing import CliRunner, Result

from imdb_sentiment.batch import executor, local
from imdb_sentiment.batch.files import Reader
from imdb_sentiment.cli.main import app
from imdb_sentiment.core import tracking
from imdb_sentiment.core.errors import PipelineError
from imdb_sentiment.core.model_settings import load_model_settings
from imdb_sentiment.pipeline.registry import register
from imdb_sentiment.runtime.resolve import parse_model_uri, resolve_model
from imdb_sentiment.runtime.scorer_files import save_scorer
from tests.helpers import PUNCTUATION_TOKENS, tiny_model, tiny_texts, write_table

runner = CliRunner()
NAME = "imdb-sentiment"


def publish(
    seed: int = 1, alias: str = "production", threshold: float = 0.5, model: Pipeline | None = None
) -> str:
    tracking.configure(load_model_settings())
    record = register.log_and_register(
        model if model is not None else tiny_model(seed=seed),
        model_name=NAME,
        experiment="batch",
        params={},
        metrics={"test_accuracy": 0.9},
        artifacts=[],
        dataset={},
        threshold=threshold,
    )
    MlflowClient().set_registered_model_alias(NAME, alias, record.version)
    return record.version


@pytest.fixture
def reviews() -> pd.DataFrame:
    texts, labels = tiny_texts(n=50, seed=7)
    return pd.DataFrame({"id": range(len(texts)), "text": texts, "stars": labels})


def read(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    return pd.read_json(path, lines=True, dtype=False)


def predict(*args: str) -> Result:
    return runner.invoke(app, ["predict", *args])


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_scores_every_format_and_passes_columns_through(
    tmp_path: Path, reviews: pd.DataFrame, suffix: str, workers: str
) -> None:
    version = publish()
    source = write_table(reviews, tmp_path / f"in{suffix}")
    out = tmp_path / f"out{suffix}"
    result = predict(str(source), str(out), "--workers", workers)
    assert result.exit_code == 0, result.output
    assert f"scored 50 reviews with {NAME} version {version}" in result.output

    scored = read(out)
    assert list(scored.id) == list(reviews.id)  # order kept
    assert (scored.text == reviews.text).all() and (scored.stars == reviews.stars).all()
    expected = tiny_model(seed=1).predict_proba(reviews.text.tolist())[:, 1]
    np.testing.assert_allclose(scored.probability.to_numpy(float), expected, atol=1e-9)
    assert list(scored.label) == ["positive" if p >= 0.5 else "negative" for p in expected]
    assert set(scored.model_version.astype(str)) == {version}


def test_model_version_uri_and_format_overrides(tmp_path: Path, reviews: pd.DataFrame) -> None:
    first = publish(seed=1)
    publish(seed=2)  # production now points at the second version
    source = write_table(reviews, tmp_path / "reviews.data")
    out = tmp_path / "scored.out"
    args = ["--model", f"models:/{NAME}/{first}", "--format", "csv", "--output-format", "parquet"]
    reviews.to_csv(source, index=False)
    result = predict(str(source), str(out), *args, "--workers", "1")
    assert result.exit_code == 0, result.output
    scored = pd.read_parquet(out)
    expected = tiny_model(seed=1).predict_proba(reviews.text.tolist())[:, 1]
    np.testing.assert_allclose(scored.probability, expected, atol=1e-9)
    assert set(scored.model_version) == {first}


def test_rows_without_text_get_null_scores_and_are_counted(tmp_path: Path) -> None:
    publish()
    frame = pd.DataFrame({"text": ["Wonderful, loved it.", None, "   ", "", "Awful and dull."]})
    source = tmp_path / "in.parquet"
    frame.to_parquet(source)
    out = tmp_path / "out.parquet"
    result = runner.invoke(app, ["predict", str(source), str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    scored = pd.read_parquet(out)
    assert scored.probability.isna().tolist() == [False, True, True, True, False]
    assert scored.label.isna().tolist() == [False, True, True, True, False]
    assert "3 row(s) had no text" in result.output

    strict = predict(str(source), str(tmp_path / "strict.parquet"), "--fail-on-missing-text")
    assert strict.exit_code == 1
    assert "row 2 of" in strict.output and "has no text" in strict.output
    assert not (tmp_path / "strict.parquet").exists()


def test_prefix_names_the_added_columns(tmp_path: Path, reviews: pd.DataFrame) -> None:
    publish()
    source = write_table(reviews.rename(columns={"stars": "label"}), tmp_path / "in.parquet")
    clash = predict(str(source), str(tmp_path / "out.parquet"))
    assert clash.exit_code == 1 and "already has column(s) label" in clash.output
    result = predict(str(source), str(tmp_path / "out.parquet"), "--prefix", "pred_")
    assert result.exit_code == 0, result.output
    columns = pd.read_parquet(tmp_path / "out.parquet").columns.tolist()
    assert columns == [
        "id",
        "text",
        "label",
        "pred_probability",
        "pred_label",
        "pred_model_version",
    ]


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (lambda p: p.write_text("id,body\n1,hello\n"), [], "has no column 'text'"),
        (lambda p: p.write_text("id,text\n1,hello\n"), ["--text-column", "review"], "'review'"),
        (lambda p: None, [], "input not found"),
        (lambda p: p.write_bytes(b"\x00\x01 not parquet"), ["--format", "parquet"], "cannot read"),
        (lambda p: p.write_text("{}"), ["--format", "xml"], "unknown format 'xml'"),
        (
            lambda p: p.write_text('{"text": "fine"}\n{"text": 5}\n'),
            ["--format", "jsonl"],
            "cannot read",
        ),
    ],
)
def test_bad_input_is_one_line_and_no_output(
    tmp_path: Path, make: object, args: list[str], message: str
) -> None:
    publish()
    source = tmp_path / "in.csv"
    make(source)  # type: ignore[operator]
    out = tmp_path / "out.csv"
    result = predict(str(source), str(out), *args)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert result.output.count("\n") == 1
    assert not out.exists() and list(tmp_path.glob(".out*")) == []


def test_non_string_text_column_and_unknown_extension(tmp_path: Path) -> None:
    publish()
    source = tmp_path / "in.parquet"
    pd.DataFrame({"text": [1, 2]}).to_parquet(source)
    result = predict(str(source), str(tmp_path / "o.parquet"))
    assert result.exit_code == 1 and "holds int64, not text" in result.output
    unknown = predict(str(source), str(tmp_path / "o.xlsx"))
    assert unknown.exit_code == 1 and "cannot tell the format" in unknown.output


def test_existing_output_needs_overwrite(tmp_path: Path, reviews: pd.DataFrame) -> None:
    publish()
    source = write_table(reviews, tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    out.write_text("keep me")
    refused = predict(str(source), str(out))
    assert refused.exit_code == 1 and "--overwrite" in refused.output
    assert out.read_text() == "keep me"
    assert predict(str(source), str(out), "--overwrite").exit_code == 0
    assert len(pd.read_parquet(out)) == len(reviews)


def test_failure_midway_leaves_no_output(
    tmp_path: Path, reviews: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish()
    big = pd.concat([reviews] * 100, ignore_index=True)  # 5,000 rows: several chunks
    source = write_table(big, tmp_path / "in.parquet")
    calls = {"n": 0}
    real = executor.score_chunk

    def flaky(directory: str, texts: list[object]) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            raise PipelineError("disk on fire")
        return real(directory, texts)

    monkeypatch.setattr(executor, "score_chunk", flaky)
    result = predict(str(source), str(tmp_path / "out.parquet"), "--workers", "1")
    assert result.exit_code == 1 and "disk on fire" in result.output
    assert calls["n"] == 2  # it failed after a chunk had been written to the temporary file
    assert not (tmp_path / "out.parquet").exists() and not list(tmp_path.glob(".out.parquet*"))


def test_unknown_model_and_bad_uri_are_one_line(tmp_path: Path, reviews: pd.DataFrame) -> None:
    source = write_table(reviews, tmp_path / "in.parquet")
    bad = predict(str(source), str(tmp_path / "o.parquet"), "--model", "imdb-sentiment")
    assert bad.exit_code == 1 and "--model must be" in bad.output
    missing = predict(str(source), str(tmp_path / "o.parquet"), "--model", "models:/nope@prod")
    assert missing.exit_code == 1 and "cannot load models:/nope@prod" in missing.output


def test_parse_model_uri() -> None:
    assert parse_model_uri("models:/m@production").alias == "production"
    assert parse_model_uri("models:/m/12").version == "12"
    with pytest.raises(PipelineError):
        parse_model_uri("models:/m/latest")


def test_registered_versions_ship_their_compiled_scorer() -> None:
    """The alias is resolved once; the scorer comes from the version's artifacts, not a compile."""
    version = publish()
    resolved = resolve_model(f"models:/{NAME}@production", load_model_settings())
    assert resolved.version == version
    assert (resolved.scorer_dir / "scorer.json").exists()
    import mlflow

    shipped = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/{version}/scorer"))
    assert sorted(p.name for p in shipped.iterdir()) == ["scorer.json", "scorer.npz"]


def test_memory_stays_flat_chunks_are_bounded(tmp_path: Path, reviews: pd.DataFrame) -> None:
    """The reader yields bounded chunks whatever the file size (CSV blocks are re-cut)."""
    big = pd.concat([reviews] * 200, ignore_index=True)  # 10,000 rows
    source = write_table(big, tmp_path / "in.csv")
    reader = Reader(source, "csv", "text")
    sizes = [b.num_rows for b in local._chunks(None, iter(()))]
    assert sizes == []
    batches = reader.batches()
    first = next(batches)
    sizes = [b.num_rows for b in local._chunks(first, batches)]
    assert sum(sizes) == len(big) and max(sizes) <= local.TASK_ROWS
    assert reader.done == 1.0


def test_executor_imports_neither_sklearn_nor_mlflow(tmp_path: Path) -> None:
    """What a Spark executor or a pool worker runs: numpy, pandas and the scorer only (for the
    default cleaning; a model that removes stop words reads scikit-learn's stop-word list)."""
    import subprocess

    from imdb_sentiment.runtime.compile import compile_pipeline

    save_scorer(compile_pipeline(tiny_model(clean=PUNCTUATION_TOKENS), 0.5), tmp_path / "scorer")
    code = (
        "import sys\n"
        "from imdb_sentiment.batch import executor\n"
        f"p = executor.score_chunk({str(tmp_path / 'scorer')!r}, ['great film', None])\n"
        "assert p.probability[0] > 0.5 and p.probability[1] != p.probability[1]\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'mlflow')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_output_schema_is_stable_across_chunks(tmp_path: Path, reviews: pd.DataFrame) -> None:
    publish()
    big = pd.concat([reviews] * 100, ignore_index=True)
    source = write_table(big, tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    assert predict(str(source), str(out), "--workers", "2").exit_code == 0
    schema = pq.read_schema(out)
    assert schema.field("probability").type == pa.float64()
    assert pq.ParquetFile(out).metadata.num_rows == len(big)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_labels_at_the_threshold_the_model_was_registered_with(
    tmp_path: Path, reviews: pd.DataFrame, workers: str
) -> None:
    publish(threshold=0.965)
    source = write_table(reviews, tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = predict(str(source), str(out), "--workers", workers)
    assert result.exit_code == 0, result.output
    scored = pd.read_parquet(out)
    expected = np.where(scored.probability >= 0.965, "positive", "negative")
    assert (scored.label == expected).all()
    assert ((scored.probability >= 0.5) & (scored.probability < 0.965)).any()  # 0.5 differs


def test_the_log_says_which_scorer_ran_and_counts_the_python_path(tmp_path: Path) -> None:
    """A model the kernel scores (default cleaning, whitespace tokens): the review beyond Latin-1
    (a curly quote) is the Python path's, "Café" is not, rows without text are nobody's; a model
    it does not: all of them."""
    from imdb_sentiment.core.config import FeatureParams
    from imdb_sentiment.runtime.kernel import KERNEL
    from tests.unit.runtime.test_kernel import model as kernel_model

    texts = ["Wonderful, loved it.", "Café crème!", None, "  ", "It\u2019s dull."]
    frame = pd.DataFrame({"text": texts})
    source = tmp_path / "in.parquet"
    frame.to_parquet(source)
    features = FeatureParams(tokens="whitespace", ngram_range=(1, 3), max_features=None)
    publish(model=kernel_model(features))
    first = runner.invoke(app, ["predict", str(source), str(tmp_path / "a.parquet")])
    assert first.exit_code == 0, first.output
    if KERNEL == "compiled":
        assert "scorer: compiled; 1 review(s) (33.3%) took the Python path (not Latin-1)" in (
            first.output
        )
    else:
        assert "scorer: python; 3 review(s) (100.0%) took the Python path" in first.output
    publish()  # the seed's cleaning (stop words): not one the kernel reproduces
    second = runner.invoke(app, ["predict", str(source), str(tmp_path / "b.parquet")])
    assert "scorer: python; 3 review(s) (100.0%) took the Python path" in second.output


def test_a_spark_failure_reads_as_one_line_that_says_what_happened() -> None:
    from imdb_sentiment.batch.spark import failure

    lost = ("An error occurred while calling z:org.apache.spark.api.python.PythonRDD.collect.\n"
            ": org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage "
            "0.0 failed 4 times, most recent failure: Lost task 0.3 (TID 3) (127.0.0.1 executor "
            "2): ExecutorLostFailure (executor 2 exited caused by one of the running tasks) "
            "Reason: Command exited with code 52\n\tat org.apache.spark.DAGScheduler")  # fmt: skip
    assert "ran out of memory" in str(failure(RuntimeError(lost)))
    module = "ModuleNotFoundError: No module named 'sklearn'"
    assert "cannot import 'sklearn'" in str(failure(RuntimeError(module)))
    assert (
        str(failure(RuntimeError("x\nValueError: bad\n\tat y")))
        == "Spark job failed: ValueError: bad"
    )
