"""Bearer tokens for the write endpoints (and, optionally, the prediction routes).

`API_TOKENS_FILE` names a file — in Kubernetes a mounted Secret — with one SHA-256 hex digest of
a token per line (blank lines and `#` comments ignored), so a pod never holds a plaintext token;
`imdb-sentiment token new` prints a token and its digest. A request presents
`Authorization: Bearer <token>`; its digest is compared with every known digest in constant time
(`hmac.compare_digest`, no early exit on a match). A missing or wrong token is a 401 with
`WWW-Authenticate: Bearer`; no token or digest is ever logged or echoed. The file is re-read
when it changes (a rotated Secret), checked at most every few seconds.

Fail closed: a file that is gone or unreadable (a deleted Secret, an optional one never created)
revokes every token, and without API_TOKENS_FILE the write routes refuse everyone unless
ALLOW_ANONYMOUS_WRITES=true says otherwise (`make run`, compose: one laptop).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from pathlib import Path

from imdb_sentiment.serving.api_errors import ApiError

DIGEST = re.compile(r"^[0-9a-f]{64}$")
RECHECK_S = 5.0
log = logging.getLogger(__name__)


def new_token() -> tuple[str, str]:
    """A fresh token and the SHA-256 hex digest to put in API_TOKENS_FILE."""
    token = secrets.token_urlsafe(32)
    return token, digest(token)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def read_digests(path: Path) -> tuple[bytes, ...]:
    digests = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.split("#", 1)[0].strip().lower()
        if not line:
            continue
        if not DIGEST.match(line):
            # The line's number only: its content may be a token pasted by mistake.
            raise ValueError(f"{path}: line {number} is not a SHA-256 hex digest")
        digests.append(line.encode("ascii"))
    return tuple(digests)


class TokenCheck:
    """The digests of API_TOKENS_FILE, and the check of a request's Authorization header."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._checked = 0.0
        self._mtime: float | None = -1.0
        self._digests: tuple[bytes, ...] = ()
        self._refresh(force=True, strict=True)

    def _refresh(self, force: bool = False, strict: bool = False) -> None:
        """Re-read the file when it changed. Gone or unreadable: no digest is valid. `strict`
        (at start): a file that exists but is malformed raises (a configuration error)."""
        now = time.monotonic()
        if not force and now - self._checked < RECHECK_S:
            return
        with self._lock:
            self._checked = now
            try:
                mtime: float | None = os.stat(self.path).st_mtime
            except OSError:
                mtime = None
            if mtime == self._mtime:
                return
            self._mtime = mtime
            try:
                if mtime is None:
                    raise FileNotFoundError("is missing")
                self._digests = read_digests(self.path)
            except (OSError, ValueError) as exc:
                if strict and mtime is not None:
                    raise
                self._digests = ()
                why = exc if isinstance(exc, ValueError) else "cannot be read"
                log.error("API_TOKENS_FILE %s %s: every token is refused until it is back",
                          self.path, why)  # fmt: skip

    def require(self, authorization: str | None) -> None:
        """Return if the header carries a known token; else a 401 ApiError."""
        self._refresh()
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("this endpoint needs Authorization: Bearer <token>")
        presented = digest(token.strip()).encode("ascii")
        known = False
        for candidate in self._digests:  # every digest compared: timing says nothing
            known |= hmac.compare_digest(presented, candidate)
        if not known:
            raise unauthorized("the bearer token is not valid")


def unauthorized(detail: str) -> ApiError:
    return ApiError(401, "unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})
