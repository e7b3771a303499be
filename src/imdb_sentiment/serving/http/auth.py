"""Bearer tokens for the write endpoints (and, optionally, the prediction routes).

`API_TOKENS_FILE` names a file — in Kubernetes a mounted Secret — with one SHA-256 hex digest of
a token per line (blank lines and `#` comments ignored), so a pod never holds a plaintext token;
`imdb-sentiment token new` prints a token and its digest. A request presents
`Authorization: Bearer <token>`; its digest is compared with every known digest in constant time
(`hmac.compare_digest`, no early exit on a match). A missing or wrong token is a 401 with
`WWW-Authenticate: Bearer`; no token or digest is ever logged or echoed. The file is re-read
when it changes (a rotated Secret), checked at most every few seconds.

Imports: the standard library and `serving.http.errors`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from pathlib import Path

from imdb_sentiment.serving.http.errors import ApiError

DIGEST = re.compile(r"^[0-9a-f]{64}$")
RECHECK_S = 5.0


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
        self._mtime = -1.0
        self._digests: tuple[bytes, ...] = ()
        self._refresh(force=True)

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < RECHECK_S:
            return
        with self._lock:
            self._checked = now
            mtime = os.stat(self.path).st_mtime
            if mtime != self._mtime:
                self._digests, self._mtime = read_digests(self.path), mtime

    def require(self, authorization: str | None) -> None:
        """Return if the header carries a known token; else a 401 ApiError."""
        # A file being rotated may be unreadable for a moment: keep the digests last read.
        with contextlib.suppress(OSError, ValueError):
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
