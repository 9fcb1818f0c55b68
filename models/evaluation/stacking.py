"""The LPM stacked with the simple baselines: one convex combination of their predictions, with the
weights fitted on the split's validation experiments (never on test rows).

Why: on Tahoe the LPM alone ties the copy-from-other-lines baseline, but the two make different
errors; a combination learned on held-out experiments tells whether the LPM adds anything the
baselines do not have (weight > 0 and a better test score) or not (weight ~0).

    model = StackedLPM({"lpm": LPM(...), "other_contexts": OtherContextsMean(), ...}).fit(train, valid)
    model.weights_   # {"lpm": 0.58, "other_contexts": 0.42, ...}, non-negative, summing to 1
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np
import pandas as pd

from models.evaluation.baselines import KEY_COLUMNS, fit_model

MAX_STACKED_MEMBERS = 10  # 1,023 supports, each a tiny linear solve


def convex_weights(predictions: np.ndarray, target: np.ndarray) -> np.ndarray:
    """w >= 0, sum(w) = 1 minimising mean((predictions @ w - target)^2). predictions: (n, k).

    Exact for the few members stacked here: the optimum is the equality-constrained least-squares
    solution on some support, so every support (2^k - 1 of them) is solved through its KKT system and
    the best feasible one kept. Duplicate members (identical columns) share their weight equally."""
    X = np.asarray(predictions, dtype=np.float64)  # (n, k)
    y = np.asarray(target, dtype=np.float64)  # (n,)
    if X.ndim != 2 or len(X) != len(y) or len(y) == 0:
        raise ValueError(f"need an (n, k) prediction matrix and n targets, got {X.shape} and {y.shape}")
    k = X.shape[1]
    if k > MAX_STACKED_MEMBERS:
        raise ValueError(f"at most {MAX_STACKED_MEMBERS} members can be stacked exactly, got {k}")
    gram, xty = X.T @ X / len(y), X.T @ y / len(y)  # the objective w'Gw - 2w'b is quadratic: work on (k, k)
    best, best_loss, best_size = None, np.inf, 0
    for support in itertools.chain.from_iterable(itertools.combinations(range(k), m) for m in range(1, k + 1)):
        s = list(support)
        kkt = np.block([[2 * gram[np.ix_(s, s)], np.ones((len(s), 1))], [np.ones((1, len(s))), np.zeros((1, 1))]])
        sol = np.linalg.lstsq(kkt, np.concatenate([2 * xty[s], [1.0]]), rcond=None)[0]
        w = np.zeros(k)
        w[s] = sol[: len(s)]
        if (w < -1e-9).any() or abs(w.sum() - 1.0) > 1e-6:
            continue
        loss = w @ gram @ w - 2 * w @ xty
        tol = 1e-12 * max(1.0, abs(best_loss)) if np.isfinite(best_loss) else 0.0
        # on a tie, the larger support: members that predict the same thing then share the weight
        if loss < best_loss - tol or (loss <= best_loss + tol and len(s) > best_size):
            best, best_loss, best_size = w, loss, len(s)
    w = np.clip(best, 0.0, None)  # a single member is always feasible, so best is set
    return w / w.sum()


def signature_convex_weights(predictions: np.ndarray, target: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Convex weights aimed at the mean per-signature Pearson r (the selection metric), not the MSE.
    predictions (n, k), target (n,), groups (n,): the signature (context, perturbation) of every row.

    r ignores each predicted signature's offset and scale, so both are taken out of the fit: per
    signature g, the target is standardised, z_g = (y_g - mean y_g) / sd(y_g), and each member's
    predictions are centred and divided by the same sd(y_g); then v >= 0 minimises
    sum_g |z_g - Xc_g v|^2 (non-negative least squares, with a free overall scale, which r ignores too)
    and w = v / sum(v). Every signature weighs equally, as in the metric, whatever its raw scale. Flat
    signatures (sd 0) are left out; v = 0 (no member correlates positively) falls back to convex_weights.
    Duplicate members: one of them gets the weight (the prediction is the same)."""
    from scipy.optimize import nnls

    X = np.asarray(predictions, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    g = pd.factorize(np.asarray(groups))[0]
    if X.ndim != 2 or len(X) != len(y) or len(g) != len(y) or len(y) == 0:
        raise ValueError(f"need an (n, k) prediction matrix, n targets and n groups, got {X.shape}, {y.shape}, "
                         f"{np.shape(groups)}")
    n = np.bincount(g).astype(np.float64)
    yc = y - (np.bincount(g, y) / n)[g]
    Xc = X - np.column_stack([np.bincount(g, X[:, j]) / n for j in range(X.shape[1])])[g]
    sd = np.sqrt(np.bincount(g, yc * yc) / n)[g]  # (n,) the row's signature sd
    scale = np.where(sd > 0, 1.0 / np.where(sd > 0, sd, 1.0), 0.0)
    v = nnls(Xc * scale[:, None], yc * scale)[0]
    return v / v.sum() if v.sum() > 0 else convex_weights(X, y)


STACK_OBJECTIVES = ("mse", "signature")


def stack_weights(predictions: np.ndarray, rows: pd.DataFrame, objective: str = "mse") -> np.ndarray:
    """Convex weights on `rows` (which carry context, perturbation and value): `mse` convex_weights,
    `signature` signature_convex_weights."""
    from models.evaluation.metrics import signature_groups

    y = rows["value"].to_numpy(np.float64)
    if check_stack_objective(objective) == "mse":
        return convex_weights(predictions, y)
    return signature_convex_weights(predictions, y, signature_groups(rows))


def check_stack_objective(objective: str) -> str:
    """`objective` if it is one of STACK_OBJECTIVES, else a ValueError naming the choices."""
    if objective not in STACK_OBJECTIVES:
        raise ValueError(f"unknown stacking objective {objective!r}; choose from {', '.join(STACK_OBJECTIVES)}")
    return objective


class StackedLPM:
    """Members fitted on the training rows (the LPM also early-stops on validation), combined with
    convex weights fitted on the validation rows. The LPM's validation predictions are slightly
    optimistic (its stopping epoch was chosen on them), which can only favour its weight."""

    name = "lpm_stacked"

    def __init__(self, members: Mapping[str, object], objective: str = "mse"):
        if not members:
            raise ValueError("StackedLPM needs at least one member model")
        self.members, self.objective = dict(members), check_stack_objective(objective)

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None, *, progress: bool = False) -> StackedLPM:
        if valid is None or not len(valid):
            raise ValueError("lpm_stacked fits its weights on validation experiments, and this split has none; "
                             "use a split with a validation part (every split kind of the harness has one)")
        for model in self.members.values():
            fit_model(model, train, valid, progress=progress)
        w = stack_weights(self._member_predictions(valid), valid, self.objective)
        self.weights_ = dict(zip(self.members, w.tolist(), strict=True))
        return self

    def _member_predictions(self, rows: pd.DataFrame) -> np.ndarray:
        keys = rows[KEY_COLUMNS]
        return np.column_stack([np.asarray(m.predict(keys.copy()), dtype=np.float64)
                                for m in self.members.values()])  # (n, members)

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        if not hasattr(self, "weights_"):
            raise RuntimeError("StackedLPM.predict before fit")
        return self._member_predictions(rows) @ np.array(list(self.weights_.values()))

    def describe(self) -> str:
        """The fitted weights, largest first, e.g. 'lpm 0.58, other_contexts 0.42'."""
        return ", ".join(f"{k} {v:.2f}" for k, v in sorted(self.weights_.items(), key=lambda kv: -kv[1]) if v >= 0.005)
