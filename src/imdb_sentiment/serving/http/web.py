"""The web page: a form, examples, the result with the words that decided it, and a \"was
this right?\" control that posts the true label to /api/v1/feedback."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, g, render_template, request, url_for
from flask.typing import ResponseReturnValue

from imdb_sentiment.serving.api_errors import ApiError
from imdb_sentiment.serving.http.context import predict, schemas, service
from imdb_sentiment.serving.http.highlight import segments

bp = Blueprint("web", __name__)

EXAMPLES = [
    "An absolute masterpiece. The performances are stunning and the story stayed with me for days.",
    "Total waste of time. The plot made no sense and the acting was wooden.",
    "It was not as good as I hoped, but the soundtrack is lovely.",
    "I loved it.",
]


EXCERPT_CHARS = 200  # what an error page echoes of a rejected text, at most


def _page(status: int = 200, **context: Any) -> ResponseReturnValue:
    ctx = service()
    return render_template(
        "index.html",
        examples=EXAMPLES,
        max_chars=ctx.settings.service.max_text_chars,
        model=ctx.model.current,
        **context,
    ), status


@bp.get("/")
def index() -> ResponseReturnValue:
    return _page()


@bp.post("/predict")
def predict_form() -> ResponseReturnValue:
    ctx = service()
    text = request.form.get("text")
    try:
        ctx.authorize(request.headers.get("Authorization"), "predict")
        text = schemas().check_text(text)
        model = ctx.served_model()
        with Timer() as timer:
            (result,) = predict(model, [text], ctx.settings.service.explain_top_k)
    except ApiError as error:
        ctx.metrics.errors.labels(endpoint="/predict", reason=error.code).inc()
        # Give the text back to edit, unless it is the problem: then a short excerpt only.
        if isinstance(text, str) and len(text) > ctx.settings.service.max_text_chars:
            text = text[:EXCERPT_CHARS] + "…"
        return _page(error.status, error=error.detail, text=text or "")
    cost = timer.seconds * ctx.settings.service.instance_cost_per_hour / 3600
    return _page(
        text=text,
        result=result,
        latency_ms=timer.seconds * 1000,
        cost_usd=cost,
        segments=segments(text, result.score.contributions, model.scorer.clean),
        request_id=g.request_id,
        # A browser holds no API token: where feedback needs one, the page does not offer it.
        feedback_url=url_for("api.feedback")
        if ctx.prediction_store is not None
        and ctx.tokens is None
        and ctx.settings.service.allow_anonymous_writes
        else None,
    )


class Timer:
    """The page shows how long scoring took."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
