"""The pipeline's stages, one command each, as `dvc.yaml` runs them."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from imdb_sentiment.cli.common import (
    FEATURES,
    METRICS,
    MODEL,
    PARAMS,
    RAW,
    area,
    clean_errors,
    entry,
)

if TYPE_CHECKING:
    from pyspark import SparkContext

app = area()


@contextmanager
def spark_context(stage: str) -> Iterator[SparkContext]:
    """A Spark session on SPARK_MASTER for `stage`, this package shipped to its executors;
    a job's failure in one line; stopped afterwards."""
    from imdb_sentiment.batch.spark import failure, session, ship_package
    from imdb_sentiment.core.errors import PipelineError
    from imdb_sentiment.pipeline.cluster import driver_conf, driver_environment

    master = os.environ.get("SPARK_MASTER")
    if not master:
        raise PipelineError("train.engine: spark needs SPARK_MASTER (e.g. spark://host:7077)")
    conf, added = driver_conf(os.environ), driver_environment(os.environ)
    os.environ.update(added)  # inherited by the driver JVM session() starts, and no further
    try:
        spark = session(master, app_name=f"imdb-sentiment-{stage}", log_level="WARN", conf=conf)
    finally:
        for key in added:
            del os.environ[key]
    try:
        ship_package(spark)
        yield spark.sparkContext
    except PipelineError:
        raise
    except Exception as exc:
        if type(exc).__module__.startswith(("py4j", "pyspark")):
            raise failure(exc) from exc
        raise
    finally:
        spark.stop()


@app.command()
@clean_errors
def ingest(
    params_file: Path = PARAMS,
    out: Path = typer.Option(RAW, help="Output folder."),
    report: Path = typer.Option(Path("reports/ingest.json"), help="Provenance report."),
) -> None:
    """Read the labelled reviews (the IMDB archive, or a CSV/Parquet/JSON Lines table) and
    data.extra_train; write data/raw/{train,test}.parquet and reports/ingest.json."""
    from imdb_sentiment.core.config import load_params
    from imdb_sentiment.core.io import write_json
    from imdb_sentiment.pipeline.data.ingest import load_sources, write_frames

    p = load_params(params_file).data
    report.unlink(missing_ok=True)  # a failed run must not leave the last run's provenance
    train, test, provenance = load_sources(p, show_progress=sys.stderr.isatty())
    write_frames({"train": train, "test": test}, out)
    write_json(report, provenance)
    extra = sum(source.get("used", 0) for source in provenance["sources"][1:])
    repeated = provenance["sources"][0].get("dropped", {}).get("repeated", 0)
    typer.echo(
        f"ingested {len(train)} train ({extra} from extra_train) and {len(test)} test reviews "
        f"into {out}" + (f"; {repeated} repeated reviews dropped" if repeated else "")
    )


@app.command()
@clean_errors
def validate(
    params_file: Path = PARAMS,
    data: Path = typer.Option(RAW, help="Folder with train/test parquet."),
    report: Path = typer.Option(Path("reports/data_validation.json"), help="Report to write."),
) -> None:
    """Check schema, empty texts, duplicates and class balance; write a JSON report."""
    import pandas as pd

    from imdb_sentiment.core.config import load_params
    from imdb_sentiment.core.io import write_json
    from imdb_sentiment.pipeline.data.validate import validate_frames

    p = load_params(params_file).validate_
    report.unlink(missing_ok=True)  # a failed run must not leave the last passing report
    result = validate_frames(
        pd.read_parquet(data / "train.parquet"),
        pd.read_parquet(data / "test.parquet"),
        max_duplicate_fraction=p.max_duplicate_fraction,
        max_class_imbalance=p.max_class_imbalance,
        min_text_chars=p.min_text_chars,
    )
    write_json(report, result)
    typer.echo(f"data validation passed; report in {report}")


@app.command()
@clean_errors
def featurize(
    params_file: Path = PARAMS,
    data: Path = typer.Option(RAW, help="Folder with train/test parquet."),
    out: Path = typer.Option(FEATURES, help="Output folder."),
) -> None:
    """Clean texts and fit TF-IDF n-grams on train; write sparse matrices and the featurizer."""
    from imdb_sentiment.core.config import load_params
    from imdb_sentiment.pipeline.featurize import run_featurize

    p = load_params(params_file)
    train, test = data / "train.parquet", data / "test.parquet"
    if p.train.engine == "spark":
        from imdb_sentiment.pipeline.cluster import featurize_on_spark

        with spark_context("featurize") as sc:
            done = featurize_on_spark(sc, train, test, out, p.clean, p.features)
    else:
        done = run_featurize(train, test, out, p.clean, p.features)
    typer.echo(f"featurized: {done.features} features, {done.train_rows} train rows")


@app.command()
@clean_errors
def train(
    params_file: Path = PARAMS,
    data: Path = typer.Option(RAW, help="Folder with train parquet (labels)."),
    features: Path = typer.Option(FEATURES, help="Featurize stage output."),
    model: Path = typer.Option(MODEL, help="Where to write the model pipeline."),
    report: Path = typer.Option(Path("reports/train.json"), help="Validation report."),
) -> None:
    """Fit the classifier (validation carved from train), then refit on all of train."""
    import pandas as pd

    from imdb_sentiment.core.config import load_params
    from imdb_sentiment.core.io import SparseParts, dump, load, write_json
    from imdb_sentiment.pipeline.train import assemble, movie_groups
    from imdb_sentiment.pipeline.train import train as run_train

    params = load_params(params_file)
    p = params.train
    grouped = p.val_split == "movie"  # a random split needs no movie column
    frame = pd.read_parquet(
        data / "train.parquet", columns=["label", "movie"] if grouped else ["label"]
    )
    groups = movie_groups(frame.movie) if grouped else None
    with ExitStack() as stack:
        if p.engine == "spark":
            from imdb_sentiment.pipeline.cluster import SparkPasses

            sc = stack.enter_context(spark_context("train"))
            parts: Any = SparkPasses(sc, features / "train")
        else:
            parts = SparseParts(features / "train", cache_bytes=p.cache_mb << 20)
        classifier, result = run_train(parts, frame.label.to_numpy(), p, params.model.threshold,
                                       groups)  # fmt: skip
        del parts, frame  # the cached parts go before the vocabulary comes in
    dump(assemble(load(features / "featurizer.joblib"), classifier), model)
    write_json(report, result)
    typer.echo(f"validation accuracy {result['validation']['accuracy']:.4f}; model in {model}")


@app.command()
@clean_errors
def evaluate(
    params_file: Path = PARAMS,
    data: Path = typer.Option(RAW, help="Folder with test parquet."),
    features: Path = typer.Option(FEATURES, help="Featurize stage output."),
    model: Path = typer.Option(MODEL, help="Trained model pipeline."),
    metrics: Path = typer.Option(METRICS, help="Metrics JSON to write."),
    plots: Path = typer.Option(Path("reports/plots"), help="Folder for plots and plot data."),
) -> None:
    """Score the official test split: metrics JSON, PNG plots and DVC plot data."""
    from imdb_sentiment.core.config import load_params
    from imdb_sentiment.core.io import SparseParts, load
    from imdb_sentiment.pipeline.evaluate import run_evaluation

    params = load_params(params_file)
    result = run_evaluation(
        load(model),
        SparseParts(features / "test").to_csr(),
        data / "test.parquet",
        params.evaluate,
        params.model.threshold,
        metrics,
        plots,
    )
    typer.echo(f"test accuracy {result['accuracy']:.4f}, ROC AUC {result['roc_auc']:.4f}")


@app.command()
@clean_errors
def register(
    params_file: Path = PARAMS,
    model: Path = typer.Option(MODEL, help="Trained model pipeline."),
    metrics: Path = typer.Option(METRICS, help="Evaluation metrics."),
    out: Path = typer.Option(Path("reports/registration.json"), help="Registration record."),
) -> None:
    """Log the run to MLflow, register the model and point alias 'staging' at it."""
    from imdb_sentiment.core.config import load_params
    from imdb_sentiment.core.model_settings import load_model_settings
    from imdb_sentiment.pipeline.registry.register import register_model

    record = register_model(load_params(params_file), load_model_settings(), model, metrics, out)
    typer.echo(f"registered version {record.version} as 'staging' (run {record.run_id})")


if __name__ == "__main__":
    entry(app, help="The pipeline's stages (dvc.yaml runs these).")()
