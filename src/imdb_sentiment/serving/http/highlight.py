"""Map the model's n-gram contributions back onto the words of the original review."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from imdb_sentiment.runtime.scorer import Contribution

# Words, and ratings such as "8/10" whole: models that keep digits learn them as one token.
_PIECES = re.compile(r"(\d+/\d+|\w[\w'\u2019-]*)", re.UNICODE)


@dataclass(frozen=True)
class Segment:
    text: str
    direction: str = ""  # "pos", "neg" or "" (neutral)
    level: int = 0  # 1..3, relative strength
    weight: float = 0.0


def token_weights(contributions: Iterable[Contribution]) -> dict[str, float]:
    """Spread each n-gram's weight evenly over its tokens."""
    weights: dict[str, float] = defaultdict(float)
    for c in contributions:
        tokens = c.term.split()
        for token in tokens:
            weights[token] += c.weight / len(tokens)
    return weights


def segments(
    text: str, contributions: Iterable[Contribution], clean: Callable[[str], str]
) -> list[Segment]:
    """Split `text` into segments; words whose cleaned form carries weight are marked."""
    weights = token_weights(contributions)
    if not weights:
        return [Segment(text)]
    strongest = max(abs(w) for w in weights.values())
    out: list[Segment] = []
    for i, piece in enumerate(_PIECES.split(text)):
        if i % 2 == 0 or not piece:  # even pieces are the gaps between words
            if piece:
                out.append(Segment(piece))
            continue
        weight = sum(weights.get(token, 0.0) for token in clean(piece).split())
        if abs(weight) < 0.05 * strongest:
            out.append(Segment(piece))
            continue
        level = 1 + min(2, int(3 * abs(weight) / strongest))
        out.append(Segment(piece, "pos" if weight > 0 else "neg", min(level, 3), weight))
    return out
