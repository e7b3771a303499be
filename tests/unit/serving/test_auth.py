"""Bearer tokens on the write endpoint (and on every prediction route with API_TOKENS_FOR=all):
digests in a file, 401 + WWW-Authenticate when missing or wrong, tokens never logged."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sklearn.pipeline import Pipeline
from typer.testing import CliRunner

from imdb_sentiment.cli.main import app as cli
from imdb_sentiment.core.errors import ConfigError
from imdb_sentiment.serving.auth import digest, new_token
from imdb_sentiment.serving.http.app import create_app
from imdb_sentiment.serving.service_settings import load_settings

FEEDBACK, PREDICT = "/api/v1/feedback", "/api/v1/predict"


def tokens_file(tmp_path: Path, *tokens: str) -> Path:
    path = tmp_path / "api-tokens"
    path.write_text("# reviewers\n" + "".join(f"{digest(t)}\n" for t in tokens) + "\n")
    return path


def client(small_model: Pipeline, database_url: str, path: Path, scope: str = "feedback"):
    settings = load_settings(
        database_url=database_url, api_tokens_file=str(path), api_tokens_for=scope
    )
    return create_app(settings, model=small_model).test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_feedback_needs_a_known_token(
    small_model: Pipeline, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good, other = new_token()[0], new_token()[0]
    c = client(small_model, database_url, tokens_file(tmp_path, good, other))
    body = {"text": "A fine film.", "label": "positive"}
    caplog.set_level(logging.DEBUG)
    for headers in ({}, bearer("wrong"), {"Authorization": f"Basic {good}"}, bearer("")):
        refused = c.post(FEEDBACK, json=body, headers=headers)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        assert refused.get_json()["error"] == "unauthorized"
    assert c.post(FEEDBACK, json=body, headers=bearer(good)).status_code == 201
    second = {"text": "Another film.", "label": "negative"}
    assert c.post(FEEDBACK, json=second, headers=bearer(other)).status_code == 201
    # Predictions stay open unless API_TOKENS_FOR=all.
    assert c.post(PREDICT, json={"text": "Fine."}).status_code == 200
    assert good not in caplog.text and other not in caplog.text
    page = c.post("/predict", data={"text": "Fine."}).get_data(as_text=True)
    assert 'id="feedback"' not in page  # a browser holds no token: no control it cannot use


def test_all_routes_need_a_token_with_api_tokens_for_all(
    small_model: Pipeline, database_url: str, tmp_path: Path
) -> None:
    good = new_token()[0]
    c = client(small_model, database_url, tokens_file(tmp_path, good), scope="all")
    for path, body in ((PREDICT, {"text": "Fine."}), ("/invocations", {"inputs": ["Fine."]})):
        assert c.post(path, json=body).status_code == 401
        assert c.post(path, json=body, headers=bearer(good)).status_code == 200
    assert c.post("/predict", data={"text": "Fine."}).status_code == 401
    assert c.get("/healthz").status_code == 200  # probes never need a token


def test_a_bad_tokens_file_stops_the_app_with_one_clear_line(
    small_model: Pipeline, tmp_path: Path
) -> None:
    path = tmp_path / "api-tokens"
    path.write_text("not-a-digest-but-maybe-a-token\n")
    with pytest.raises(ConfigError, match="line 1 is not a SHA-256 hex digest") as raised:
        create_app(load_settings(api_tokens_file=str(path)), model=small_model)
    assert "not-a-digest" not in str(raised.value)  # a pasted token is never echoed


def test_writes_fail_closed_without_a_tokens_file(
    small_model: Pipeline, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALLOW_ANONYMOUS_WRITES")
    body = {"text": "A fine film.", "label": "positive"}
    app = create_app(load_settings(database_url=database_url), model=small_model)
    refused = app.test_client().post(FEEDBACK, json=body)
    assert refused.status_code == 403 and refused.get_json()["error"] == "writes_disabled"
    page = app.test_client().post("/predict", data={"text": "Fine."}).get_data(as_text=True)
    assert 'id="feedback"' not in page
    assert app.test_client().post(PREDICT, json={"text": "Fine."}).status_code == 200
    local = load_settings(database_url=database_url, allow_anonymous_writes=True)
    assert (
        create_app(local, model=small_model).test_client().post(FEEDBACK, json=body).status_code
        == 201
    )


def test_a_removed_or_unreadable_tokens_file_revokes_every_token(
    small_model: Pipeline, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imdb_sentiment.serving import auth

    monkeypatch.setattr(auth, "RECHECK_S", 0.0)
    good = new_token()[0]
    path = tokens_file(tmp_path, good)
    c = client(small_model, database_url, path)
    ok = c.post(FEEDBACK, json={"text": "One.", "label": "positive"}, headers=bearer(good))
    assert ok.status_code == 201
    path.unlink()  # the Secret deleted
    body = {"text": "Two.", "label": "positive"}
    assert c.post(FEEDBACK, json=body, headers=bearer(good)).status_code == 401
    tokens_file(tmp_path, good)  # back
    assert c.post(FEEDBACK, json=body, headers=bearer(good)).status_code == 201
    path.write_text("garbage\n")  # rewritten badly: revoked too, not the old digests kept
    body = {"text": "Three.", "label": "positive"}
    assert c.post(FEEDBACK, json=body, headers=bearer(good)).status_code == 401


def test_a_tokens_file_missing_at_start_refuses_writes_without_stopping_the_app(
    small_model: Pipeline, database_url: str, tmp_path: Path
) -> None:
    """An optional Secret that was never created: the pod starts, serves, refuses writes."""
    c = client(small_model, database_url, tmp_path / "missing")
    assert c.post(PREDICT, json={"text": "Fine."}).status_code == 200
    body = {"text": "A fine film.", "label": "positive"}
    assert c.post(FEEDBACK, json=body, headers=bearer(new_token()[0])).status_code == 401


def test_token_new_prints_a_token_and_its_digest() -> None:
    done = CliRunner().invoke(cli, ["token", "new"])
    assert done.exit_code == 0
    lines = dict(line.split(":", 1) for line in done.output.strip().splitlines())
    assert digest(lines["token"].strip()) == lines["digest"].strip()
