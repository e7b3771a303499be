"""Named parameter presets, applied as `dvc exp run -S key=value` overrides."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import yaml

from imdb_sentiment.core.config import flatten, parse_params
from imdb_sentiment.core.errors import ConfigError


def available() -> list[str]:
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in resources.files(__package__).iterdir()
        if entry.name.endswith(".yaml")
    )


def load_preset(name: str) -> dict[str, Any]:
    if name not in available():
        raise ConfigError(f"unknown preset '{name}' (available: {', '.join(available())})")
    text = resources.files(__package__).joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    overrides: dict[str, Any] = yaml.safe_load(text)
    parse_params(overrides, origin=f"preset {name}")  # presets obey the same schema
    return overrides


def preset_args(name: str) -> list[str]:
    """`-S section.key=value` pairs; values in YAML/JSON flow syntax so DVC parses them."""
    args: list[str] = []
    for key, value in flatten("", load_preset(name)).items():
        args += ["-S", f"{key}={json.dumps(value, separators=(',', ':'))}"]
    return args
