"""The shadowed candidate against production on the same live requests, from the prediction
store: agreement on every shadowed review, McNemar's exact test on the labelled ones
(`evidence`), and the label-free signals as drift compares them (positive share, confidence).
`imdb-sentiment shadow report` writes it (`shadow.json` + `shadow.html`, atomically);
`imdb-sentiment promote` reads `live_counts` for its gate.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imdb_sentiment.core.atomic import atomic_path
from imdb_sentiment.core.config import DriftParams, LiveGate
from imdb_sentiment.core.evidence import PairedCounts, outcome
from imdb_sentiment.core.labels import POSITIVE
from imdb_sentiment.core.sequential import boundary, decide, wealth
from imdb_sentiment.monitoring.drift import statistic
from imdb_sentiment.store.database import PredictionStore, open_store
from imdb_sentiment.store.store_settings import Timeouts

MAX_DISAGREEMENTS = 50  # reviews listed in the report (where texts are kept)


@dataclass
class Comparison:
    """One (production version, candidate version) pair's shadowed reviews."""

    production_version: str
    candidate_version: str
    agreed: int = 0
    production_p: list[float] = field(default_factory=list)
    candidate_p: list[float] = field(default_factory=list)
    production_positive: list[bool] = field(default_factory=list)
    candidate_positive: list[bool] = field(default_factory=list)
    pairs: dict[str, int] = field(default_factory=dict)
    disagreements: list[dict[str, Any]] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)  # each labelled pair: +1 / -1 / 0, in order

    @property
    def shadowed(self) -> int:
        return len(self.production_p)

    @property
    def counts(self) -> PairedCounts:
        return PairedCounts(**self.pairs)

    def signals(self, drift: DriftParams) -> list[dict[str, Any]]:
        """Candidate against production, as drift compares a window against its reference."""
        prod_p, cand_p = np.array(self.production_p), np.array(self.candidate_p)
        prod_conf, cand_conf = np.maximum(prod_p, 1 - prod_p), np.maximum(cand_p, 1 - cand_p)
        prod_pos = np.array(self.production_positive, dtype=float)
        cand_pos = np.array(self.candidate_positive, dtype=float)
        found = []
        for name, test, prod, cand in (
            ("positive_share", drift.positive_share, prod_pos, cand_pos),
            ("confidence", drift.confidence, prod_conf, cand_conf),
        ):
            value = statistic(test, prod, cand, drift.bins)
            found.append({"signal": name, "method": test.method, "statistic": round(value, 6),
                          "threshold": test.threshold, "differs": value > test.threshold,
                          "production_mean": round(float(prod.mean()), 6),
                          "candidate_mean": round(float(cand.mean()), 6)})  # fmt: skip
        return found

    def sequential(self, gate: LiveGate, tolerance: float) -> dict[str, Any]:
        """The scheduled promotion's running decision on these pairs (core.sequential)."""
        found = wealth(self.counts, tolerance)
        logs = {"noninferior": round(found.noninferior, 4), "worse": round(found.worse, 4),
                "better": round(found.better, 4)}  # fmt: skip
        return {
            "decision": decide(self.counts, tolerance, gate.alpha),
            "log_wealth": logs,
            "decides_at": round(math.log(1 / gate.alpha), 4),
            "tolerance": tolerance,
        }

    def as_json(self, gate: LiveGate, drift: DriftParams, tolerance: float) -> dict[str, Any]:
        return {
            "production_version": self.production_version,
            "candidate_version": self.candidate_version,
            "shadowed": self.shadowed,
            "agreement": round(self.agreed / self.shadowed, 6) if self.shadowed else None,
            "evidence": self.counts.as_json(gate.alpha, gate.min_pairs),
            "sequential": self.sequential(gate, tolerance),
            "signals": self.signals(drift) if self.shadowed else [],
            "disagreements": self.disagreements,
        }


def compare(
    store: PredictionStore, since: float | None = None, until: float | None = None
) -> list[Comparison]:
    """Every (production, candidate) pair seen in the window, most shadowed first."""
    found: dict[tuple[str, str], Comparison] = {}
    for record, actual in store.shadowed(since, until):
        assert record.shadow_version is not None and record.shadow_label is not None
        key = (record.model_version or "unknown", record.shadow_version)
        c = found.get(key) or found.setdefault(key, Comparison(*key))
        agree = record.label == record.shadow_label
        c.agreed += agree
        c.production_p.append(record.probability)
        c.candidate_p.append(float(record.shadow_probability or 0.0))
        c.production_positive.append(record.label == POSITIVE)
        c.candidate_positive.append(record.shadow_label == POSITIVE)
        if actual is not None:
            pair = outcome(record.label, record.shadow_label, actual)
            c.pairs[pair] = c.pairs.get(pair, 0) + 1
            c.steps.append({"candidate_only": 1, "production_only": -1}.get(pair, 0))
        if not agree and record.text is not None and len(c.disagreements) < MAX_DISAGREEMENTS:
            c.disagreements.append({"request_id": record.request_id, "item": record.item,
                                    "text": record.text, "actual": actual,
                                    "production": record.probability,
                                    "candidate": record.shadow_probability})  # fmt: skip
    return sorted(found.values(), key=lambda c: -c.shadowed)


def live_counts(
    store_url: str, candidate: str, production: str | None, timeouts: Timeouts | None = None
) -> PairedCounts:
    """The labelled pairs of `candidate` shadowing `production` (any production version when
    None): what the promotion gate decides with."""
    pairs: dict[str, int] = {}
    counted = open_store(store_url, timeouts).shadow_label_counts(candidate, production)
    for (production_label, candidate_label, actual), count in counted.items():
        kind = outcome(production_label, candidate_label, actual)
        pairs[kind] = pairs.get(kind, 0) + count
    return PairedCounts(**pairs)


def write_report(comparisons: list[Comparison], gate: LiveGate, drift: DriftParams,
                 out_dir: Path, context: dict[str, str],
                 tolerance: float = 0.005) -> tuple[Path, Path]:  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    bodies = [c.as_json(gate, drift, tolerance) for c in comparisons]
    summary: dict[str, Any] = {"context": context, "comparisons": bodies}
    for c, body in zip(comparisons, bodies, strict=True):
        if c.steps:
            plot = out_dir / f"sequential-{c.candidate_version}.png"
            plot_boundary(c.steps, gate, tolerance, plot)
            body["sequential"]["plot"] = plot.name
    json_path, html_path = out_dir / "shadow.json", out_dir / "shadow.html"
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    with atomic_path(html_path) as tmp:
        tmp.write_text(_page(summary), encoding="utf-8")
    return json_path, html_path


def plot_boundary(steps: list[int], gate: LiveGate, tolerance: float, path: Path) -> None:
    """The running margin (candidate-only minus production-only pairs) by labelled pair, with
    the margins at which the sequential test promotes and withdraws for the pairs seen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    margin = np.cumsum(steps)
    discordant = np.cumsum(np.abs(steps))
    at = np.unique(np.linspace(1, len(steps), min(len(steps), 200)).astype(int))
    edges = [boundary(int(n), int(discordant[n - 1]), tolerance, gate.alpha) for n in at]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(np.arange(1, len(steps) + 1), margin, label="candidate-only - production-only")
    ax.plot(at, [e.promote_at if e.promote_at is not None else np.nan for e in edges], "g--",
            label="promote at or above")  # fmt: skip
    ax.plot(at, [e.withdraw_at if e.withdraw_at is not None else np.nan for e in edges], "r--",
            label="withdraw at or below")  # fmt: skip
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set_xlabel("labelled shadow pairs")
    ax.set_ylabel("margin")
    ax.legend(loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _page(summary: dict[str, Any]) -> str:
    e = html.escape
    parts = [
        "<!doctype html><meta charset='utf-8'><title>Shadow report</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "td,th{padding:.2em .6em;text-align:left}</style><h1>Shadow report</h1>",
        "<p>" + e(", ".join(f"{k}: {v}" for k, v in summary["context"].items())) + "</p>",
    ]
    if not summary["comparisons"]:
        parts.append("<p>No shadowed predictions in the window.</p>")
    for c in summary["comparisons"]:
        ev = c["evidence"]
        parts.append(f"<h2>candidate {e(c['candidate_version'])} shadowing production "
                     f"{e(c['production_version'])}</h2><table>")  # fmt: skip
        rows = [
            ("shadowed reviews", c["shadowed"]),
            ("agreement", c["agreement"]),
            ("labelled pairs", ev["pairs"]),
            ("both right", ev["both_right"]),
            ("both wrong", ev["both_wrong"]),
            ("production only right", ev["production_only"]),
            ("candidate only right", ev["candidate_only"]),
            ("McNemar exact p-value", f"{ev['p_value']:.6g}"),
            ("production live accuracy", ev["production_accuracy"]),
            ("candidate live accuracy", ev["candidate_accuracy"]),
            ("verdict", f"{ev['verdict']} (alpha {ev['alpha']}, min pairs {ev['min_pairs']})"),
            (
                "scheduled promotion",
                f"{c['sequential']['decision']} (log-wealth non-inferior "
                f"{c['sequential']['log_wealth']['noninferior']}, worse "
                f"{c['sequential']['log_wealth']['worse']}; decides at "
                f"{c['sequential']['decides_at']})",
            ),
        ]
        rows += [(f"{s['signal']} ({s['method']})", f"{s['statistic']} (production "
                  f"{s['production_mean']}, candidate {s['candidate_mean']})")
                 for s in c["signals"]]  # fmt: skip
        parts += [f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in rows]
        parts.append("</table>")
        if "plot" in c["sequential"]:
            parts.append(
                f"<p><img src='{e(c['sequential']['plot'])}' alt='the running margin "
                "against the promotion and withdrawal boundaries'></p>"
            )
        if c["disagreements"]:
            parts.append(
                "<h3>Reviews they disagree on</h3><table><tr><th>text</th>"
                "<th>production P(+)</th><th>candidate P(+)</th><th>label</th></tr>"
            )
            parts += [f"<tr><td>{e(d['text'][:400])}</td><td>{d['production']}</td>"
                      f"<td>{d['candidate']}</td><td>{e(str(d['actual'] or ''))}</td></tr>"
                      for d in c["disagreements"]]  # fmt: skip
            parts.append("</table>")
    return "\n".join(parts) + "\n"
