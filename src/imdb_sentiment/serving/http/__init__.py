"""HTTP: the Flask app (`app.create_app`), its blueprints (`api`, `web`, `ops`, `docs`, `oip`),
request schemas and error bodies (`api_errors`), the page's highlighting (`highlight`), and the
WSGI entry point for gunicorn's workers (`wsgi`).

Thin: handlers parse with `schemas`, score through `predict`, answer with `api_errors`.
"""
