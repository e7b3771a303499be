"""Watching the model in production: the drift signals and statistics (`drift`), the drift
report (`report`), the drift check as a job (`check`) and labelled feedback as data (`labels`).

Reads the prediction store (`store`) and the model runtime (`runtime`: the prediction record,
the scorer, model resolution). `drift` imports numpy, pandas and scipy; `report` matplotlib.
Never `serving` or `batch` (import-linter contracts).
"""
