"""The model registry's side of the pipeline: `register` (the register stage: one MLflow run
with everything, the model version, alias `staging`) and `promotion` (the quality gate moving
`production`, and rollback). The two are separate modules so that the register stage's DVC
dependencies hold no promotion code.

The names both sides share: aliases and tags on registered models and versions.
"""

from __future__ import annotations

from imdb_sentiment.core.config import PRODUCTION_ALIAS, STAGING_ALIAS

STAGING = STAGING_ALIAS
PRODUCTION = PRODUCTION_ALIAS
PREVIOUS_TAG = "previous_production_version"
ACCURACY_TAG = "test_accuracy"
