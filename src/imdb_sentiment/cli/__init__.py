"""`imdb-sentiment`, one module of commands per area (`cli.main` puts them together):

- `pipeline`: the DVC stages (ingest … register); `dvc.yaml` runs them as
  `python -m imdb_sentiment.cli.pipeline <stage>`, so a stage depends on this module only.
- `release`: promote, rollback. `serve`: serve, fetch-model, token, db.
- `batch`: predict. `monitor`: drift, feedback export. `experiments`: select, preset.

Each command wires paths and parameters to a typed function and imports what it uses inside
itself; a PipelineError becomes one line on stderr and exit code 1, never a traceback.
"""
