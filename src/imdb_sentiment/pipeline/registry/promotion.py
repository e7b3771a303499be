"""Promotion: move `production` to a registered version behind the quality gate (minimum
accuracy, tolerance against the current production version, and the live evidence from shadow
scoring when there is enough of it), and roll it back."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from imdb_sentiment.core.config import LiveGate
from imdb_sentiment.core.errors import GateError, PipelineError
from imdb_sentiment.core.evidence import PairedCounts
from imdb_sentiment.pipeline.registry import ACCURACY_TAG, PREVIOUS_TAG, PRODUCTION, STAGING


def _version_by_alias(client: MlflowClient, name: str, alias: str) -> Any | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _accuracy(version: Any) -> float:
    value = (version.tags or {}).get(ACCURACY_TAG)
    if value is None:
        raise PipelineError(f"model version {version.version} has no {ACCURACY_TAG} tag")
    return float(value)


# The labelled shadow pairs of (candidate version, production version): monitoring.shadow.
LiveEvidence = Callable[[str, str], PairedCounts]


@dataclass(frozen=True)
class Promotion:
    version: str
    previous: str | None
    candidate_accuracy: float
    production_accuracy: float | None
    live: str = ""  # what the live evidence said, and whether it decided


def describe(counts: PairedCounts, gate: LiveGate) -> str:
    return (
        f"live evidence: {counts.pairs} labelled shadow pairs, production-only right "
        f"{counts.production_only}, candidate-only right {counts.candidate_only}, McNemar "
        f"exact p = {counts.p_value:.4g}: {counts.verdict(gate.alpha, gate.min_pairs)}"
    )


def promote(
    name: str,
    *,
    tolerance: float,
    min_accuracy: float = 0.0,
    force: bool = False,
    version: str | None = None,
    check_only: bool = False,
    live: LiveEvidence | None = None,
    live_gate: LiveGate | None = None,
) -> Promotion:
    """Move `production` to the `staging` version (or `version`) if it passes the quality gate.
    `check_only`: apply the gate, move nothing (a release checks before it builds the image and
    moves the alias only once the image serving that version has rolled out).
    `live`: the candidate's paired evidence against production on shadowed live requests; with
    at least `live_gate.min_pairs` pairs, a significantly worse candidate is refused and a
    significantly better one passes whatever the offline tolerance says (the minimum accuracy
    still holds); otherwise the offline gate decides, and the result says so."""
    client = MlflowClient()
    candidate = _version_by_alias(client, name, STAGING) if version is None else None
    if version is not None:
        try:
            candidate = client.get_model_version(name, version)
        except MlflowException as exc:
            raise PipelineError(f"model '{name}' has no version {version}") from exc
    if candidate is None:
        raise PipelineError(f"no '{STAGING}' version of model '{name}' to promote")
    current = _version_by_alias(client, name, PRODUCTION)
    cand_acc = _accuracy(candidate)
    prod_acc = _accuracy(current) if current is not None else None
    cand_version = str(candidate.version)
    if current is not None and str(current.version) == cand_version:
        return Promotion(cand_version, None, cand_acc, prod_acc)
    gate = live_gate or LiveGate()
    verdict, said = "too_few_pairs", ""
    serving = str(current.version) if current is not None else None
    if live is not None and serving is not None:
        counts = live(cand_version, serving)
        verdict, said = counts.verdict(gate.alpha, gate.min_pairs), describe(counts, gate)
        if verdict in ("too_few_pairs", "no_evidence"):
            said += "; the offline gate decides"
    if not force:
        if verdict == "worse":
            raise GateError(f"refused: version {cand_version} is significantly worse than "
                            f"production version {serving} on live requests ({said}; "
                            "use --force to override)")  # fmt: skip
        if cand_acc < min_accuracy:
            raise GateError(
                f"refused: version {candidate.version} accuracy {cand_acc:.4f} is below the "
                f"minimum {min_accuracy:.4f} (use --force to override)"
            )
        offline_worse = prod_acc is not None and cand_acc < prod_acc - tolerance
        if current is not None and offline_worse and verdict != "better":
            raise GateError(
                f"refused: version {candidate.version} accuracy {cand_acc:.4f} is worse than "
                f"production version {current.version} ({prod_acc:.4f}) by more than "
                f"{tolerance} (use --force to override)"
            )
    previous = str(current.version) if current is not None else None
    result = Promotion(cand_version, previous, cand_acc, prod_acc, said)
    if check_only:
        return result
    if previous is not None:
        client.set_registered_model_tag(name, PREVIOUS_TAG, previous)
    client.set_registered_model_alias(name, PRODUCTION, cand_version)
    return result


@dataclass(frozen=True)
class Readiness:
    """What the scheduled promotion does with the staged candidate, and why."""

    decision: Literal["promote", "withdraw", "wait", "none"]
    version: str | None  # the staged candidate
    reason: str


def when_ready(
    name: str, *, tolerance: float, min_accuracy: float, gate: LiveGate,
    live: LiveEvidence, version: str | None = None, now: float | None = None,
) -> Readiness:  # fmt: skip
    """The staged candidate (`version`, default the `staging` alias) against production on the
    labelled shadow pairs, by the always-valid sequential test (core.sequential): promote when
    it is non-inferior within `tolerance`, withdraw when it is worse, wait otherwise — until it
    has been staged `gate.max_wait_hours`, when the offline gate decides (and says so).
    Withdrawing takes the `staging` alias off it (production stops shadowing it); promoting is
    the caller's (image, rollout, then `promote --version V --force`)."""
    from imdb_sentiment.core.sequential import decide, wealth

    client = MlflowClient()
    staged = _version_by_alias(client, name, STAGING)
    current = _version_by_alias(client, name, PRODUCTION)
    if staged is None or (version is not None and str(staged.version) != version):
        return Readiness("none", version, f"version {version or '?'} is not the staged one")
    candidate = str(staged.version)
    if current is None or str(current.version) == candidate:
        return Readiness("none", candidate, "nothing to compare it with: it is production")
    counts = live(candidate, str(current.version))
    decision = decide(counts, tolerance, gate.alpha)
    found = wealth(counts, tolerance)
    said = (f"{counts.pairs} labelled shadow pairs, candidate-only {counts.candidate_only}, "
            f"production-only {counts.production_only}; log-wealth non-inferior "
            f"{found.noninferior:.2f}, worse {found.worse:.2f} (decides at "
            f"{math.log(1 / gate.alpha):.2f})")  # fmt: skip
    staged_hours = ((now or time.time()) - staged.creation_timestamp / 1000) / 3600
    if decision == "wait" and staged_hours >= gate.max_wait_hours:
        try:
            promote(name, tolerance=tolerance, min_accuracy=min_accuracy, version=candidate,
                    check_only=True)  # fmt: skip
            decision, said = (
                "promote",
                f"{said}; waited {staged_hours:.0f} h: the offline gate passes it",
            )
        except GateError as exc:
            decision, said = "withdraw", f"{said}; waited {staged_hours:.0f} h: {exc}"
    if decision == "withdraw":
        client.delete_registered_model_alias(name, STAGING)
    return Readiness(decision, candidate, said)


def rollback(name: str) -> tuple[str, str]:
    """Point `production` back at the version it replaced; returns (from, to)."""
    client = MlflowClient()
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        raise PipelineError(f"no registered model named '{name}'") from exc
    previous = (model.tags or {}).get(PREVIOUS_TAG)
    current = _version_by_alias(client, name, PRODUCTION)
    if not previous or current is None:
        raise PipelineError(f"nothing to roll back to: '{name}' has no previous production version")
    client.set_registered_model_alias(name, PRODUCTION, previous)
    client.set_registered_model_tag(name, PREVIOUS_TAG, str(current.version))
    return str(current.version), previous
