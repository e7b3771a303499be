"""The baseline for benchmarks/serve.py: a bare Flask app whose handler only calls
`pipeline.predict_proba([text])` on the same production model. Not part of the product."""

from __future__ import annotations

import os

import mlflow.sklearn
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"))
pipeline = mlflow.sklearn.load_model(os.environ["BARE_MODEL_URI"])
app = Flask(__name__)


@app.post("/api/v1/predict")
def predict() -> ResponseReturnValue:
    text = request.get_json()["text"]
    return jsonify({"probability": float(pipeline.predict_proba([text])[0, 1])})
