"""When does the LPM itself beat the neighbour estimators? Measurement noise (issue 17; docs/results.md
"Research: measurement noise decides whether the LPM wins").

On the SIMULATED world (graph/simulated.py) the default LPM beats `similar_perturbations` on knock-down
unseen experiments when each signature carries noise of the size of the signal, and ties it when the noise is
small; on the real Tahoe tables (pseudobulk signatures, very reproducible across lines) it ties. This script
asks the real data the same question: the same Tahoe split (make_results.py section 0: 10 lines, 150 random
dense readouts, target A498), with Gaussian noise of sd = `noise` x the table's value sd added to every value,
training and test alike (as noisier measurements of the same experiments would be), the same noise for every
model of a seed. Models: the registered `lpm` (LPMConfig defaults, its base chosen on validation),
`similar_perturbations`, `other_contexts`; test per-signature r against the noisy test values.

    PERTURBGRAPH_SHARED_DATA=<shared data> nice python benchmarks/research_noise.py --noise 0,1,2 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import sys
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
    ap.add_argument("--noise", default="0,1,2", help="noise sd in units of the table's value sd, comma-separated")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--target", default="A498")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    loaded = load_input("tahoe", n_random=150, seed=0)
    clean = loaded.frame
    resources = replace(resources_for_input(loaded, gene_graph=True, info=lambda m: None, warn=lambda m: None),
                        lpm_config=LPMConfig(max_epochs=args.epochs, patience=args.patience))  # as make_results
    sd = float(clean["value"].std())
    print(f"tahoe, 10 lines, 150 readouts: {len(clean):,} rows, value sd {sd:.3f}; target {args.target}", flush=True)
    for noise in (float(x) for x in args.noise.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            rng = np.random.default_rng([seed, int(round(noise * 1000))])
            df = clean.assign(value=clean["value"] + noise * sd * rng.standard_normal(len(clean)))
            rows = run_benchmark(df, "unseen-experiment", context=args.target, models=list(MODELS), seeds=[seed],
                                 resources=resources)
            r = rows.set_index("model")["pearson_per_signature"]
            detail = rows.set_index("model")["detail"].get("lpm", "")
            print(f"noise {noise:g} seed {seed}: " + ", ".join(f"{m} {r[m]:.4f}" for m in MODELS)
                  + f"; lpm - similar_perturbations {r['lpm'] - r['similar_perturbations']:+.4f} ({detail})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
