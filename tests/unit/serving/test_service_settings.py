"""The service's settings are composed of three parts, each read from the environment once."""

from __future__ import annotations

import pytest

from imdb_sentiment.core.errors import ConfigError
from imdb_sentiment.core.model_settings import ModelSettings, load_model_settings
from imdb_sentiment.serving.service_settings import ServiceSettings, load_settings
from imdb_sentiment.store.store_settings import StoreSettings


def test_overrides_go_to_the_part_that_owns_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREDICTION_SPOOL_MAX_MB", "64")
    settings = load_settings(port=8081, DATABASE_URL="", MODEL_URI="models:/reviews@staging")
    assert isinstance(settings.model, ModelSettings)
    assert isinstance(settings.store, StoreSettings)
    assert isinstance(settings.service, ServiceSettings)
    assert settings.service.port == 8081
    assert (settings.store.database_url, settings.store.prediction_spool_max_mb) == ("", 64.0)
    assert (settings.model.model_name, settings.model.model_alias) == ("reviews", "staging")
    # Each part is the same object its own loader builds: registry code takes `settings.model`.
    assert settings.model == load_model_settings(model_uri="models:/reviews@staging")


def test_an_unknown_setting_is_one_line_naming_it() -> None:
    with pytest.raises(ConfigError, match="no setting 'databse_url'"):
        load_settings(databse_url="sqlite://")


def test_what_holds_across_parts_is_checked_once_composed() -> None:
    # The shadowed candidate is a version of the served model: two parts must agree.
    with pytest.raises(ConfigError, match="SHADOW_MODEL_URI must name a version of 'reviews'"):
        load_settings(MODEL_NAME="reviews", SHADOW_MODEL_URI="models:/other/3")
    settings = load_settings(MODEL_NAME="reviews", SHADOW_MODEL_URI="models:/reviews/3")
    assert settings.service.shadow_model_uri == "models:/reviews/3"


def test_the_parts_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.service.port = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="frozen"):
        settings.model = settings.model  # type: ignore[misc]
