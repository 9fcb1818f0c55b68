"""GraphBase with network_knn's estimator (LPMConfig.graph_base_knn, issue 17 H4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from models.evaluation.baselines import NetworkKNN
from models.lpm import BASE_CANDIDATES, LPM, LPMConfig
from models.residual_base import GraphBase
from models.side_information import SideInformation


def test_weighted_neighbours_are_network_knns():
    # knock-down k targets node k-1; edges 0-1 (0.9, and a weaker duplicate 0.2), 1-2 (0.7), 2-3 (0.8)
    kd_nodes = torch.tensor([[-1], [0], [1], [2], [3], [1]])  # knock-down 5 targets node 1 too
    g = GraphBase(1, 2, kd_nodes, torch.arange(6), knn=True)
    edges = torch.tensor([[0, 1, 0, 1, 1, 2, 2, 3], [1, 0, 1, 0, 2, 1, 3, 2]])
    w = torch.tensor([0.9, 0.9, 0.2, 0.2, 0.7, 0.7, 0.8, 0.8])
    nb = g.weighted_neighbours(kd_nodes[1:], torch.arange(1, 6), edges, w, 4)
    expected = [[0, 0, 0.9, 0, 0, 0.9],  # node 0: the strongest edge to node 1's knock-downs
                [0, 0.9, 0, 0.7, 0, 0],  # node 1: never itself, nor knock-down 5 (the same gene)
                [0, 0, 0.7, 0, 0.8, 0.7],
                [0, 0, 0, 0.8, 0, 0],
                [0, 0.9, 0, 0.7, 0, 0]]
    np.testing.assert_allclose(nb.numpy(), expected)
    assert "count_prior" in g.state_dict() and "count_prior" not in GraphBase(1, 2, kd_nodes, torch.arange(6)).state_dict()


def _world():
    """3 gene modules x 6 genes, a knock-down's response = its module's profile + noise, 2 lines;
    weighted graph edges inside modules; held-out and validation genes in both lines."""
    rng = np.random.default_rng(1)
    genes = [f"t{m}_{i}" for m in range(3) for i in range(6)]
    readouts = [f"r{k}" for k in range(10)]
    prof, offset = rng.normal(size=(3, 10)), rng.normal(size=(2, 10))
    rows = [(f"c{c}", f"KO_{g}", "CRISPRi", r, float(offset[c, k] + prof[int(g[1]), k] + 0.5 * rng.normal()))
            for c in range(2) for g in genes for k, r in enumerate(readouts)]
    df = pd.DataFrame(rows, columns=["context", "perturbation", "perturbation_type", "readout", "value"])
    edges = [(f"t{m}_{i}", f"t{m}_{j}", float(rng.uniform(0.7, 1.0))) for m in range(3) for i in range(6)
             for j in range(i + 1, 6) if rng.random() < 0.6]
    graph = pd.DataFrame(edges, columns=["source", "target", "weight"])
    side = SideInformation(gene_graph=graph, perturbation_targets={f"KO_{g}": [g] for g in genes})
    held = df.perturbation.isin([f"KO_t{m}_0" for m in range(3)])
    val = df.perturbation.isin([f"KO_t{m}_{i}" for m in range(3) for i in (1, 2)])
    return df[~held & ~val], df[val], df[held], side


def test_knn_graph_base_is_network_knn_on_held_out_genes_and_never_reads_its_own_values(tmp_path):
    train, valid, test, side = _world()
    cfg = LPMConfig(graph_base=True, graph_base_knn=True, shrink_cross_base=True, base_choice="fixed", embed_dim=8, hidden_dim=16,
                    encoder_hidden=16, max_epochs=2, batch_triples=100, use_compound_encoder=False,
                    use_context_features=False)
    m = LPM(cfg, side=side).fit(train, valid, progress=False, device="cpu")
    knn = NetworkKNN(side.gene_graph, side.perturbation_targets).fit(train, valid)
    g = m.module.graph_base
    assert (float(g.shrink), float(g.count_prior)) == (knn.shrinkage_, knn.count_prior_)  # the same choice
    np.testing.assert_allclose(m.predict_base(test), knn.predict(test), atol=1e-9)  # the base is network_knn
    # A training knock-down's neighbour term never reads its own values (its graph neighbours' only).
    ko = "KO_t1_3"
    moved = train.assign(value=np.where(train.perturbation == ko, train.value + 50.0, train.value))
    m2 = LPM(cfg, side=side).fit(moved, valid, progress=False, device="cpu")
    own, other = train.perturbation == ko, train.perturbation == "KO_t1_4"
    perts = sorted(train.perturbation.unique())
    t = m._tables(sorted(train.context.unique()), perts)
    val = torch.from_numpy(train.value.to_numpy(np.float64))
    terms = []
    for model, v in ((m, val), (m2, torch.from_numpy(moved.value.to_numpy(np.float64)))):
        _, nb, cnt = model._base_parts(train, t, perts, v)
        terms.append(nb.numpy())
    np.testing.assert_allclose(terms[0][own.to_numpy()], terms[1][own.to_numpy()], atol=1e-9)
    assert not np.allclose(terms[0][other.to_numpy()], terms[1][other.to_numpy()])  # a neighbour's does move
    # Saved and loaded: the same predictions (shrink and count prior travel as buffers).
    m.save(tmp_path / "k.pt")
    back = LPM.load(tmp_path / "k.pt")
    np.testing.assert_array_equal(back.predict(test), m.predict(test))
    assert float(back.module.graph_base.count_prior) == float(g.count_prior)


def test_knn_graph_base_without_validation_rows_takes_network_knns_default():
    train, _, test, side = _world()
    cfg = LPMConfig(graph_base=True, graph_base_knn=True, base_choice="fixed", embed_dim=8, hidden_dim=16, encoder_hidden=16,
                    max_epochs=1, batch_triples=100, use_compound_encoder=False, use_context_features=False)
    g = LPM(cfg, side=side).fit(train, None, progress=False, device="cpu").module.graph_base
    assert float(g.shrink) == pytest.approx(NetworkKNN.DEFAULT_SHRINKAGE) and float(g.count_prior) == 0.0


def _lines(n_ctx=5, n_pert=24, n_readout=12, seed=0):
    """Tahoe-like lines: line L0 responds like L1 (scaled), the others have their own responses."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(n_pert, n_readout))
    rows = []
    for c in range(n_ctx):
        effect = 0.8 * shared if c == 0 else shared if c == 1 else rng.normal(size=(n_pert, n_readout))
        v = rng.normal(size=n_readout) + effect + 0.05 * rng.normal(size=effect.shape)
        rows += [(f"L{c}", f"d{p}", "compound", f"r{r}", v[p, r]) for p in range(n_pert) for r in range(n_readout)]
    return pd.DataFrame(rows, columns=["context", "perturbation", "perturbation_type", "readout", "value"])


def test_similar_contexts_base_is_the_baseline_and_never_reads_its_own_line(tmp_path):
    from models.evaluation.baselines import SimilarContexts
    from models.evaluation.splits import make_split

    split = make_split(_lines(), "unseen-experiment", context="L0", seed=0)
    train, valid, test = split.train, split.valid, split.test
    cfg = LPMConfig(similar_contexts_base=True, shrink_cross_base=False, base_choice="fixed", embed_dim=8, hidden_dim=16,
                    encoder_hidden=16, max_epochs=1, batch_triples=100, use_compound_encoder=False,
                    use_context_features=False, use_gene_graph=False, use_targets=False)
    m = LPM(cfg).fit(train, valid, progress=False, device="cpu")
    sc = SimilarContexts().fit(train, valid)
    np.testing.assert_allclose(m.predict_base(test), sc.predict(test), atol=1e-9)  # the base is similar_contexts
    plain = LPM(LPMConfig(**{**cfg.to_dict(), "similar_contexts_base": False})).fit(train, valid, progress=False,
                                                                                   device="cpu")
    assert not np.allclose(plain.predict_base(test), sc.predict(test))  # the default base weighs lines equally
    # A training row's weighted term reads the other lines only: moving its own line's values leaves it.
    base, rows = m.module.base, m._base_rows(train)
    before, _ = base.weighted_term(*rows)
    own = rows[0] == 1 + m.vocab["context"].index("L0")
    moved = base.resid.clone()
    moved[1 + m.vocab["context"].index("L0")] += 50.0
    base.resid.copy_(moved)
    after, _ = base.weighted_term(*rows)
    np.testing.assert_allclose(after[own].numpy(), before[own].numpy(), atol=1e-9)
    assert not np.allclose(after[~own].numpy(), before[~own].numpy())  # other lines do read L0
    # Saved and loaded: the weights and residuals travel as buffers.
    m2 = LPM(cfg).fit(train, valid, progress=False, device="cpu")
    m2.save(tmp_path / "s.pt")
    np.testing.assert_array_equal(LPM.load(tmp_path / "s.pt").predict(test), m2.predict(test))


def _families(n_ctx=5, n_fam=4, per_fam=6, n_readout=12, seed=0):
    """Drug families respond alike in every line; line L0 copies L1 (scaled) plus a deviation of each family's
    own, which only the family's other members measured in L0 reveal (the similar_perturbations term)."""
    rng = np.random.default_rng(seed)
    fam = np.repeat(np.arange(n_fam), per_fam)
    shared = rng.normal(size=(len(fam), n_readout)) + 2.0 * rng.normal(size=(n_fam, n_readout))[fam]
    deviation = 1.5 * rng.normal(size=(n_fam, n_readout))[fam]
    rows = []
    for c in range(n_ctx):
        line = rng.normal(size=(n_fam, n_readout))[fam]
        effect = 0.8 * shared + deviation if c == 0 else shared + line
        v = rng.normal(size=n_readout) + effect + 0.05 * rng.normal(size=effect.shape)
        rows += [(f"L{c}", f"d{p}", "compound", f"r{r}", v[p, r]) for p in range(len(fam)) for r in range(n_readout)]
    return pd.DataFrame(rows, columns=["context", "perturbation", "perturbation_type", "readout", "value"])


def test_similar_perturbations_base_is_the_baseline_is_chosen_where_it_scores_best_and_travels(tmp_path, monkeypatch):
    from models.evaluation.baselines import SimilarContexts, SimilarPerturbations
    from models.evaluation.splits import make_split

    split = make_split(_families(), "unseen-experiment", context="L0", seed=0)
    train, valid, test = split.train, split.valid, split.test
    flags = dict(use_gene_graph=False, use_targets=False)
    cfg = _small(base_choice="fixed", shrink_cross_base=False, **BASE_CANDIDATES["similar_perturbations"], **flags)
    m = LPM(cfg).fit(train, valid, progress=False, device="cpu")
    sp = SimilarPerturbations().fit(train, valid)
    assert sp.strength_ > 0  # the families' deviation is there to find
    np.testing.assert_allclose(m.predict_base(test), sp.predict(test), atol=1e-9)  # the base is the baseline
    assert not np.allclose(m.predict_base(test), SimilarContexts().fit(train, valid).predict(test))
    m.save(tmp_path / "p.pt")  # the neighbour term travels as a buffer
    back = LPM.load(tmp_path / "p.pt")
    assert "base.nb_term" in back.module.state_dict()
    np.testing.assert_array_equal(back.predict(test), m.predict(test))
    # Chosen on validation over similar_contexts where it scores better there; the very model trained. The
    # baseline is fitted once for the candidates and the final base, not once per use.
    fits = []
    monkeypatch.setattr(SimilarPerturbations, "fit", lambda self, *a, _fit=SimilarPerturbations.fit: (
        fits.append(1), _fit(self, *a))[1])
    chosen = LPM(_small(base_choice="validation", shrink_cross_base=False, **flags)).fit(train, valid, progress=False,
                                                                                       device="cpu")
    assert len(fits) == 1
    sel = chosen.base_selection
    assert sel["chosen"] == "similar_perturbations"
    assert sel["validation"]["similar_perturbations"] > sel["validation"]["similar_contexts"] + 0.02
    np.testing.assert_array_equal(chosen.predict(test), m.predict(test))
    with pytest.raises(ValueError, match="set similar_contexts_base=True as well"):
        LPM(_small(base_choice="fixed", similar_perturbations_base=True, **flags)).fit(train, valid, progress=False,
                                                                                      device="cpu")


def test_similar_contexts_base_refuses_data_above_the_baselines_memory_cap(monkeypatch):
    from models.evaluation.baselines import SimilarContexts
    from models.evaluation.splits import make_split

    split = make_split(_lines(), "unseen-experiment", context="L0", seed=0)
    monkeypatch.setattr(SimilarContexts.__init__, "__defaults__", (None, SimilarContexts.GRID, 10))
    cfg = LPMConfig(similar_contexts_base=True, base_choice="fixed", embed_dim=8, hidden_dim=16, encoder_hidden=16, max_epochs=1,
                    batch_triples=100, use_compound_encoder=False, use_context_features=False,
                    use_gene_graph=False, use_targets=False)
    with pytest.raises(ValueError, match="similar_contexts_base needs a dense"):
        LPM(cfg).fit(split.train, split.valid, progress=False, device="cpu")


# ---------------------------------------------------------------- LPMConfig.base_choice = "validation"
def _small(**cfg):
    return LPMConfig(embed_dim=8, hidden_dim=16, encoder_hidden=16, max_epochs=1, batch_triples=100,
                     use_compound_encoder=False, use_context_features=False, **cfg)


def test_base_choice_takes_the_weighted_lines_where_they_score_best_and_trains_that_very_model(tmp_path):
    from models.evaluation.baselines import OtherContextsMean, SimilarContexts
    from models.evaluation.metrics import evaluate_predictions
    from models.evaluation.splits import make_split

    split = make_split(_lines(), "unseen-experiment", context="L0", seed=0)
    train, valid, test = split.train, split.valid, split.test
    flags = dict(use_gene_graph=False, use_targets=False)
    m = LPM(_small(base_choice="validation", **flags)).fit(train, valid, progress=False, device="cpu")
    sel = m.base_selection
    r = {name: evaluate_predictions(valid, b.fit(train, valid).predict(valid))["pearson_per_signature"]
         for name, b in (("cross_context", OtherContextsMean()), ("similar_contexts", SimilarContexts()))}
    assert sel["chosen"] == "similar_contexts" and r["similar_contexts"] > r["cross_context"] + 0.05
    assert sel["validation"]["similar_contexts"] == pytest.approx(r["similar_contexts"], abs=1e-5)
    assert set(sel["skipped"]) == {"graph_knn", "similar_contexts+graph_knn",
                                   "similar_perturbations+graph_knn"}  # no gene graph: said why
    assert m.config.similar_contexts_base and m.requested_config.base_choice == "validation"
    # One network, the one the fixed option trains with the same seed: the choice only sets the base.
    fixed = LPM(_small(similar_contexts_base=True, base_choice="fixed", **flags)).fit(train, valid, progress=False, device="cpu")
    np.testing.assert_array_equal(m.predict(test), fixed.predict(test))
    assert m.describe_base().startswith("similar_contexts (chosen on validation pearson_per_signature of each base "
                                        "alone: cross_context 0.")
    assert fixed.describe_base() == "similar_contexts (fixed)"
    m.save(tmp_path / "c.pt")
    back = LPM.load(tmp_path / "c.pt")
    assert back.base_selection == sel and back.config.similar_contexts_base
    np.testing.assert_array_equal(back.predict(test), m.predict(test))
    # Refitted on two lines, the same object chooses again from its request (one other line still weighs);
    # a config assigned after a fit is the new request.
    two = make_split(_lines()[lambda d: d.context.isin(["L0", "L1"])], "unseen-experiment", context="L0", seed=0)
    m.fit(two.train, two.valid, progress=False, device="cpu")
    assert set(m.base_selection["validation"]) == {"cross_context", "similar_contexts", "similar_perturbations"}
    m.config = _small(base_choice="fixed", **flags)
    m.fit(two.train, two.valid, progress=False, device="cpu")
    assert m.base_selection == {} and not m.config.similar_contexts_base


def test_base_choice_takes_the_graph_term_for_knock_downs_of_genes_measured_nowhere():
    train, valid, test, side = _world()
    m = LPM(_small(base_choice="validation"), side=side).fit(train, valid, progress=False, device="cpu")
    sel = m.base_selection
    assert set(sel["validation"]) == set(BASE_CANDIDATES)
    assert "graph_knn" in sel["chosen"] and m.config.graph_base and m.config.graph_base_knn
    assert sel["validation"][sel["chosen"]] > sel["validation"]["cross_context"] + 0.1  # validation genes are unseen
    knn = NetworkKNN(side.gene_graph, side.perturbation_targets).fit(train, valid)
    if sel["chosen"] == "graph_knn":
        np.testing.assert_allclose(m.predict_base(test), knn.predict(test), atol=1e-9)


def test_base_choice_without_validation_rows_keeps_the_cross_context_base_and_says_so():
    train, _, _, side = _world()
    m = LPM(_small(base_choice="validation"), side=side).fit(train, None, progress=False, device="cpu")
    sel = m.base_selection
    assert sel["chosen"] == "cross_context" and sel["validation"] == {} and not m.config.graph_base
    assert all("no validation rows" in why for why in sel["skipped"].values()) and len(sel["skipped"]) == 5


def test_base_choice_refuses_unknown_values_and_leaves_a_plain_model_without_a_base():
    train, valid, _, side = _world()
    with pytest.raises(ValueError, match="base_choice must be one of"):
        LPM(_small(base_choice="best"), side=side).fit(train, valid, progress=False, device="cpu")
    plain = LPM(_small(base_choice="validation", residual=False), side=side).fit(train, valid, progress=False,
                                                                                device="cpu")
    assert plain.base_selection == {} and plain.module.base is None and plain.module.graph_base is None


def test_base_choice_trained_keeps_the_lpm_with_the_best_validation_r_and_is_that_very_model():
    from models.evaluation.metrics import evaluate_predictions
    from models.evaluation.splits import make_split

    split = make_split(_lines(), "unseen-experiment", context="L0", seed=0)
    train, valid, test = split.train, split.valid, split.test
    flags = dict(use_gene_graph=False, use_targets=False)
    m = LPM(_small(base_choice="trained", **flags)).fit(train, valid, progress=False, device="cpu")
    sel = m.base_selection
    assert sel["by"] == "trained LPM" and set(sel["validation"]) == {"cross_context", "similar_contexts",
                                                                     "similar_perturbations"}
    fixed = {name: LPM(_small(base_choice="fixed", **BASE_CANDIDATES[name], **flags))
             .fit(train, valid, progress=False, device="cpu") for name in sel["validation"]}
    r = {name: evaluate_predictions(valid, f.predict(valid))["pearson_per_signature"] for name, f in fixed.items()}
    assert sel["validation"] == pytest.approx(r, abs=1e-6) and sel["chosen"] == max(r, key=r.get)
    np.testing.assert_array_equal(m.predict(test), fixed[sel["chosen"]].predict(test))
    assert m.requested_config.base_choice == "trained" and "of each trained LPM" in m.describe_base()
    with pytest.raises(ValueError, match="resume and data-parallel runs are not supported"):
        LPM(_small(base_choice="trained", **flags)).fit(train, valid, progress=False, device="cpu", resume=True)
