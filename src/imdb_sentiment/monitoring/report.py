"""The drift report: `drift.json` (the verdict, per signal) and `drift.html` (the same table
with a plot per signal, images inline so the file stands alone as a CI artifact).

Both are written atomically: a failed run leaves the previous report or none, never half of one.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import pandas as pd

from imdb_sentiment.core.atomic import atomic_path
from imdb_sentiment.monitoring.drift import COLUMNS, SIGNALS, DriftResult

TITLES = {
    "text_chars": "Review length (characters)",
    "unknown_share": "Share of tokens the model has never seen",
    "confidence": "Confidence, max(p, 1 - p)",
    "positive_share": "Predicted positive share",
}


def write_report(
    result: DriftResult,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    out_dir: Path,
    context: dict[str, str],
) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {**result.as_json(), "context": context}
    json_path, html_path = out_dir / "drift.json", out_dir / "drift.html"
    page = _page(result, reference, current, context)
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    with atomic_path(html_path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return json_path, html_path


def _plot(signal: str, column: str, reference: pd.DataFrame, current: pd.DataFrame) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    ref, cur = reference[column], current[column]
    if signal == "positive_share":
        ax.bar(["reference", "current"], [ref.mean(), cur.mean()], color=["#8da0cb", "#fc8d62"])
        ax.set_ylim(0, 1)
    else:
        upper = float(pd.concat([ref, cur]).quantile(0.99)) or 1.0
        bins = [upper * i / 40 for i in range(41)]
        ax.hist(ref.clip(upper=upper), bins=bins, density=True, alpha=0.6, label="reference")
        ax.hist(cur.clip(upper=upper), bins=bins, density=True, alpha=0.6, label="current")
        ax.legend()
    ax.set_title(TITLES[signal])
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _page(
    result: DriftResult, reference: pd.DataFrame, current: pd.DataFrame, context: dict[str, str]
) -> str:
    verdict = "DRIFT" if result.drift else "no drift"
    rows = "".join(
        f"<tr class='{'drift' if s.drift else 'ok'}'><td>{s.signal}</td><td>{s.method}</td>"
        f"<td>{s.statistic:.4f}</td><td>{s.threshold:g}</td><td>{'yes' if s.drift else 'no'}</td>"
        f"<td>{s.reference_mean:.4g}</td><td>{s.current_mean:.4g}</td></tr>"
        for s in result.signals
    )
    plots = "".join(
        f"<figure><img alt='{TITLES[signal]}' src='data:image/png;base64,"
        f"{_plot(signal, column, reference, current)}'></figure>"
        for signal, column in zip(SIGNALS, COLUMNS, strict=True)
    )
    facts = "".join(
        f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in sorted(context.items())
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report: {verdict}</title>
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3rem .6rem}}
tr.drift{{background:#fdd}}figure{{display:inline-block;margin:.5rem}}</style></head>
<body><h1>Drift report: {verdict}</h1>
<p>{result.current_rows} predictions against {result.reference_rows} reference reviews.</p>
<ul>{facts}</ul>
<table><tr><th>signal</th><th>method</th><th>statistic</th><th>threshold</th><th>drift</th>
<th>reference mean</th><th>current mean</th></tr>{rows}</table>
{plots}
</body></html>
"""
