"""`imdb-sentiment` command line: one subcommand per DVC stage, plus registry and serving.

Each command only wires paths and parameters to a typed worker function; a PipelineError
becomes one line on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, ParamSpec, TypeVar

import typer

from imdb_sentiment.config import DEFAULT_MODEL_URI
from imdb_sentiment.errors import PipelineError

if TYPE_CHECKING:  # nothing heavy at import: each command imports what it uses
    from imdb_sentiment.batch.job import Job, Summary

app = typer.Typer(
    help="Reproducible IMDB sentiment pipeline and prediction service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

P = ParamSpec("P")
R = TypeVar("R")

PARAMS = typer.Option(Path("params.yaml"), "--params", help="Pipeline parameters file.")
RAW = Path("data/raw")
FEATURES = Path("data/features")
MODEL = Path("models/model.joblib")
METRICS = Path("reports/metrics.json")


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code)


def clean_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into one clear line and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except PipelineError as exc:
            _fail(str(exc))
        except FileNotFoundError as exc:
            _fail(f"missing input {exc.filename}: run the earlier pipeline stages first")
        except KeyboardInterrupt:
            _fail("interrupted")
        raise AssertionError("unreachable")

    return wrapper


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    _setup_logging()
    if verbose:
        logging.getLogger().setLevel(logging.DEBUG)


@app.command()
@clean_errors
def ingest(
    params_file: Path = PARAMS,
    out: Path = typer.Option(RAW, help="Output folder."),
    report: Path = typer.Option(Path("reports/ingest.json"), help="Provenance report."),
) -> None:
    """Read the labelled reviews (the IMDB archive, or a CSV/Parquet/JSON Lines table) and
    data.extra_train; write data/raw/{train,test}.parquet and reports/ingest.json."""
    from imdb_sentiment.config import load_params
    from imdb_sentiment.data.ingest import load_sources, write_frames
    from imdb_sentiment.io import write_json

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

    from imdb_sentiment.config import load_params
    from imdb_sentiment.data.validate import validate_frames
    from imdb_sentiment.io import write_json

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
    import pandas as pd

    from imdb_sentiment.config import load_params
    from imdb_sentiment.features import featurize as run_featurize
    from imdb_sentiment.io import dump, save_sparse

    p = load_params(params_file)
    train = pd.read_parquet(data / "train.parquet")
    test = pd.read_parquet(data / "test.parquet")
    featurizer, x_train, x_test = run_featurize(train.text, test.text, p.clean, p.features)
    save_sparse(x_train, out / "train.npz")
    save_sparse(x_test, out / "test.npz")
    dump(featurizer, out / "featurizer.joblib")
    typer.echo(f"featurized: {x_train.shape[1]} features, {x_train.nnz} train non-zeros")


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

    from imdb_sentiment.config import load_params
    from imdb_sentiment.io import dump, load, load_sparse, write_json
    from imdb_sentiment.train import movie_groups
    from imdb_sentiment.train import train as run_train

    p = load_params(params_file).train
    frame = pd.read_parquet(data / "train.parquet", columns=["label", "movie"])
    groups = movie_groups(frame.movie) if p.val_split == "movie" else None
    pipeline, result = run_train(
        load(features / "featurizer.joblib"),
        load_sparse(features / "train.npz"),
        frame.label.to_numpy(),
        p,
        groups,
    )
    dump(pipeline, model)
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
    from imdb_sentiment.config import load_params
    from imdb_sentiment.evaluate import run_evaluation
    from imdb_sentiment.io import load, load_sparse

    p = load_params(params_file).evaluate
    result = run_evaluation(
        load(model), load_sparse(features / "test.npz"), data / "test.parquet", p, metrics, plots
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
    from imdb_sentiment.config import load_params, load_settings
    from imdb_sentiment.registry.register import register_model

    record = register_model(load_params(params_file), load_settings(), model, metrics, out)
    typer.echo(f"registered version {record.version} as 'staging' (run {record.run_id})")


@app.command()
@clean_errors
def promote(
    params_file: Path = PARAMS,
    force: bool = typer.Option(False, "--force", help="Skip the quality gate."),
    version: str | None = typer.Option(
        None, "--version", help="Promote this version instead of the 'staging' one."
    ),
    check_only: bool = typer.Option(
        False, "--check-only", help="Apply the gate and print the version; move nothing."
    ),
) -> None:
    """Move alias 'production' to the 'staging' version if it passes the quality gate."""
    from imdb_sentiment import tracking
    from imdb_sentiment.config import load_params, load_settings
    from imdb_sentiment.registry import promotion

    p, settings = load_params(params_file).promote, load_settings()
    tracking.configure(settings)
    result = promotion.promote(
        settings.model_name,
        tolerance=p.tolerance,
        min_accuracy=p.min_accuracy,
        force=force,
        version=version,
        check_only=check_only,
    )
    if check_only:  # machine-readable: the release workflow captures it
        typer.echo(result.version)
        return
    before = f"version {result.previous}" if result.previous else "nothing"
    typer.echo(
        f"production is version {result.version} (accuracy {result.candidate_accuracy:.4f}); "
        f"it replaced {before}"
    )


@app.command()
@clean_errors
def rollback() -> None:
    """Point 'production' back at the version the last promotion replaced."""
    from imdb_sentiment import tracking
    from imdb_sentiment.config import load_settings
    from imdb_sentiment.registry import promotion

    settings = load_settings()
    tracking.configure(settings)
    old, new = promotion.rollback(settings.model_name)
    typer.echo(f"production rolled back from version {old} to version {new}")


@app.command()
@clean_errors
def serve(
    port: int | None = typer.Option(None, help="Port (default: $PORT or 5005)."),
    workers: int | None = typer.Option(None, help="gunicorn workers (default: $WORKERS or 2)."),
) -> None:
    """Serve the production model with gunicorn (settings from the environment)."""
    import os
    import shutil

    from imdb_sentiment.config import load_settings

    overrides = {"PORT": port, "WORKERS": workers}
    os.environ.update({k: str(v) for k, v in overrides.items() if v is not None})
    settings = load_settings()  # fail here, with one line, on a bad setting
    # The gunicorn beside this interpreter first: a venv's scripts need not be on PATH.
    beside = Path(sys.executable).parent / "gunicorn"
    gunicorn = str(beside) if beside.exists() else shutil.which("gunicorn")
    if gunicorn is None:
        raise PipelineError("gunicorn is not installed in this environment")
    config = Path(__file__).resolve().parent / "serving" / "gunicorn.conf.py"
    if settings.log_format == "text":  # JSON logs: every line is one object; gunicorn says it
        typer.echo(f"serving {settings.model_name}@{settings.model_alias} on port {settings.port}")
    os.execv(gunicorn, [gunicorn, "--config", str(config)])


@app.command("fetch-model")
@clean_errors
def fetch_model(
    uri: str | None = typer.Option(
        None,
        help="models:/<name>@<alias> or models:/<name>/<version> "
        "(default: $MODEL_NAME and $MODEL_VERSION, else $MODEL_ALIAS).",
    ),
) -> None:
    """Download a registered model into the local model cache (e.g. to bake it into an image)."""
    from imdb_sentiment.config import load_settings
    from imdb_sentiment.runtime.cache import ModelCache
    from imdb_sentiment.runtime.resolve import parse_model_uri
    from imdb_sentiment.runtime.sync import RegistrySync
    from imdb_sentiment.tracking import configure

    overrides: dict[str, str | None] = {}
    if uri is not None:
        ref = parse_model_uri(uri)
        overrides = {"model_name": ref.name, "model_version": ref.version}
        if ref.alias:
            overrides["model_alias"] = ref.alias
    settings = load_settings(**overrides)
    configure(settings)
    cache = ModelCache(settings.model_cache_dir, settings.model_name)
    try:
        pointer = RegistrySync(settings, cache).sync()
    except Exception as exc:  # registry errors come in many types; all are one line here
        wanted = uri or f"{settings.model_name} version {settings.model_version}"
        raise PipelineError(f"cannot fetch {wanted}: {exc}") from exc
    typer.echo(f"cached {pointer.name} version {pointer.version} in {cache.dir}")


feedback_app = typer.Typer(help="Labelled feedback from the service (POST /api/v1/feedback).")
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("export")
@clean_errors
def feedback_export(
    out: Path = typer.Argument(..., help="Parquet file to write (dataset schema + provenance)."),
    since: str | None = typer.Option(None, help="Labels given since: ISO 8601 time or 24h/7d ago."),
    until: str | None = typer.Option(
        None, help="Labels given before: ISO 8601 time or 24h/7d ago."
    ),
    model_version: str | None = typer.Option(None, help="Only predictions of this model version."),
) -> None:
    """Write every labelled prediction of the store ($DATABASE_URL) as a dataset row."""
    from imdb_sentiment.config import load_settings
    from imdb_sentiment.monitoring.labels import export_labels

    frame = export_labels(
        load_settings().database_url, out, _when(since), _when(until), model_version
    )
    with_text = int(frame["text"].notna().sum())
    typer.echo(f"wrote {len(frame)} labelled rows ({with_text} with text) to {out}")


def _when(value: str | None) -> float | None:
    """UNIX seconds of an ISO 8601 time (UTC unless it says) or of a span ago: 90m, 24h, 7d."""
    import re
    import time
    from datetime import UTC, datetime

    if value is None:
        return None
    span = re.fullmatch(r"(\d+(?:\.\d+)?)([mhd])", value.strip())
    if span:
        seconds = float(span[1]) * {"m": 60, "h": 3600, "d": 86400}[span[2]]
        return time.time() - seconds
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise PipelineError(
            f"not a time: {value!r} (ISO 8601, or a span ago: 90m, 24h, 7d)"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


token_app = typer.Typer(help="Bearer tokens for the service's write endpoints (API_TOKENS_FILE).")
app.add_typer(token_app, name="token")


@token_app.command("new")
def token_new() -> None:
    """Print a new token (give it to the client) and its SHA-256 digest (add it to the file
    API_TOKENS_FILE names, e.g. the Secret mounted there): the service never holds the token."""
    from imdb_sentiment.serving.http.auth import new_token

    token, digest = new_token()
    typer.echo(f"token:  {token}")
    typer.echo(f"digest: {digest}")


db_app = typer.Typer(help="The prediction store ($DATABASE_URL): schema migrations.")
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
@clean_errors
def db_upgrade() -> None:
    """Create or upgrade the prediction store's schema (Alembic) to the newest revision."""
    from imdb_sentiment.config import load_settings
    from imdb_sentiment.store.database import upgrade

    url = load_settings().database_url
    if not url:
        raise PipelineError("DATABASE_URL is empty: no prediction store to migrate")
    typer.echo(f"prediction store at revision {upgrade(url)}")


@app.command()
def drift(
    current: list[Path] | None = typer.Argument(
        None,
        help="Prediction logs (JSONL files or directories) and/or files of reviews (CSV, "
        "Parquet, JSON Lines) to compare with the reference split. None: the prediction "
        "store's records ($DATABASE_URL).",
    ),
    params_file: Path = PARAMS,
    model: str = typer.Option(DEFAULT_MODEL_URI, help="The model whose signals are compared."),
    text_column: str = typer.Option("text", help="Column holding the text, in review files."),
    since_hours: float | None = typer.Option(
        None, min=0.0, help="Only prediction records from the last N hours."
    ),
    since: str | None = typer.Option(None, help="Records since: ISO 8601 time or 24h/7d ago."),
    until: str | None = typer.Option(None, help="Records before: ISO 8601 time or 24h/7d ago."),
    model_version: str | None = typer.Option(None, help="Only this model version's records."),
    data: Path = typer.Option(RAW, help="Folder with the reference split's parquet."),
    out: Path = typer.Option(Path("reports/drift"), help="Folder for drift.json and drift.html."),
) -> None:
    """Compare recent predictions with the reference split. Exit 0: no drift, 1: drift,
    2: no verdict (bad input, too few predictions)."""
    from datetime import UTC, datetime, timedelta

    from imdb_sentiment.config import load_params, load_settings
    from imdb_sentiment.monitoring.check import DriftRequest, check_drift

    try:
        start, end = _when(since), _when(until)
        if since_hours is not None:
            start = (datetime.now(UTC) - timedelta(hours=since_hours)).timestamp()
        settings = load_settings()
        request = DriftRequest(
            current or [],
            load_params(params_file).drift,
            model,
            data,
            out,
            text_column,
            since=None if start is None else datetime.fromtimestamp(start, UTC),
            until=None if end is None else datetime.fromtimestamp(end, UTC),
            model_version=model_version,
            store_url=settings.database_url,
        )
        result, json_path, html_path = check_drift(request, settings)
    except PipelineError as exc:
        _fail(str(exc), code=2)
    for s in result.signals:
        mark = "DRIFT" if s.drift else "ok"
        typer.echo(f"{s.signal:15} {s.method:10} {s.statistic:8.4f} (> {s.threshold:g}) {mark}")
    typer.echo(f"report: {html_path} and {json_path}")
    raise typer.Exit(code=1 if result.drift else 0)


@app.command()
@clean_errors
def predict(
    input_path: str = typer.Argument(..., metavar="INPUT", help="CSV, Parquet or JSON Lines file."),
    output: str = typer.Argument(..., metavar="OUTPUT", help="File (local) or folder (Spark)."),
    model: str = typer.Option(
        DEFAULT_MODEL_URI,
        help="models:/<name>@<alias> or models:/<name>/<version>; resolved once, recorded.",
    ),
    text_column: str = typer.Option("text", help="Column holding the review text."),
    input_format: str | None = typer.Option(
        None, "--format", help="Input format: csv, parquet, jsonl (default: from extension)."
    ),
    output_format: str | None = typer.Option(
        None, help="Output format (default: from OUTPUT's extension)."
    ),
    engine: str = typer.Option("local", help="local (process pool) or spark."),
    workers: int = typer.Option(
        0, min=0, help="Local scoring processes (default: one per core; 1 = in-process)."
    ),
    master: str | None = typer.Option(
        None, help="Spark master (default: $SPARK_MASTER or local[*])."
    ),
    partitions: int | None = typer.Option(
        None, min=1, help="Spark partitions to score in (default: at least one per core)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUTPUT."),
    prefix: str = typer.Option("", help="Prefix of the added columns (e.g. pred_)."),
    fail_on_missing_text: bool = typer.Option(
        False,
        "--fail-on-missing-text",
        help="Fail on a row without text (default: null probability and label, counted).",
    ),
) -> None:
    """Score a file of reviews: every input column plus probability, label, model_version."""
    import os

    from imdb_sentiment.batch.files import detect_format
    from imdb_sentiment.batch.job import Job
    from imdb_sentiment.config import load_settings
    from imdb_sentiment.runtime.resolve import resolve_model

    if engine not in ("local", "spark"):
        raise PipelineError(f"unknown engine {engine!r}: use local or spark")
    in_fmt, out_fmt = detect_format(input_path, input_format), detect_format(output, output_format)
    settings = load_settings()
    session = None
    if engine == "spark":
        from imdb_sentiment.batch import spark

        session, resolved = spark.session_and(
            lambda: resolve_model(model, settings),
            master or os.environ.get("SPARK_MASTER") or "local[*]",
            log_level=os.environ.get("SPARK_LOG_LEVEL", "OFF"),
        )
    else:
        resolved = resolve_model(model, settings)
    job = Job(
        input_path,
        output,
        in_fmt,
        out_fmt,
        text_column,
        resolved.scorer_dir,
        resolved.version,
        workers or os.cpu_count() or 1,
        overwrite,
        fail_on_missing_text,
        prefix,
        partitions,
    )
    summary = spark.run(session, job) if session is not None else _with_progress(job)
    typer.echo(f"scored {summary.rows:,} reviews with {resolved.describe()} into {output}")
    if summary.missing_text:
        typer.echo(
            f"{summary.missing_text:,} row(s) had no text: probability and label left null",
            err=True,
        )


def _with_progress(job: Job) -> Summary:
    """Run a local batch job, with a progress bar (rate, ETA) only on a terminal."""
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from imdb_sentiment.batch import local

    if not sys.stderr.isatty():
        return local.run(job)
    columns = (
        TextColumn("[bold]scoring"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%  {task.fields[rows]:,} reviews  {task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("score", total=1.0, rows=0, rate="")
        start = time.monotonic()

        def update(rows: int, done: float) -> None:
            rate = rows / max(time.monotonic() - start, 1e-9)
            bar.update(task, completed=done, rows=rows, rate=f"{rate:,.0f}/s")

        return local.run(job, update)


@app.command()
@clean_errors
def select(
    variants: Path = typer.Argument(
        Path("experiments/variants.yaml"), help="YAML mapping: variant name → params overrides."
    ),
    params_file: Path = PARAMS,
    data: Path = typer.Option(RAW, help="Folder with train parquet (texts, labels, movies)."),
    folds: int = typer.Option(5, min=2, help="Cross-validation folds, grouped by movie."),
    only: list[str] = typer.Option([], "--only", help="Run just these variants."),
    report: Path = typer.Option(Path("reports/selection.json"), help="Results as JSON."),
) -> None:
    """Cross-validate parameter variants on the training split and log each to MLflow."""
    import pandas as pd

    from imdb_sentiment import tracking
    from imdb_sentiment.config import Params, load_settings, parse_params, read_mapping
    from imdb_sentiment.io import write_json
    from imdb_sentiment.selection import CVResult, apply_variant
    from imdb_sentiment.selection import select as run_select
    from imdb_sentiment.train import movie_groups

    base, chosen = read_mapping(params_file), read_mapping(variants, "variants file")
    parse_params(base, origin=str(params_file))  # the base must be valid on its own
    unknown = sorted(set(only) - set(chosen))
    if unknown:
        raise PipelineError(f"no such variant in {variants}: {', '.join(unknown)}")
    runs = {name: apply_variant(base, name, chosen[name]) for name in (only or chosen)}
    frame = pd.read_parquet(data / "train.parquet", columns=["label", "movie", "text"])
    labels, groups = frame.label.to_numpy(), movie_groups(frame.movie)
    tracking.configure(load_settings())

    def log(result: CVResult, params: Params) -> str:
        typer.echo(
            f"{result.name:28s} {result.accuracy:.4f} ± {result.std_error:.4f}  "
            f"{result.n_features:>9,d} features  {result.seconds:6.1f} s"
        )
        return tracking.log_selection(result, params)

    rows = run_select(runs, frame.text.tolist(), labels, groups, folds, log=log)
    write_json(report, {"folds": folds, "grouped_by": "movie", "results": rows})


@app.command()
@clean_errors
def preset(name: str = typer.Argument(..., help="Preset name, e.g. 'seed'.")) -> None:
    """Print a preset's overrides as `dvc exp run` -S arguments."""
    from imdb_sentiment.presets import preset_args

    typer.echo(" ".join(preset_args(name)))
