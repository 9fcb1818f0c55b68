"""The stacked model: convex weights fitted on validation rows only, applied to test rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.evaluation.baselines import ContextReadoutMean, NoChange, OtherContextsMean
from models.evaluation.metrics import per_signature_pearson
from models.evaluation.splits import make_split
from models.evaluation.stacking import StackedLPM, convex_weights, signature_convex_weights, stack_weights


def test_convex_weights_recover_a_known_mixture():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3))
    w = convex_weights(X, X @ np.array([0.7, 0.3, 0.0]))
    assert w == pytest.approx([0.7, 0.3, 0.0], abs=1e-4)


def test_convex_weights_stay_non_negative_and_sum_to_one():
    rng = np.random.default_rng(1)
    a = rng.normal(size=400)
    X = np.column_stack([a, -a, rng.normal(size=400)])  # least squares would want w = (2, -1, 0)
    w = convex_weights(X, 2 * a)
    assert (w >= 0).all() and w.sum() == pytest.approx(1.0) and w[0] == pytest.approx(1.0, abs=1e-4)


def test_convex_weights_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="prediction matrix"):
        convex_weights(np.zeros((3, 2)), np.zeros(4))


def _offset_world(n_sig=40, n_readout=12, seed=3):
    """Per signature y = offset + pattern. `pattern` predicts the pattern at 5x its scale and without the
    offset (r = 1, large squared error); `level` predicts the offset plus noise (r ~ 0, a smaller squared error)."""
    rng = np.random.default_rng(seed)
    rows, pattern, level = [], [], []
    for i in range(n_sig):
        off, pat = rng.normal(scale=3.0), rng.normal(size=n_readout)
        rows += [("c", f"p{i}", "compound", f"r{j}", off + pat[j]) for j in range(n_readout)]
        pattern += list(5 * pat)
        level += list(off + rng.normal(size=n_readout))
    frame = pd.DataFrame(rows, columns=["context", "perturbation", "perturbation_type", "readout", "value"])
    return frame, np.column_stack([pattern, level])


def test_signature_weights_aim_at_the_per_signature_r_not_the_squared_error():
    rows, X = _offset_world()
    y = rows["value"].to_numpy()
    mse, sig = convex_weights(X, y), signature_convex_weights(X, y, rows["perturbation"].to_numpy())
    assert mse[1] > 0.5  # least squares leans on the level member
    assert sig == pytest.approx([1.0, 0.0], abs=1e-9)
    assert per_signature_pearson(rows, y, X @ sig) > per_signature_pearson(rows, y, X @ mse) + 0.2
    assert stack_weights(X, rows, "signature") == pytest.approx(sig)
    assert stack_weights(X, rows, "mse") == pytest.approx(mse)
    with pytest.raises(ValueError, match="unknown stacking objective"):
        stack_weights(X, rows, "rmse")
    with pytest.raises(ValueError, match="prediction matrix"):
        signature_convex_weights(X, y, np.zeros(3))


def test_signature_weights_count_every_signature_equally_whatever_its_scale():
    # Two signatures: a loud one (x100) that member 0 predicts and a quiet one that member 1 predicts.
    # Least squares follows the loud signature; the per-signature fit weighs the two equally.
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=20), rng.normal(size=20)
    y = np.concatenate([100 * a, b])
    X = np.column_stack([np.concatenate([100 * a, rng.normal(size=20)]),
                         np.concatenate([100 * rng.normal(size=20), b])])
    groups = np.repeat(["loud", "quiet"], 20)
    assert convex_weights(X, y)[0] > 0.9
    assert signature_convex_weights(X, y, groups)[0] == pytest.approx(0.5, abs=0.15)


def _shared_effects(n_ctx=4, n_pert=20, n_readout=10, seed=0):
    rng = np.random.default_rng(seed)
    effect = rng.normal(size=(n_pert, n_readout))
    rows = [(f"c{c}", f"p{p}", "compound", f"r{r}", effect[p, r] + 0.1 * rng.normal())
            for c in range(n_ctx) for p in range(n_pert) for r in range(n_readout)]
    return pd.DataFrame(rows, columns=["context", "perturbation", "perturbation_type", "readout", "value"])


def test_stacked_weights_follow_the_member_that_predicts_validation():
    split = make_split(_shared_effects(), "unseen-experiment", context="c0", seed=0)
    model = StackedLPM({"no_change": NoChange(), "context_mean": ContextReadoutMean(),
                        "other_contexts": OtherContextsMean()}).fit(split.train, split.valid)
    assert model.weights_["other_contexts"] > 0.9  # effects are shared across contexts
    assert sum(model.weights_.values()) == pytest.approx(1.0)
    assert model.describe().startswith("other_contexts")
    copy = OtherContextsMean().fit(split.train)
    keys = split.test.drop(columns="value")
    assert np.abs(model.predict(keys) - copy.predict(keys)).max() < 0.1 * split.test["value"].std()


def test_stacked_needs_validation_rows_and_a_fit():
    split = make_split(_shared_effects(), "unseen-experiment", context="c0", seed=0)
    model = StackedLPM({"context_mean": ContextReadoutMean(), "no_change": NoChange()})
    with pytest.raises(RuntimeError, match="before fit"):
        model.predict(split.test)
    with pytest.raises(ValueError, match="validation"):
        model.fit(split.train, split.valid.iloc[:0])
    with pytest.raises(ValueError, match="at least one member"):
        StackedLPM({})


def test_convex_weights_share_between_identical_members():
    # Unseen compounds: context_mean and other_contexts predict the same thing; the optimiser must not
    # stall at its starting point (an iterative solver once returned 1/k each on real data).
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=300), rng.normal(size=300)
    X = np.column_stack([a, b, a, rng.normal(size=300)])
    w = convex_weights(X, 0.8 * a + 0.2 * b)
    assert w[0] == pytest.approx(w[2]) and w[0] + w[2] == pytest.approx(0.8, abs=1e-6)
    assert w[1] == pytest.approx(0.2, abs=1e-6) and w[3] == pytest.approx(0.0, abs=1e-9)


def test_stacking_and_the_registry_import_without_the_harness():
    """No import cycle: the stacked model and the registry stand without the evaluation harness."""
    import subprocess
    import sys

    code = ("import sys, models.evaluation.stacking, models.registry, models.predictor; "
            "print('models.evaluation.harness' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
