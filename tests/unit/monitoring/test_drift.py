"""Drift: the statistics on their own, then `imdb-sentiment drift` end to end against a
registered model, on prediction logs and on files of reviews."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from imdb_sentiment.cli.main import app
from imdb_sentiment.core.config import DistributionTest, DriftParams
from imdb_sentiment.core.errors import DataError
from imdb_sentiment.monitoring.drift import compare, psi, read_prediction_log, signals
from imdb_sentiment.store.records import PredictionRecord
from tests.helpers import review_text
from tests.unit.serving.test_live_model import publish

PRODUCTS = [
    "The battery lasts two days and the charger is fast.",
    "Shipping took a week; the box was dented but the blender works.",
    "Firmware update bricked the router, support never answered.",
    "Comfortable shoes, true to size, the sole wore out after a month.",
]


def frame(n: int, seed: int, length: float = 1000.0, unknown: float = 0.02) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 2, n)
    labels = ["positive" if x >= 0.5 else "negative" for x in p]
    return signals(p, labels, rng.exponential(unknown, n), rng.lognormal(np.log(length), 0.5, n))


def test_same_distribution_is_not_drift_and_a_shift_is() -> None:
    params = DriftParams(min_rows=100)
    reference = frame(20_000, 0)
    assert not compare(reference, frame(1_000, 1), params).drift
    shifted = compare(reference, frame(1_000, 2, length=150.0), params)
    assert shifted.drift
    assert [s.signal for s in shifted.signals if s.drift] == ["text_chars"]


def test_psi_is_zero_for_equal_samples_and_grows_with_the_shift() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 10_000)
    assert psi(a, a, 10) == pytest.approx(0.0, abs=1e-12)
    assert psi(a, a + 0.2, 10) < psi(a, a + 1.0, 10)
    ties = np.zeros(1000)  # e.g. unknown_share on a fully known vocabulary: one bin
    assert psi(ties, ties, 10) == pytest.approx(0.0, abs=1e-12)


def test_each_signal_uses_its_own_method_and_threshold() -> None:
    params = DriftParams(min_rows=100, text_chars=DistributionTest(method="ks", threshold=0.5))
    result = compare(frame(5_000, 0), frame(1_000, 3, length=600.0), params)
    by_signal = {s.signal: s for s in result.signals}
    assert by_signal["text_chars"].method == "ks" and not by_signal["text_chars"].drift
    assert by_signal["positive_share"].method == "difference"


T0 = 1795780800.0  # 2026-11-27T10:00:00Z


def test_too_few_predictions_is_no_verdict() -> None:
    with pytest.raises(DataError, match="min_rows"):
        compare(frame(1000, 0), frame(10, 1), DriftParams(min_rows=100))


def test_the_log_reader_skips_other_lines_and_counts_broken_records(tmp_path: Path) -> None:
    good = PredictionRecord(T0, "r1", "3", 0.8, "positive", 0.1, 9, 40)
    lines = [
        "plain text from some tool",
        json.dumps({"event": "access", "status": 200}),
        json.dumps(good.as_json()),
        "pod-7 " + json.dumps(good.as_json()),  # a prefixed line (kubectl logs --prefix)
        json.dumps({"event": "prediction", "probability": "high"}),
    ]
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(lines) + "\n")
    found, malformed = read_prediction_log([path])
    assert len(found) == 2 and malformed == 1
    assert found["confidence"].tolist() == [0.8, 0.8]


# --- the command, against a registered model -------------------------------------------------
runner = CliRunner()


def reviews(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [review_text(i % 2, rng) for i in range(n)]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    publish(seed=1)
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame({"text": reviews(3000, seed=11)}).to_parquet(data / "test.parquet")
    params = {"drift": {"min_rows": 200, "reference_rows": 3000}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def drift(project: Path, *current: Path) -> tuple[int, str]:
    args = ["drift", *map(str, current), "--data", str(project / "data")]
    args += ["--params", str(project / "params.yaml"), "--out", str(project / "report")]
    result = runner.invoke(app, args)
    return result.exit_code, result.output


def test_same_distribution_reviews_exit_0_with_the_report(project: Path) -> None:
    current = project / "current.csv"
    pd.DataFrame({"text": reviews(600, seed=12)}).to_csv(current, index=False)
    code, output = drift(project, current)
    assert code == 0, output
    summary = json.loads((project / "report" / "drift.json").read_text())
    assert summary["drift"] is False and summary["current_rows"] == 600
    page = (project / "report" / "drift.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and "no drift" in page


@pytest.mark.parametrize("shift", ["first sentence", "another domain"])
def test_shifted_reviews_exit_1(project: Path, shift: str) -> None:
    texts = reviews(600, seed=13)
    if shift == "first sentence":
        texts = [t.split(".")[0] + "." for t in texts]
    else:
        rng = random.Random(0)
        texts = [" ".join(rng.sample(PRODUCTS, 2)) for _ in texts]
    current = project / "current.jsonl"
    pd.DataFrame({"text": texts}).to_json(current, orient="records", lines=True)
    code, output = drift(project, current)
    assert code == 1, output
    summary = json.loads((project / "report" / "drift.json").read_text())
    assert summary["drift"] is True and "DRIFT" in output


def test_a_prediction_log_is_read_without_rescoring(project: Path) -> None:
    """Records carry their signals: a log of confident, long predictions vs the reference."""
    logs = project / "logs"
    logs.mkdir()
    rng = random.Random(1)
    lines = [
        json.dumps(
            PredictionRecord(T0, f"r{i}", "1", rng.random(), "positive", 0.9, 5, 20).as_json()
        )
        for i in range(300)
    ]
    (logs / "predictions-1.jsonl").write_text("\n".join(lines) + "\n")
    code, output = drift(project, logs)
    assert code == 1, output  # 90 % unknown tokens, 20-character texts
    summary = json.loads((project / "report" / "drift.json").read_text())
    assert summary["context"]["logged model versions"] == "1"


def test_no_verdict_exits_2_with_one_line(project: Path) -> None:
    few = project / "few.csv"
    pd.DataFrame({"text": reviews(20, seed=14)}).to_csv(few, index=False)
    code, output = drift(project, few)
    assert code == 2 and "min_rows" in output
    code, output = drift(project, project / "missing.csv")
    assert code == 2 and "missing.csv" in output
    assert not (project / "report").exists()  # no report from a run without a verdict


def test_the_store_window_is_sampled_uniformly_and_bounded() -> None:
    from imdb_sentiment.monitoring.check import _sample

    kept, seen = _sample(iter(range(100_000)), 1_000, seed=3)
    assert seen == 100_000 and len(kept) == 1_000 and len(set(kept)) == 1_000
    assert 40_000 < sum(kept) / len(kept) < 60_000  # not the first 1,000 of the stream
    assert _sample(iter(range(10)), 1_000, seed=3) == (list(range(10)), 10)
