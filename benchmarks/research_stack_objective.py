"""Issue 13 C1 / C2: the metric-aligned simple answer (`consensus`) and the metric-aligned stacking
objective, measured on the make_results sections' splits. Behind docs/results.md "Production predictor"
("Metric-aligned simple answer and stacking").

    nice python benchmarks/research_stack_objective.py --only 1,0,14 --seeds 0,1,2,3,4 --threads 1

Per section and seed: one LPM fit (make_results' settings: LPMConfig(max_epochs=12)) and one fit of every
production baseline, then the production selection (models/predictor.py) twice on the *same fitted
members*, once per stacking objective (`mse`, `signature`: models/evaluation/stacking.py), so the two
differ only by the weights. Printed per seed: the test per-signature r of every baseline (with
`consensus` and, on unseen compounds, `tanimoto_knn`), of production with each objective and of its LPM
member; the strongest baseline of the seed; the choice of each; and the stacked candidate's out-of-fold
validation r under each objective (what the choice of the default objective may look at).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.make_results import STRONGEST_OF  # noqa: E402


def run_section(index: int, seeds) -> pd.DataFrame:
    from make_results import BENCHMARKS

    from models.datasets import load_input, resources_for_input
    from models.evaluation.baselines import KEY_COLUMNS, fit_model
    from models.evaluation.metrics import per_signature_pearson
    from models.evaluation.splits import make_split
    from models.module import LPMConfig
    from models.predictor import STACKED, ProductionPredictor
    from models.registry import build_model, production_members

    _, name, kwargs, split_kind, context, _, _ = BENCHMARKS[index]
    loaded = load_input(name, **kwargs)
    df = loaded.frame
    res = replace(resources_for_input(loaded, gene_graph=True), lpm_config=LPMConfig(max_epochs=12))
    extra = ["consensus", *(["tanimoto_knn"] if split_kind == "unseen-compound" else [])]
    rows = []
    for seed in seeds:
        split = make_split(df, split_kind, context=context, seed=seed)
        members = production_members(seed, res, split_kind)
        for model in members.values():
            fit_model(model, split.train, split.valid)
        others = {n: fit_model(build_model(n, seed=seed, resources=res, split_kind=split_kind), split.train,
                               split.valid) for n in extra}
        test = split.test
        y, keys = test["value"].to_numpy(np.float64), test[KEY_COLUMNS]
        row = {"section": index, "seed": seed}
        for n, model in {**members, **others}.items():
            row[n] = per_signature_pearson(test, y, model.predict(keys.copy()))
        for objective in ("mse", "signature"):
            p = ProductionPredictor(members, seed=seed, prefitted=tuple(members), stack_objective=objective)
            p.fit(split.train, split.valid)
            row[f"production_{objective}"] = per_signature_pearson(test, y, p.predict(keys.copy()))
            row[f"choice_{objective}"] = p.describe()
            row[f"valid_stack_{objective}"] = p.selection.validation[STACKED]["pearson_per_signature"]
        rows.append(row)
        print(f"section {index} seed {seed}: " + ", ".join(
            f"{k} {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in row.items() if k not in ("section", "seed")),
            file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


def summary(frame: pd.DataFrame) -> str:
    """Per seed: the strongest baseline, production by objective and the LPM member against it."""
    base = [m for m in STRONGEST_OF if m in frame]
    best, which = frame[base].max(axis=1), frame[base].idxmax(axis=1)
    seeds = frame["seed"].tolist()
    lines = ["| | " + " | ".join(f"seed {s}" for s in seeds) + " | wins > 0 (≥ +0.01) | mean margin |",
             "|---|" + "---|" * (len(seeds) + 2),
             "| strongest baseline | " + " | ".join(f"{v:.4f} ({w})" for v, w in zip(best, which, strict=True))
             + " | | |"]
    for m in ("production_mse", "production_signature", "lpm", "consensus"):
        d = frame[m] - (best if m != "consensus" else frame["context_mean"])
        ref = "" if m != "consensus" else " − context_mean"
        lines.append(f"| {m}{ref} | " + " | ".join(f"{v:.4f} ({x:+.4f})" for v, x in zip(frame[m], d, strict=True))
                     + f" | {int((d > 1e-9).sum())}/{len(d)} ({int((d >= 0.01).sum())}/{len(d)}) | {d.mean():+.4f} |")
    v = frame["valid_stack_signature"] - frame["valid_stack_mse"]
    lines.append("| stacked candidate, validation r out of fold: signature − mse | "
                 + " | ".join(f"{x:+.4f}" for x in v) + f" | | {v.mean():+.4f} |")
    choices = "; ".join(f"seed {s}: mse → {a}; signature → {b}" for s, a, b in
                        zip(seeds, frame["choice_mse"], frame["choice_signature"], strict=True))
    return "\n".join(lines) + f"\n\nChoices: {choices}.\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="1,0,14", help="make_results section indices")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    for index in [int(i) for i in args.only.split(",") if i.strip()]:
        print(f"\n### section {index}\n\n{summary(run_section(index, seeds))}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
