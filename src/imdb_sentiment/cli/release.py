"""Moving the `production` alias: promotion behind the quality gate, and rollback."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from imdb_sentiment.cli.common import PARAMS, area, clean_errors
from imdb_sentiment.core.errors import PipelineError

if TYPE_CHECKING:
    from imdb_sentiment.pipeline.registry.promotion import LiveEvidence

app = area()


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
    when_ready: bool = typer.Option(
        False,
        "--when-ready",
        help="The scheduled promotion: print promote, withdraw (the "
        "staging alias is taken off), wait or none, then the version; move production nothing.",
    ),
) -> None:
    """Move alias 'production' to the 'staging' version if it passes the quality gate."""
    from imdb_sentiment.core import tracking
    from imdb_sentiment.core.config import load_params
    from imdb_sentiment.core.model_settings import load_model_settings
    from imdb_sentiment.pipeline.registry import promotion

    p, settings = load_params(params_file).promote, load_model_settings()
    tracking.configure(settings)
    if when_ready:
        ready = promotion.when_ready(settings.model_name, tolerance=p.live.tolerance,
                                     min_accuracy=p.min_accuracy, gate=p.live,
                                     live=_live_evidence(), version=version)  # fmt: skip
        typer.echo(f"{ready.decision} version {ready.version}: {ready.reason}", err=True)
        typer.echo(f"{ready.decision} {ready.version or ''}".strip())  # the workflow reads it
        return
    result = promotion.promote(
        settings.model_name,
        tolerance=p.tolerance,
        min_accuracy=p.min_accuracy,
        force=force,
        version=version,
        check_only=check_only,
        live=None if force else _live_evidence(),  # forced: no gate, no evidence read
        live_gate=p.live,
    )
    if result.live:
        typer.echo(result.live, err=check_only)  # stdout stays the version for --check-only
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
    from imdb_sentiment.core import tracking
    from imdb_sentiment.core.model_settings import load_model_settings
    from imdb_sentiment.pipeline.registry import promotion

    settings = load_model_settings()
    tracking.configure(settings)
    old, new = promotion.rollback(settings.model_name)
    typer.echo(f"production rolled back from version {old} to version {new}")


def _live_evidence() -> LiveEvidence:
    """The shadow pairs from the prediction store ($DATABASE_URL), under the evidence query's
    own statement timeout. No store at all (one line on stderr): the offline gate decides
    alone. A store that does not answer, or answers too slowly, is an error: the gate never
    decides without evidence it was told to read."""
    from imdb_sentiment.core.evidence import PairedCounts
    from imdb_sentiment.monitoring.shadow import live_counts
    from imdb_sentiment.store.store_errors import NoStoreError, StoreUnavailableError
    from imdb_sentiment.store.store_settings import load_store_settings

    settings = load_store_settings()

    def read(candidate: str, production: str) -> PairedCounts:
        try:
            return live_counts(settings.database_url, candidate, production,
                               settings.evidence_timeouts())  # fmt: skip
        except NoStoreError as exc:
            typer.echo(f"no live evidence ({exc}); the offline gate decides", err=True)
            return PairedCounts()
        except StoreUnavailableError as exc:
            raise PipelineError(f"cannot read the live evidence: {exc}") from exc

    return read
