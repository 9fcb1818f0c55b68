"""Data-parallel LPM training with torch.distributed (DistributedDataParallel).

    torchrun --nproc_per_node=2 -m models.distributed --input tahoe --output lpm.pt [--epochs 20]
    perturbgraph train --input tahoe --output lpm.pt --nproc 2        # the same, launched for you

Every rank builds the same vocabularies and dense value matrix (the store's table, read by each rank)
and the same seeded random tile partition per epoch, then takes every world_size-th tile of it: its
shard. Gradients are averaged across ranks by DDP after each backward, so all ranks keep identical
weights; validation runs on every rank on identical weights, so early stopping stops them together.
Rank 0 alone shows progress, writes per-epoch checkpoints and saves the final model.

Each rank's tiles hold batch_triples / world_size observed values, so one optimiser step still sees
about `batch_triples` triples in all: the optimisation is the single-process one (same learning rate,
same steps per epoch) with each step's work split across ranks. To train larger batches on more
hardware, raise `batch_triples` (and re-check the learning rate).

Backend: NCCL when CUDA is available (one GPU per rank, cuda:LOCAL_RANK), gloo on CPU. The rendezvous
comes from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).
"""

from __future__ import annotations

import argparse
import inspect
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from models.train import PairData


@dataclass(frozen=True)
class DataParallel:
    """The hooks `models.train.train` calls when it runs as one rank of several."""

    rank: int
    world_size: int

    def per_rank_batch(self, batch_triples: int) -> int:
        """Observed triples per tile on this rank: the global step keeps `batch_triples` in all."""
        return max(1, batch_triples // self.world_size)

    def wrap(self, module: nn.Module) -> nn.Module:
        """DDP around the module (after it is on its device). Its buffers (gene vocabulary, graph)
        are constant, so they are not re-broadcast every forward; static_graph because the same
        parameters take part in every step (an encoder without input stays unused throughout)."""
        dev = next(module.parameters()).device
        ids = [dev.index] if dev.type == "cuda" else None
        ddp = nn.parallel.DistributedDataParallel
        # torch >= 2.15 names the switch forward_sync_buffers (broadcast_buffers warns there)
        no_sync = ("forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(ddp).parameters
                   else "broadcast_buffers")
        return ddp(module, device_ids=ids, static_graph=True, **{no_sync: False})

    def shard(self, tiles: list, data: PairData) -> list:
        """This rank's tiles of the epoch's (identically seeded) partition: every world_size-th
        non-empty tile, the last ones repeated so every rank takes the same number of steps (DDP's
        all-reduce needs every rank in every step; an empty tile would have no gradient)."""
        if not data.all_observed:
            observed = (~torch.isnan(data.values)).to(torch.int32)
            tiles = [(pi, ri) for pi, ri in tiles if observed.index_select(0, pi).index_select(1, ri).any()]
        if not tiles:
            return []
        per_rank = -(-len(tiles) // self.world_size)
        padded = (tiles * (1 + per_rank * self.world_size // len(tiles)))[: per_rank * self.world_size]
        return padded[self.rank::self.world_size]

    def all_sum(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Sums over ranks (in place) of per-rank running totals: the epoch's loss over all shards."""
        for t in tensors:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return tensors


def setup(backend: str | None = None) -> tuple[DataParallel, str]:
    """Join the process group torchrun described; returns the hooks and this rank's device name."""
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and backend != "gloo"
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if cuda else "gloo"))
    return DataParallel(dist.get_rank(), dist.get_world_size()), (f"cuda:{local}" if cuda else "cpu")


def main(argv: list[str] | None = None) -> int:
    """One rank: load INPUT as `perturbgraph train` does (models.cli), fit data-parallel, rank 0 saves."""
    ap = argparse.ArgumentParser(prog="torchrun --nproc_per_node=N -m models.distributed",
                                 description="Train the LPM data-parallel on every rank torchrun starts.")
    ap.add_argument("--input", required=True, help="dataset name or file (as `perturbgraph train --input`)")
    ap.add_argument("--output", type=Path, default=Path("lpm.pt"), help="checkpoint path (rank 0 writes it)")
    ap.add_argument("--epochs", type=int, default=None, help="max epochs (default: LPMConfig)")
    ap.add_argument("--readouts", default=None, help="as `perturbgraph train --readouts`")
    ap.add_argument("--readout-seed", type=int, default=0)
    ap.add_argument("--duplicates", default="quarantine", help="quarantine | mean | first")
    ap.add_argument("--context", default=None, help="as `perturbgraph train --context`")
    ap.add_argument("--readout-key", default=None, help="as `perturbgraph train --readout-key`")
    ap.add_argument("--perturbation-type", default=None, help="as `perturbgraph train --perturbation-type`")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--paper", action="store_true", help="LPMConfig.paper(): learned embeddings only")
    ap.add_argument("--backend", choices=["gloo", "nccl"], default=None, help="default: nccl with CUDA, else gloo")
    args = ap.parse_args(argv)

    from models.cli import _check_finite, _load_input, resources_for
    from models.lpm import LPM
    from models.module import LPMConfig

    parallel, device = setup(args.backend)
    try:
        # The same loader as `train`: the perturbation names it returns are what joins compounds to structures.
        loaded = _load_input(args.input, args.readouts, args.readout_seed, args.duplicates, args.context,
                             args.readout_key, args.perturbation_type)
        df = loaded.frame
        epochs = {} if args.epochs is None else {"max_epochs": args.epochs}
        config = LPMConfig.paper(**epochs) if args.paper else LPMConfig(**epochs)
        side = None
        if not args.paper:
            side = resources_for(df, epochs=args.epochs, perturbation_names=loaded.perturbation_names,
                                 perturbation_targets=loaded.perturbation_targets).side
        model = LPM(config, side=side, seed=args.seed)
        lead = parallel.rank == 0
        model.fit(df, None, progress=lead, device=device, parallel=parallel)
        _check_finite(model)  # every rank: the weights are the same, and all of them must stop together
        if lead:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            model.save(args.output)
            h = model.history[-1] if model.history else {}
            print(f"saved {args.output} ({parallel.world_size} ranks, {len(model.history)} epochs, "
                  f"train loss {h.get('train_loss', float('nan')):.4f})", flush=True)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
