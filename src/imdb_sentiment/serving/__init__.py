"""Prediction service: Flask app factory, model store with hot reload, fast scorer, metrics."""
