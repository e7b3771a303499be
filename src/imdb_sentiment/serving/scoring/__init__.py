"""Scoring: a fitted pipeline compiled to arrays (`compile`), the scorer that runs it on one
review or a batch (`scorer`), and explanations mapped back onto the review's words
(`highlight`).

May import numpy, the standard library and `imdb_sentiment.text`; `compile` alone imports
scikit-learn and the pipeline's own estimators (`features`, `classifier`). Never Flask, MLflow or
anything else under `serving`.
"""
