"""The service: serve, fetch a model into the cache, bearer tokens, the store's schema."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from imdb_sentiment.cli.common import area, clean_errors
from imdb_sentiment.core.errors import PipelineError

app = area()


@app.command()
@clean_errors
def serve(
    port: int | None = typer.Option(None, help="Port (default: $PORT or 5005)."),
    workers: int | None = typer.Option(None, help="gunicorn workers (default: $WORKERS or 2)."),
) -> None:
    """Serve the production model with gunicorn (settings from the environment)."""
    import os
    import shutil

    from imdb_sentiment.serving.service_settings import load_settings

    overrides = {"PORT": port, "WORKERS": workers}
    os.environ.update({k: str(v) for k, v in overrides.items() if v is not None})
    settings = load_settings()  # fail here, with one line, on a bad setting
    # The gunicorn beside this interpreter first: a venv's scripts need not be on PATH.
    beside = Path(sys.executable).parent / "gunicorn"
    gunicorn = str(beside) if beside.exists() else shutil.which("gunicorn")
    if gunicorn is None:
        raise PipelineError("gunicorn is not installed in this environment")
    config = Path(__file__).resolve().parents[1] / "serving" / "gunicorn.conf.py"
    model, service = settings.model, settings.service
    if service.log_format == "text":  # JSON logs: every line is one object; gunicorn says it
        typer.echo(f"serving {model.model_name}@{model.model_alias} on port {service.port}")
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
    from imdb_sentiment.core.model_settings import load_model_settings
    from imdb_sentiment.core.tracking import configure
    from imdb_sentiment.runtime.cache import ModelCache
    from imdb_sentiment.runtime.resolve import parse_model_uri
    from imdb_sentiment.runtime.sync import RegistrySync

    overrides: dict[str, str | None] = {}
    if uri is not None:
        ref = parse_model_uri(uri)
        overrides = {"model_name": ref.name, "model_version": ref.version}
        if ref.alias:
            overrides["model_alias"] = ref.alias
    settings = load_model_settings(**overrides)
    configure(settings)
    cache = ModelCache(settings.model_cache_dir, settings.model_name)
    try:
        pointer = RegistrySync(settings, cache).sync()
    except Exception as exc:  # registry errors come in many types; all are one line here
        wanted = uri or f"{settings.model_name} version {settings.model_version}"
        raise PipelineError(f"cannot fetch {wanted}: {exc}") from exc
    typer.echo(f"cached {pointer.name} version {pointer.version} in {cache.dir}")


token_app = typer.Typer(help="Bearer tokens for the service's write endpoints (API_TOKENS_FILE).")
app.add_typer(token_app, name="token")


@token_app.command("new")
def token_new() -> None:
    """Print a new token (give it to the client) and its SHA-256 digest (add it to the file
    API_TOKENS_FILE names, e.g. the Secret mounted there): the service never holds the token."""
    from imdb_sentiment.serving.auth import new_token

    token, digest = new_token()
    typer.echo(f"token:  {token}")
    typer.echo(f"digest: {digest}")


db_app = typer.Typer(help="The prediction store ($DATABASE_URL): schema migrations.")
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
@clean_errors
def db_upgrade() -> None:
    """Create or upgrade the prediction store's schema (Alembic) to this release's newest
    revision: once per release, before its pods roll out. A newer, compatible schema (after a
    rollback) is left as it is; an incompatible one is an error."""
    from imdb_sentiment.store.migrate import upgrade
    from imdb_sentiment.store.store_settings import load_store_settings

    settings = load_store_settings()
    if not settings.database_url:
        raise PipelineError("DATABASE_URL is empty: no prediction store to migrate")
    state = upgrade(settings.database_url, settings.timeouts(migration=True))
    typer.echo(f"prediction store: {state.detail}")
