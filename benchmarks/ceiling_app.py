"""The ceiling for benchmarks/serve.py: the same stack (Flask on the same gunicorn settings)
answering `POST /api/v1/predict` with a constant body of the service's shape after parsing the
request's JSON. Whatever the service spends above this is its own per-request work. Not part of
the product."""

from __future__ import annotations

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

ANSWER = {
    "label": "positive",
    "probability": 0.912345,
    "scores": {"positive": 0.912345, "negative": 0.087655},
    "model": {"name": "imdb-sentiment", "version": "1"},
    "evidence": {"tokens": 180, "known_tokens": 176},
}
app = Flask(__name__)


@app.post("/api/v1/predict")
def predict() -> ResponseReturnValue:
    request.get_json()
    return jsonify(ANSWER)
