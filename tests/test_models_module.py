import pytest
import torch

from models.module import GeneEncoder, LPMConfig, LPMModule, SymbolTables

torch.set_num_threads(1)
D = 16


def make(cfg: LPMConfig | None = None, seed: int = 0):
    """3 contexts, 4 single perturbations (+ one combination), 6 gene nodes (5 learned, 1 graph-only)."""
    torch.manual_seed(seed)
    cfg = cfg or LPMConfig(embed_dim=D, hidden_dim=32, encoder_hidden=32, gnn_layers=2)
    ei = torch.tensor([[0, 1, 2, 3, 5, 1, 2, 3, 4, 4], [1, 2, 3, 4, 4, 0, 1, 2, 3, 5]])
    m = LPMModule(cfg, n_contexts=3, n_members=4, n_genes=5, ctx_feat_dim=3, comp_feat_dim=5,
                  gene_node_sym=torch.tensor([1, 2, 3, 4, 5, 0]), edge_index=ei, edge_weight=torch.rand(10) + 0.5)
    comp = torch.randn(5, 5)
    comp[:, -1] = torch.tensor([0, 1, 1, 0, 0])  # members 1, 2 are compounds
    t = SymbolTables(ctx_sym=torch.arange(4), ctx_feat=torch.randn(4, 3), mem_sym=torch.arange(5), mem_comp=comp,
                     mem_dose=torch.tensor([[0, 0], [1, 1], [0, 1], [0, 0], [0, 0]], dtype=torch.float),
                     mem_targets=torch.tensor([[-1, -1], [-1, -1], [-1, -1], [0, -1], [2, 5]]),
                     pert_members=torch.tensor([[0, 0], [1, 0], [2, 0], [3, 0], [4, 0], [1, 3]]))
    return m, t


def test_shapes_dense_and_masked():
    m, t = make()
    ctx, pert, ro = torch.tensor([1, 2, 3]), torch.tensor([1, 4, 5]), torch.tensor([0, 1, 2, 5])
    assert m(t, ctx, pert, ro).shape == (3, 4)
    mask = torch.rand(3, 4) > 0.5
    assert m(t, ctx, pert, ro, mask).shape == (int(mask.sum()),)
    assert m.embed_contexts(t, ctx).shape == (3, D) and m.embed_readouts(ro).shape == (4, D)


@pytest.mark.parametrize("cfg", [LPMConfig(embed_dim=D, hidden_dim=32, encoder_hidden=32),
                                 LPMConfig.paper(embed_dim=D, hidden_dim=32, num_layers=3)])
def test_decomposed_first_layer_equals_concatenation(cfg):
    m, t = make(cfg)
    m.eval()
    ctx, pert, ro = torch.tensor([1, 2, 3, 1]), torch.tensor([1, 4, 5, 2]), torch.tensor([0, 1, 2, 3, 4, 5])
    mask = torch.rand(4, 6) > 0.3
    dense = m(t, ctx, pert, ro)  # (P, R)
    P, R = dense.shape
    naive = m.forward_naive(t, ctx.repeat_interleave(R), pert.repeat_interleave(R), ro.repeat(P)).view(P, R)
    assert torch.allclose(dense, naive, atol=1e-5)
    assert torch.allclose(m(t, ctx, pert, ro, mask), naive[mask], atol=1e-5)


def test_paper_config_has_no_encoders():
    m, _ = make(LPMConfig.paper(embed_dim=D, hidden_dim=32))
    assert m.ctx_encoder is None and m.comp_encoder is None and m.target_proj is None and not m.genes.convs
    assert LPMConfig().embed_dim == 128 and LPMConfig().hidden_dim == 256 and LPMConfig().batch_triples == 1000


def test_unknown_slot_is_zero_and_stays_zero_after_a_step():
    m, t = make()
    opt = torch.optim.AdamW(m.parameters(), lr=0.1)
    m(t, torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([0, 5])).pow(2).sum().backward()
    opt.step()
    for emb in (m.ctx_emb, m.mem_emb, m.genes.emb):
        assert (emb.weight[0] == 0).all()


def test_unknown_symbols_get_encoder_embeddings():
    m, t = make()
    # an unseen context (sym 0) with features vs without: the encoder carries it
    c = m.context_repr(torch.tensor([0, 0]), torch.randn(2, 3))
    assert not torch.allclose(c[0], c[1]) and c.abs().sum() > 0
    # graph-only gene node 5 (no learned vector) gets a message-passing embedding; -1 gets zero
    g = m.embed_readouts(torch.tensor([5, -1]))
    assert g[0].abs().sum() > 0 and (g[1] == 0).all()
    # unseen compound: different features -> different embeddings, no structure -> no compound term
    comp = torch.randn(3, 5)
    comp[:, -1] = torch.tensor([1.0, 1.0, 0.0])
    p = m.member_repr(torch.zeros(3, dtype=torch.long), comp, torch.zeros(3, 2), torch.full((3, 0), -1))
    assert not torch.allclose(p[0], p[1]) and p[0].abs().sum() > 0 and (p[2] == 0).all()


def test_symbol_dropout_leaves_described_members_to_their_encoders():
    """symbol_dropout=1: in training every member with a structure or targets is embedded as if
    unseen (learned vector dropped); members nothing describes keep theirs; eval mode is untouched."""
    m, t = make(LPMConfig(embed_dim=D, hidden_dim=32, encoder_hidden=32, symbol_dropout=1.0))
    with torch.no_grad():
        m.mem_emb.weight[1:] = torch.randn(4, D)  # non-zero learned vectors, so dropping them shows
    t.mem_targets[3] = -1  # member 3: no structure, no targets -> nothing describes it
    rows = torch.tensor([1, 2, 3, 4])  # single members 1, 2 (compounds), 3, 4 (targets 2 and 5)
    m.eval()
    kept = m.embed_perturbations(t, rows)
    as_unseen = m.member_repr(torch.zeros(5, dtype=torch.long), t.mem_comp, t.mem_dose, t.mem_targets)  # (5, d)
    m.train()
    dropped = m.embed_perturbations(t, rows)
    assert torch.allclose(dropped[[0, 1, 3]], as_unseen[[1, 2, 4]], atol=1e-6)
    assert torch.allclose(dropped[2], kept[2]) and not torch.allclose(dropped[0], kept[0])
    m.eval()
    assert torch.allclose(m.embed_perturbations(t, rows), kept)


def test_combination_is_mean_of_members():
    m, t = make()
    e = m.embed_perturbations(t, torch.tensor([1, 3, 5]))
    assert torch.allclose(e[2], (e[0] + e[1]) / 2, atol=1e-6)


def test_gene_encoder_subgraph_equals_full_graph():
    torch.manual_seed(1)
    n = 30
    ei = torch.randint(0, n, (2, 80))
    ei = torch.cat([ei, ei.flip(0)], 1)
    enc = GeneEncoder(25, torch.cat([torch.arange(1, 26), torch.zeros(5, dtype=torch.long)]), ei,
                      torch.rand(160), 8, n_layers=2, use_graph=True)
    full = enc(torch.arange(n))  # (30, 8)
    q = torch.tensor([3, 27, 3, 11])
    assert torch.allclose(enc(q), full[q], atol=1e-5)


def test_graph_conv_runs_without_torch_scatter():
    try:
        import torch_scatter  # noqa: F401
        pytest.skip("torch-scatter is installed; nothing to check")
    except ImportError:
        pass
    m, _ = make()
    m.embed_readouts(torch.arange(6)).sum().backward()
    assert m.genes.convs[0].lin_rel.weight.grad is not None


def test_dropout_keeps_one_minus_p_and_preserves_the_mean():
    from models.module import Dropout

    torch.manual_seed(0)
    x = torch.ones(400, 257)  # an element count that is not a multiple of 4
    d = Dropout(0.1)
    y = d(x)
    kept = (y != 0).float().mean().item()
    assert abs(kept - 0.9) < 0.005 and abs(y.mean().item() - 1.0) < 0.01
    assert torch.unique(y).tolist() == pytest.approx([0.0, 65536 / (65536 - d.cut)])
    assert not torch.equal(d(x), y)  # a fresh mask per call
    d.eval()
    assert torch.equal(d(x), x)
    assert torch.equal(Dropout(0.0)(x), x)
    with pytest.raises(ValueError):
        Dropout(1.0)


def _base_world(seed: int = 0):
    """3 contexts x 5 perturbations x 4 readouts with some triples missing; p4 only in context 0."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = [(c, p, r, float(rng.normal())) for c in range(1, 4) for p in range(1, 6) for r in range(1, 5)
            if (p != 4 or c == 1) and not (c == 2 and p == 3 and r == 2)]
    df = pd.DataFrame(rows, columns=["c", "p", "r", "value"])
    return df, [torch.tensor(df[k].to_numpy()) for k in ("c", "p", "r")], torch.tensor(df["value"].to_numpy())


def _other_contexts(train, rows):
    """The `other_contexts` baseline on the same rows (names = indices as strings)."""
    from models.evaluation.baselines import OtherContextsMean

    def long(df):
        return df.rename(columns={"c": "context", "p": "perturbation", "r": "readout"}).astype(
            {"context": str, "perturbation": str, "readout": str})
    return OtherContextsMean().fit(long(train)).predict(long(rows))


def test_cross_context_base_equals_the_other_contexts_baseline():
    from models.module import CrossContextBase

    df, (c, p, r), v = _base_world()
    base = CrossContextBase(3, 5, 4).fit(c, p, r, v)
    # A held-out experiment (context 2, perturbation 3) answered from the other rows.
    held = (df.c == 2) & (df.p == 3)
    base.fit(*(t[torch.tensor(~held.to_numpy())] for t in (c, p, r, v)))
    got = base(*(t[torch.tensor(held.to_numpy())] for t in (c, p, r))).numpy()
    assert got == pytest.approx(_other_contexts(df[~held], df[held]), abs=1e-12)


def test_leave_own_out_base_never_sees_its_own_value():
    from models.module import CrossContextBase

    df, (c, p, r), v = _base_world()
    base = CrossContextBase(3, 5, 4).fit(c, p, r, v)
    loo = base.leave_own_out(c, p, r, v).numpy()
    # Each training row's base = the baseline fitted on every other row (incl. p4, seen only in its own context).
    expect = [_other_contexts(df.drop(index=i), df.loc[[i]])[0] for i in df.index]
    assert loo == pytest.approx(expect, abs=1e-12)
    # Changing one row's value leaves that row's base alone but moves the base of the same
    # perturbation and readout in the other contexts.
    v2 = v.clone()
    i = int(df.index[(df.c == 1) & (df.p == 2) & (df.r == 3)][0])
    v2[i] += 10.0
    loo2 = CrossContextBase(3, 5, 4).fit(c, p, r, v2).leave_own_out(c, p, r, v2).numpy()
    assert loo2[i] == pytest.approx(loo[i], abs=1e-12)
    others = ((df.p == 2) & (df.r == 3) & (df.c != 1)).to_numpy()
    assert (abs(loo2[others] - loo[others]) > 1.0).all()
    # The full-data base at predict time does include it (it is not leave-own-out).
    assert float(base(c[i:i + 1], p[i:i + 1], r[i:i + 1])) != pytest.approx(loo[i])


def test_cross_context_base_unknowns_and_state_dict():
    from models.module import CrossContextBase

    _, (c, p, r), v = _base_world()
    base = CrossContextBase(3, 5, 4).fit(c, p, r, v)
    z = torch.zeros(1, dtype=torch.long)
    assert float(base(z, z, z)) == pytest.approx(float(v.mean()))  # nothing known: the global mean
    crm = float(v[(c == 2) & (r == 1)].mean())
    assert float(base(torch.tensor([2]), z, torch.tensor([1]))) == pytest.approx(crm)  # unseen perturbation
    cfg = LPMConfig(embed_dim=D, hidden_dim=32, encoder_hidden=32, residual=True)
    m = LPMModule(cfg, n_contexts=3, n_members=4, n_genes=5, ctx_feat_dim=3, comp_feat_dim=5,
                  gene_node_sym=torch.tensor([1, 2, 3, 4, 5, 0]), edge_index=torch.zeros(2, 0, dtype=torch.long),
                  edge_weight=torch.zeros(0), n_perturbations=6)
    assert {"base.ctx_sum", "base.pert_sum", "base.pert_n"} <= set(m.state_dict())
    assert all(not n.startswith("base.") for n, _ in m.named_parameters())  # fixed, not trained
    assert make(LPMConfig.paper(embed_dim=D, hidden_dim=32))[0].base is None  # the published model: no base


def _graph_base_world():
    """2 contexts x 4 knock-downs (targets: nodes 0, 1, 2, 3; graph 0-1, 1-2) x 3 readouts."""
    from models.residual_base import GraphBase

    c = torch.tensor([c for c in (1, 2) for _ in range(4) for _ in range(3)])
    p = torch.tensor([p for _ in (1, 2) for p in range(1, 5) for _ in range(3)])
    r = torch.tensor([r for _ in (1, 2) for _ in range(4) for r in range(1, 4)])
    v = torch.arange(len(c), dtype=torch.float64)
    kd_nodes = torch.tensor([[-1], [0], [1], [2], [3]])  # knock-down k targets node k-1
    g = GraphBase(2, 3, kd_nodes, torch.arange(5)).fit(c, p, r, v)  # perturbation row p = knock-down row p
    edges = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    return g, (c, p, r, v), kd_nodes, edges


def test_graph_base_neighbours_never_include_the_perturbation_itself():
    g, (c, p, r, v), kd_nodes, edges = _graph_base_world()
    nb = g.neighbours(kd_nodes[1:], torch.arange(1, 5), edges, 4)  # each knock-down, itself excluded
    assert nb.tolist() == [[0, 0, 1, 0, 0], [0, 1, 0, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]]
    # An unseen perturbation targeting node 1 (no own row): knock-downs on nodes 0, 1 and 2.
    assert g.neighbours(torch.tensor([[1]]), torch.tensor([0]), edges, 4).tolist() == [[0, 1, 1, 1, 0]]
    # A knock-down's neighbour mean does not move when its own values change (it would if it leaked).
    row, unseen = p - 1, torch.full((len(c),), 5.0, dtype=torch.float64)
    mean, has = g.neighbour_residual(c, r, row, nb, unseen)
    v2 = torch.where(p == 2, v + 100.0, v)
    g.fit(c, p, r, v2)
    mean2, _ = g.neighbour_residual(c, r, row, nb, unseen)
    assert torch.equal(mean[p == 2], mean2[p == 2]) and not torch.equal(mean[p == 1], mean2[p == 1])
    # knock-down 2's residual at (context 1, readout 1) = mean of knock-downs 1 and 3 there, minus `unseen`
    i = int(((c == 1) & (p == 2) & (r == 1)).nonzero())
    at = [float(v[(c == 1) & (p == k) & (r == 1)]) for k in (1, 3)]
    assert float(mean[i]) == pytest.approx(sum(at) / 2 - 5.0)
    assert not bool(has[p == 4].any())  # node 3 has no neighbours: no graph base
    # A readout missing from one neighbour's signature counts as 0 (the context mean), not as absent.
    drop = (c == 1) & (p == 3) & (r == 1)
    g.fit(c[~drop], p[~drop], r[~drop], v[~drop])
    mean3, _ = g.neighbour_residual(c, r, row, nb, unseen)
    assert float(mean3[i]) == pytest.approx((at[0] - 5.0) / 2)


def test_graph_base_shrink_is_least_squares_and_clipped():
    g, _, _, _ = _graph_base_world()
    unseen, nb = torch.zeros(4, dtype=torch.float64), torch.tensor([1.0, 2.0, -1.0, 0.5], dtype=torch.float64)
    has = torch.ones(4, dtype=torch.bool)
    assert g.fit_shrink(0.5 * nb, unseen, nb, has) == pytest.approx(0.5)
    assert g.fit_shrink(-nb, unseen, nb, has) == 0.0 and g.fit_shrink(3 * nb, unseen, nb, has) == 1.0
    assert g.fit_shrink(-nb, unseen, nb, has, fixed=0.3) == pytest.approx(0.3)


def test_shrunk_cross_base_leans_to_the_context_mean_when_other_contexts_do_not_transfer():
    from models.residual_base import CrossContextBase

    g = torch.Generator().manual_seed(0)
    c = torch.tensor([c for c in (1, 2) for _ in range(1, 31) for _ in range(1, 6)])
    p = torch.tensor([p for _ in (1, 2) for p in range(1, 31) for _ in range(1, 6)])
    r = torch.tensor([r for _ in (1, 2) for _ in range(1, 31) for r in range(1, 6)])
    shared = torch.randn(31, 6, generator=g, dtype=torch.float64)
    for transfer, lo, hi in ((1.0, 0.8, 1.0), (0.0, 0.0, 0.2)):  # the same profile in both lines, or independent
        v = transfer * shared[p, r] + (1 - transfer) * torch.randn(len(c), generator=g, dtype=torch.float64)
        v = v + 0.1 * torch.randn(len(c), generator=g, dtype=torch.float64)
        base = CrossContextBase(2, 30, 5, shrinkable=True).fit(c, p, r, v)
        assert lo <= base.fit_shrink(c, p, r, v) <= hi
        assert "shrink" in base.state_dict()
    plain = CrossContextBase(2, 30, 5).fit(c, p, r, v)
    assert plain.fit_shrink(c, p, r, v) == 1.0 and "shrink" not in plain.state_dict()  # the default: other_contexts
    base.shrink.fill_(0.0)  # shrink 0: a seen perturbation gets the context mean
    assert torch.allclose(base(c, p, r), base.parts(c, torch.zeros_like(p), r).unseen)
