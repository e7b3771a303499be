"""Watching the model in production: the prediction record (`records`, one schema written by
the service and read by `imdb-sentiment drift`), the drift signals and statistics (`drift`) and
the drift report (`report`).

`records` imports the standard library only (service workers import it); `drift` imports numpy,
pandas and scipy; `report` matplotlib. Nothing here imports Flask or the service.
"""
