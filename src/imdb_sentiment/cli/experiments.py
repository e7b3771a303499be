"""Experiments: cross-validated selection of parameter variants, and presets."""

from __future__ import annotations

from pathlib import Path

import typer

from imdb_sentiment.cli.common import PARAMS, RAW, area, clean_errors
from imdb_sentiment.core.errors import PipelineError

app = area()


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

    from imdb_sentiment.core import tracking
    from imdb_sentiment.core.config import Params, parse_params, read_mapping
    from imdb_sentiment.core.io import write_json
    from imdb_sentiment.core.model_settings import load_model_settings
    from imdb_sentiment.pipeline.selection import CVResult, apply_variant, log_selection
    from imdb_sentiment.pipeline.selection import select as run_select
    from imdb_sentiment.pipeline.train import movie_groups

    base, chosen = read_mapping(params_file), read_mapping(variants, "variants file")
    parse_params(base, origin=str(params_file))  # the base must be valid on its own
    unknown = sorted(set(only) - set(chosen))
    if unknown:
        raise PipelineError(f"no such variant in {variants}: {', '.join(unknown)}")
    runs = {name: apply_variant(base, name, chosen[name]) for name in (only or chosen)}
    frame = pd.read_parquet(data / "train.parquet", columns=["label", "movie", "text"])
    labels, groups = frame.label.to_numpy(), movie_groups(frame.movie)
    tracking.configure(load_model_settings())

    def log(result: CVResult, params: Params) -> str:
        typer.echo(
            f"{result.name:28s} {result.accuracy:.4f} ± {result.std_error:.4f}  "
            f"{result.n_features:>9,d} features  {result.seconds:6.1f} s"
        )
        return log_selection(result, params)

    rows = run_select(runs, frame.text.tolist(), labels, groups, folds, log=log)
    write_json(report, {"folds": folds, "grouped_by": "movie", "results": rows})


@app.command()
@clean_errors
def preset(name: str = typer.Argument(..., help="Preset name, e.g. 'seed'.")) -> None:
    """Print a preset's overrides as `dvc exp run` -S arguments."""
    from imdb_sentiment.presets import preset_args

    typer.echo(" ".join(preset_args(name)))
