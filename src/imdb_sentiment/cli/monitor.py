"""Monitoring: drift checks, the shadow report and the labelled feedback export."""

from __future__ import annotations

from pathlib import Path

import typer

from imdb_sentiment.cli.common import PARAMS, RAW, area, clean_errors, fail
from imdb_sentiment.core.config import DEFAULT_MODEL_URI
from imdb_sentiment.core.errors import PipelineError

app = area()


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

    from imdb_sentiment.core.config import load_params
    from imdb_sentiment.core.model_settings import load_model_settings
    from imdb_sentiment.monitoring.check import DriftRequest, check_drift
    from imdb_sentiment.store.store_settings import load_store_settings

    try:
        start, end = _when(since), _when(until)
        if since_hours is not None:
            start = (datetime.now(UTC) - timedelta(hours=since_hours)).timestamp()
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
            store_url=load_store_settings().database_url,
        )
        result, json_path, html_path = check_drift(request, load_model_settings())
    except PipelineError as exc:
        fail(str(exc), code=2)
    for s in result.signals:
        mark = "DRIFT" if s.drift else "ok"
        typer.echo(f"{s.signal:15} {s.method:10} {s.statistic:8.4f} (> {s.threshold:g}) {mark}")
    typer.echo(f"report: {html_path} and {json_path}")
    raise typer.Exit(code=1 if result.drift else 0)


shadow_app = typer.Typer(help="The shadowed candidate against production on live requests.")
app.add_typer(shadow_app, name="shadow")


@shadow_app.command("report")
@clean_errors
def shadow_report(
    params_file: Path = PARAMS,
    since: str | None = typer.Option(None, help="Predictions since: ISO 8601 time or 24h/7d ago."),
    until: str | None = typer.Option(None, help="Predictions before: ISO 8601 time or 24h/7d ago."),
    out: Path = typer.Option(Path("reports/shadow"), help="Folder for shadow.json and .html."),
) -> None:
    """Agreement, labelled pairs, McNemar's exact test and label-free signals of every
    candidate the service shadowed, from the prediction store ($DATABASE_URL)."""
    from datetime import UTC, datetime

    from imdb_sentiment.core.config import load_params
    from imdb_sentiment.monitoring.shadow import compare, write_report
    from imdb_sentiment.store.database import open_store
    from imdb_sentiment.store.store_settings import load_store_settings

    params = load_params(params_file)
    start, end = _when(since), _when(until)
    comparisons = compare(open_store(load_store_settings().database_url), start, end)
    context = {"written": datetime.now(UTC).isoformat(timespec="seconds"),
               "since": since or "the beginning", "until": until or "now"}  # fmt: skip
    json_path, html_path = write_report(comparisons, params.promote.live, params.drift, out,
                                        context, params.promote.live.tolerance)  # fmt: skip
    gate = params.promote.live
    for c in comparisons:
        counts = c.counts
        typer.echo(f"candidate {c.candidate_version} vs production {c.production_version}: "
                   f"{c.shadowed} shadowed, agreement {c.agreed / c.shadowed:.4f}, "
                   f"{counts.pairs} labelled pairs ({counts.production_only} production-only, "
                   f"{counts.candidate_only} candidate-only right), p = {counts.p_value:.4g}: "
                   f"{counts.verdict(gate.alpha, gate.min_pairs)}")  # fmt: skip
    if not comparisons:
        typer.echo("no shadowed predictions in the window")
    typer.echo(f"report: {html_path} and {json_path}")


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
    from imdb_sentiment.monitoring.feedback_export import export_labels
    from imdb_sentiment.store.store_settings import load_store_settings

    frame = export_labels(
        load_store_settings().database_url, out, _when(since), _when(until), model_version
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
