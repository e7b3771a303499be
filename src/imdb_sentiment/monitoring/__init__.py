"""Watching the model in production: the drift signals and statistics (`drift`), the drift
report (`report`), the drift check as a job (`check`), labelled feedback as data
(`feedback_export`) and the shadowed candidate against production (`shadow`).

Reads the prediction store (`store`) and the model runtime (`runtime`).
"""
