"""The JSON API's responses: what the handlers return, the definitions the OpenAPI document
writes its response bodies from (`serving.http.openapi`); tests validate real responses against
them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from imdb_sentiment.core.labels import Label


class Strict(BaseModel):
    """Every field declared, every type exact: the API's requests and responses alike."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ModelRef(Strict):
    name: str
    version: str


class Scores(Strict):
    positive: float = Field(ge=0, le=1)
    negative: float = Field(ge=0, le=1)


class Evidence(Strict):
    """Tokens in the text and how many the model knows; with known_tokens = 0 the probability
    is only the model's prior: no evidence either way."""

    tokens: int = Field(ge=0)
    known_tokens: int = Field(ge=0)


class Contribution(Strict):
    term: str
    weight: float
    direction: Label


class Prediction(Strict):
    label: Label
    probability: float = Field(
        ge=0,
        le=1,
        description="Probability of the predicted label. The model labels positive from its "
        "threshold t on (GET /version: model.threshold), so this lies in [min(t, 1 - t), 1]: "
        "at least 0.5 only when t = 0.5",
    )
    scores: Scores
    model: ModelRef
    evidence: Evidence
    explanation: list[Contribution] | None = None


class Predictions(Strict):
    predictions: list[Prediction]


class Invocation(Strict):
    """As `mlflow models serve` answers for this model: [[P(negative), P(positive)], ...]."""

    predictions: list[Annotated[list[float], Field(min_length=2, max_length=2)]]


class Error(Strict):
    error: str = Field(description="this API's code")
    detail: str
    error_code: str = Field(description="MLflow's code")
    message: str = Field(description="MLflow's field (= detail)")


class FeedbackAck(Strict):
    """A recorded label: what the model had predicted and whether it was right."""

    request_id: str
    item: int = Field(ge=0)
    label: Label = Field(description="the true label, as sent")
    predicted: Label
    correct: bool
    model: ModelRef


# --- the Open Inference Protocol's REST responses (serving.http.oip) --------------------------
OipOutputName = Literal["probability", "label", "predict_proba"]


class OipLive(Strict):
    live: bool


class OipReady(Strict):
    ready: bool


class OipServerMetadata(Strict):
    name: str
    version: str
    extensions: list[str]


class OipTensorMetadata(Strict):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1: any size")


class OipModelMetadata(Strict):
    name: str
    versions: list[str]
    platform: str
    inputs: list[OipTensorMetadata]
    outputs: list[OipTensorMetadata]


class OipModelReady(Strict):
    name: str
    ready: bool


class OipOutputTensor(Strict):
    name: OipOutputName
    shape: list[int]
    datatype: Literal["FP64", "BYTES"]
    data: list[float] | list[str] = Field(description="row-major, flattened")


class OipInferResponse(Strict):
    model_name: str
    model_version: str
    id: str | None = Field(None, description="the request's id, when it had one")
    outputs: list[OipOutputTensor]


class OipError(Strict):
    error: str


RESPONSES: tuple[type[BaseModel], ...] = (
    Prediction,
    Predictions,
    Invocation,
    Error,
    FeedbackAck,
    OipLive,
    OipReady,
    OipServerMetadata,
    OipModelMetadata,
    OipModelReady,
    OipInferResponse,
    OipError,
)
