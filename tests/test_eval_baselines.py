"""Baselines: exact values on hand-sized tables, fallbacks, and that the feature-based ones use their features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.evaluation.baselines import (
    BASELINES,
    Consensus,
    ContextReadoutMean,
    GlobalMean,
    LinearPCARidge,
    MechanismKNN,
    NetworkKNN,
    NoChange,
    OtherContextsMean,
    Predictor,
    SimilarContexts,
    SimilarPerturbations,
    TanimotoKNN,
    _factorize_keys,
)

COLS = ["context", "perturbation", "perturbation_type", "readout", "value"]


def test_factorize_keys_equals_factorizing_the_tuples():
    rng = np.random.default_rng(0)
    levels = [rng.choice(np.array(list(alphabet), dtype=object), 500) for alphabet in ("abc", "wxyz", "pq")]
    codes, values = _factorize_keys(*levels)
    expected_codes, expected = pd.factorize(pd.MultiIndex.from_arrays(levels))
    np.testing.assert_array_equal(codes, expected_codes)
    for i, level in enumerate(values):
        np.testing.assert_array_equal(level, expected.get_level_values(i).to_numpy())
    empty = np.array([], dtype=object)
    codes, (first, second) = _factorize_keys(empty, empty)
    assert len(codes) == len(first) == len(second) == 0


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


def test_consensus_counts_every_signature_equally_not_by_its_scale():
    # Context A: a strong drug (sd 14.1) and a weak one (sd 0.71) with different patterns; "flat" has no
    # pattern (z = 0). The raw mean (23, 4, 2, -17) / 3 is mostly the strong drug's pattern; the consensus
    # is mean z = (1, 1, -1, -1) sqrt(2) / 3, moved to the raw mean's mean and sd across A's readouts.
    strong, weak, flat = [20.0, 0.0, 0.0, -20.0], [0.0, 1.0, -1.0, 0.0], [3.0, 3.0, 3.0, 3.0]
    rows = [("A", name, "compound", f"r{i}", v) for name, vals in (("strong", strong), ("weak", weak),
                                                                     ("flat", flat)) for i, v in enumerate(vals)]
    train = pd.DataFrame(rows + [("B", "strong", "compound", "r0", 5.0), ("B", "weak", "compound", "r0", 7.0)],
                         columns=COLS)
    m = Consensus().fit(train)
    query = _query(*[("A", "new", f"r{i}") for i in range(4)])
    cm = ContextReadoutMean().fit(train).predict(query)
    assert cm == pytest.approx([(20 + 3) / 3, 4 / 3, 2 / 3, -17 / 3])
    # sd of the raw mean over A's readouts, and the consensus pattern (the flat drug adds z = 0 to the sum)
    sd = np.std(cm)
    assert m.predict(query) == pytest.approx(cm.mean() + sd * np.array([1.0, 1.0, -1.0, -1.0]))
    # The weak drug's pattern: the consensus has r 0.71, the raw mean far less.
    assert np.corrcoef(m.predict(query), weak)[0, 1] == pytest.approx(np.sqrt(0.5))
    assert np.corrcoef(cm, weak)[0, 1] < 0.2
    # describe(): the lowest per-context r between the two patterns (B has one readout: skipped)
    assert m.min_r_ == pytest.approx(np.corrcoef([1, 1, -1, -1], cm)[0, 1])
    assert f"r >= {m.min_r_:.4f}" in m.describe()
    # One readout in B: no pattern to move, the context-readout mean; unseen context / readout: its fallbacks.
    assert m.predict(_query(("B", "new", "r0"), ("Z", "new", "r0"), ("A", "new", "r9"))) == pytest.approx(
        ContextReadoutMean().fit(train).predict(_query(("B", "x", "r0"), ("Z", "x", "r0"), ("A", "x", "r9"))))


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


def test_linear_target_gene_is_the_same_under_pipeline_ids_and_benchmark_names(tmp_path):
    """One tiny knock-down table named as the pipeline / CLI names it (CRISPRi:R3, its targets recorded) and as
    the benchmark loaders name it (R3, its own name the gene): `linear` for unseen genes predicts the same, and
    the knock-downs' target features exist (the prediction leaves the context mean). Before, an id was looked up
    as a readout and never matched: the pipeline route got no target features."""
    from models.registry import Resources, build_model
    from models.side_information import SideInformation

    df = _low_rank(n_pert=30, n_readout=30)
    bare = df.assign(perturbation=df["perturbation"].str.replace("p", "R"), readout=df["readout"].str.upper(),
                     perturbation_type="CRISPRi")
    ids = bare.assign(perturbation="CRISPRi:" + bare["perturbation"])
    held = bare["perturbation"].isin(["R1", "R2"]).to_numpy()
    preds = []
    for frame, targets in ((bare, {}), (ids, {f"CRISPRi:R{i}": [f"R{i}"] for i in range(30)})):
        res = Resources(side=SideInformation(perturbation_targets=targets))
        model = build_model("linear", seed=0, resources=res, split_kind="unseen-gene").fit(frame[~held])
        preds.append(model.predict(frame[held][COLS[:4]]))
        params, arrays = model.state()  # the targets are saved with the model
        np.testing.assert_array_equal(type(model).from_state(params, arrays).predict(frame[held][COLS[:4]]), preds[-1])
    np.testing.assert_allclose(preds[1], preds[0])
    assert not np.allclose(preds[1], ContextReadoutMean().fit(ids[~held]).predict(ids[held][COLS[:4]]))


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


@pytest.mark.parametrize("make", [ContextReadoutMean, Consensus, OtherContextsMean, SimilarContexts,
                                  lambda: SimilarContexts(max_cells=1), SimilarPerturbations,
                                  lambda: SimilarPerturbations(max_cells=1),
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


# --- similar_contexts --------------------------------------------------------------------------------


def _twin_world(n_pert=40, n_readout=20, noise=0.05, seed=0):
    """Context A responds like B (its twin, scaled 0.8); C and D respond unlike either (own random effects)."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(n_pert, n_readout))
    effect = {"A": 0.8 * shared, "B": shared, "C": rng.normal(size=(n_pert, n_readout)),
              "D": rng.normal(size=(n_pert, n_readout))}
    rows = []
    for c, e in effect.items():
        offset = rng.normal(size=n_readout)
        v = offset + e + noise * rng.normal(size=e.shape)
        rows += [(c, f"p{p}", "compound", f"r{r}", v[p, r]) for p in range(n_pert) for r in range(n_readout)]
    return pd.DataFrame(rows, columns=COLS)


def test_similar_contexts_copies_from_the_twin_context():
    from models.evaluation.metrics import per_signature_pearson
    from models.evaluation.splits import make_split

    split = make_split(_twin_world(), "unseen-experiment", context="A", seed=0)
    test, y = split.test, split.test["value"].to_numpy()
    m = SimilarContexts().fit(split.train, split.valid)
    a = list(m.contexts_).index("A")
    w = dict(zip(m.contexts_, m.W_[a], strict=True))
    assert w["B"] == pytest.approx(0.8, abs=0.05) and abs(w["C"]) < 0.05 and w["A"] == 0.0
    r_sc = per_signature_pearson(test, y, m.predict(test[COLS[:4]]))
    r_oc = per_signature_pearson(test, y, OtherContextsMean().fit(split.train).predict(test[COLS[:4]]))
    assert r_sc > 0.99 and r_sc > r_oc + 0.1  # other_contexts averages in C and D: 0.84


def test_similar_contexts_exact_weights_and_fallbacks():
    train = pd.DataFrame([
        ("A", "q", "compound", "r1", 3.0), ("A", "q", "compound", "r2", -1.0),
        ("A", "s", "compound", "r1", -1.0), ("A", "s", "compound", "r2", 3.0),
        ("B", "q", "compound", "r1", 1.0), ("B", "q", "compound", "r2", -1.0),
        ("B", "s", "compound", "r1", -1.0), ("B", "s", "compound", "r2", 1.0),
        ("B", "p", "compound", "r1", 0.5), ("B", "p", "compound", "r2", 0.5),
        ("C", "q", "compound", "r1", 1.0), ("C", "q", "compound", "r2", 1.0),
        ("C", "s", "compound", "r1", -1.0), ("C", "s", "compound", "r2", -1.0),
    ], columns=COLS)
    # Context means A (1, 1), B (1/6, 1/6), C (0, 0). Residuals over (q r1, q r2, s r1, s r2): A (2, -2, -2, 2),
    # B (5, -7, -7, 5) / 6, C (1, 1, -1, -1), orthogonal to both; B's p = (1/3, 1/3), C lacks p.
    rows = _query(("A", "p", "r1"), ("A", "p", "r2"))
    ols = SimilarContexts(ridge=1e-12).fit(train)
    w_b = 8 / (37 / 9)  # least squares of A on B: (xb . ya) / (xb . xb)
    assert ols.W_[list(ols.contexts_).index("A")] == pytest.approx([0.0, w_b, 0.0], abs=1e-6)
    # C's missing p counts as the other contexts' (B's) 1/3, with weight 0 here.
    assert ols.predict(rows) == pytest.approx([1 + w_b / 3] * 2, rel=1e-6)
    # Equal weights (ridge inf): A's mean + the mean over B and C.
    flat = SimilarContexts(ridge=np.inf).fit(train)
    assert flat.predict(rows) == pytest.approx([1 + 1 / 3] * 2)
    # Never seen anywhere -> the context-readout mean; an unseen context -> its readout mean + equal weights
    # over all contexts (every one counting p's only measured residual, 1/3).
    assert flat.predict(_query(("A", "new", "r1"), ("Z", "p", "r1"))) == pytest.approx([1.0, 2.5 / 7 + 1 / 3])


def test_similar_contexts_above_its_memory_cap_is_other_contexts_and_says_so():
    df = _low_rank()
    train = df[~((df["context"] == "ctx0") & df["perturbation"].isin(["p0", "p1"]))]
    valid = df[(df["context"] == "ctx0") & df["perturbation"].isin(["p0", "p1"])]
    capped = SimilarContexts(max_cells=10).fit(train, valid)
    rows = df.drop(columns="value")
    np.testing.assert_array_equal(capped.predict(rows), OtherContextsMean().fit(train).predict(rows))
    assert "exceed max_cells 10" in capped.describe() and not hasattr(capped, "R_")
    # under the cap the same data gets the dense, validation-chosen weights
    assert "chosen on validation" in SimilarContexts().fit(train, valid).describe()


def _on_clean_and_poisoned_test(make, world: pd.DataFrame, seed: int):
    """Two `make()` models evaluated on one unseen-experiment split of `world` (target A), the second with its
    test values replaced by noise: a choice made on validation rows only is the same for both."""
    from models.evaluation.harness import evaluate_model
    from models.evaluation.splits import make_split

    clean = make_split(world, "unseen-experiment", context="A", seed=seed)
    poisoned = make_split(world, "unseen-experiment", context="A", seed=seed)
    poisoned.test["value"] = np.random.default_rng(5).normal(scale=50.0, size=len(poisoned.test))
    a, b = make(), make()
    evaluate_model(a, clean), evaluate_model(b, poisoned)
    return a, b, clean


def test_similar_contexts_ridge_is_chosen_on_validation_only():
    a, b, clean = _on_clean_and_poisoned_test(SimilarContexts, _twin_world(seed=1), seed=3)
    assert a.ridge_ == b.ridge_ < np.inf and a.ridge_scores_ == b.ridge_scores_
    assert set(a.ridge_scores_) == set(SimilarContexts.GRID) and "chosen on validation" in a.describe()
    assert SimilarContexts().fit(clean.train).ridge_ == SimilarContexts.DEFAULT_RIDGE  # no validation rows


# --- similar_perturbations ----------------------------------------------------------------------------


def _class_world(n_classes=4, size=10, n_readout=20, noise=0.05, seed=0):
    """Every line responds to a drug class with one shared pattern, and line A adds its own response per class
    (invisible in the other lines): the weighted copy misses it, the drugs of the same class in A show it."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(n_classes, n_readout))
    own_a = 1.5 * rng.normal(size=(n_classes, n_readout))
    rows = []
    for c in ("A", "B", "C", "D"):
        offset = rng.normal(size=n_readout)
        for d in range(n_classes * size):
            cls = d % n_classes
            v = offset + shared[cls] * rng.uniform(0.5, 1.5) + (own_a[cls] if c == "A" else 0.0)
            v = v + noise * rng.normal(size=n_readout) + 0.3 * rng.normal(size=n_readout) * (c != "A")
            rows += [(c, f"d{d}", "compound", f"r{r}", v[r]) for r in range(n_readout)]
    return pd.DataFrame(rows, columns=COLS)


def test_similar_perturbations_adds_the_target_lines_own_response_of_similar_drugs():
    from models.evaluation.metrics import per_signature_pearson
    from models.evaluation.splits import make_split

    split = make_split(_class_world(), "unseen-experiment", context="A", seed=0)
    test, y = split.test[COLS[:4]], split.test["value"].to_numpy()
    sc = SimilarContexts().fit(split.train, split.valid)
    sp = SimilarPerturbations().fit(split.train, split.valid)
    r_sc, r_sp = (per_signature_pearson(split.test, y, m.predict(test)) for m in (sc, sp))
    assert r_sp > r_sc + 0.1, (r_sc, r_sp)
    assert sp.strength_ > 0 and "chosen on validation" in sp.describe()
    assert set(sp.neighbour_scores_) == {(k, b) for k in sp.NEIGHBOURS for b in sp.STRENGTHS}
    # strength 0 is similar_contexts itself; a drug measured in no other line (unseen compound) gets it too
    np.testing.assert_allclose(SimilarPerturbations(neighbours=5, strength=0.0).fit(split.train).predict(test),
                               SimilarContexts().fit(split.train).predict(test))
    new = _query(("A", "never", "r0"), ("A", "never", "r1"))
    np.testing.assert_allclose(sp.predict(new), sc.predict(new))


def test_similar_perturbations_choice_never_sees_test_rows():
    a, b, clean = _on_clean_and_poisoned_test(SimilarPerturbations, _class_world(seed=2), seed=1)
    assert (a.neighbours_, a.strength_) == (b.neighbours_, b.strength_) and a.neighbour_scores_ == b.neighbour_scores_
    assert (SimilarPerturbations().fit(clean.train).neighbours_, SimilarPerturbations().fit(clean.train).strength_) \
        == SimilarPerturbations.DEFAULT  # no validation rows


def test_similar_perturbations_term_grid_is_what_predict_adds_and_never_holds_the_drugs_own_error():
    from models.evaluation.splits import make_split

    split = make_split(_class_world(), "unseen-experiment", context="A", seed=0)
    sp = SimilarPerturbations().fit(split.train, split.valid)
    test = split.test[COLS[:4]]
    grid = sp.term_grid()  # (C, P, G), what the LPM's similar_perturbations base reads
    c, p, g = (idx.get_indexer(test[col]) for idx, col in ((sp.contexts_, "context"),
                                                           (sp.perturbations_, "perturbation"),
                                                           (sp.readout_index_, "readout")))
    np.testing.assert_allclose(grid[c, p, g], sp.predict(test) - SimilarContexts.predict(sp, test), atol=1e-12)
    sp.QUERY_CHUNK = 3  # similarities in blocks of queries (a genome-wide P x P would not fit): the same grid
    np.testing.assert_allclose(sp.term_grid(), grid, atol=1e-12)
    # A training drug's term is its neighbours' errors in the line, never its own: moving its own error
    # leaves its term and moves those of the drugs it is a neighbour of.
    t, q = sp.contexts_.get_loc("A"), int(np.flatnonzero(~np.isnan(sp._errors()[sp.contexts_.get_loc("A")]).all(1))[0])
    sp.errors_[t, q] += 50.0
    moved = sp.term_grid()
    np.testing.assert_allclose(moved[t, q], grid[t, q])
    assert not np.allclose(moved[t], grid[t])


# --- network_knn -------------------------------------------------------------------------------------


def _gene_world(n_clusters=6, size=5, n_readout=20, noise=0.2, seed=0):
    """Knock-downs of genes in clusters: every gene of a cluster has the cluster's response (scaled per
    context) + noise; the graph links genes within a cluster (0.9) and a few across clusters (0.4)."""
    rng = np.random.default_rng(seed)
    profile = rng.normal(size=(n_clusters, n_readout))
    genes = [f"g{k}_{i}" for k in range(n_clusters) for i in range(size)]
    rows = []
    for c, scale in (("A", 1.0), ("B", 0.6)):
        offset = 0.3 * rng.normal(size=n_readout)  # small: the context mean alone explains little
        for g in genes:
            v = offset + scale * profile[int(g[1:].split("_")[0])] + noise * rng.normal(size=n_readout)
            rows += [(c, g, "CRISPRi", f"r{r}", v[r]) for r in range(n_readout)]
    edges = [(f"g{k}_{i}", f"g{k}_{j}", 0.9) for k in range(n_clusters) for i in range(size) for j in range(i + 1, size)]
    edges += [(f"g{k}_0", f"g{(k + 1) % n_clusters}_1", 0.4) for k in range(n_clusters)]
    return pd.DataFrame(rows, columns=COLS), pd.DataFrame(edges, columns=["source", "target", "weight"])


def test_network_knn_recovers_an_unseen_gene_from_its_neighbours():
    from models.evaluation.metrics import per_signature_pearson
    from models.evaluation.splits import make_split

    df, graph = _gene_world()
    split = make_split(df, "unseen-gene", seed=0)
    test, y = split.test, split.test["value"].to_numpy()
    nk = NetworkKNN(graph).fit(split.train, split.valid)
    r_nk = per_signature_pearson(test, y, nk.predict(test[COLS[:4]]))
    r_cm = per_signature_pearson(test, y, ContextReadoutMean().fit(split.train).predict(test[COLS[:4]]))
    assert nk.shrinkage_ > 0 and r_nk > r_cm + 0.3
    # Without the graph there are no neighbours: exactly the context-readout mean.
    bare = NetworkKNN(None).fit(split.train, split.valid).predict(test[COLS[:4]])
    np.testing.assert_allclose(bare, ContextReadoutMean().fit(split.train).predict(test[COLS[:4]]))


def test_network_knn_exact_weighted_neighbour_mean_and_never_itself():
    train = pd.DataFrame([
        ("A", "g1", "CRISPRi", "r1", 4.0), ("A", "g1", "CRISPRi", "r2", 0.0),
        ("A", "g2", "CRISPRi", "r1", 1.0), ("A", "g2", "CRISPRi", "r2", 3.0),
        ("A", "g3", "CRISPRi", "r1", 1.0), ("A", "g3", "CRISPRi", "r2", 0.0),
    ], columns=COLS)
    graph = pd.DataFrame({"source": ["g0", "g2"], "target": ["g1", "g0"], "weight": [1.0, 0.5]})
    # Context means: r1 = 2, r2 = 1; residuals g1 = (2, -1), g2 = (-1, 2).
    rows = pd.DataFrame([("A", "g0", "CRISPRi", "r1"), ("A", "g0", "CRISPRi", "r2")], columns=COLS[:4])
    m = NetworkKNN(graph, shrinkage=1.0).fit(train)
    assert m.predict(rows) == pytest.approx([2 + (2 - 0.5) / 1.5, 1 + (-1 + 1) / 1.5])
    plain = NetworkKNN(graph, weighted=False, shrinkage=0.5).fit(train)
    assert plain.predict(rows) == pytest.approx([2 + 0.5 * 0.5, 1 + 0.5 * 0.5])
    # g1 was measured, but its only neighbour (g0) was not: the context mean, never g1's own profile.
    assert m.predict(pd.DataFrame([("A", "g1", "CRISPRi", "r1")], columns=COLS[:4])) == pytest.approx([2.0])
    # Another context, another perturbation type, or targets naming an unlinked gene: no neighbours.
    other = pd.DataFrame([("B", "g0", "CRISPRi", "r1"), ("A", "g0", "compound", "r1")], columns=COLS[:4])
    assert m.predict(other) == pytest.approx([2.0, 2.0])
    targeted = NetworkKNN(graph, {"g0": ["g3"]}, shrinkage=1.0).fit(train)
    assert targeted.predict(rows) == pytest.approx([2.0, 1.0])
    # count_prior k: the mean of n = 2 neighbours scaled by n / (n + k) = 0.5 at k = 2.
    prior = NetworkKNN(graph, shrinkage=1.0, count_prior=2.0).fit(train)
    assert prior.predict(rows) == pytest.approx([2 + 0.5 * (2 - 0.5) / 1.5, 1.0])


def test_network_knn_shrinkage_is_chosen_on_validation_only():
    from models.evaluation.harness import evaluate_model
    from models.evaluation.splits import make_split

    df, graph = _gene_world(seed=1)
    clean = make_split(df, "unseen-gene", seed=2)
    poisoned = make_split(df, "unseen-gene", seed=2)
    poisoned.test["value"] = np.random.default_rng(5).normal(scale=50.0, size=len(poisoned.test))
    a, b = NetworkKNN(graph), NetworkKNN(graph)
    evaluate_model(a, clean), evaluate_model(b, poisoned)
    assert a.shrinkage_ == b.shrinkage_ > 0 and a.shrinkage_scores_ == b.shrinkage_scores_
    # Validation residuals mirrored (anti-correlated with the neighbours'): no shrinkage helps, 0 is chosen.
    valid = clean.valid
    mean = ContextReadoutMean().fit(clean.train).predict(valid[COLS[:4]])
    mirrored = valid.assign(value=2 * mean - valid["value"].to_numpy())
    assert NetworkKNN(graph).fit(clean.train, mirrored).shrinkage_ == 0.0
    assert NetworkKNN(graph).fit(clean.train).shrinkage_ == NetworkKNN.DEFAULT_SHRINKAGE  # no validation rows


def _spike_world(n_genes=60, shared=0.3, spike=-6.0, seed=0):
    """Knock-downs as in the simulated default world (graph.simulated): each lowers its own readout a lot
    (spike) and moves a profile that its graph neighbours share only weakly (shared; noise sd 1). One
    context, a ring graph, one shared profile per 6 consecutive genes."""
    rng = np.random.default_rng(seed)
    genes = [f"g{i}" for i in range(n_genes)]
    latent = rng.normal(size=(n_genes // 6, n_genes))
    rows = []
    for i, g in enumerate(genes):
        v = shared * latent[i // 6] + rng.normal(size=n_genes)
        v[i] += spike
        rows += [("A", g, "shRNA", genes[j], v[j]) for j in range(n_genes)]
    edges = [(genes[i], genes[(i + 1) % n_genes], 0.8) for i in range(n_genes)]
    return pd.DataFrame(rows, columns=COLS), pd.DataFrame(edges, columns=["source", "target", "weight"])


def test_network_knn_never_raises_the_validation_error_above_the_context_mean():
    from models.evaluation.splits import make_split

    df, graph = _spike_world()
    split = make_split(df, "unseen-gene", seed=0)
    nk = NetworkKNN(graph).fit(split.train, split.valid)
    cm = ContextReadoutMean().fit(split.train)

    def mse(model, rows):
        return float(np.mean((rows["value"].to_numpy() - model.predict(rows[COLS[:4]])) ** 2))

    # By r alone: shrinkage 2.5, validation MSE 8.0 vs the context mean's 1.6, test 9.3 vs 1.8.
    assert mse(nk, split.valid) <= mse(cm, split.valid)
    assert mse(nk, split.test) < 1.1 * mse(cm, split.test)
    chosen = nk.shrinkage_scores_[nk.shrinkage_, nk.count_prior_]
    assert chosen < max(nk.shrinkage_scores_.values()) and "higher validation MSE" in nk.describe()
    # Shrinkage 0 is the context mean exactly, neighbours or not.
    rows = df[COLS[:4]]
    np.testing.assert_array_equal(NetworkKNN(graph, shrinkage=0.0).fit(split.train).predict(rows), cm.predict(rows))


def test_network_knn_saved_state_predicts_identically(tmp_path):
    from models.evaluation.splits import make_split

    df, graph = _gene_world()
    split = make_split(df, "unseen-gene", seed=0)
    model = NetworkKNN(graph, {"g0_0": ["g0_0", "g1_0"]}, count_prior=1.5).fit(split.train, split.valid)
    params, arrays = model.state()
    np.savez(tmp_path / "state.npz", **arrays)
    with np.load(tmp_path / "state.npz", allow_pickle=False) as npz:
        loaded = NetworkKNN.from_state(params, {k: npz[k] for k in npz.files})
    rows = df.drop(columns="value")
    np.testing.assert_array_equal(loaded.predict(rows), model.predict(rows))
    assert loaded.shrinkage_ == model.shrinkage_
    with pytest.raises(ValueError, match="do not fit together"):
        NetworkKNN.from_state(params, arrays | {"R": arrays["R"][:-1]})


def test_corum_knn_is_network_knn_over_the_complex_graph():
    from models.evaluation.harness import expand_model_names
    from models.evaluation.metrics import per_signature_pearson
    from models.evaluation.splits import make_split
    from models.registry import Resources, build_model
    from models.side_information import SideInformation

    df, graph = _gene_world()
    complexes = graph.iloc[:60].assign(weight=1.0, evidence="x")  # the within-cluster pairs; a column it drops
    split = make_split(df, "unseen-gene", seed=0)
    test, y = split.test, split.test["value"].to_numpy()
    res = Resources(side=SideInformation(complex_graph=complexes))
    assert list(res.complex_graph.columns) == ["source", "target", "weight"]
    corum = build_model("corum_knn", seed=0, resources=res).fit(split.train, split.valid)
    direct = NetworkKNN(complexes[["source", "target"]], weighted=False).fit(split.train, split.valid)
    np.testing.assert_allclose(corum.predict(test), direct.predict(test))
    context_mean = ContextReadoutMean().fit(split.train).predict(test)
    assert per_signature_pearson(test, y, corum.predict(test)) > per_signature_pearson(test, y, context_mean) + 0.3
    # network_knn reads the STRING field, empty here: the context mean; the harness runs only what applies.
    network = build_model("network_knn", seed=0, resources=res).fit(split.train, split.valid)
    np.testing.assert_allclose(network.predict(test), context_mean)
    names = expand_model_names(["baselines"], df, res)
    assert "corum_knn" in names and "network_knn" not in names
    assert "corum_knn" not in expand_model_names(["baselines"], df, Resources())


def test_corum_gene_graph_links_every_two_members_once(tmp_path, monkeypatch):
    from graph.settings import reload_settings
    from models.datasets import corum_gene_graph

    (tmp_path / "networks").mkdir()
    (tmp_path / "networks" / "corum_allComplexes_2018-06-27.txt").write_text(
        "ComplexID\tComplexName\tOrganism\tsubunits(Gene name)\n"
        "1\tabc\tHuman\tC;A;B\n2\tbc\tHuman\tB;C;None\n3\tmouse\tMouse\tX;Y\n")
    monkeypatch.setenv("PERTURBGRAPH_SHARED_DATA", str(tmp_path))
    reload_settings()
    try:
        every, within = corum_gene_graph(), corum_gene_graph(genes=["A", "B", "X", "Y"])
    finally:
        monkeypatch.undo()
        reload_settings()
    assert list(zip(every["source"], every["target"], strict=True)) == [("A", "B"), ("A", "C"), ("B", "C")]
    assert (every["weight"] == 1.0).all()
    assert list(zip(within["source"], within["target"], strict=True)) == [("A", "B")]


# --- mechanism_knn -----------------------------------------------------------------------------------


def _annotations():
    from models.side_information import CompoundAnnotation as A

    return {"a": A(("X",), ("m1",), "a"), "b": A(("X", "Y"), ("m1",), "b"), "c": A(("Z",), ("m2",), "c"),
            "q": A(("X",), ("m1",), "q"), "weak": A(("X", "Y", "Z", "W"), (), "weak"),
            "a salt": A((), (), "a")}


def _mechanism_train():
    # Context A means: r1 = 2, r2 = 1; residuals a = (2, -1), b = (-1, 2), c = (-1, -1).
    return pd.DataFrame([
        ("A", "a", "compound", "r1", 4.0), ("A", "a", "compound", "r2", 0.0),
        ("A", "b", "compound", "r1", 1.0), ("A", "b", "compound", "r2", 3.0),
        ("A", "c", "compound", "r1", 1.0), ("A", "c", "compound", "r2", 0.0),
    ], columns=COLS)


def test_mechanism_knn_exact_similarity_weighted_mean_and_never_itself():
    m = MechanismKNN(_annotations(), min_similarity=1.0, shrinkage=1.0).fit(_mechanism_train())
    # q ~ a: J(targets) 1 + J(moa) 1 = 2; q ~ b: 1/2 + 1 = 1.5; q ~ c: 0 (not a neighbour).
    assert m.similarity("q", "a") == 2.0 and m.similarity("q", "b") == 1.5 and m.similarity("q", "c") == 0.0
    q = _query(("A", "q", "r1"), ("A", "q", "r2"))
    assert m.predict(q) == pytest.approx([2 + (2 * 2 - 1.5) / 3.5, 1 + (-2 + 3) / 3.5])
    # a was measured: its prediction comes from b alone (similarity 1.5), never from a itself.
    assert m.predict(_query(("A", "a", "r1"))) == pytest.approx([2 - 1.0])
    # Another salt form of a (no annotation of its own) shares only the parent: a's profile; below the
    # default min_similarity (1.5) that alone is not enough: the context mean.
    assert m.predict(_query(("A", "a salt", "r1"), ("A", "a salt", "r2"))) == pytest.approx([4.0, 0.0])
    default = MechanismKNN(_annotations(), shrinkage=1.0).fit(_mechanism_train())
    assert default.predict(_query(("A", "a salt", "r1"))) == pytest.approx([2.0])
    # Below min_similarity (1/4 target overlap), unannotated, or no neighbour in the context: context mean.
    rest = _query(("A", "weak", "r1"), ("A", "unknown", "r1"), ("B", "q", "r1"))
    assert m.predict(rest) == pytest.approx([2.0, 2.0, m._context_mean(rest)[2]])
    assert MechanismKNN(_annotations(), min_similarity=0.2, shrinkage=1.0).fit(_mechanism_train()).predict(
        _query(("A", "weak", "r1"))) == pytest.approx([2 + (0.25 * 2 + 0.5 * -1 + 0.25 * -1) / 1.0])
    # Count prior k: the mean scaled by W / (W + k), W = 3.5 the summed similarity; shrinkage s scales it.
    m.count_prior_, m.shrinkage_ = 3.5, 0.5
    assert m.predict(q) == pytest.approx([2 + 0.25 * 2.5 / 3.5, 1 + 0.25 / 3.5])
    assert m.describe().endswith("1 of 1 predicted compounds had an annotated neighbour")


def _moa_world(n_groups=6, size=5, n_readout=20, noise=0.2, seed=0):
    """Compounds in mechanism groups: a group's compounds share its response (scaled per context) + noise."""
    from models.side_information import CompoundAnnotation

    rng = np.random.default_rng(seed)
    profile = rng.normal(size=(n_groups, n_readout))
    rows, ann = [], {}
    for c, scale in (("A", 1.0), ("B", 0.6)):
        offset = 0.3 * rng.normal(size=n_readout)
        for k in range(n_groups):
            for i in range(size):
                v = offset + scale * profile[k] + noise * rng.normal(size=n_readout)
                rows += [(c, f"d{k}_{i}", "compound", f"r{r}", v[r]) for r in range(n_readout)]
                ann[f"d{k}_{i}"] = CompoundAnnotation((f"T{k}",), (f"moa {k}",), f"d{k}_{i}")
    return pd.DataFrame(rows, columns=COLS), ann


def test_mechanism_knn_predicts_unseen_compounds_and_chooses_shrinkage_on_validation_only():
    from models.evaluation.harness import Resources, build_model, evaluate_model, expand_model_names
    from models.evaluation.metrics import per_signature_pearson
    from models.evaluation.splits import make_split
    from models.side_information import SideInformation

    df, ann = _moa_world()
    clean, poisoned = make_split(df, "unseen-compound", seed=0), make_split(df, "unseen-compound", seed=0)
    poisoned.test["value"] = np.random.default_rng(5).normal(scale=50.0, size=len(poisoned.test))
    res = Resources(side=SideInformation(compound_annotations=ann))
    a, b = build_model("mechanism_knn", seed=0, resources=res), MechanismKNN(ann)
    evaluate_model(a, clean), evaluate_model(b, poisoned)
    assert a.shrinkage_ == b.shrinkage_ > 0 and a.scores_ == b.scores_
    test, y = clean.test, clean.test["value"].to_numpy()
    cm = ContextReadoutMean().fit(clean.train).predict(test[COLS[:4]])
    assert per_signature_pearson(test, y, a.predict(test[COLS[:4]])) > per_signature_pearson(test, y, cm) + 0.3
    # Mirrored validation residuals: no shrinkage helps, 0 is chosen; no validation rows: the default.
    valid = clean.valid
    mean = ContextReadoutMean().fit(clean.train).predict(valid[COLS[:4]])
    mirrored = valid.assign(value=2 * mean - valid["value"].to_numpy())
    assert MechanismKNN(ann).fit(clean.train, mirrored).shrinkage_ == 0.0
    assert MechanismKNN(ann).fit(clean.train).shrinkage_ == MechanismKNN.DEFAULT_SHRINKAGE
    # The harness runs it only where compounds have annotations.
    assert "mechanism_knn" in expand_model_names(["baselines"], df, res)
    assert "mechanism_knn" not in expand_model_names(["baselines"], df, Resources())


def test_mechanism_knn_saved_state_predicts_identically(tmp_path):
    from models.evaluation.splits import make_split

    df, ann = _moa_world()
    split = make_split(df, "unseen-compound", seed=0)
    model = MechanismKNN(ann).fit(split.train, split.valid)
    params, arrays = model.state()
    np.savez(tmp_path / "state.npz", **arrays)
    with np.load(tmp_path / "state.npz", allow_pickle=False) as npz:
        loaded = MechanismKNN.from_state(params, {k: npz[k] for k in npz.files})
    rows = split.test.drop(columns="value")
    np.testing.assert_array_equal(loaded.predict(rows), model.predict(rows))
    assert loaded.compound_annotations == model.compound_annotations and loaded.describe() == model.describe()
    arrays.pop("moa.item")
    with pytest.raises(ValueError, match="saved state lacks"):
        MechanismKNN.from_state(params, arrays)
