"""When does the LPM itself beat the neighbour estimators? (issue 17; docs/results.md "Research: where the LPM
alone does win — the simulated world, and noise").

Two settings, the default LPM (LPMConfig, its base chosen on validation; a 12-epoch cap) against `similar_perturbations` and `other_contexts` on unseen experiments, test per-signature r:

- `--data tahoe`: the real Tahoe split of make_results.py section 0 (10 lines, 150 random dense readouts, target
  A498) with Gaussian noise of sd = `noise` x the table's value sd added to every value, training and test alike
  (as noisier measurements of the same experiments would be), the same noise for every model of a seed.
- `--data simulated`: the SIMULATED world (graph/simulated.py, world seed `--world`) generated with measurement
  noise sd = `noise` (z units), its knock-down GCTX read as `perturbgraph evaluate --input <gctx>` reads it,
  target SIMBRST1.

    PERTURBGRAPH_SHARED_DATA=<shared data> nice python benchmarks/research_noise.py --data tahoe --noise 0,1,2 --seeds 0,1,2
    nice python benchmarks/research_noise.py --data simulated --noise 0.25,0.5,1,2 --seeds 0,1,2,3,4 [--world 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MODELS = ("lpm", "similar_perturbations", "other_contexts")


def main(argv=None) -> int:
    from dataclasses import replace

    import torch

    from models.datasets import load_input, resources_for_input
    from models.evaluation.harness import run_benchmark
    from models.module import LPMConfig

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", choices=("tahoe", "simulated"), default="tahoe")
    ap.add_argument("--noise", default="0,1,2",
                    help="comma-separated noise sd: x the table's value sd (tahoe) or z units (simulated)")
    ap.add_argument("--world", type=int, default=0, help="seed of the simulated world")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--target", default=None, help="default: A498 (tahoe), SIMBRST1 (simulated)")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--patience", type=int, default=None,
                    help="default: 3 for tahoe (as make_results.py), LPMConfig's for simulated (as perturbgraph evaluate)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    target = args.target or ("A498" if args.data == "tahoe" else "SIMBRST1")
    patience = args.patience if args.patience is not None else (3 if args.data == "tahoe" else None)
    config = LPMConfig(max_epochs=args.epochs, **({} if patience is None else {"patience": patience}))
    tahoe = load_input("tahoe", n_random=150, seed=0) if args.data == "tahoe" else None  # read once
    for noise in (float(x) for x in args.noise.split(",")):
        if tahoe is not None:
            loaded = tahoe
        else:  # one world per noise level (the noise is part of the generated measurements)
            from graph.simulated import generate_default_dataset

            with tempfile.TemporaryDirectory(prefix="perturbgraph-sim-") as world:
                generate_default_dataset(world, seed=args.world, noise_sd=noise)
                loaded = load_input(str(Path(world) / "l1000" / "sim_knockdown_level5.gctx"))
        resources = replace(resources_for_input(loaded, gene_graph=True, info=lambda m: None, warn=lambda m: None),
                            lpm_config=config)
        clean, sd = loaded.frame, float(loaded.frame["value"].std())
        print(f"{args.data} noise {noise:g}: {len(clean):,} rows, value sd {sd:.3f}; target {target}", flush=True)
        for seed in (int(s) for s in args.seeds.split(",")):
            df = clean
            if args.data == "tahoe":  # the simulated world carries its noise already
                rng = np.random.default_rng([seed, int(round(noise * 1000))])
                df = clean.assign(value=clean["value"] + noise * sd * rng.standard_normal(len(clean)))
            rows = run_benchmark(df, "unseen-experiment", context=target, models=list(MODELS), seeds=[seed],
                                 resources=resources).set_index("model")
            r = rows["pearson_per_signature"]
            print(f"noise {noise:g} seed {seed}: " + ", ".join(f"{m} {r[m]:.4f}" for m in MODELS)
                  + f"; lpm - similar_perturbations {r['lpm'] - r['similar_perturbations']:+.4f}; rmse lpm "
                  f"{rows.at['lpm', 'rmse']:.3f}, similar_perturbations {rows.at['similar_perturbations', 'rmse']:.3f} "
                  f"({rows.at['lpm', 'detail']})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
