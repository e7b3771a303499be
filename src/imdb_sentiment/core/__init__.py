"""What every other room stands on, owning no stage, process or model of its own.

- `config`          params.yaml as typed, validated sections (unknown keys are errors).
- `model_settings`  the registry and model-cache settings every application reads from the
                    environment.
- `text`            review cleaning and tokenising: the one definition training and scoring use.
- `labels`          the two classes' names and ids.
- `evidence`        paired outcomes of two models and McNemar's exact test.
- `tracking`        MLflow wiring (tracking URI, git commit), called from jobs only.
- `io`, `atomic`    JSON and file writes that leave no half-written file.
- `background`      the single background writer thread the service's logs use.
- `errors`          the exception types the CLI turns into one line and an exit code.
"""
