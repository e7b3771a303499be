"""Models registered before the package was split into rooms (December 2026) name their
estimators by the old module paths (`imdb_sentiment.features.TextCleaner`,
`imdb_sentiment.classifier.NBLogisticRegression`, `imdb_sentiment.text.CleanOptions`), and
skops and pickle import those paths to load them. `accept_old_module_paths` makes the old paths
name today's modules, in the process that loads such a model (the registry sync, batch scoring),
so a version registered before an upgrade still loads, compiles and serves after it.
"""

from __future__ import annotations

import sys

OLD_MODULE_PATHS = {
    "imdb_sentiment.features": "imdb_sentiment.model.features",
    "imdb_sentiment.classifier": "imdb_sentiment.model.classifier",
    "imdb_sentiment.text": "imdb_sentiment.core.text",
}


def accept_old_module_paths() -> None:
    from imdb_sentiment.core import text
    from imdb_sentiment.model import classifier, features

    today = {m.__name__: m for m in (features, classifier, text)}
    for old, new in OLD_MODULE_PATHS.items():
        sys.modules.setdefault(old, today[new])
