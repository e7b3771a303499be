"""The README and docs against the configuration: every parameter they name as `section.key`
exists (or is a key the config refuses as moved), every environment variable the service's
settings or the code read is named in them, and every variable the README's settings table lists
is read by something."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from pydantic import BaseModel

from harness.project import ROOT
from imdb_sentiment.core.config import MOVED_KEYS, Params
from imdb_sentiment.serving.service_settings import Settings

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Read by other tools from the same environment: boto3/s3fs (S3 sources, the DVC remote).
THIRD_PARTY = {"AWS_ENDPOINT_URL", "AWS_*"}
FILE_SUFFIXES = {"csv", "json", "jsonl", "parquet", "skops", "yaml", "joblib", "py", "md", "npz"}
CODE_READS = re.compile(
    r"""os\.(?:environ(?:\.get|\.setdefault|\.pop)?\(|environ\[|getenv\()\s*["']([A-Z][A-Z0-9_]+)"""
)


@cache
def docs_text() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in DOCS)


def backticked_names() -> set[str]:
    return set(re.findall(r"`\$?([A-Z][A-Z0-9_]+)(?:=[^`]*)?`", docs_text()))


def parameter_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every dotted key of params.yaml the config knows, sections included."""
    keys = set()
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        keys.add(key)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            keys |= parameter_keys(field.annotation, key + ".")
    return keys


def settings_variables() -> set[str]:
    names = set()
    parts = [Settings.model_fields[part].annotation for part in Settings.model_fields]
    fields = [field for part in parts if part is not None for field in part.model_fields.values()]
    assert len(parts) == 3 and fields
    for field in fields:
        alias: Any = field.validation_alias
        assert alias is not None, "every setting is read from an environment variable"
        names |= (
            {alias} if isinstance(alias, str) else {c for c in alias.choices if isinstance(c, str)}
        )
    return names


def code_variables() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "src").rglob("*.py"):
        found |= set(CODE_READS.findall(path.read_text(encoding="utf-8")))
    return found


def test_every_parameter_the_docs_name_exists() -> None:
    known = parameter_keys(Params)
    sections = sorted(key for key in known if "." not in key)
    pattern = re.compile(rf"`(?:-S )?((?:{'|'.join(sections)})\.[a-z_][a-z0-9_.]*)(?:[=:][^`]*)?`")
    named = {m[1] for m in pattern.finditer(docs_text())}
    named = {key for key in named if key.rsplit(".", 1)[-1] not in FILE_SUFFIXES}
    assert len(named) > 20  # the pattern finds the docs' parameters at all
    assert sorted(named - known - set(MOVED_KEYS)) == []


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", (ROOT / "README.md").read_text()))
    assert sorted(settings_variables() - readme) == []


def test_every_variable_the_code_reads_is_documented() -> None:
    read = code_variables()
    assert {"SPARK_MASTER", "IMDB_SOURCE"} <= read  # the scan sees the code's reads
    assert sorted(read - backticked_names()) == []


def test_every_variable_the_readme_lists_is_read() -> None:
    rows = re.findall(r"^\| (`[A-Z][^|]*) \|", (ROOT / "README.md").read_text(), re.MULTILINE)
    listed = {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+\*?)`", row)}
    assert len(listed) > 30
    assert sorted(listed - settings_variables() - code_variables() - THIRD_PARTY) == []
