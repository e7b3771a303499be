"""Interactive API documentation at /docs: Swagger UI on /openapi.json, served from the assets
that the pinned `flask-swagger-ui` package ships (no CDN: the page works offline)."""

from __future__ import annotations

from pathlib import Path

import flask_swagger_ui
from flask import Blueprint, render_template, send_from_directory
from flask.typing import ResponseReturnValue

bp = Blueprint("docs", __name__)
ASSETS = Path(flask_swagger_ui.__file__).resolve().parent / "dist"


@bp.get("/docs")
def page() -> ResponseReturnValue:
    return render_template("docs.html")


@bp.get("/docs/<path:name>")
def asset(name: str) -> ResponseReturnValue:
    return send_from_directory(ASSETS, name, max_age=86400)
