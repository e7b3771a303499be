"""Behavioural checks (CheckList-style) of a sentiment model: minimum functionality, negation,
intensity and invariance. Each suite yields a pass rate; thresholds live in the tests."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Proba = Callable[[Sequence[str]], list[float]]  # texts -> P(positive)

CLEAR_POSITIVE = [
    "I loved it.",
    "A masterpiece.",
    "Brilliant acting and a great story.",
    "One of the best films I have ever seen.",
    "Wonderful, moving and funny.",
    "Highly recommended!",
    "An excellent movie.",
    "I enjoyed every minute of it.",
    "Superb performances all round.",
    "A beautiful, touching film.",
    "Great fun from start to finish.",
    "This movie is a gem.",
]
CLEAR_NEGATIVE = [
    "Total waste of time.",
    "Awful.",
    "The worst movie ever made.",
    "Boring and predictable.",
    "Terrible acting and a stupid plot.",
    "I hated it.",
    "Do not watch this movie.",
    "A complete disaster.",
    "Painfully dull.",
    "The script is garbage.",
    "Utterly pointless.",
    "I want my two hours back.",
]
NEGATION_PAIRS = [
    ("The movie was good.", "The movie was not good."),
    ("I liked the acting.", "I did not like the acting."),
    ("The plot is interesting.", "The plot is not interesting."),
    ("It was worth watching.", "It was not worth watching."),
    ("The ending was great.", "The ending wasn't great."),
    ("I would recommend it.", "I would not recommend it."),
    ("The jokes were funny.", "The jokes were never funny."),
    ("A film I enjoyed.", "A film I didn't enjoy."),
    ("The cast is impressive.", "The cast is not impressive."),
    ("This is a good movie.", "This is not a good movie."),
]
INTENSITY_PAIRS = [  # (weaker, stronger) in the positive direction
    ("The film was good.", "The film was absolutely brilliant."),
    ("The acting was fine.", "The acting was outstanding."),
    ("I liked it.", "I loved it."),
    ("A decent movie.", "An excellent movie."),
    ("The film was bad.", "The film was fine."),
    ("The film was terrible.", "The film was bad."),
    ("A boring movie.", "An okay movie."),
    ("The worst film of the year.", "A mediocre film."),
]
NAMES = ["John", "Maria", "Ahmed", "Mei", "Olga", "Kwame"]
PLACES = ["Paris", "Tokyo", "Lagos", "Ohio", "Mumbai", "Berlin"]
INVARIANCE_TEMPLATES = [
    "{name} directed this film in {place} and it is wonderful.",
    "I watched it with {name} in {place}; a dull, tiresome evening.",
    "Shot in {place}, this {n}-minute film by {name} is a delight.",
    "{name}'s {n}-minute mess, filmed in {place}, bored me to tears.",
]


@dataclass(frozen=True)
class SuiteResult:
    name: str
    passed: int
    total: int
    failures: tuple[str, ...]

    @property
    def rate(self) -> float:
        return self.passed / self.total if self.total else 0.0


def minimum_functionality(proba: Proba) -> SuiteResult:
    texts = CLEAR_POSITIVE + CLEAR_NEGATIVE
    expected = [True] * len(CLEAR_POSITIVE) + [False] * len(CLEAR_NEGATIVE)
    scores = proba(texts)
    failures = tuple(t for t, p, e in zip(texts, scores, expected, strict=True) if (p >= 0.5) != e)
    return SuiteResult("minimum_functionality", len(texts) - len(failures), len(texts), failures)


def _pairs(name: str, proba: Proba, pairs: Sequence[tuple[str, str]]) -> SuiteResult:
    """Pairs (higher, lower): a pair passes when `lower` gets the lower P(positive)."""
    first = proba([a for a, _ in pairs])
    second = proba([b for _, b in pairs])
    failures = tuple(
        f"{a} | {b}" for (a, b), p, q in zip(pairs, first, second, strict=True) if not q < p
    )
    return SuiteResult(name, len(pairs) - len(failures), len(pairs), failures)


def negation(proba: Proba) -> SuiteResult:
    return _pairs("negation", proba, NEGATION_PAIRS)


def intensity(proba: Proba) -> SuiteResult:
    return _pairs("intensity", proba, [(b, a) for a, b in INTENSITY_PAIRS])


def _perturb(text: str, rng: random.Random) -> list[str]:
    return [
        text.upper(),
        text.lower(),
        re.sub(r"([.!?])", r"\1\1\1", text),  # punctuation noise
        re.sub(r"[.,;:!?]", "", text),
    ]


def invariance(
    proba: Proba, reviews: Sequence[str], tolerance: float = 0.1, seed: int = 0
) -> SuiteResult:
    """Names, places, numbers, case and punctuation must not move the prediction."""
    rng = random.Random(seed)
    groups: list[list[str]] = []
    for template in INVARIANCE_TEMPLATES:
        groups.append(
            [
                template.format(
                    name=rng.choice(NAMES), place=rng.choice(PLACES), n=rng.randint(80, 180)
                )
                for _ in range(6)
            ]
        )
    for review in reviews:
        groups.append([review, *_perturb(review, rng)])
    flat = [t for g in groups for t in g]
    scores = iter(proba(flat))
    failures = []
    for group in groups:
        values = [next(scores) for _ in group]
        same_label = len({v >= 0.5 for v in values}) == 1
        if not same_label or max(values) - min(values) > tolerance:
            failures.append(group[0][:80])
    return SuiteResult("invariance", len(groups) - len(failures), len(groups), tuple(failures))
