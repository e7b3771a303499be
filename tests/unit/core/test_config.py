from __future__ import annotations

from pathlib import Path

import pytest

from imdb_sentiment.core.config import Params, load_params, parse_params
from imdb_sentiment.core.errors import ConfigError
from imdb_sentiment.serving.service_settings import load_settings

ROOT = Path(__file__).resolve().parents[3]


def test_project_params_file_is_valid() -> None:
    params = load_params(ROOT / "params.yaml")
    assert params.data.split == "official"
    assert params.features.ngram_range[1] >= 1


def test_unknown_key_is_rejected_with_its_path() -> None:
    with pytest.raises(ConfigError, match=r"train\.CC"):
        parse_params({"train": {"CC": 1.0}})


def test_unknown_section_is_rejected() -> None:
    with pytest.raises(ConfigError, match="trian"):
        parse_params({"trian": {}})


def test_bad_value_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"train\.C"):
        parse_params({"train": {"C": -1}})
    with pytest.raises(ConfigError, match="ngram_range"):
        parse_params({"features": {"ngram_range": [3, 1]}})
    with pytest.raises(ConfigError, match="separate_punctuation needs remove_punctuation"):
        parse_params({"clean": {"remove_punctuation": True}})  # separate is on by default
    with pytest.raises(ConfigError, match=r"features\.tokens"):
        parse_params({"features": {"tokens": "chars"}})


def test_imdb_source_overrides_params(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("data:\n  source: https://example.invalid/a.tar.gz\n")
    assert load_params(path).data.source.startswith("https://")
    monkeypatch.setenv("IMDB_SOURCE", "/data/aclImdb_v1.tar.gz")
    assert load_params(path).data.source == "/data/aclImdb_v1.tar.gz"


def test_missing_and_malformed_params_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)


def test_defaults_validate_alias_round_trip() -> None:
    params = Params()
    dumped = params.model_dump(by_alias=True)
    assert "validate" in dumped
    assert parse_params(dumped) == params


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "8080")
    monkeypatch.setenv("WORKERS", "4")
    settings = load_settings()
    assert (settings.service.port, settings.service.workers) == (8080, 4)
    assert settings.model.model_name == "imdb-sentiment"


def test_settings_reject_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "not-a-port")
    with pytest.raises(ConfigError, match="PORT"):
        load_settings()


def test_model_uri_sets_name_and_alias_or_version(monkeypatch: pytest.MonkeyPatch) -> None:
    from imdb_sentiment.serving.service_settings import load_settings

    monkeypatch.setenv("MODEL_VERSION", "2")
    monkeypatch.setenv("MODEL_URI", "models:/reviews/7")
    pinned = load_settings()
    assert (pinned.model.model_name, pinned.model.model_version) == ("reviews", "7")
    monkeypatch.setenv("MODEL_URI", "models:/reviews@staging")
    following = load_settings()
    assert (following.model.model_alias, following.model.model_version) == ("staging", None)
    monkeypatch.setenv("MODEL_URI", "reviews/7")
    with pytest.raises(ConfigError, match="MODEL_URI"):
        load_settings()


def test_the_threshold_is_the_models_and_the_old_key_says_where_it_went() -> None:
    assert parse_params({"model": {"threshold": 0.7}}).model.threshold == 0.7
    with pytest.raises(ConfigError, match=r"evaluate\.threshold has moved to model\.threshold"):
        parse_params({"evaluate": {"threshold": 0.7}})
    with pytest.raises(ConfigError, match=r"model\.threshold"):
        parse_params({"model": {"threshold": 1.5}})
