"""The DVC pipeline's stages, in the order `dvc.yaml` runs them, and what follows them.

- `data`       acquire (URL, S3, local; IMDB archive or a team's table), parse, split, validate.
- `train`      fit the model on the training split; validation metrics at the model's threshold.
- `evaluate`   test-set metrics, curves and plots.
- `selection`  cross-validated comparison of variants (`imdb-sentiment select`), logged to MLflow.
- `registry`   register the whole pipeline in MLflow with its signature; promote behind the gate.
"""
