"""What the prediction store raises: the database away or refusing (`StoreUnavailableError`,
the API's 503), a schema this release cannot use, no store at all, and the feedback path's
answers about a request id."""

from __future__ import annotations

from imdb_sentiment.core.errors import PipelineError


class StoreUnavailableError(PipelineError):
    """The database cannot be reached or refused the statement (not the caller's fault)."""


class UnknownPredictionError(LookupError):
    pass


class PendingPredictionError(LookupError):
    """The prediction is in this pod's spool, not yet in the database (it is away or behind)."""


class DuplicateFeedbackError(ValueError):
    pass


class SchemaError(StoreUnavailableError):
    """The database's schema is not one this release can use (store.schema)."""


class NoStoreError(StoreUnavailableError):
    """There is no prediction store to read (DATABASE_URL empty, or an SQLite file never made)."""


def reason(exc: BaseException) -> str:
    """The driver's message, first line, without SQLAlchemy's statement and link."""
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(original).__name__
