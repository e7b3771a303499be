"""Typed pipeline parameters (params.yaml), and the names every layer shares (model name,
production alias, model URIs).

Parsed once, at the edge (a CLI command), into frozen pydantic objects that reject unknown keys,
so a typo in params.yaml fails loudly instead of being silently ignored. Runtime settings (the
environment) live with the area that reads them: `core.model_settings` (registry and model
cache, for every area), `store.store_settings` and `serving.service_settings`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from imdb_sentiment.core.errors import ConfigError
from imdb_sentiment.core.labels import DEFAULT_THRESHOLD
from imdb_sentiment.core.text import CleanOptions

OFFICIAL_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
# The registered model and the alias production follows: their one definition.
MODEL_NAME, PRODUCTION_ALIAS = "imdb-sentiment", "production"
STAGING_ALIAS = "staging"  # the candidate: registered, not promoted; what the service shadows
DEFAULT_MODEL_URI = f"models:/{MODEL_NAME}@{PRODUCTION_ALIAS}"
# models:/<name>@<alias> or models:/<name>/<version>: the one parser of model URIs.
MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


# Keys a release moved: refused with where they went (a validator each), never silently ignored.
MOVED_KEYS = {"evaluate.threshold": "model.threshold"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Where extra training sources live: the ingest stage depends on this directory, so `dvc add`
# of a file in it (or a change to one) reruns the pipeline from ingest.
EXTRA_DIR = "data/extra"


class DataColumns(_Strict):
    """Column names of a tabular source (CSV, Parquet, JSON Lines)."""

    text: str = "review"
    label: str = "sentiment"
    group: str | None = None  # e.g. a movie or product id: `split: group`, grouped validation


class DataLabels(_Strict):
    """Which label values mean what (compared as text, case-insensitively)."""

    positive: tuple[str, ...] = ("positive", "pos", "1")
    negative: tuple[str, ...] = ("negative", "neg", "0")

    @model_validator(mode="after")
    def _disjoint(self) -> DataLabels:
        both = {v.lower() for v in self.positive} & {v.lower() for v in self.negative}
        if both:
            raise ValueError(f"labels both positive and negative: {sorted(both)}")
        if not self.positive or not self.negative:
            raise ValueError("each of positive and negative needs at least one value")
        return self


class DataParams(_Strict):
    """Where the reviews come from, how they are read and split, what is added to training."""

    source: str = OFFICIAL_URL
    # auto: from the source's name (.csv, .parquet, .jsonl, optionally .gz); anything else is
    # the IMDB archive (.tar.gz or an extracted aclImdb/ directory).
    format: Literal["auto", "imdb", "csv", "parquet", "jsonl"] = "auto"
    columns: DataColumns = DataColumns()
    labels: DataLabels = DataLabels()
    sha256: str | None = None
    cache_dir: str = ".cache/imdb"
    # official: the archive's own train/test; random: stratified, seeded, test_size;
    # group: no value of columns.group on both sides.
    split: Literal["official", "random", "group"] = "official"
    test_size: float = Field(0.2, gt=0.0, lt=1.0)
    seed: int = 42
    expected_per_label: int | None = Field(12_500, ge=1)  # the archive's count check
    # Labelled files appended to the training split only (e.g. reviewed feedback exports),
    # under data/extra/ so DVC sees them change; see docs/model.md "Feedback as data".
    extra_train: tuple[str, ...] = ()

    @field_validator("extra_train")
    @classmethod
    def _under_extra_dir(cls, paths: tuple[str, ...]) -> tuple[str, ...]:
        for path in paths:
            parts = Path(path).parts
            if (
                "://" in path
                or Path(path).is_absolute()
                or ".." in parts
                or (Path(*parts[:2]).as_posix() != EXTRA_DIR)
            ):
                raise ValueError(
                    f"{path}: extra training files live under {EXTRA_DIR}/ (`dvc add` them "
                    "there), so `dvc repro` sees when they change"
                )
        return paths

    @model_validator(mode="after")
    def _group_split_needs_a_group(self) -> DataParams:
        if self.split == "group" and self.columns.group is None:
            raise ValueError("split: group needs columns.group (the grouping column)")
        return self


class ValidateParams(_Strict):
    """Thresholds of the data-validation stage."""

    max_duplicate_fraction: float = Field(0.01, ge=0.0, le=1.0)
    max_class_imbalance: float = Field(0.05, ge=0.0, le=1.0)
    min_text_chars: int = Field(10, ge=1)


# The params sections that define the model itself (what a selection variant may change).
MODEL_SECTIONS = ("clean", "features", "train")


class FeatureParams(_Strict):
    """Word and character n-gram vectorizers (TF-IDF)."""

    # words: sklearn's default pattern (words of 2+ word characters); whitespace: every word
    # the cleaner produced (keeps "!", "8/10", "a") — meant for separate_punctuation.
    tokens: Literal["words", "whitespace"] = "words"
    ngram_range: tuple[int, int] = (1, 3)
    max_features: int | None = Field(20_000, ge=1)
    min_df: int = Field(1, ge=1)
    max_df: float = Field(1.0, gt=0.0, le=1.0)
    sublinear_tf: bool = True
    binary: bool = False
    use_idf: bool = True
    norm: Literal["l1", "l2"] | None = "l2"
    char_ngram_range: tuple[int, int] | None = None
    char_max_features: int | None = Field(None, ge=1)
    # Reviews counted at a time (memory, not results: the vocabulary is the whole corpus's).
    chunk_rows: int = Field(10_000, ge=1)

    @field_validator("ngram_range", "char_ngram_range")
    @classmethod
    def _ordered(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not 1 <= value[0] <= value[1]:
            raise ValueError("must be [low, high] with 1 <= low <= high")
        return value


class TrainParams(_Strict):
    """Logistic regression, optionally on naive-Bayes log-count-ratio scaled features."""

    C: float = Field(10.0, gt=0.0)
    penalty: Literal["l2"] = "l2"
    solver: Literal["lbfgs", "liblinear", "saga"] = "lbfgs"
    max_iter: int = Field(1000, ge=1)
    nb_weighting: bool = False
    nb_alpha: float = Field(1.0, gt=0.0)
    nb_normalize: bool = False
    val_size: float = Field(0.1, gt=0.0, lt=0.5)
    # movie: no movie has reviews on both sides (like the official split); needs the archive's
    # urls_*.txt. random: stratified random split.
    val_split: Literal["movie", "random"] = "movie"
    seed: int = 42
    # Feature parts kept in memory between the solver's passes; the rest is reread from disk.
    cache_mb: int = Field(1024, ge=0)
    # Where featurize and train run: this machine, or a Spark cluster (SPARK_MASTER) that
    # computes the same vocabulary and model (pipeline.cluster).
    engine: Literal["local", "spark"] = "local"


class ModelParams(_Strict):
    """What the model carries beyond its estimators: the decision threshold, P(positive) from
    which a review is positive (training's validation report, evaluation, and, through the
    registered version, the service, batch scoring and drift checks)."""

    threshold: float = Field(DEFAULT_THRESHOLD, gt=0.0, lt=1.0)


class EvaluateParams(_Strict):
    """The test-set report: calibration bins."""

    calibration_bins: int = Field(10, ge=2)

    @model_validator(mode="before")
    @classmethod
    def _threshold_moved(cls, data: Any) -> Any:
        if isinstance(data, dict) and "threshold" in data:
            raise ValueError(
                f"evaluate.threshold has moved to {MOVED_KEYS['evaluate.threshold']} (the model "
                "carries its decision threshold): move the key in params.yaml"
            )
        return data


class LiveGate(_Strict):
    """Live evidence from shadow scoring (McNemar's exact test on labelled shadowed reviews):
    with at least `min_pairs` labelled pairs, a candidate significantly worse at `alpha` is
    refused and one significantly better promoted, whatever the offline tolerance says."""

    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    min_pairs: int = Field(200, ge=1)
    # The scheduled promotion (`promote --when-ready`, core.sequential): promoted once it is
    # non-inferior within `tolerance` on live pairs (0: only when better), withdrawn once worse;
    # it waits at most `max_wait_hours` for a decision, then the offline gate decides.
    tolerance: float = Field(0.0, ge=0.0, lt=0.5)
    max_wait_hours: float = Field(168.0, gt=0.0)


class PromoteParams(_Strict):
    """Quality gate: how much worse than production a candidate may be."""

    tolerance: float = Field(0.005, ge=0.0, le=1.0)
    min_accuracy: float = Field(0.85, ge=0.0, le=1.0)
    live: LiveGate = LiveGate()


class DistributionTest(_Strict):
    """How one continuous signal is compared: Population Stability Index over the reference's
    quantile bins, or the two-sample Kolmogorov-Smirnov statistic; drift above `threshold`."""

    method: Literal["psi", "ks"] = "psi"
    threshold: float = Field(0.2, gt=0.0)


class ShareTest(_Strict):
    """How the predicted positive share is compared: absolute difference of the two shares, or
    PSI over the two classes; drift above `threshold`."""

    method: Literal["difference", "psi"] = "difference"
    threshold: float = Field(0.1, gt=0.0)


class DriftParams(_Strict):
    """`imdb-sentiment drift`: a window of predictions against a reference split."""

    # The held-out split: the registered model is refit on all of train, so its confidence and
    # unknown-token share there are in-sample (optimistic); see params.yaml for the figures.
    reference: Literal["train", "test"] = "test"
    reference_rows: int = Field(20_000, ge=100)  # sampled from the split (scoring cost)
    min_rows: int = Field(500, ge=10)  # fewer rows in the window: no verdict (exit 2)
    bins: int = Field(10, ge=2, le=100)
    seed: int = 42
    text_chars: DistributionTest = DistributionTest()
    unknown_share: DistributionTest = DistributionTest()
    confidence: DistributionTest = DistributionTest()
    positive_share: ShareTest = ShareTest()


class Params(_Strict):
    """Everything in params.yaml."""

    data: DataParams = DataParams()
    validate_: ValidateParams = Field(ValidateParams(), alias="validate")
    clean: CleanOptions = CleanOptions()
    features: FeatureParams = FeatureParams()
    train: TrainParams = TrainParams()
    model: ModelParams = ModelParams()
    evaluate: EvaluateParams = EvaluateParams()
    promote: PromoteParams = PromoteParams()
    drift: DriftParams = DriftParams()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def read_mapping(path: str | Path, what: str = "parameters file") -> dict[str, Any]:
    """A YAML file holding a mapping, or a ConfigError saying what is wrong with it."""
    path = Path(path)
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level")
    return raw


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; IMDB_SOURCE overrides data.source."""
    raw = read_mapping(path)
    override = os.environ.get("IMDB_SOURCE")
    if override:
        raw = {**raw, "data": {**(raw.get("data") or {}), "source": override}}
    return parse_params(raw, origin=str(path))


def parse_params(raw: dict[str, Any], origin: str = "params") -> Params:
    """Validate a params mapping, turning pydantic's report into one readable line."""
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid {origin}: {one_line(exc)}") from exc


def one_line(exc: ValidationError) -> str:
    """pydantic's multi-line report as `a.b: message; c: message`."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
    )


def flatten(prefix: str, value: Any) -> dict[str, Any]:
    """{"a": {"b": 1}} → {"a.b": 1}: params as MLflow logs them, as `dvc exp run -S` sets them."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(flatten(f"{prefix}.{key}" if prefix else str(key), inner))
        return flat
    return {prefix: value}
