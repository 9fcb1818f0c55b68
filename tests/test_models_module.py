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
