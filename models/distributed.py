"""Data-parallel LPM training with torch.distributed (DistributedDataParallel).

    torchrun --nproc_per_node=2 -m pipelines.cli train --input tahoe --output lpm.pt [--epochs 20]
    perturbgraph train --input tahoe --output lpm.pt --nproc 2        # the same, launched for you

(`train` sees torchrun's environment and runs as one rank: `setup()` here, then the same loading and
fit as a single process; pipelines/cli/model.py.)

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

import inspect
import os
from dataclasses import dataclass

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
