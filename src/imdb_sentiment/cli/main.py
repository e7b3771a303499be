"""`imdb-sentiment`: every area's commands in one program (the console script)."""

from __future__ import annotations

from imdb_sentiment.cli import batch, experiments, monitor, pipeline, release, serve
from imdb_sentiment.cli.common import entry

app = entry(
    pipeline.app,
    release.app,
    serve.app,
    batch.app,
    monitor.app,
    experiments.app,
    help="Reproducible IMDB sentiment pipeline and prediction service.",
)

if __name__ == "__main__":
    app()
