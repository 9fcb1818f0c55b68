import io

import numpy as np
import pytest
import torch

from models.module import LPMConfig, LPMModule, SymbolTables
from models.train import dense_pairs, evaluate, make_tiles, tile_loss, tile_shape, train

torch.set_num_threads(1)


def problem(seed=0, C=4, P=10, R=30, keep=0.8, noise=0.05):
    """Low-rank synthetic values y = <u_c + v_p, w_r> + offset_r + noise, with ~20 % missing."""
    rng = np.random.default_rng(seed)
    u, v, w = rng.normal(size=(C, 3)), rng.normal(size=(P, 3)), rng.normal(size=(R, 3))
    ci, pi, ri = np.meshgrid(np.arange(C), np.arange(P), np.arange(R), indexing="ij")
    ci, pi, ri = ci.ravel(), pi.ravel(), ri.ravel()
    y = ((u[ci] + v[pi]) * w[ri]).sum(1) + noise * rng.normal(size=ci.size)
    y += 0.5 * rng.normal(size=R)[ri]
    k = rng.random(ci.size) < keep
    t = SymbolTables(ctx_sym=torch.arange(C + 1), ctx_feat=torch.zeros(C + 1, 0), mem_sym=torch.arange(P + 1),
                     mem_comp=torch.zeros(P + 1, 0), mem_dose=torch.zeros(P + 1, 2),
                     mem_targets=torch.zeros(P + 1, 0, dtype=torch.long), pert_members=torch.arange(P + 1)[:, None])
    return dense_pairs(ci[k] + 1, pi[k] + 1, ri[k], y[k].astype(np.float32), t), (C, P, R)


def module(cfg, sizes, seed=0):
    torch.manual_seed(seed)
    C, P, R = sizes
    return LPMModule(cfg, n_contexts=C, n_members=P, n_genes=R, ctx_feat_dim=0, comp_feat_dim=0,
                     gene_node_sym=torch.arange(1, R + 1), edge_index=torch.zeros(2, 0, dtype=torch.long),
                     edge_weight=torch.zeros(0))


def test_dense_pairs_masks_missing_values():
    t = SymbolTables(*(torch.zeros(1),) * 7)
    d = dense_pairs(np.array([1, 1, 2]), np.array([3, 3, 3]), np.array([5, 7, 7]), np.array([0.5, 1.5, 2.5], np.float32), t)
    assert d.values.shape == (2, 2) and d.n_obs == 3
    assert d.ctx.tolist() == [1, 2] and d.pert.tolist() == [3, 3] and d.readouts.tolist() == [5, 7]
    assert torch.isnan(d.values[1, 0]) and d.values[0, 1] == 1.5


def test_tiles_cover_every_cell_once_and_hold_about_a_batch():
    bp, br = tile_shape(13, 29, 0.5, 40)
    assert 40 / 1.6 <= bp * br * 0.5 <= 40 * 1.6
    seen = torch.zeros(13, 29, dtype=torch.int64)
    for pi, ri in make_tiles(13, 29, bp, br, torch.Generator().manual_seed(0)):
        seen[pi[:, None], ri[None, :]] += 1
    assert (seen == 1).all()


def test_masked_dense_tile_loss_equals_observed_only_loss_and_gradient():
    # The CUDA formulation (every cell predicted, unobserved ones masked) must train the same model.
    data, sizes = problem(keep=0.6)
    assert not data.all_observed
    cfg = LPMConfig.paper(embed_dim=8, hidden_dim=16, dropout=0.0)
    m = module(cfg, sizes)
    pi, ri = torch.tensor([0, 3, 5, 7]), torch.tensor([1, 2, 4, 8, 16, 29])
    out = {}
    for masked in (False, True):
        m.zero_grad()
        s, n = tile_loss(m, data, pi, ri, masked_dense=masked)
        (s / n).backward()
        out[masked] = (float(s.detach()), int(n), [p.grad.clone() for p in m.parameters() if p.grad is not None])
    assert out[True][1] == out[False][1] == int((~torch.isnan(data.values[pi][:, ri])).sum()) > 0
    assert out[True][0] == pytest.approx(out[False][0], rel=1e-5)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(out[True][2], out[False][2], strict=True))
    assert not any(torch.isnan(g).any() for g in out[True][2])  # NaN targets must not leak into gradients


def test_fully_observed_data_skips_the_mask():
    data, sizes = problem(keep=1.0)
    assert data.all_observed
    m = module(LPMConfig.paper(embed_dim=8, hidden_dim=16, dropout=0.0), sizes)
    s, n = tile_loss(m, data, torch.tensor([0, 1]), torch.tensor([0, 1, 2]))
    assert n == 6 and float(s) > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_matches_cpu_loss_scale():
    data, sizes = problem(keep=0.7)
    cfg = LPMConfig.paper(embed_dim=16, hidden_dim=64, dropout=0.0, batch_triples=100, max_epochs=20, lr=5e-3)
    cpu = train(module(cfg, sizes), data, None, cfg, progress=False, device="cpu")
    gpu = train(module(cfg, sizes), data, None, cfg, progress=False, device="cuda")
    assert gpu[-1]["train_loss"] == pytest.approx(cpu[-1]["train_loss"], rel=0.2)


def test_learns_well_below_per_readout_mean():
    data, sizes = problem()
    v = data.values
    baseline = float(torch.nanmean((v - torch.nanmean(v, 0, keepdim=True)) ** 2))
    cfg = LPMConfig.paper(embed_dim=16, hidden_dim=64, dropout=0.0, batch_triples=100, max_epochs=40, lr=5e-3)
    m = module(cfg, sizes)
    hist = train(m, data, None, cfg, progress=False, device="cpu")
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert evaluate(m, data, 100) < 0.25 * baseline
    assert all(h["triples_per_s"] > 0 for h in hist)
    assert hist[1]["lr"] < hist[0]["lr"]  # exponential decay per epoch


def test_resume_matches_uninterrupted_run():
    data, sizes = problem(seed=1)
    valid, _ = problem(seed=2)
    cfg = LPMConfig.paper(embed_dim=8, hidden_dim=16, batch_triples=64, max_epochs=4, patience=10)
    full = module(cfg, sizes)
    h_full = train(full, data, valid, cfg, seed=3, progress=False, device="cpu")

    saved = {}

    def keep(state):  # round-trip through torch.save / weights_only like a checkpoint file
        buf = io.BytesIO()
        torch.save(state, buf)
        buf.seek(0)
        saved["state"] = torch.load(buf, weights_only=True)

    cut = LPMConfig(**{**cfg.to_dict(), "max_epochs": 2})
    train(module(cfg, sizes), data, valid, cut, seed=3, progress=False, device="cpu", on_epoch_end=keep)
    assert saved["state"]["epoch"] == 2
    resumed = module(cfg, sizes, seed=99)  # different init: everything must come from the state
    h_res = train(resumed, data, valid, cfg, seed=3, progress=False, device="cpu", resume_state=saved["state"])
    assert len(h_res) == len(h_full) == 4
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert np.allclose([h["valid_loss"] for h in h_res], [h["valid_loss"] for h in h_full], atol=1e-6)


def test_early_stopping_restores_best_weights():
    data, sizes = problem(seed=1)
    noise, _ = problem(seed=5)
    noise.values = torch.randn_like(noise.values) * 3  # unrelated targets: validation stops improving
    cfg = LPMConfig.paper(embed_dim=8, hidden_dim=16, batch_triples=64, max_epochs=30, patience=2, lr=1e-2)
    m = module(cfg, sizes)
    hist = train(m, data, noise, cfg, progress=False, device="cpu")
    assert len(hist) < 30
    best = min(h["valid_loss"] for h in hist)
    assert abs(evaluate(m, noise, 64) - best) < 1e-5
