from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from models.lpm import LPM
from models.module import LPMConfig
from models.side_information import SideInformation

torch.set_num_threads(1)
SMILES = {"d0": "CCO", "d1": "c1ccccc1", "d2": "CC(=O)O", "d3": "CCN", "d4": "c1ccncc1", "d5": "OCCO",
          "dNew": "CC(=O)Nc1ccc(O)cc1", "dNew2": "CN1CCC[C@H]1c1cccnc1"}
GRAPH = pd.DataFrame({"source": ["g0", "g1", "g2", "gX"], "target": ["g1", "g2", "gX", "g3"], "weight": [1.0, 0.5, 0.7, 1.0]})


def table(seed=0, contexts=("A", "B", "C"), perts=("d0", "d1", "d2", "d3", "d4", "d5", "KO1")):
    rng = np.random.default_rng(seed)
    genes = [f"g{i}" for i in range(8)]
    rows = [(c, p, "CRISPRi" if p.startswith("KO") else "compound", g, float(rng.normal()))
            for c in contexts for p in perts for g in genes if rng.random() < 0.85]
    return pd.DataFrame(rows, columns=["context", "perturbation", "perturbation_type", "readout", "value"])


def model(max_epochs=3, seed=0, **cfg):
    cf = pd.DataFrame(np.random.default_rng(1).normal(size=(4, 3)), index=["A", "B", "C", "Z"], columns=["f0", "f1", "f2"])
    cf.iloc[0, 1] = np.nan
    config = LPMConfig(embed_dim=16, hidden_dim=32, encoder_hidden=32, fp_bits=128, batch_triples=40,
                       max_epochs=max_epochs, **cfg)
    side = SideInformation(compound_smiles=SMILES, gene_graph=GRAPH, context_features=cf,
                           perturbation_targets={"KO1": ["g2"], "KO2": ["gX"]},
                           perturbation_doses={p: 10.0 for p in SMILES})
    return LPM(config, side=side, seed=seed)


@pytest.fixture(scope="module")
def fitted():
    return model().fit(table(), table(seed=1, perts=("d0", "dNew")), progress=False)


def test_fit_predict_shapes_and_history(fitted):
    rows = table(seed=2).head(20)
    y = fitted.predict(rows)
    assert y.shape == (20,) and y.dtype == np.float32 and np.isfinite(y).all()
    assert len(fitted.history) == 3 and {"train_loss", "valid_loss", "lr", "triples_per_s"} <= set(fitted.history[0])
    unseen = pd.DataFrame({"context": ["Z", "Q"], "perturbation": ["dNew+d0", "KO2"], "readout": ["gX", "nope"],
                           "perturbation_type": ["compound", "CRISPRi"]})
    assert np.isfinite(fitted.predict(unseen)).all()


def test_embeddings_frame_and_combination_mean(fitted):
    e = fitted.embeddings("perturbation", ["d0", "d1", "d0+d1"])
    assert list(e.columns) == [f"e{i}" for i in range(16)] and list(e.index) == ["d0", "d1", "d0+d1"]
    np.testing.assert_allclose(e.loc["d0+d1"], (e.loc["d0"] + e.loc["d1"]) / 2, atol=1e-6)
    assert fitted.embeddings("context").shape == (3, 16)
    with pytest.raises(ValueError):
        fitted.embeddings("cells")


def test_unseen_symbols_come_from_encoders(fitted):
    e = fitted.embeddings("perturbation", ["dNew", "dNew2", "unknown-no-structure"])
    assert not np.allclose(e.loc["dNew"], e.loc["dNew2"])  # different SMILES, different embedding
    assert np.abs(e.loc["dNew"]).sum() > 0  # not just the zero unknown slot
    assert (e.loc["unknown-no-structure"] == 0).all()  # nothing known about it
    ko = fitted.embeddings("perturbation", ["KO2"])  # unseen knock-down of a graph-only gene
    assert np.abs(ko.to_numpy()).sum() > 0
    r = fitted.embeddings("readout", ["gX", "not-a-gene"])
    assert np.abs(r.loc["gX"]).sum() > 0 and (r.loc["not-a-gene"] == 0).all()
    c = fitted.embeddings("context", ["Z", "Nowhere"])
    assert not np.allclose(c.loc["Z"], c.loc["Nowhere"])  # Z has cell-line features
    # changing the compound encoder's weights changes the unseen compound's embedding
    enc = fitted.module.comp_encoder[0].weight
    old = enc.detach().clone()
    with torch.no_grad():
        enc.add_(0.1)
    e2 = fitted.embeddings("perturbation", ["dNew"])
    with torch.no_grad():
        enc.copy_(old)
    assert not np.allclose(e.loc["dNew"], e2.loc["dNew"])


def test_checkpoint_round_trip_gives_identical_predictions(fitted, tmp_path):
    fitted.save(tmp_path / "m.pt")
    back = LPM.load(tmp_path / "m.pt")
    rows = pd.concat([table(seed=3), pd.DataFrame({"context": ["Z"], "perturbation": ["dNew"], "readout": ["gX"]})])
    np.testing.assert_array_equal(back.predict(rows), fitted.predict(rows))
    assert back.snapshot_id == fitted.snapshot_id and back.history == fitted.history
    assert back.vocab == fitted.vocab


def test_load_refuses_mismatched_vocab_and_truncated_files(fitted, tmp_path):
    path = tmp_path / "m.pt"
    fitted.save(path)
    p = load_checkpoint(path)
    tampered = dict(p, vocab={**p["vocab"], "context": p["vocab"]["context"] + ["EXTRA"]})
    torch.save(tampered, tmp_path / "edited.pt")  # vocab edited, hash stale
    with pytest.raises(CheckpointError, match="hash"):
        LPM.load(tmp_path / "edited.pt")
    save_checkpoint(tmp_path / "resaved.pt", tampered)  # consistent hash, but weights have 3+1 context rows
    with pytest.raises(CheckpointError, match="weights do not match"):
        LPM.load(tmp_path / "resaved.pt")
    dims = dict(p, feature_dims={"context": 99, "compound": p["feature_dims"]["compound"]})
    save_checkpoint(tmp_path / "dims.pt", dims)
    with pytest.raises(CheckpointError, match="feature dims"):
        LPM.load(tmp_path / "dims.pt")
    data = path.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        LPM.load(tmp_path / "trunc.pt")


def test_resume_reaches_the_uninterrupted_result(tmp_path):
    train, valid = table(), table(seed=1)
    full = model(max_epochs=4).fit(train, valid, progress=False)
    model(max_epochs=2).fit(train, valid, progress=False, checkpoint=tmp_path / "run.pt")
    resumed = model(max_epochs=4).fit(train, valid, progress=False, checkpoint=tmp_path / "run.pt", resume=True)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    np.testing.assert_allclose(resumed.predict(valid), full.predict(valid), atol=1e-5)
    with pytest.raises(CheckpointError, match="vocabulary"):
        model(max_epochs=4).fit(table(contexts=("A", "B")), None, progress=False, checkpoint=tmp_path / "run.pt", resume=True)


def test_paper_config_learns_on_a_tiny_problem():
    rng = np.random.default_rng(0)
    u, v, w = rng.normal(size=(3, 2)), rng.normal(size=(8, 2)), rng.normal(size=(20, 2))
    rows = [(f"c{i}", f"p{j}", "compound", f"g{k}", float((u[i] + v[j]) @ w[k])) for i in range(3) for j in range(8) for k in range(20)]
    df = pd.DataFrame(rows, columns=["context", "perturbation", "perturbation_type", "readout", "value"])
    m = LPM(LPMConfig.paper(embed_dim=16, hidden_dim=64, dropout=0.0, batch_triples=60, max_epochs=40, lr=5e-3)).fit(df, progress=False)
    base = float(((df.value - df.groupby("readout").value.transform("mean")) ** 2).mean())
    mse = float(((m.predict(df) - df.value) ** 2).mean())
    assert mse < 0.25 * base


def test_residual_checkpoint_round_trip_predicts_identically(tmp_path):
    m = model(residual=True, base_choice="fixed").fit(table(), table(seed=1, perts=("d0", "dNew")), progress=False)
    m.save(tmp_path / "r.pt")
    back = LPM.load(tmp_path / "r.pt")
    rows = pd.concat([table(seed=3), pd.DataFrame({"context": ["Z"], "perturbation": ["dNew"], "readout": ["gX"]})])
    np.testing.assert_array_equal(back.predict(rows), m.predict(rows))
    assert torch.equal(back.module.base.pert_sum, m.module.base.pert_sum) and m.module.base.pert_n.sum() > 0
    # the base is part of the prediction: removing it changes the answer
    back.module.base.pert_sum.zero_()
    assert not np.allclose(back.predict(rows), m.predict(rows))


def test_ema_checkpoint_round_trip_predicts_identically(tmp_path):
    m = model(ema_decay=0.9).fit(table(), table(seed=1, perts=("d0", "dNew")), progress=False)
    m.save(tmp_path / "e.pt")
    back = LPM.load(tmp_path / "e.pt")
    assert back.config.ema_decay == 0.9
    rows = pd.concat([table(seed=3), pd.DataFrame({"context": ["Z"], "perturbation": ["dNew"], "readout": ["gX"]})])
    np.testing.assert_array_equal(back.predict(rows), m.predict(rows))


def test_residual_lpm_recovers_an_additive_world():
    """value = context effect + perturbation effect (+ small noise): held-out experiments are
    answered by the additive base; the residual LPM must do at least as well as the plain one."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 10)), rng.normal(size=(12, 10))
    rows = [(f"c{i}", f"p{j}", "compound", f"g{k}", float(a[i, k] + b[j, k] + 0.05 * rng.normal()))
            for i in range(4) for j in range(12) for k in range(10)]
    df = pd.DataFrame(rows, columns=["context", "perturbation", "perturbation_type", "readout", "value"])
    held = df.context.eq("c0") & df.perturbation.isin(["p0", "p1", "p2"])
    val = df.context.eq("c0") & df.perturbation.isin(["p3", "p4"])
    train, valid, test = df[~held & ~val], df[val], df[held]
    cfg = dict(embed_dim=16, hidden_dim=32, dropout=0.0, batch_triples=60, max_epochs=15, lr=5e-3)
    mse = {}
    for residual in (False, True):
        m = LPM(LPMConfig.paper(residual=residual, **cfg)).fit(train, valid, progress=False)
        mse[residual] = float(((m.predict(test) - test.value) ** 2).mean())
    assert mse[True] <= mse[False]
    assert mse[True] < 0.05 * float(test.value.var())


def test_checkpoint_from_before_the_residual_option_loads_as_a_plain_model(tmp_path):
    m = model(max_epochs=1, residual=False).fit(table(), None, progress=False)
    m.save(tmp_path / "new.pt")
    p = load_checkpoint(tmp_path / "new.pt")
    old = dict(p, config={k: v for k, v in p["config"].items() if k != "residual"})
    save_checkpoint(tmp_path / "old.pt", old)
    back = LPM.load(tmp_path / "old.pt")
    assert back.config.residual is False and back.module.base is None
    np.testing.assert_array_equal(back.predict(table(seed=3)), m.predict(table(seed=3)))
    assert LPMConfig().residual and not LPMConfig.paper().residual


DATA = Path(__file__).parent / "data"


def test_checkpoint_written_before_side_information_loads_and_predicts_the_same():
    """lpm_checkpoint_v1.pt was saved by the LPM of commit 3b6861e (six side-information keyword
    arguments), with its predictions beside it: the on-disk layout did not change."""
    expected = pd.read_csv(DATA / "lpm_checkpoint_v1_predictions.csv")
    back = LPM.load(DATA / "lpm_checkpoint_v1.pt")
    assert back.side.perturbation_targets == {"KO1": ["g2"], "KO2": ["gX"]} and back.side.compound_smiles == SMILES
    assert list(back.side.context_features.index) == ["A", "B", "C", "Z"]
    got = back.predict(expected.drop(columns="prediction"))
    np.testing.assert_allclose(got, expected["prediction"].to_numpy(np.float32), rtol=1e-5, atol=1e-6)


def test_side_information_is_one_normalised_record():
    targets = {"KO1": ("g2",)}
    side = SideInformation(perturbation_targets=targets, perturbation_doses={"d0": 1}, gene_graph=GRAPH.assign(x=1))
    assert side.perturbation_targets == {"KO1": ["g2"]} and side.perturbation_targets is not targets
    assert isinstance(side.perturbation_doses["d0"], float) and list(side.gene_graph.columns) == ["source", "target", "weight"]
    assert side.compound_smiles == {} and side.context_features is None
    with pytest.raises(AttributeError):  # frozen
        side.compound_smiles = {}


def _neighbour_world():
    """4 gene modules x 6 genes; a knock-down's response = its module's profile (context-scaled) +
    noise, so a held-out gene's graph neighbours (its module) carry its answer. 2 contexts."""
    rng = np.random.default_rng(0)
    genes = [f"t{m}_{i}" for m in range(4) for i in range(6)]
    readouts = [f"r{k}" for k in range(12)]
    prof, offset = rng.normal(size=(4, 12)), rng.normal(size=(2, 12))
    rows = [(f"c{c}", f"KO_{g}", "CRISPRi", r, float(offset[c, k] + (1 + 0.5 * c) * prof[int(g[1]), k] + 0.1 * rng.normal()))
            for c in range(2) for g in genes for k, r in enumerate(readouts)]
    df = pd.DataFrame(rows, columns=["context", "perturbation", "perturbation_type", "readout", "value"])
    edges = [(f"t{m}_{i}", f"t{m}_{j}") for m in range(4) for i in range(6) for j in range(i + 1, 6)]
    side = SideInformation(gene_graph=pd.DataFrame(edges, columns=["source", "target"]),
                           perturbation_targets={f"KO_{g}": [g] for g in genes})
    held = df.perturbation.isin([f"KO_t{m}_0" for m in range(4)])  # unseen genes: never in training
    val = df.perturbation.isin([f"KO_t{m}_1" for m in range(4)])
    return df[~held & ~val], df[val], df[held], side


def test_graph_base_lpm_beats_the_plain_residual_lpm_on_held_out_genes(tmp_path):
    train, valid, test, side = _neighbour_world()
    cfg = dict(embed_dim=8, hidden_dim=32, encoder_hidden=16, dropout=0.0, batch_triples=100, max_epochs=10,
               lr=5e-3, use_compound_encoder=False, use_context_features=False)
    mse, models = {}, {}
    for graph in (False, True):
        m = LPM(LPMConfig(graph_base=graph, base_choice="fixed", **cfg), side=side).fit(train, valid, progress=False, device="cpu")
        mse[graph], models[graph] = float(((m.predict(test) - test.value) ** 2).mean()), m
    assert mse[True] < 0.5 * mse[False], mse
    g = models[True].module.graph_base
    assert 0.5 < float(g.shrink) <= 1.0  # fitted on training rows: neighbours carry most of the answer
    # save / load: buffers travel, predictions are identical
    models[True].save(tmp_path / "g.pt")
    back = LPM.load(tmp_path / "g.pt")
    np.testing.assert_array_equal(back.predict(test), models[True].predict(test))
    assert back.config.graph_base and torch.equal(back.module.graph_base.kd_sum, g.kd_sum) and g.kd_n.sum() > 0
    back.module.graph_base.kd_sum.zero_()  # the graph base is part of the answer
    assert not np.allclose(back.predict(test), models[True].predict(test))


def test_graph_base_changes_nothing_without_knock_downs():
    """Compounds have no target genes here (as on Tahoe): the graph base has no knock-down to average
    and makes no unseen copies, so the model and its predictions are the plain residual LPM's."""
    preds = [model(max_epochs=2, graph_base=graph, base_choice="fixed").fit(table(perts=("d0", "d1", "d2", "d3")), progress=False,
                                                        device="cpu").predict(table(seed=3)) for graph in (False, True)]
    np.testing.assert_array_equal(preds[0], preds[1])


def test_neighbour_embedding_lists_graph_neighbours_never_the_member_itself():
    train, valid, test, side = _neighbour_world()
    m = LPM(LPMConfig(neighbour_embedding=True, embed_dim=8, hidden_dim=16, encoder_hidden=8, max_epochs=1,
                      use_compound_encoder=False, use_context_features=False), side=side).fit(train, progress=False, device="cpu")
    t = m._tables([], ["KO_t0_2", "KO_t0_0"])  # a training knock-down and a held-out one
    members, sym = m.vocab["member"], t.mem_sym.tolist()
    names = [{members[j - 1] for j in row if j} for row in t.mem_nb.tolist()]
    assert names[1] == {"KO_t0_2", "KO_t0_3", "KO_t0_4", "KO_t0_5"}  # module 0's training knock-downs
    assert names[2] == {"KO_t0_3", "KO_t0_4", "KO_t0_5"} and sym[2] not in t.mem_nb[2].tolist()
    assert "nb_proj.weight" in m.module.state_dict()


def test_same_seed_same_model_whatever_the_gene_graphs_row_order_and_orientation():
    """One seed, one model: the LPM must not depend on the order of the gene graph's rows or on which end of
    an undirected edge is the source. It did: the message passing sums a node's neighbours in edge order,
    floating-point sums depend on that order, and training amplified the last-bit difference (make_results
    section 0 seed 2: per-signature r 0.8645 vs 0.8333 when the network reader started to write the same 61
    STRING edges in another order). A hub with 7 neighbours and irregular weights makes the order visible."""
    hub = pd.DataFrame({"source": ["g0"] * 7, "target": [f"g{i}" for i in range(1, 8)],
                        "weight": [0.31, 0.77, 0.113, 0.59, 0.947, 0.203, 0.661]})
    shuffled = hub.iloc[[3, 6, 0, 5, 2, 4, 1]].rename(columns={"source": "target", "target": "source"})
    cfg = LPMConfig(embed_dim=16, hidden_dim=32, encoder_hidden=32, fp_bits=128, batch_triples=40, max_epochs=3)
    train, valid, rows = table(), table(seed=1, perts=("d0", "dNew")), table(seed=3)
    preds = []
    for graph in (hub, shuffled, hub):
        torch.manual_seed(123)  # what ran before in the process must not matter either
        np.random.seed(123)
        m = LPM(cfg, side=SideInformation(compound_smiles=SMILES, gene_graph=graph,
                                          perturbation_targets={"KO1": ["g2"]}), seed=7)
        preds.append(m.fit(train, valid, progress=False, device="cpu").predict(rows))
    np.testing.assert_array_equal(preds[0], preds[2])  # same inputs, same seed
    np.testing.assert_array_equal(preds[0], preds[1])  # same graph, other row order and orientation


def test_fit_refuses_a_table_with_two_values_of_one_triple():
    """Replicate rows of one (context, perturbation, readout) are averaged before the model (the pipeline's
    training_set); LPM.fit names them instead of keeping one of them."""
    t = table()
    dup = pd.concat([t, t.iloc[[4]].assign(value=t["value"].iloc[4] + 1.0)], ignore_index=True)
    key = "|".join(t.iloc[4][["context", "perturbation", "readout"]])
    with pytest.raises(ValueError, match=rf"LPM.fit training rows: 1 .* keys .*{key} \(2 rows\)"):
        model().fit(dup, progress=False, device="cpu")
    with pytest.raises(ValueError, match="LPM.fit validation rows"):
        model().fit(t, dup, progress=False, device="cpu")


def test_validation_readouts_the_model_cannot_embed_are_left_out_of_validation_and_counted():
    """A validation readout with no gene node (not a training readout, target or gene-graph gene) has nothing
    to embed it: before, every such readout of an experiment fell into one dense cell (node -1) and one
    arbitrary value of them was scored. Now those rows are left out of validation, counted in
    `valid_unscored`; a graph-only gene (gX) is embedded through the graph and stays scored."""
    t, v = table(), table(seed=1, perts=("d0", "dNew"))
    graph_only = v[v.readout == "g2"].assign(readout="gX", value=lambda d: d.value + 0.5)
    unseen = pd.concat([v[v.readout == r].assign(readout=u, value=lambda d: d.value * 3 + 2)
                        for r, u in (("g0", "u0"), ("g1", "u1"))], ignore_index=True)
    scored = pd.concat([v, graph_only], ignore_index=True)
    m = model(max_epochs=1).fit(t, pd.concat([scored, unseen], ignore_index=True), progress=False, device="cpu")
    assert m.valid_unscored == {"rows": len(unseen), "readouts": 2, "examples": ["u0", "u1"]}
    mse = float(np.mean((m.predict(scored).astype(np.float64) - scored["value"].to_numpy()) ** 2))
    assert m.history[0]["valid_loss"] == pytest.approx(mse, rel=1e-5)
    same = model(max_epochs=1).fit(t, scored, progress=False, device="cpu")
    assert same.valid_unscored == {"rows": 0, "readouts": 0, "examples": []}
    assert same.history[0]["valid_loss"] == m.history[0]["valid_loss"]
