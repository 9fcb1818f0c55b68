"""models.discovery on tiny embeddings with planted structure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models import discovery as D


def _genes(n=60, d=32, seed=1):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, d)), index=[f"G{i}" for i in range(n)],
                        columns=[f"e{i}" for i in range(d)])


def test_cosine_and_normalise():
    a = np.array([[1.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
    s = D.cosine_matrix(a, a)
    assert s[0, 0] == pytest.approx(1.0)
    assert s[1].tolist() == [0.0, 0.0, 0.0]  # zero vector: similarity 0
    assert s[0, 2] == pytest.approx(0.6)


def test_aggregate_over_doses_mean_of_unit_vectors():
    emb = pd.DataFrame([[1.0, 0.0], [0.0, 10.0], [5.0, 5.0]], index=["c1@1uM", "c1@10uM", "other"],
                       columns=["e0", "e1"])
    out = D.aggregate_embeddings(emb, {"c1@1uM": "c1", "c1@10uM": "c1"})
    assert list(out.index) == ["c1"]  # names without a group are dropped
    assert out.loc["c1"].tolist() == pytest.approx([0.5, 0.5])  # large-norm dose does not dominate


def test_planted_compound_gets_its_gene_at_rank_one_with_small_p():
    genes = _genes()
    rng = np.random.default_rng(7)
    planted = {"drugA": "G3", "drugB": "G17", "drugC": "G42"}
    comp = pd.DataFrame({c: genes.loc[g].to_numpy() for c, g in planted.items()}).T
    # two compounds with no planted gene
    comp.loc["noise1"] = rng.normal(size=genes.shape[1])
    comp.loc["noise2"] = rng.normal(size=genes.shape[1])
    comp.columns = genes.columns
    links = D.mechanism_links(comp, genes, k=5, n_null=5000, annotated_targets={"drugA": ["G3", "G9"]}, seed=0)
    assert list(links.columns) == list(D.MECHANISM_COLUMNS)
    assert len(links) == 5 * 5
    top = links[links["rank"] == 1].set_index("compound")
    for c, g in planted.items():
        assert top.loc[c, "gene"] == g
        assert top.loc[c, "score"] == pytest.approx(1.0)
        assert top.loc[c, "pvalue"] <= 1 / 5001  # nothing in the null reaches it: the Gaussian tail, below
        assert top.loc[c, "qvalue"] < 0.05  # 60 genes x p=1/5001
        assert top.loc[c, "zscore"] > 4
    # non-planted links are not called significant after BH over the compound's genes
    others = links[~links.set_index(["compound", "gene"]).index.isin(list(planted.items()))]
    assert (others["qvalue"] > 0.05).all()
    assert others["zscore"].max() < top.loc[list(planted), "zscore"].min()
    # annotated target flag
    flagged = links[links["is_annotated_target"]]
    assert set(zip(flagged["compound"], flagged["gene"], strict=True)) <= {("drugA", "G3"), ("drugA", "G9")}
    assert ("drugA", "G3") in set(zip(flagged["compound"], flagged["gene"], strict=True))
    # ranks are 1..k per compound with decreasing scores
    for _, grp in links.groupby("compound"):
        assert grp["rank"].tolist() == [1, 2, 3, 4, 5]
        assert grp["score"].is_monotonic_decreasing


def test_null_pvalues_roughly_uniform_for_random_pairs():
    genes = _genes(n=200, d=16, seed=3)
    comp = _genes(n=20, d=16, seed=4)
    comp.index = [f"C{i}" for i in range(20)]
    links = D.mechanism_links(comp, genes, k=200, n_null=4000, centre=False, seed=1)
    # with all genes returned, p-values of unrelated pairs are ~U(0,1)
    frac = (links["pvalue"] < 0.05).mean()
    assert 0.02 < frac < 0.09


def test_mechanism_links_reject_mismatched_columns_and_nan():
    genes = _genes(n=5, d=4)
    with pytest.raises(ValueError):
        D.mechanism_links(genes.iloc[:, :3], genes)
    bad = genes.copy()
    bad.iloc[0, 0] = np.nan
    with pytest.raises(ValueError):
        D.mechanism_links(bad, genes)
    empty = D.mechanism_links(genes.iloc[:0], genes)
    assert empty.empty and list(empty.columns) == list(D.MECHANISM_COLUMNS)


def test_gene_interactions_planted_pair_and_prior_flag():
    genes = _genes(n=30, d=16, seed=5)
    genes.loc["G1"] = genes.loc["G0"] * 2 + 0.01  # G0 and G1 behave alike
    edges = D.gene_interactions(genes, k=3, prior_pairs=[("G1", "G0"), ("G5", "G6")])
    assert list(edges.columns) == list(D.INTERACTION_COLUMNS)
    assert (edges["source"] != edges["target"]).all()
    assert edges.groupby("source").size().eq(3).all()
    first = edges[edges["rank"] == 1].set_index("source")["target"]
    assert first["G0"] == "G1" and first["G1"] == "G0"
    row = edges[(edges["source"] == "G0") & (edges["target"] == "G1")].iloc[0]
    assert bool(row["in_prior"]) and row["score"] > 0.99
    assert edges["in_prior"].sum() >= 2  # G0->G1 and G1->G0


def test_top_effects_up_down_ranks():
    pred = pd.DataFrame({
        "perturbation": ["p"] * 5, "context": ["K562"] * 5,
        "readout": ["a", "b", "c", "d", "e"], "value": [3.0, -2.0, 0.0, 1.0, -5.0]})
    out = D.top_effects(pred, top_n=1)
    assert out[["readout", "direction", "rank"]].values.tolist() == [["e", "down", 1], ["a", "up", 1]]
    out2 = D.top_effects(pred, top_n=10)
    assert "c" not in set(out2["readout"])  # zero effect is neither up nor down
    assert out2[out2["direction"] == "up"]["readout"].tolist() == ["a", "d"]


def test_impute_effects_and_unmeasured_pairs():
    pairs = D.unmeasured_pairs(["p1", "p2"], ["A", "B"], measured=[("p1", "A")])
    assert sorted(map(tuple, pairs.values.tolist())) == [("p1", "B"), ("p2", "A"), ("p2", "B")]

    def predict(rows):  # a deterministic fake model: readout index times +1/-1 by perturbation
        sign = np.where(rows["perturbation"] == "p1", 1.0, -1.0)
        return sign * rows["readout"].str[1:].astype(float).to_numpy()

    out = D.impute_effects(predict, pairs, [f"r{i}" for i in range(1, 6)], top_n=2, max_rows=7)
    p1 = out[out["perturbation"] == "p1"]
    assert p1["readout"].tolist() == ["r5", "r4"] and set(p1["direction"]) == {"up"}
    p2 = out[(out["perturbation"] == "p2") & (out["context"] == "A")]
    assert p2["readout"].tolist() == ["r5", "r4"] and set(p2["direction"]) == {"down"}
    prof = D.response_profiles(predict, ["p1", "p2"], ["A"], ["r1", "r2"])
    assert prof.shape == (2, 2) and prof.loc["p2"].tolist() == [-1.0, -2.0]
    calls = []
    one_at_a_time = D.response_profiles(lambda rows: calls.append(len(rows)) or predict(rows), ["p1", "p2", "p3"],
                                        ["A", "B"], ["r1", "r2"], chunk_rows=5)  # 4 query rows per perturbation
    pd.testing.assert_frame_equal(one_at_a_time, D.response_profiles(predict, ["p1", "p2", "p3"], ["A", "B"],
                                                                     ["r1", "r2"]))
    assert calls == [4, 4, 4] and one_at_a_time.columns.tolist() == ["A|r1", "A|r2", "B|r1", "B|r2"]


def test_bh_qvalues_matches_definition():
    p = np.array([0.01, 0.04, 0.03, 0.5])
    q = D.bh_qvalues(p)
    # sorted 0.01,0.03,0.04,0.5 -> 0.04,0.06,0.0533,0.5 -> running min from the right
    assert q.tolist() == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5])


# ---------------------------------------------------------------------------------------------
# Calibrated mechanism links: BH over all pairs, permutation check, planted targets
# ---------------------------------------------------------------------------------------------


def _structured_world(seed=0, n_genes=200, n_comp=40, d=32, noise=0.7):
    """Gene embeddings with three strong shared axes (like real embeddings, not isotropic) and
    compounds that are a planted target's vector plus noise."""
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(3, d)) * 3
    genes = pd.DataFrame(rng.normal(size=(n_genes, 3)) @ factors + rng.normal(size=(n_genes, d)),
                         index=[f"G{i}" for i in range(n_genes)], columns=[f"e{i}" for i in range(d)])
    targets = rng.choice(n_genes, n_comp, replace=False)
    comp = pd.DataFrame(genes.to_numpy()[targets] + noise * rng.normal(size=(n_comp, d)),
                        index=[f"C{i}" for i in range(n_comp)], columns=genes.columns)
    return genes, comp, {f"C{i}": f"G{t}" for i, t in enumerate(targets)}, factors, rng


def test_mechanism_qvalues_are_bh_over_every_pair_not_per_compound():
    genes, comp, _, _, _ = _structured_world(n_genes=40, n_comp=6)
    links = D.mechanism_links(comp, genes, k=len(genes), n_null=500, fdr=0.1, seed=2)
    assert len(links) == 6 * 40  # k = all genes: every tested pair is returned
    assert links["qvalue"].to_numpy() == pytest.approx(D.bh_qvalues(links["pvalue"].to_numpy()))
    assert (links["significant"] == (links["qvalue"] <= 0.1)).all()
    with pytest.raises(ValueError):
        D.mechanism_links(comp, genes, fdr=0.0)


def test_planted_targets_are_significant_and_permuted_compounds_publish_nothing():
    """Calibration: with the compound -> gene relation broken (compound vectors' coordinates
    permuted; or compounds drawn with the genes' structure but no target), what is significant is
    at most 10% of what the real compounds give; the planted targets are found."""
    genes, comp, planted, factors, rng = _structured_world()
    real = D.mechanism_links(comp, genes, k=5, n_null=2000, fdr=0.1, seed=0)
    sig = real[real["significant"]]
    found = {(c, g) for c, g in zip(sig["compound"], sig["gene"], strict=True)}
    assert set(planted.items()) <= found  # every planted target is published
    assert len(sig) <= 1.25 * len(planted)  # and little else
    # top-k rows beyond the significant ones are kept (for --all), flagged not significant
    assert (~real["significant"]).sum() > 0 and real.groupby("compound")["rank"].min().eq(1).all()

    shuffled = comp.copy()
    shuffled[:] = np.take_along_axis(comp.to_numpy(), np.argsort(rng.random(comp.shape), axis=1), axis=1)
    axes = comp.copy()
    axes[:] = comp.to_numpy()[:, rng.permutation(comp.shape[1])]  # one relabelling of the axes for all
    unrelated = pd.DataFrame(rng.normal(size=(len(comp), 3)) @ factors + rng.normal(size=comp.shape),
                             index=comp.index, columns=comp.columns)  # same structure, no target
    for broken in (shuffled, axes, unrelated):
        null_sig = D.mechanism_links(broken, genes, k=5, n_null=2000, fdr=0.1, seed=0)["significant"].sum()
        assert null_sig <= 0.1 * len(sig), null_sig


def test_signatures_and_pattern_come_from_one_pivot_and_match_the_two_functions():
    table = pd.DataFrame({"context": ["c1", "c1", "c1", "c2"], "perturbation": ["KD:A", "KD:A", "KD:B", "KD:B"],
                          "readout": ["r1", "r2", "r1", "r2"], "value": [0.5, -1.0, 2.0, 0.0]})
    gene_of = {"KD:A": "A", "KD:B": "B"}
    signatures, measured = D.signatures_and_pattern(table, gene_of)
    pd.testing.assert_frame_equal(signatures, D.knockdown_signatures(table, gene_of))
    pd.testing.assert_frame_equal(measured, D.measured_pattern(table, gene_of))
    # a measured 0.0 (B in c2|r2) is measured; an absent cell (A in c2|r2) is not, though both signatures hold 0
    assert measured.loc["B", "c2|r2"] == 1.0 and measured.loc["A", "c2|r2"] == 0.0
    assert signatures.loc["B", "c2|r2"] == 0.0 and signatures.loc["A", "c2|r2"] == 0.0
