"""The LPM training loop: tensors in, trained module + history out (no Neo4j, no Dagster, no pandas).

Data are a dense (n_pairs, n_readouts) value matrix with NaN for missing values (missing is not
"unchanged", so it is masked out of the loss). Each step takes a *tile*: a group of pairs x a group
of readouts sized so that about `batch_triples` observed values fall in it. A tile needs the pair
part of the first layer once per pair and the readout part once per readout; an epoch visits every
tile of a fresh random partition once, so every observed triple is seen exactly once per epoch.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from models.module import LPMConfig, LPMModule, SymbolTables
from models.progress import DEFAULT_EVERY_S, Reporter, TrainProgress
from models.progress import resolve as resolve_progress


@dataclass
class PairData:
    tables: SymbolTables
    ctx: torch.Tensor  # (P,) context table rows
    pert: torch.Tensor  # (P,) perturbation table rows
    readouts: torch.Tensor  # (R,) gene nodes
    values: torch.Tensor  # (P, R) float32, NaN = not measured
    # (P, R) float32 or None: the residual base at each cell (residual LPM: the network learns `values`, the
    # deviation from it, and is judged on base + network). Only carried when the loss or the stopping rule
    # needs the whole value (`needs_base`); None = `values` are the whole values.
    base: torch.Tensor | None = None

    def __post_init__(self) -> None:
        # Checked once here so that a training step on dense data never inspects its mask.
        self.all_observed = not bool(torch.isnan(self.values).any())

    @property
    def n_obs(self) -> int:
        return int((~torch.isnan(self.values)).sum())

    def to(self, device) -> PairData:
        return PairData(self.tables.to(device), self.ctx.to(device), self.pert.to(device),
                        self.readouts.to(device), self.values.to(device),
                        None if self.base is None else self.base.to(device))

    def whole_values(self) -> torch.Tensor:
        """(P, R) the values the model is judged on: base + values for a residual LPM."""
        return self.values if self.base is None else self.values + self.base


def needs_base(cfg: LPMConfig, validation: bool) -> bool:
    """Whether the training (validation) PairData needs its base (the whole values): signature weights need
    it on both, stopping by r on the validation data only."""
    return cfg.signature_weights or (validation and cfg.stop_metric != "mse")


def dense_pairs(ctx_rows: np.ndarray, pert_rows: np.ndarray, readout_nodes: np.ndarray, values: np.ndarray,
                tables: SymbolTables, base: np.ndarray | None = None) -> PairData:
    """Long per-triple arrays (n,) -> PairData (base: (n,) the residual base per triple, or None).
    One value per (context, perturbation, readout): a repeated triple is a ValueError (the table's rows are
    averaged before, graph.io.validation.average_duplicate_keys; never one copy silently kept)."""
    pair_key = ctx_rows.astype(np.int64) * (int(pert_rows.max(initial=0)) + 1) + pert_rows
    pairs, pair_of_row = np.unique(pair_key, return_inverse=True)
    readouts, readout_of_row = np.unique(readout_nodes, return_inverse=True)
    _require_one_value_per_cell(pair_of_row, readout_of_row, len(readouts), ctx_rows, pert_rows, readout_nodes)
    first = np.zeros(len(pairs), dtype=np.int64)
    first[pair_of_row] = np.arange(len(pair_of_row))  # any row of each pair gives its ctx / pert
    dense = np.full((len(pairs), len(readouts)), np.nan, dtype=np.float32)
    dense[pair_of_row, readout_of_row] = values
    dense_base = None
    if base is not None:
        dense_base = np.zeros_like(dense)  # unobserved cells: masked out wherever base is used
        dense_base[pair_of_row, readout_of_row] = base
    return PairData(tables, torch.from_numpy(ctx_rows[first].astype(np.int64)),
                    torch.from_numpy(pert_rows[first].astype(np.int64)),
                    torch.from_numpy(readouts.astype(np.int64)), torch.from_numpy(dense),
                    None if dense_base is None else torch.from_numpy(dense_base))


def _require_one_value_per_cell(pair_of_row: np.ndarray, readout_of_row: np.ndarray, n_readouts: int,
                                ctx_rows: np.ndarray, pert_rows: np.ndarray, readout_nodes: np.ndarray) -> None:
    """dense_pairs' last guard (the name-level check is LPM.fit's): every dense cell filled at most once, and no
    readout node -1 (a readout outside the model's gene nodes: all of an experiment's would share one cell;
    LPM.fit leaves such validation rows out, LPM._scored_validation)."""
    if (readout_nodes < 0).any():
        raise ValueError(f"dense_pairs: {int((readout_nodes < 0).sum()):,} rows have readout node -1 (a readout the "
                         "model has no gene node for); leave them out before (LPM._scored_validation)")
    cell = pair_of_row.astype(np.int64) * n_readouts + readout_of_row  # (n,) dense cell of every row
    ordered = np.sort(cell)  # O(n log n) on the rows; no (pairs x readouts) scratch array beside the dense one
    if not (ordered[1:] == ordered[:-1]).any():
        return
    _, first, count = np.unique(cell, return_index=True, return_counts=True)
    rows = first[count > 1][:3]
    shown = ", ".join(f"(context row {ctx_rows[i]}, perturbation row {pert_rows[i]}, readout node {readout_nodes[i]})"
                      for i in rows)
    raise ValueError(f"dense_pairs: {int((count > 1).sum()):,} (context, perturbation, readout) triples have more "
                     f"than one value, e.g. {shown}; average them first (graph.io.validation.average_duplicate_keys)")


def signature_weights(data: PairData, floor: float) -> torch.Tensor:
    """(P,) float32 loss weight per (context, perturbation) experiment: 1 / (variance of its whole values
    across its observed readouts + eps), eps = floor x the mean of those variances (scale-free; caps a
    near-flat signature's weight), normalised to mean 1 over observed cells. Weighted squared error is
    then squared error on per-signature standardised values, which per-signature r rewards: every
    experiment counts alike instead of the strong responders dominating plain MSE."""
    y = data.whole_values().double()
    mask = ~torch.isnan(y)
    n = mask.sum(1)  # (P,)
    y0 = torch.where(mask, y, 0.0)
    mean = y0.sum(1) / n.clamp(min=1)
    var = torch.where(mask, y0 - mean[:, None], 0.0).square().sum(1) / n.clamp(min=1)  # (P,)
    has = n > 0
    eps = floor * var[has].mean() if bool(has.any()) else torch.zeros((), dtype=y.dtype, device=y.device)
    w = 1.0 / (var + eps).clamp(min=1e-12)
    w = w * n.sum() / (w * n).sum().clamp(min=1e-12)  # mean 1 over observed cells
    return w.float()


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def tile_shape(n_pairs: int, n_readouts: int, density: float, batch_triples: int) -> tuple[int, int]:
    """Pairs x readouts per tile with about batch_triples observed values, as square as possible
    (minimises the first-layer work, which grows with pairs + readouts per tile)."""
    cells = batch_triples / max(density, 1e-9)
    bp = int(min(n_pairs, max(1, round(math.sqrt(cells)))))
    br = int(min(n_readouts, max(1, math.ceil(cells / bp))))
    bp = int(min(n_pairs, max(1, math.ceil(cells / br))))  # re-balance when readouts were capped
    return bp, br


def make_tiles(n_pairs: int, n_readouts: int, bp: int, br: int, gen: torch.Generator | None,
               device: torch.device | str | None = None):
    """All (pair group, readout group) tiles of a partition; random partition + order when gen is given.
    With `device`, the index tensors live there (two copies per partition, none per step: a per-step
    host-to-GPU copy would wait for the GPU's queue every step)."""
    if gen is None:
        pp, rr = torch.arange(n_pairs), torch.arange(n_readouts)
    else:
        pp, rr = torch.randperm(n_pairs, generator=gen), torch.randperm(n_readouts, generator=gen)
    if device is not None:
        pp, rr = pp.to(device), rr.to(device)
    tiles = [(pi, ri) for pi in pp.split(bp) for ri in rr.split(br)]
    if gen is not None:
        tiles = [tiles[i] for i in torch.randperm(len(tiles), generator=gen).tolist()]
    return tiles


def tile_loss(module: LPMModule, data: PairData, pi: torch.Tensor, ri: torch.Tensor,
              masked_dense: bool | None = None, weights: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, int | torch.Tensor]:
    """Sum of squared errors over the observed values of one tile, and their count. weights: (P,) per
    pair (`signature_weights`) multiply each pair's squared errors; the count stays unweighted.

    masked_dense (default: on CUDA) predicts every cell of the tile and masks the unobserved ones out
    of the loss, returning the count as a 0-d tensor: no host sync, which on a GPU costs more than the
    extra cells. Otherwise only observed cells are computed and the count is an int."""
    v = data.values.index_select(0, pi).index_select(1, ri)  # (bp, br)
    w = None if weights is None else weights[pi][:, None].expand(v.shape)  # (bp, br)
    if data.all_observed:
        pred = module(data.tables, data.ctx[pi], data.pert[pi], data.readouts[ri]).reshape(-1)
        return _sq_sum(pred, v.reshape(-1), None if w is None else w.reshape(-1)), v.numel()
    mask = ~torch.isnan(v)
    if v.is_cuda if masked_dense is None else masked_dense:
        pred = module(data.tables, data.ctx[pi], data.pert[pi], data.readouts[ri]).reshape(v.shape)
        sq = torch.where(mask, pred - v, 0.0).square()
        return (sq if w is None else sq * w).sum(), mask.sum()
    n = int(mask.sum())  # CPU: compute the observed cells only
    if n == 0:
        return v.new_zeros(()), 0
    if n == mask.numel():  # fully observed tile: skip the boolean gather
        pred = module(data.tables, data.ctx[pi], data.pert[pi], data.readouts[ri]).reshape(-1)
        return _sq_sum(pred, v.reshape(-1), None if w is None else w.reshape(-1)), n
    pred = module(data.tables, data.ctx[pi], data.pert[pi], data.readouts[ri], mask)  # (n,)
    return _sq_sum(pred, v[mask], None if w is None else w[mask]), n


def _sq_sum(pred: torch.Tensor, target: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """(n,) -> sum of (optionally weighted) squared errors."""
    if w is None:
        return F.mse_loss(pred, target, reduction="sum")
    return ((pred - target).square() * w).sum()


@torch.no_grad()
def evaluate(module: LPMModule, data: PairData, batch_triples: int, weights: torch.Tensor | None = None) -> float:
    """Mean (optionally `signature_weights`-weighted) squared error over all observed values (eval mode,
    large tiles)."""
    was = module.training
    module.eval()
    n_obs = data.n_obs
    bp, br = tile_shape(len(data.ctx), len(data.readouts), n_obs / max(data.values.numel(), 1), 8 * batch_triples)
    dev = data.values.device
    tot, cnt = torch.zeros((), dtype=torch.float64, device=dev), torch.zeros((), dtype=torch.long, device=dev)
    for pi, ri in make_tiles(len(data.ctx), len(data.readouts), bp, br, None, device=dev):
        s, n = tile_loss(module, data, pi, ri, weights=weights)
        tot += s
        cnt += n
    module.train(was)
    return float(tot) / max(int(cnt), 1)


@torch.no_grad()
def evaluate_signature_r(module: LPMModule, data: PairData, batch_triples: int) -> float:
    """Mean per-signature Pearson r of the whole predictions (base + network) over the pairs of `data`:
    the metric the LPM is judged on (models.evaluation.metrics.per_signature_pearson, one signature per
    row of the (P, R) matrix)."""
    import pandas as pd

    from models.evaluation.metrics import per_signature_pearson

    was = module.training
    module.eval()
    P, R = len(data.ctx), len(data.readouts)
    bp, br = tile_shape(P, R, 1.0, 8 * batch_triples)
    pred = torch.empty(P, R, dtype=torch.float32, device=data.values.device)
    for pi, ri in make_tiles(P, R, bp, br, None, device=data.values.device):  # every cell; observed picked below
        pred[pi[:, None], ri[None, :]] = module(data.tables, data.ctx[pi], data.pert[pi],
                                                data.readouts[ri]).reshape(len(pi), len(ri)).float()
    module.train(was)
    if data.base is not None:
        pred += data.base
    y = data.whole_values()
    mask = ~torch.isnan(y)
    row = torch.nonzero(mask)[:, 0].cpu().numpy()  # (n_obs,) signature (pair) of each observed cell
    rows = pd.DataFrame({"context": row, "perturbation": np.zeros_like(row)})
    return per_signature_pearson(rows, y[mask].cpu().numpy(), pred[mask].cpu().numpy())


def _rng_state(gen: torch.Generator) -> dict[str, Any]:
    st = {"torch": torch.get_rng_state(), "gen": gen.get_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict[str, Any], gen: torch.Generator) -> None:
    torch.set_rng_state(st["torch"])
    gen.set_state(st["gen"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def make_optimizer(module: LPMModule, cfg: LPMConfig) -> torch.optim.AdamW:
    """AdamW with the fused kernel (one pass over all parameters instead of a dozen small ops per
    tensor: about a tenth of a CPU training step at the paper config)."""
    device = next(module.parameters()).device
    return torch.optim.AdamW(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                             fused=device.type in {"cpu", "cuda"})


class ParamEMA:
    """Issue 17, H7: bias-corrected exponential moving average of a module's parameters (Polyak averaging).
    After step t the average is sum_i d^(t-i) theta_i / sum_i d^(t-i) (Adam's debiasing, so the initial
    weights carry no weight once the first step is taken); buffers are not averaged (the module's are fixed
    statistics filled before training: CrossContextBase, GraphBase, the gene graph)."""

    def __init__(self, module: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"LPMConfig.ema_decay must be 0 (off) or in (0, 1), not {decay}")
        self.decay, self.steps = decay, 0
        self.params = [p for p in module.parameters()]
        self.avg = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        w = (1.0 - self.decay) / (1.0 - self.decay ** self.steps)  # 1 at the first step
        torch._foreach_lerp_(self.avg, [p.detach() for p in self.params], w)  # as swa_utils' EMA does

    @torch.no_grad()
    def copy_to_module(self) -> None:
        for p, a in zip(self.params, self.avg, strict=True):
            p.copy_(a)

    @contextlib.contextmanager
    def applied(self):
        """The module holds the averaged parameters inside the block, its own afterwards."""
        raw = [p.detach().clone() for p in self.params]
        self.copy_to_module()
        try:
            yield
        finally:
            with torch.no_grad():
                for p, r in zip(self.params, raw, strict=True):
                    p.copy_(r)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "avg": [a.clone() for a in self.avg]}

    def load_state_dict(self, st: dict[str, Any]) -> None:
        self.steps = int(st["steps"])
        with torch.no_grad():
            for a, b in zip(self.avg, st["avg"], strict=True):
                a.copy_(b)


def train(module: LPMModule, data: PairData, valid: PairData | None, cfg: LPMConfig, *, seed: int = 0,
          device: str = "auto", progress: bool | Reporter = True, resume_state: dict[str, Any] | None = None,
          on_epoch_end: Callable[[dict[str, Any]], None] | None = None, parallel: Any = None,
          clock: Callable[[], float] = time.monotonic) -> list[dict]:
    """Train in place; returns the per-epoch history.

    progress: True = a bar on a terminal, plain lines otherwise (models.progress.default_reporter);
    False = silent; or any callable taking a `TrainProgress`, called after every epoch and within an
    epoch whenever its `every_s` seconds (default 30) have passed on `clock`.

    on_epoch_end(train_state) is called after every epoch with everything needed to resume
    (weights, optimizer, scheduler, RNG states, epoch, history, early-stopping state); pass that
    dict back as resume_state to continue exactly where it stopped. With `valid`, training stops
    after `cfg.patience` epochs without improvement of `cfg.stop_metric` (validation MSE, or mean
    per-signature r of base + network) and the best weights are restored. `cfg.ema_decay` > 0: validation,
    early stopping and the returned weights use the parameters' moving average (`ParamEMA`), not the last
    step's. `cfg.signature_weights`
    weights each pair's squared errors (`signature_weights`), in training and in the validation loss.
    `parallel` (a models.distributed.DataParallel) makes this one rank of a data-parallel run.
    """
    dev = resolve_device(device)
    module.to(dev)
    data = data.to(dev)
    valid = valid.to(dev) if valid is not None and valid.n_obs else None
    opt = make_optimizer(module, cfg)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.lr_decay)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed + 1)  # dropout
    history: list[dict] = []
    best_loss, best_state, bad_epochs, start = math.inf, None, 0, 0
    ema = ParamEMA(module, cfg.ema_decay) if cfg.ema_decay != 0 else None
    judged = ema.applied if ema is not None else contextlib.nullcontext  # the weights validation sees
    if resume_state is not None:
        module.load_state_dict(resume_state["model"])
        opt.load_state_dict(resume_state["optimizer"])
        sched.load_state_dict(resume_state["scheduler"])
        _set_rng_state(resume_state["rng"], gen)
        history = list(resume_state["history"])
        best_loss, bad_epochs = resume_state["best_loss"], resume_state["bad_epochs"]
        best_state = resume_state.get("best_model")
        start = resume_state["epoch"]
        if ema is not None:
            ema.load_state_dict(resume_state["ema"])

    if cfg.stop_metric not in ("mse", "pearson_per_signature"):
        raise ValueError(f"LPMConfig.stop_metric must be mse or pearson_per_signature, not {cfg.stop_metric!r}")
    for d, what, is_valid in ((data, "training", False), (valid, "validation", True)):
        if d is not None and needs_base(cfg, is_valid) and d.base is None and getattr(module, "base", None) is not None:
            raise ValueError(f"{what} PairData of a residual LPM needs its base (dense_pairs(base=...)) for "
                             "signature_weights / stop_metric")
    # Signature weights: training pairs from the training values; validation pairs from theirs, so the
    # validation loss is the same standardised squared error the network minimises.
    w_train = signature_weights(data, cfg.signature_weight_floor) if cfg.signature_weights else None
    w_valid = signature_weights(valid, cfg.signature_weight_floor) if cfg.signature_weights and valid is not None else None
    n_obs = data.n_obs
    P, R = len(data.ctx), len(data.readouts)
    batch = parallel.per_rank_batch(cfg.batch_triples) if parallel else cfg.batch_triples
    bp, br = tile_shape(P, R, n_obs / max(P * R, 1), batch)
    step_module = parallel.wrap(module) if parallel else module  # DDP all-reduces its gradients
    if cfg.precision not in ("fp32", "bf16"):
        raise ValueError(f"LPMConfig.precision must be fp32 or bf16, not {cfg.precision!r}")
    amp = (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if cfg.precision == "bf16" else contextlib.nullcontext
    reporter = resolve_progress(progress)
    every_s = getattr(reporter, "every_s", DEFAULT_EVERY_S)
    began = last_report = clock()
    epochs_run = 0.0  # since `began` (a resumed run's earlier epochs are not in its pace)
    try:
        for epoch in range(start, cfg.max_epochs):
            if valid is not None and bad_epochs >= cfg.patience:
                break
            module.train()
            t0 = time.perf_counter()
            # Running sums stay on the device; they are read only for a progress report and at the end.
            tot, cnt = torch.zeros((), dtype=torch.float64, device=dev), torch.zeros((), dtype=torch.long, device=dev)
            tiles = make_tiles(P, R, bp, br, gen, device=dev)
            if parallel:
                tiles = parallel.shard(tiles, data)
            for step, (pi, ri) in enumerate(tiles):
                with amp():  # the backward runs outside, as autocast wants
                    s, n = tile_loss(step_module, data, pi, ri, weights=w_train)
                if isinstance(n, int) and n == 0:
                    continue
                opt.zero_grad(set_to_none=True)
                # On CUDA an empty tile (rare: tiles hold ~batch_triples observed values) gives a zero gradient
                (s / (n.clamp(min=1) if torch.is_tensor(n) else n)).backward()
                opt.step()
                if ema is not None:
                    ema.update()
                tot += s.detach()
                cnt += n
                if reporter is not None and clock() - last_report >= every_s:  # a clock read per step: ~0.1 µs
                    last_report = clock()
                    c = max(int(cnt), 1)
                    reporter(_report(epoch, cfg.max_epochs, step + 1, len(tiles), float(tot) / c, None,
                                     c / max(time.perf_counter() - t0, 1e-9), began, last_report,
                                     epochs_run + (step + 1) / len(tiles), False))
            if parallel:
                parallel.all_sum(tot, cnt)
            n_seen, loss_sum = int(cnt), float(tot)
            dt = time.perf_counter() - t0
            rec = {"epoch": epoch + 1, "train_loss": loss_sum / max(n_seen, 1), "lr": opt.param_groups[0]["lr"],
                   "triples_per_s": n_seen / max(dt, 1e-9), "seconds": dt}
            sched.step()
            if valid is not None:
                with judged():
                    rec["valid_loss"] = evaluate(module, valid, cfg.batch_triples, w_valid)
                    # best_loss: the stopping quantity, lower is better (-r when stopping by per-signature r)
                    score = rec["valid_loss"]
                    if cfg.stop_metric == "pearson_per_signature":
                        rec["valid_r"] = evaluate_signature_r(module, valid, cfg.batch_triples)
                        score = -rec["valid_r"]
                    if score < best_loss - 1e-7:
                        best_loss, bad_epochs = score, 0
                        best_state = copy.deepcopy(module.state_dict())
                    else:
                        bad_epochs += 1
            history.append(rec)
            epochs_run += 1
            if reporter is not None:
                last_report = clock()
                reporter(_report(epoch, cfg.max_epochs, len(tiles), len(tiles), rec["train_loss"],
                                 rec.get("valid_loss"), rec["triples_per_s"], began, last_report, epochs_run, True))
            if on_epoch_end is not None:
                on_epoch_end({"model": module.state_dict(), "optimizer": opt.state_dict(),
                              "scheduler": sched.state_dict(), "rng": _rng_state(gen), "epoch": epoch + 1,
                              "history": history, "best_loss": best_loss, "bad_epochs": bad_epochs,
                              "best_model": best_state, **({"ema": ema.state_dict()} if ema is not None else {})})
    finally:
        if hasattr(reporter, "close"):
            reporter.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    elif ema is not None and ema.steps:  # no validation: the average of the whole run
        ema.copy_to_module()
    return history


def _report(epoch: int, max_epochs: int, step: int, steps: int, loss: float, valid_loss: float | None,
            tps: float, began: float, now: float, epochs_run: float, done: bool) -> TrainProgress:
    """epoch is 0-based here; the ETA assumes the pace so far holds for the remaining epochs."""
    elapsed = now - began
    remaining = max_epochs - (epoch + (1.0 if done else step / max(steps, 1)))
    eta = elapsed / epochs_run * remaining if epochs_run > 0 else float("inf")
    return TrainProgress(epoch + 1, max_epochs, step, steps, loss, valid_loss, tps, elapsed, eta, done)
