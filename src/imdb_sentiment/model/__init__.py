"""What the model is: the scikit-learn pipeline's own estimators.

- `features`    `TextCleaner` and the compact TF-IDF vectoriser (sparse n-gram features).
- `classifier`  `NBLogisticRegression`: naive-Bayes-scaled logistic regression.
- `legacy`      the module paths models registered before December 2026 name them by.

The decision threshold that turns P(positive) into a label is `core.labels.label_at`'s; its
value is `model.threshold` in params.yaml, carried by each registered model.
"""
