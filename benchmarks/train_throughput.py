"""Training throughput of the LPM: decomposed first layer (pair x readout tiles) vs the plain
concatenate-then-MLP implementation of the same model, plus peak RSS of one Tahoe epoch.

    nice python benchmarks/train_throughput.py synthetic [--steps 150] [--threads 1] [--device cuda]
    nice python benchmarks/train_throughput.py tahoe-epoch [--threads 1] [--max-tiles N] [--device cuda]
    nice python benchmarks/train_throughput.py tahoe-a498 [--seeds 0,1,2] [--threads 1] [--precision bf16] [--profile]

`tahoe-a498` is the figure to set beside the reference LPM implementation: `lpm_paper` trained to
convergence (LPMConfig.paper(): 50 epochs max, early stopping on validation) on the Tahoe A498
unseen-experiment split of docs/results.md (150 random dense readouts, seed 0; split seed = run seed),
one thread; it prints triples per CPU-second, fit CPU-seconds, epochs and validation / test metrics.

On the CPU throughput is per CPU-second of this process (the development machine is shared); on
CUDA it is per wall-second between synchronised clocks, and peak GPU memory is reported too.

Both variants use the same LPMModule (paper config: embedding 128, 2 x 256, dropout 0.1, AdamW,
batch ~1000 triples); the naive one draws 1000 random observed triples per step and calls
`forward_naive`, the decomposed one takes pair x readout tiles with ~1000 observed triples.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch


def synthetic(args) -> None:
    from models.module import LPMConfig, LPMModule, SymbolTables
    from models.train import dense_pairs, make_optimizer, make_tiles, tile_loss, tile_shape

    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    C, P, R = args.contexts, args.perturbations, args.readouts
    rng = np.random.default_rng(0)
    ci, pi, ri = (a.ravel() for a in np.meshgrid(np.arange(C), np.arange(P), np.arange(R), indexing="ij"))
    y = rng.normal(size=ci.size).astype(np.float32)
    t = SymbolTables(ctx_sym=torch.arange(C + 1), ctx_feat=torch.zeros(C + 1, 0), mem_sym=torch.arange(P + 1),
                     mem_comp=torch.zeros(P + 1, 0), mem_dose=torch.zeros(P + 1, 2),
                     mem_targets=torch.zeros(P + 1, 0, dtype=torch.long), pert_members=torch.arange(P + 1)[:, None])
    data = dense_pairs(ci + 1, pi + 1, ri, y, t).to(dev)
    t = data.tables
    cfg = LPMConfig.paper(batch_triples=args.batch_triples)
    print(f"synthetic {C} contexts x {P} perturbations x {R} readouts = {ci.size:,} triples; device {dev}; "
          f"threads {torch.get_num_threads()}; steps {args.steps}; batch {cfg.batch_triples} triples")

    def fresh():
        torch.manual_seed(0)
        m = LPMModule(cfg, n_contexts=C, n_members=P, n_genes=R, ctx_feat_dim=0, comp_feat_dim=0,
                      gene_node_sym=torch.arange(1, R + 1), edge_index=torch.zeros(2, 0, dtype=torch.long),
                      edge_weight=torch.zeros(0)).to(dev)
        return m, make_optimizer(m, cfg)  # the optimizer training uses

    # naive: 1000 random triples per step, embeddings gathered per triple, concatenated (T, 384)
    m, opt = fresh()
    tc, tp, tr = (torch.from_numpy(a).to(dev) for a in (ci + 1, pi + 1, ri))
    tv = torch.from_numpy(y).to(dev)
    g = torch.Generator().manual_seed(0)
    g_dev = torch.Generator(device=dev).manual_seed(0)  # the naive batches are drawn where they are used
    res = {}
    for name in ("naive", "decomposed"):
        if name == "decomposed":
            m, opt = fresh()
            bp, br = tile_shape(len(data.ctx), len(data.readouts), 1.0, cfg.batch_triples)
            tiles = make_tiles(len(data.ctx), len(data.readouts), bp, br, g, device=dev)
        n_done, t0 = 0, None
        for step in range(args.steps + 10):
            if step == 10:  # warm-up excluded; CPU time of this process (the machine is shared)
                _sync(dev)
                n_done, t0, w0 = 0, time.process_time(), time.perf_counter()
            if name == "naive":
                idx = torch.randint(0, ci.size, (cfg.batch_triples,), generator=g_dev, device=dev)
                loss = torch.nn.functional.mse_loss(m.forward_naive(t, tc[idx], tp[idx], tr[idx]), tv[idx])
                n = cfg.batch_triples
            else:
                s, n = tile_loss(m, data, *tiles[step % len(tiles)])
                loss = s / n
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n_done += n
        _sync(dev)
        cpu = n_done / (time.process_time() - t0)
        wall = n_done / (time.perf_counter() - w0)
        res[name] = wall if dev.type == "cuda" else cpu
        extra = f" (tiles {bp} pairs x {br} readouts)" if name == "decomposed" else ""
        if dev.type == "cuda":
            extra += f"; peak GPU memory {torch.cuda.max_memory_allocated(dev) / 2**20:,.0f} MiB"
            torch.cuda.reset_peak_memory_stats(dev)
            print(f"{name:>10}: {wall:,.0f} triples per wall-second{extra}")
        else:
            print(f"{name:>10}: {cpu:,.0f} triples per CPU-second ({wall:,.0f} per wall-second){extra}")
    print(f"speed-up: {res['decomposed'] / res['naive']:.2f}x")


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def tahoe_epoch(args) -> None:
    import pandas as pd

    from models.lpm import LPM
    from models.module import LPMConfig

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    df = pd.read_parquet(args.path, columns=["context", "perturbation", "perturbation_type", "readout", "rank", "n_ranked"])
    df["value"] = (1 - 2 * (df["rank"] - 1) / (df["n_ranked"] - 1)).astype(np.float32)
    df = df.drop(columns=["rank", "n_ranked"])
    print(f"loaded {len(df):,} rows in {time.perf_counter() - t0:.1f} s; "
          f"RSS so far {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    if args.max_tiles:  # the shared 2-core machine may be too busy for a full epoch: stop after N tiles
        import models.train as tr

        full = tr.make_tiles
        tr.make_tiles = lambda *a, **k: full(*a, **k)[: args.max_tiles] if a[-1] is not None else full(*a, **k)
    t1 = time.perf_counter()
    c0 = time.process_time()
    m = LPM(LPMConfig.paper(max_epochs=1)).fit(df, progress=False, device=args.device)
    h = m.history[0]
    print(f"one epoch: {h['seconds']:.1f} s training, {h['triples_per_s']:,.0f} triples/s, loss {h['train_loss']:.4f}; "
          f"fit() total {time.perf_counter() - t1:.1f} s wall, {time.process_time() - c0:.1f} s CPU; "
          f"threads {torch.get_num_threads()}; tiles {args.max_tiles or 'all'}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    if args.device.startswith("cuda"):
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB "
              f"({torch.cuda.get_device_name()})")


def tahoe_a498(args) -> None:
    """lpm_paper on the docs/results.md Tahoe A498 unseen-experiment benchmark, timed in CPU-seconds."""
    import os
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.make_results import TAHOE_SMALL
    from models.datasets import load_dataset
    from models.evaluation.harness import Resources, build_model
    from models.evaluation.metrics import evaluate_predictions
    from models.evaluation.splits import make_split

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    df = load_dataset("tahoe", **TAHOE_SMALL)  # the same 150 random dense readouts as docs/results.md
    print(f"tahoe {TAHOE_SMALL}: {len(df):,} rows, {df['context'].nunique()} contexts, "
          f"{df['perturbation'].nunique()} perturbations, {df['readout'].nunique()} readouts "
          f"(loaded in {time.perf_counter() - t0:.1f} s); threads {torch.get_num_threads()}; "
          f"device {args.device}; precision {args.precision}; load average {os.getloadavg()[0]:.1f}", flush=True)
    from models.module import LPMConfig

    rows = []
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        split = make_split(df, "unseen-experiment", context="A498", seed=seed)
        # build_model("lpm_paper") is what the results harness trains: LPMConfig() with every encoder off
        overrides = {"precision": args.precision, **({"batch_triples": args.batch_triples} if args.batch_triples else {})}
        res = Resources(lpm_config=LPMConfig(**overrides))
        model = build_model("lpm_paper", seed=seed, resources=res, split_kind="unseen-experiment")
        if args.profile:  # where a step's time goes: torch.profiler over the first 2 epochs
            from dataclasses import replace

            from torch.profiler import ProfilerActivity, profile

            model.config = replace(model.config, max_epochs=2)
            with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
                model.fit(split.train, split.valid, progress=False, device=args.device)
            print(prof.key_averages(group_by_input_shape=True).table(
                sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=30, max_shapes_column_width=50))
            return
        c0, w0 = time.process_time(), time.perf_counter()
        model.fit(split.train, split.valid, progress=False, device=args.device)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        epochs = len(model.history)
        triples = len(split.train) * epochs  # every observed training triple once per epoch
        best = min(h["valid_loss"] for h in model.history)
        test = split.test.sample(frac=1.0, random_state=seed).reset_index(drop=True)
        m_test = evaluate_predictions(test, model.predict(test.drop(columns="value")))
        m_valid = evaluate_predictions(split.valid, model.predict(split.valid.drop(columns="value")))
        rows.append((seed, triples / cpu, cpu, epochs))
        print(f"seed {seed}: {len(split.train):,} training triples x {epochs} epochs = {triples:,} in {cpu:.1f} "
              f"fit CPU-s ({wall:.1f} s wall): **{triples / cpu:,.0f} triples per CPU-second**, "
              f"{triples / wall:,.0f} per wall-second; best valid MSE {best:.4f}, valid r/signature "
              f"{m_valid['pearson_per_signature']:.3f}; test r/signature {m_test['pearson_per_signature']:.3f}, "
              f"RMSE {m_test['rmse']:.3f}, pooled r {m_test['pearson']:.3f}; load average {os.getloadavg()[0]:.1f}",
              flush=True)
    if len(rows) > 1:
        tps = [r[1] for r in rows]
        print(f"triples per CPU-second over {len(rows)} seeds: mean {np.mean(tps):,.0f}, "
              f"min {min(tps):,.0f}, max {max(tps):,.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("synthetic")
    s.add_argument("--contexts", type=int, default=10)
    s.add_argument("--perturbations", type=int, default=1000)
    s.add_argument("--readouts", type=int, default=978)
    s.add_argument("--steps", type=int, default=150)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--batch-triples", type=int, default=1000, help="triples per step (paper: 1000)")
    s.add_argument("--device", default="cpu", help="cpu or cuda")
    s.set_defaults(fn=synthetic)
    t = sub.add_parser("tahoe-epoch")
    t.add_argument("--path", default="/work/shared/data/chemical/tahoe100m_ranked_signatures.parquet")
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--max-tiles", type=int, default=0, help="stop the epoch after N tiles (0 = full epoch)")
    t.add_argument("--device", default="cpu", help="cpu or cuda")
    t.set_defaults(fn=tahoe_epoch)
    a = sub.add_parser("tahoe-a498", help="lpm_paper on the docs/results.md Tahoe A498 benchmark")
    a.add_argument("--seeds", default="0", help="comma-separated split / model seeds")
    a.add_argument("--threads", type=int, default=1)
    a.add_argument("--batch-triples", type=int, default=0, help="0 = the paper's 1000")
    a.add_argument("--device", default="cpu", help="cpu or cuda")
    a.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="LPMConfig.precision")
    a.add_argument("--profile", action="store_true", help="print a torch.profiler table of 2 epochs instead")
    a.set_defaults(fn=tahoe_a498)
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
