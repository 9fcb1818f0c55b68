"""The stacked model: convex weights fitted on validation rows only, applied to test rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.evaluation.baselines import ContextReadoutMean, NoChange, OtherContextsMean
from models.evaluation.splits import make_split
from models.evaluation.stacking import StackedLPM, convex_weights


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
