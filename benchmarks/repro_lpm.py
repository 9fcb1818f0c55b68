"""Is an LPM fit reproducible? One make_results section's LPM for one seed, with its per-epoch curve, test
per-signature r and a hash of its predictions and weights, so two runs can be compared bit for bit.
Behind docs/results.md "Protocol" (reproducibility).

    PYTHONHASHSEED=0 nice -n 19 python benchmarks/repro_lpm.py --section 0 --seed 2 --threads 1 --out a.json
    PYTHONHASHSEED=123 nice -n 19 python benchmarks/repro_lpm.py --section 0 --seed 2 --threads 2 --out b.json
    nice -n 19 python benchmarks/repro_lpm.py --seed 2 --before baselines,lpm0 --out c.json   # what ran before
    nice -n 19 python benchmarks/repro_lpm.py --seed 2 --permute-graph 1 --out d.json         # gene graph row order
    nice -n 19 python benchmarks/repro_lpm.py --seed 2 --model-seed 101 --ema-decay 0.99 --out e.json  # H7

The LPM is the one make_results fits (registry `lpm`, LPMConfig(max_epochs=--epochs), the section's split and
side information). --before fits these first in the same process: `baselines` (the production baselines on the
same split), `lpmN` (the LPM of seed N), `rng` (draws from the global numpy / torch generators).
--permute-graph K shuffles the gene graph's rows (seed K); --shuffle-train K the training rows. --model-seed S fits
the LPM of seed S (initialisation, dropout, batch order) on the split of --seed; --ema-decay sets LPMConfig.ema_decay.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--section", type=int, default=0, help="make_results section index")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=12, help="LPMConfig.max_epochs (make_results --lpm-epochs)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--before", default="", help="comma-separated: baselines, lpmN, rng")
    ap.add_argument("--permute-graph", type=int, default=-1)
    ap.add_argument("--shuffle-train", type=int, default=-1)
    ap.add_argument("--model-seed", type=int, default=None, help="the LPM's seed (default: --seed, the split's)")
    ap.add_argument("--ema-decay", type=float, default=0.0, help="LPMConfig.ema_decay (issue 17, H7)")
    ap.add_argument("--out", type=Path, required=True, help="JSON: hashes, r and the per-epoch history")
    args = ap.parse_args(argv)
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from make_results import BENCHMARKS

    from models.datasets import load_input, resources_for_input
    from models.evaluation.baselines import KEY_COLUMNS
    from models.evaluation.metrics import per_signature_pearson
    from models.evaluation.splits import make_split
    from models.module import LPMConfig
    from models.registry import PRODUCTION_BASELINES, build_model, fit_model

    _, name, kwargs, split_kind, context, _, _ = BENCHMARKS[args.section]
    loaded = load_input(name, **kwargs)
    df = loaded.frame
    res = replace(resources_for_input(loaded, gene_graph=True), lpm_config=LPMConfig(max_epochs=args.epochs,
                                                                                ema_decay=args.ema_decay))
    if args.permute_graph >= 0 and res.gene_graph is not None:
        graph = res.gene_graph.sample(frac=1.0, random_state=args.permute_graph).reset_index(drop=True)
        res = replace(res, side=replace(res.side, gene_graph=graph))
    split = make_split(df, split_kind, context=context, seed=args.seed)
    if args.shuffle_train >= 0:
        split = replace(split, train=split.train.sample(frac=1.0, random_state=args.shuffle_train).reset_index(drop=True))
    t0 = time.time()
    for step in (s.strip() for s in args.before.split(",") if s.strip()):
        if step == "baselines":
            for n in PRODUCTION_BASELINES:
                fit_model(build_model(n, seed=args.seed, resources=res, split_kind=split_kind), split.train, split.valid)
        elif step.startswith("lpm"):
            other = make_split(df, split_kind, context=context, seed=int(step[3:]))
            build_model("lpm", seed=int(step[3:]), resources=res, split_kind=split_kind).fit(
                other.train, other.valid, progress=False, device=args.device)
        elif step == "rng":
            np.random.random(1000)
            torch.rand(1000)
        else:
            raise SystemExit(f"--before: unknown step {step!r}")
    t1 = time.time()
    model_seed = args.seed if args.model_seed is None else args.model_seed
    lpm = build_model("lpm", seed=model_seed, resources=res, split_kind=split_kind)
    lpm.fit(split.train, split.valid, progress=False, device=args.device)
    fit_s = time.time() - t1
    pred = lpm.predict(split.test[KEY_COLUMNS].copy())
    sd = lpm.module.state_dict()
    digest = lambda b: hashlib.sha1(b).hexdigest()[:12]  # noqa: E731
    graph = res.gene_graph
    out = {"section": args.section, "seed": args.seed, "model_seed": model_seed, "ema_decay": args.ema_decay,
           "threads": args.threads, "device": args.device,
           "before": args.before, "permute_graph": args.permute_graph, "shuffle_train": args.shuffle_train,
           "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "unset"), "torch": torch.__version__,
           "graph_edges": 0 if graph is None else len(graph),
           "graph_sha": "none" if graph is None else digest(graph.to_csv(index=False).encode()),
           "pearson_per_signature": per_signature_pearson(split.test, split.test["value"].to_numpy(np.float64), pred),
           "predictions_sha": digest(pred.tobytes()),
           "weights_sha": digest(b"".join(sd[k].detach().cpu().contiguous().numpy().tobytes() for k in sorted(sd))),
           "fit_s": round(fit_s, 1), "before_s": round(t1 - t0, 1),
           "history": [{k: h[k] for k in ("epoch", "train_loss", "valid_loss") if k in h} for h in lpm.history]}
    args.out.write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "history"}))
    for h in out["history"]:
        print(f"  epoch {h['epoch']:2d} train {h['train_loss']:.6f} valid {h.get('valid_loss', float('nan')):.6f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
