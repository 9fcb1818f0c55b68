"""Metrics over held-out rows, computed the same way for the model and every baseline.

- pooled: RMSE, MAE, R² and Pearson r over all held-out rows at once (perturblib's protocol).
- per signature: Pearson r of the predicted vs the observed response vector of every held-out
  (context, perturbation) experiment, averaged over experiments. Unlike pooled r, this cannot be
  won by predicting readout means well; it asks whether the perturbation-specific pattern is right.
- top-k overlap: for every experiment, the fraction of the k most up (down) observed readouts that
  are among the k most up (down) predicted ones, averaged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

METRIC_NAMES = ("rmse", "mae", "r2", "pearson", "pearson_per_signature", "top50_up", "top50_down")
# Direction of "better" per metric, for the markdown table's win marks.
HIGHER_IS_BETTER = {"rmse": False, "mae": False, "r2": True, "pearson": True, "pearson_per_signature": True,
                    "top50_up": True, "top50_down": True}


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """NaN when either side is constant (e.g. a mean baseline on one experiment) or too short."""
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(stats.pearsonr(a, b)[0])


def pooled_metrics(y_true, y_pred) -> dict[str, float]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    return {
        "rmse": float(np.sqrt(mean_squared_error(y_true, y_pred))),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)),
        "pearson": _pearson(y_true, y_pred),
    }


def _by_signature(rows: pd.DataFrame, y_true, y_pred):
    """Yield (observed, predicted) vectors per (context, perturbation)."""
    frame = pd.DataFrame({"context": rows["context"].astype(str).to_numpy(),
                          "perturbation": rows["perturbation"].astype(str).to_numpy(),
                          "t": np.asarray(y_true, dtype=np.float64), "p": np.asarray(y_pred, dtype=np.float64)})
    for _, g in frame.groupby(["context", "perturbation"], sort=False):
        yield g["t"].to_numpy(), g["p"].to_numpy()


def _str_codes(column: pd.Series) -> np.ndarray:
    """Codes of the values as strings (as `_by_signature` groups them), factorizing the values first:
    converting every row to str is the slow part on large tables."""
    codes, uniques = pd.factorize(column, use_na_sentinel=False)
    return pd.factorize(pd.Index(uniques).astype(str))[0][codes].astype(np.int64)


def signature_groups(rows: pd.DataFrame) -> np.ndarray:
    """(n_rows,) int64 code of every row's signature, its (context, perturbation) experiment, the values
    compared as strings (as `_by_signature` groups them). The one grouping the metric, the per-signature
    stacking objective and the `consensus` baseline share."""
    ctx, pert = _str_codes(rows["context"]), _str_codes(rows["perturbation"])
    return pd.factorize(ctx * (int(pert.max(initial=0)) + 1) + pert)[0].astype(np.int64)


def per_signature_pearson(rows: pd.DataFrame, y_true, y_pred) -> float:
    """Mean Pearson r over experiments; experiments where r is undefined count as 0 (no signal).

    The same r as `_pearson` per (context, perturbation) group (NaN below 3 rows or for a constant
    side), computed for all groups at once with bincount sums: a Python loop over scipy calls took
    ~1 ms a group, and shrinkage choices call this once per grid point."""
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if len(t) == 0:
        return float("nan")
    group = signature_groups(rows)  # (n_rows,)
    n = np.bincount(group)
    dt = t - (np.bincount(group, t) / n)[group]
    dp = p - (np.bincount(group, p) / n)[group]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.bincount(group, dt * dp) / np.sqrt(np.bincount(group, dt * dt) * np.bincount(group, dp * dp))
    # Constant sides exactly as `_pearson` tests them (max == min), not by a rounded variance.
    order = np.argsort(group, kind="stable")
    starts = np.concatenate([[0], np.cumsum(n)[:-1]])
    flat_t = np.maximum.reduceat(t[order], starts) == np.minimum.reduceat(t[order], starts)
    flat_p = np.maximum.reduceat(p[order], starts) == np.minimum.reduceat(p[order], starts)
    r = np.where((n < 3) | flat_t | flat_p, np.nan, np.clip(r, -1.0, 1.0))
    return float(np.mean(np.nan_to_num(r, nan=0.0)))


def top_k_overlap(rows: pd.DataFrame, y_true, y_pred, k: int = 50) -> dict[str, float]:
    """Mean fraction of the observed top-k up / down readouts recovered in the predicted top-k.

    Experiments with fewer than 2k readouts use k = n // 2 so up and down sets stay disjoint.
    Ties are broken at random (fixed seed), not by row order: ranked source tables are sorted by
    rank, so a stable sort would hand a constant predictor a perfect score.
    """
    rng = np.random.default_rng(0)
    up, down = [], []
    for t, p in _by_signature(rows, y_true, y_pred):
        kk = min(k, len(t) // 2)
        if kk == 0:
            continue
        tie = rng.permutation(len(t))
        ot, op = np.lexsort((tie, -t)), np.lexsort((tie, -p))
        up.append(len(set(ot[:kk]) & set(op[:kk])) / kk)
        down.append(len(set(ot[-kk:]) & set(op[-kk:])) / kk)
    return {f"top{k}_up": float(np.mean(up)) if up else float("nan"),
            f"top{k}_down": float(np.mean(down)) if down else float("nan")}


def evaluate_predictions(rows: pd.DataFrame, y_pred, *, k: int = 50) -> dict[str, float]:
    """All metrics for predictions of `rows` (which carry the observed `value`)."""
    y_true = rows["value"].to_numpy(dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_pred.shape != y_true.shape:
        raise ValueError(f"prediction shape {y_pred.shape} != {y_true.shape}")
    if not np.isfinite(y_pred).all():
        raise ValueError("predictions contain NaN or inf")
    out = pooled_metrics(y_true, y_pred)
    out["pearson_per_signature"] = per_signature_pearson(rows, y_true, y_pred)
    out.update(top_k_overlap(rows, y_true, y_pred, k=k))
    return out


def summarize(results: pd.DataFrame, by=("model",)) -> pd.DataFrame:
    """Long results (model, seed, metric columns) -> mean and sd (ddof=1) per model and metric."""
    metrics = [m for m in results.columns if m in HIGHER_IS_BETTER or m.endswith("_s")]
    g = results.groupby(list(by), sort=False)[metrics]
    mean, sd = g.mean(), g.std(ddof=1)
    return pd.concat({"mean": mean, "sd": sd}, axis=1)
