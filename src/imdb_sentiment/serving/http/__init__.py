"""HTTP: the Flask app (`app.create_app`) over the scoring service (`serving.scoring`), its
blueprints (`api`, `web`, `ops`, `docs`, `oip`), request bodies and their schemas (`schemas`),
response schemas (`responses`), the page's highlighting (`highlight`), and the WSGI entry point
for gunicorn's workers (`wsgi`).

Thin: handlers parse with `schemas`, score through `context.predict`, and raise
`ApiError`s that `app` answers as JSON.
"""
