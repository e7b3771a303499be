"""HTTP: the Flask app (`app.create_app`), its blueprints (`api`, `web`, `ops`, `docs`), request
schemas and error bodies, and the WSGI entry point for gunicorn (`wsgi`).

May import Flask, pydantic, `serving.model`, `runtime`, `serving.metrics` and `config`.
Thin: handlers parse with `schemas`, score through `predict`, answer with `errors`.
"""
