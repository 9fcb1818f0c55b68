"""Metrics agree with direct computations and cannot be gamed by row order or constant predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.evaluation.metrics import (
    evaluate_predictions,
    per_signature_pearson,
    pooled_metrics,
    summarize,
    top_k_overlap,
)


def _rows(n_sig=3, n_readout=120, seed=0):
    rng = np.random.default_rng(seed)
    rows = pd.DataFrame([(f"ctx{s % 2}", f"p{s}", f"r{r}") for s in range(n_sig) for r in range(n_readout)],
                        columns=["context", "perturbation", "readout"])
    rows["value"] = rng.normal(size=len(rows))
    return rows


def test_pooled_metrics_match_direct_formulas():
    rng = np.random.default_rng(1)
    t = rng.normal(size=200)
    p = t + rng.normal(scale=0.5, size=200)
    m = pooled_metrics(t, p)
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean((t - p) ** 2)))
    assert m["mae"] == pytest.approx(np.mean(np.abs(t - p)))
    assert m["r2"] == pytest.approx(1 - np.sum((t - p) ** 2) / np.sum((t - t.mean()) ** 2))
    assert m["pearson"] == pytest.approx(np.corrcoef(t, p)[0, 1])
    perfect = pooled_metrics(t, t)
    assert perfect["rmse"] == 0 and perfect["r2"] == 1 and perfect["pearson"] == pytest.approx(1)


def test_per_signature_pearson_averages_over_experiments():
    rows = _rows(n_sig=2)
    t = rows["value"].to_numpy()
    sign = np.where(rows["perturbation"] == "p0", 1.0, -1.0)  # p0 right, p1 mirrored
    assert per_signature_pearson(rows, t, sign * t) == pytest.approx(0.0, abs=1e-12)
    assert per_signature_pearson(rows, t, 2 * t + 1) == pytest.approx(1.0)
    assert per_signature_pearson(rows, t, np.zeros_like(t)) == 0.0  # undefined r counts as no signal


def test_per_signature_pearson_equals_scipy_per_experiment():
    """The vectorised mean equals scipy's r per (context, perturbation) on shuffled rows, with
    experiments of 1-2 rows and constant sides (0.1 repeated: its mean is not exactly 0.1) counted as 0."""
    from scipy import stats

    rng = np.random.default_rng(3)
    rows = pd.DataFrame({"context": rng.choice(["A", "B", "C"], 600),
                         "perturbation": rng.choice([f"p{i}" for i in range(60)], 600)})
    rows.loc[0, ["context", "perturbation"]] = ["A", "single"]  # one row: undefined
    rows.loc[1:2, ["context", "perturbation"]] = ["B", "pair"]  # two rows: undefined
    t, p = rng.normal(size=600), rng.normal(size=600)
    flat = ((rows["context"] == "A") & (rows["perturbation"] == "p1")).to_numpy()
    p[flat] = 0.1
    expected = []
    for _, g in rows.groupby(["context", "perturbation"]):
        a, b = t[g.index], p[g.index]
        ok = len(a) >= 3 and np.ptp(a) > 0 and np.ptp(b) > 0
        expected.append(stats.pearsonr(a, b)[0] if ok else 0.0)
    assert flat.sum() >= 3 and 0.0 in expected
    assert per_signature_pearson(rows, t, p) == pytest.approx(np.mean(expected), abs=1e-12)
    as_categories = rows.astype("category")  # grouped by value, as the string columns
    assert per_signature_pearson(as_categories, t, p) == pytest.approx(np.mean(expected), abs=1e-12)


def test_top_k_overlap_perfect_reversed_and_constant():
    rows = _rows(n_sig=4, n_readout=400)
    t = rows["value"].to_numpy()
    assert top_k_overlap(rows, t, t, k=50) == {"top50_up": 1.0, "top50_down": 1.0}
    assert top_k_overlap(rows, t, -t, k=50) == {"top50_up": 0.0, "top50_down": 0.0}
    # Rows sorted by value (as ranked source tables are): a constant prediction must score near chance
    # (50/400), not 1 from the row order.
    ordered = rows.assign(v=t).sort_values(["perturbation", "v"], ascending=[True, False])
    ov = top_k_overlap(ordered, ordered["v"].to_numpy(), np.zeros(len(ordered)), k=50)
    assert ov["top50_up"] < 0.4 and ov["top50_down"] < 0.4


def test_evaluate_predictions_validates_and_summarize_gives_mean_sd():
    rows = _rows()
    with pytest.raises(ValueError, match="shape"):
        evaluate_predictions(rows, np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        evaluate_predictions(rows, np.full(len(rows), np.nan))
    m = evaluate_predictions(rows, rows["value"].to_numpy())
    assert m["pearson_per_signature"] == pytest.approx(1) and m["top50_up"] == 1.0
    res = pd.DataFrame({"model": ["a", "a", "b"], "seed": [0, 1, 0], "rmse": [1.0, 3.0, 2.0]})
    s = summarize(res)
    assert s["mean"].at["a", "rmse"] == 2.0 and s["sd"].at["a", "rmse"] == pytest.approx(np.sqrt(2))
    assert np.isnan(s["sd"].at["b", "rmse"])
