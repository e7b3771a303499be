"""What every command module shares: the app factories, error handling, default paths."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, ParamSpec, TypeVar

import typer

from imdb_sentiment.core.errors import PipelineError

P = ParamSpec("P")
R = TypeVar("R")

PARAMS = typer.Option(Path("params.yaml"), "--params", help="Pipeline parameters file.")
RAW = Path("data/raw")
FEATURES = Path("data/features")
MODEL = Path("models/model.joblib")
METRICS = Path("reports/metrics.json")


def area() -> typer.Typer:
    """The commands of one area; `entry` turns areas into a program."""
    return typer.Typer(add_completion=False)


def entry(*areas: typer.Typer, help: str) -> typer.Typer:
    """A program of these areas' commands, with the shared `--verbose` and logging."""
    app = typer.Typer(
        help=help, no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False
    )
    app.callback()(_main)
    for commands in areas:
        app.add_typer(commands)
    return app


def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if verbose:
        logging.getLogger().setLevel(logging.DEBUG)


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code)


def clean_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into one clear line and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except PipelineError as exc:
            fail(str(exc))
        except FileNotFoundError as exc:
            fail(f"missing input {exc.filename}: run the earlier pipeline stages first")
        except KeyboardInterrupt:
            fail("interrupted")
        raise AssertionError("unreachable")

    return wrapper
