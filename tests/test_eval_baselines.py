"""Baselines: exact values on hand-sized tables, fallbacks, and that the feature-based ones use their features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.evaluation.baselines import (
    BASELINES,
    ContextReadoutMean,
    GlobalMean,
    LinearPCARidge,
    NoChange,
    OtherContextsMean,
    Predictor,
    TanimotoKNN,
)

COLS = ["context", "perturbation", "perturbation_type", "readout", "value"]


def _tiny():
    # 2 contexts x 2 perturbations x 2 readouts.
    return pd.DataFrame([
        ("A", "p", "compound", "r1", 1.0), ("A", "p", "compound", "r2", 3.0),
        ("A", "q", "compound", "r1", 3.0), ("A", "q", "compound", "r2", 5.0),
        ("B", "p", "compound", "r1", 2.0), ("B", "p", "compound", "r2", 0.0),
        ("B", "q", "compound", "r1", 6.0), ("B", "q", "compound", "r2", 2.0),
    ], columns=COLS)


def _query(*keys):
    return pd.DataFrame([(c, p, "compound", r) for c, p, r in keys], columns=COLS[:4])


def _low_rank(n_ctx=4, n_pert=40, n_readout=30, noise=0.05, seed=0):
    """value = context offset + shared perturbation effect (rank 3) scaled per context + noise."""
    rng = np.random.default_rng(seed)
    effect = rng.normal(size=(n_pert, 3)) @ rng.normal(size=(3, n_readout))
    rows = []
    for c in range(n_ctx):
        offset, scale = rng.normal(size=n_readout), 0.5 + c * 0.3
        for p in range(n_pert):
            v = offset + scale * effect[p] + noise * rng.normal(size=n_readout)
            rows += [(f"ctx{c}", f"p{p}", "compound", f"r{r}", v[r]) for r in range(n_readout)]
    return pd.DataFrame(rows, columns=COLS)


def test_mean_baselines_exact_values_and_fallbacks():
    train = _tiny()
    assert GlobalMean().fit(train).predict(_query(("A", "p", "r1"))) == pytest.approx([2.75])
    assert NoChange().fit(train).predict(_query(("A", "p", "r1"), ("B", "q", "r2"))).tolist() == [0, 0]
    m = ContextReadoutMean().fit(train)
    # (A, r1) = mean(1, 3); unseen context -> readout mean of r2 = mean(3, 5, 0, 2); unseen readout -> global.
    assert m.predict(_query(("A", "x", "r1"), ("Z", "p", "r2"), ("A", "p", "r9"))) == pytest.approx([2.0, 2.5, 2.75])


def test_other_contexts_mean_adds_context_offset():
    train = _tiny()
    train = train[~((train["context"] == "A") & (train["perturbation"] == "p"))]  # hold out (A, p)
    m = OtherContextsMean().fit(train)
    # p in other contexts: r1 = 2 (B), r2 = 0 (B). Offset(A, r1) = mean_A(r1) - mean over contexts of the
    # context means = 3 - (3 + 4) / 2 = -0.5; offset(A, r2) = 5 - (5 + 1) / 2 = 2.
    assert m.predict(_query(("A", "p", "r1"), ("A", "p", "r2"))) == pytest.approx([1.5, 2.0])
    assert OtherContextsMean(offset=False).fit(train).predict(_query(("A", "p", "r1"))) == pytest.approx([2.0])
    # A perturbation never seen falls back to the context-readout mean.
    assert m.predict(_query(("A", "new", "r1"))) == pytest.approx([3.0])


def test_linear_pca_ridge_learns_cross_context_map():
    df = _low_rank()
    held = (df["context"] == "ctx3") & df["perturbation"].isin([f"p{i}" for i in range(8)])
    train, test = df[~held], df[held]
    y = test["value"].to_numpy()
    lin = LinearPCARidge(k=5).fit(train).predict(test[COLS[:4]])
    ctx = ContextReadoutMean().fit(train).predict(test[COLS[:4]])
    assert np.mean((lin - y) ** 2) < 0.2 * np.mean((ctx - y) ** 2)


def test_linear_target_gene_features_use_the_gene_embedding():
    df = _low_rank(n_pert=30, n_readout=30)
    # Genetic perturbation "r<i>" knocks down readout r<i>: rename perturbations to readout names.
    df = df.assign(perturbation=df["perturbation"].str.replace("p", "r"), perturbation_type="CRISPRi")
    held = df["perturbation"].isin(["r1", "r2"])
    m = LinearPCARidge(k=5, features="target_gene").fit(df[~held])
    pred = m.predict(df[held][COLS[:4]])
    base = ContextReadoutMean().fit(df[~held]).predict(df[held][COLS[:4]])
    assert not np.allclose(pred, base)  # features exist, so the prediction moves away from the mean
    unknown = m.predict(_query(("ctx0", "NOTAGENE", "r3")))
    assert unknown == pytest.approx(ContextReadoutMean().fit(df[~held]).predict(_query(("ctx0", "x", "r3"))))


def test_tanimoto_knn_copies_the_structural_twin():
    # "twin" has the SMILES of "aspirin": with k=1 its prediction is aspirin's profile in the same context.
    smiles = {"aspirin": "CC(=O)Oc1ccccc1C(=O)O", "twin": "CC(=O)Oc1ccccc1C(=O)O", "caffeine": "Cn1cnc2c1c(=O)n(C)c(=O)n2C"}
    train = pd.DataFrame([
        ("A", "aspirin", "compound", "r1", 4.0), ("A", "aspirin", "compound", "r2", -4.0),
        ("A", "caffeine", "compound", "r1", 0.0), ("A", "caffeine", "compound", "r2", 2.0),
    ], columns=COLS)
    m = TanimotoKNN(compound_smiles=smiles, k=1).fit(train)
    assert m.predict(_query(("A", "twin", "r1"), ("A", "twin", "r2"))) == pytest.approx([4.0, -4.0])
    # No structure -> context-readout mean.
    assert m.predict(_query(("A", "mystery", "r1"))) == pytest.approx([2.0])
    fp = LinearPCARidge(k=1, features="fingerprint", compound_smiles=smiles).fit(train)
    assert np.isfinite(fp.predict(_query(("A", "twin", "r1")))).all()


def test_every_baseline_follows_the_protocol_without_values():
    df = _low_rank(n_pert=10, n_readout=8)
    query = df[COLS[:4]].head(20)
    for name, cls in BASELINES.items():
        model = cls().fit(df)
        assert isinstance(model, Predictor), name
        pred = model.predict(query)
        assert pred.shape == (20,) and np.isfinite(pred).all(), name
    with pytest.raises(ValueError, match="unknown features"):
        LinearPCARidge(features="magic")


@pytest.mark.parametrize("make", [ContextReadoutMean, OtherContextsMean,
                                  lambda: LinearPCARidge(k=3), lambda: LinearPCARidge(k=3, features="target_gene")])
def test_saved_state_rebuilds_a_baseline_that_predicts_identically(make, tmp_path):
    df = _low_rank()
    train = df[~((df["context"] == "ctx0") & df["perturbation"].isin(["p0", "p1"]))]
    model = make().fit(train)
    params, arrays = model.state()
    np.savez(tmp_path / "state.npz", **arrays)
    with np.load(tmp_path / "state.npz", allow_pickle=False) as npz:  # no pickle needed
        loaded = type(model).from_state(params, {k: npz[k] for k in npz.files})
    rows = df.drop(columns="value")
    np.testing.assert_array_equal(loaded.predict(rows), model.predict(rows))
    arrays.pop(next(iter(arrays)))
    with pytest.raises(ValueError, match="saved state lacks"):
        type(model).from_state(params, arrays)
