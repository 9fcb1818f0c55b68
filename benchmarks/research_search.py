"""Issue 17: a budgeted per-dataset configuration search for the LPM, and a learning-rate rule for larger batches.

    nice -n 19 python benchmarks/research_search.py --section 11 --trials 40 --timeout 1800 \
        --lpm-epochs 12 --lpm-patience 5 --threads 1      # docs/results.md "per-dataset configuration search"

Objective: the validation mean per-signature r (models.evaluation.metrics.per_signature_pearson of base +
network on the split's *validation* experiments; test rows are never read) of one LPM fit on the split of
`--split-seed` (0) of a make_results section (its BENCHMARKS entry and loaders, reused, not copied). The same
validation experiments drive early stopping, so the best trial's validation r is optimistic; only the test
rows of the later `make_results.py --research graph` run judge it.

Optuna's TPE sampler with a fixed seed, stopped by whichever comes first of `--trials` and `--timeout` (wall
seconds); both, the time spent and every trial (params, LPMConfig overrides, validation r, epochs, fit s) go
to <PERTURBGRAPH_HOME>/results/search_<section>.json, rewritten after each trial. Two trials are queued
first: the section's current variant with today's LPMConfig defaults (the untuned point) and the reference
code's Perturb-seq configuration on it (embedding 32, 2 x 512, no dropout, batch 5,000, decay 0.99).
No pruner: LPM.fit reports no per-epoch validation r to a caller (only the final history).

Search space (SPACE; each is an LPMConfig field unless said):
  variant        the residual variants that matter for the dataset (SECTION_VARIANTS; LPM_VARIANTS overrides)
  embed_dim      32, 64, 128, 256                   hidden_dim  128, 256, 512, 1024
  num_layers     1, 2, 3                            dropout     0 to 0.3 (uniform)
  lr             3e-4 to 1e-2 (log)                 weight_decay 1e-4 to 0.1 (log)
  lr_decay       0.90 to 1.00 (per-epoch ExponentialLR gamma)
  batch_triples  1,000, 2,000, 5,000
  lr_rule        "none" or "sqrt_batch": the learning-rate rule under test, lr x sqrt(batch_triples / 1000)
                 (the sampled lr is then the lr at today's batch of 1,000; LPMConfig.lr gets the scaled value)
The epoch cap and patience are fixed (the section's stored rows'), so a larger batch also means fewer steps.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

# the residual variants the search chooses among, per make_results section (their stored rows' best LPMs)
SECTION_VARIANTS = {11: ("lpm_rstop", "lpm_simctx_rstop"),  # Tahoe 37 lines, unseen experiment A498 (H5, H6)
                    6: ("lpm", "lpm_kgbase")}  # Replogle unseen experiment RPE1 ("Research: LPM on Replogle", H4)
SPACE = {"embed_dim": (32, 64, 128, 256), "hidden_dim": (128, 256, 512, 1024), "num_layers": (1, 2, 3),
         "dropout": (0.0, 0.3), "lr": (3e-4, 1e-2), "weight_decay": (1e-4, 0.1), "lr_decay": (0.90, 1.0),
         "batch_triples": (1000, 2000, 5000), "lr_rule": ("none", "sqrt_batch")}
# the reference code's Perturb-seq configuration (issue 17), as a point of SPACE
REFERENCE = {"embed_dim": 32, "hidden_dim": 512, "num_layers": 2, "dropout": 0.0, "lr_decay": 0.99,
             "batch_triples": 5000, "lr_rule": "none"}


def default_params(variant: str) -> dict:
    """Today's LPMConfig defaults as a point of SPACE (the untuned configuration)."""
    from models.module import LPMConfig

    d = LPMConfig()
    return {"variant": variant, "embed_dim": d.embed_dim, "hidden_dim": d.hidden_dim, "num_layers": d.num_layers,
            "dropout": d.dropout, "lr": d.lr, "weight_decay": d.weight_decay, "lr_decay": d.lr_decay,
            "batch_triples": d.batch_triples, "lr_rule": "none"}


def overrides_of(params: dict) -> dict:
    """A trial's params -> LPMConfig overrides (the variant's LPM_VARIANTS overrides + the searched fields, the
    lr after the rule): what an LPM_VARIANTS entry of the chosen configuration holds."""
    from research_lpm_graph import variant_overrides

    p = dict(params)
    rule, variant = p.pop("lr_rule"), p.pop("variant")
    if rule == "sqrt_batch":
        p["lr"] = p["lr"] * math.sqrt(p["batch_triples"] / 1000)
    elif rule != "none":
        raise ValueError(f"unknown lr_rule {rule!r}")
    return {**variant_overrides(variant), **p}


def suggest(trial, variants: tuple[str, ...], space: dict = SPACE) -> dict:
    s = space
    return {"variant": trial.suggest_categorical("variant", list(variants)),
            "embed_dim": trial.suggest_categorical("embed_dim", list(s["embed_dim"])),
            "hidden_dim": trial.suggest_categorical("hidden_dim", list(s["hidden_dim"])),
            "num_layers": trial.suggest_categorical("num_layers", list(s["num_layers"])),
            "dropout": trial.suggest_float("dropout", *s["dropout"]),
            "lr": trial.suggest_float("lr", *s["lr"], log=True),
            "weight_decay": trial.suggest_float("weight_decay", *s["weight_decay"], log=True),
            "lr_decay": trial.suggest_float("lr_decay", *s["lr_decay"]),
            "batch_triples": trial.suggest_categorical("batch_triples", list(s["batch_triples"])),
            "lr_rule": trial.suggest_categorical("lr_rule", list(s["lr_rule"]))}


def distributions(variants: tuple[str, ...], space: dict = SPACE) -> dict:
    """SPACE as optuna distributions (the same as `suggest` asks for): to add an earlier run's trials."""
    from optuna.distributions import CategoricalDistribution as C
    from optuna.distributions import FloatDistribution as F

    s = space
    return {"variant": C(list(variants)), "embed_dim": C(list(s["embed_dim"])), "hidden_dim": C(list(s["hidden_dim"])),
            "num_layers": C(list(s["num_layers"])), "dropout": F(*s["dropout"]), "lr": F(*s["lr"], log=True),
            "weight_decay": F(*s["weight_decay"], log=True), "lr_decay": F(*s["lr_decay"]),
            "batch_triples": C(list(s["batch_triples"])), "lr_rule": C(list(s["lr_rule"]))}


def _inside(dist, value) -> bool:
    try:
        return dist._contains(dist.to_internal_repr(value))
    except ValueError:  # a categorical value not among the choices
        return False


def fit_on_validation(split, resources, config, seed: int = 0) -> dict:
    """One LPM fit on split.train (split.valid for early stopping); its mean per-signature r on split.valid."""
    from models.evaluation.baselines import KEY_COLUMNS, fit_model
    from models.evaluation.harness import build_model
    from models.evaluation.metrics import per_signature_pearson

    m = build_model("lpm", seed=seed, resources=replace(resources, lpm_config=config), split_kind=split.kind)
    t0 = time.perf_counter()
    fit_model(m, split.train, split.valid)
    fit_s = time.perf_counter() - t0
    valid = split.valid
    pred = m.predict(valid[KEY_COLUMNS].copy())
    h = m.history
    best = (max(h, key=lambda e: e["valid_r"]) if "valid_r" in h[0] else min(h, key=lambda e: e["valid_loss"]))
    return {"valid_r": per_signature_pearson(valid, valid["value"], pred), "epochs": len(h),
            "best_epoch": best["epoch"], "fit_s": fit_s}


def search(split, resources, base_config, variants: tuple[str, ...], *, trials: int, timeout: float | None,
           sampler_seed: int = 0, space: dict = SPACE, model_seed: int = 0, enqueue: bool = True,
           on_trial=None, earlier: list[dict] | None = None) -> dict:
    """TPE search of `space` on split's validation r; returns the budget, time spent and every trial.
    base_config: the LPMConfig every trial starts from (epoch cap, patience); on_trial(record) after each.
    earlier: records of an earlier run on the same split (params, valid_r), told to the sampler first (those
    outside `space` are left out); they count in neither the budget nor the returned trials."""
    import optuna  # only the search needs it (pyproject: dev extra)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=sampler_seed, n_startup_trials=min(10, max(3, trials // 3)))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    dists, told = distributions(variants, space), 0
    for rec in earlier or []:
        p = rec.get("params", {})
        if "valid_r" in rec and all(_inside(dists[k], v) for k, v in p.items()):
            study.add_trial(optuna.trial.create_trial(params=p, distributions=dists, value=rec["valid_r"]))
            told += 1
    if enqueue:  # the untuned point of the stronger (last) variant, and the reference configuration on it
        study.enqueue_trial(default_params(variants[-1]))
        study.enqueue_trial({**default_params(variants[-1]), **REFERENCE})
    records: list[dict] = []

    def objective(trial) -> float:
        params = suggest(trial, variants, space)
        ov = overrides_of(params)
        rec = {"trial": trial.number, "params": params, "overrides": ov, "started": datetime.now(UTC).isoformat()}
        try:
            rec.update(fit_on_validation(split, resources, replace(base_config, **ov), seed=model_seed))
        except Exception as exc:  # recorded, then the trial counts as failed (the search goes on)
            rec["error"] = f"{type(exc).__name__}: {exc}"
            records.append(rec)
            if on_trial:
                on_trial(rec)
            raise
        records.append(rec)
        if on_trial:
            on_trial(rec)
        return rec["valid_r"]

    t0 = time.time()
    study.optimize(objective, n_trials=trials, timeout=timeout, catch=(Exception,))
    done = [r for r in records if "valid_r" in r]
    best = max(done, key=lambda r: r["valid_r"]) if done else None
    return {"trials_budget": trials, "timeout_s": timeout, "spent_s": time.time() - t0, "sampler": "TPE",
            "sampler_seed": sampler_seed, "n_earlier_told": told, "n_trials": len(records), "n_complete": len(done), "best": best,
            "trials": records}


def lr_rule_check(split, resources, base_config, variant: str, batches=(2000, 5000), model_seed: int = 0) -> list[dict]:
    """The learning-rate rule alone: `variant` at today's defaults with each larger batch, lr as is and
    x sqrt(batch / 1000); the validation r of one fit each (the search's objective)."""
    out = []
    for batch in batches:
        for rule in ("none", "sqrt_batch"):
            ov = overrides_of({**default_params(variant), "batch_triples": batch, "lr_rule": rule})
            out.append({"seed": model_seed, "batch": batch, "rule": rule, "lr": ov["lr"],
                        **fit_on_validation(split, resources, replace(base_config, **ov), seed=model_seed)})
    return out


def validation_overlap(df: pd.DataFrame, split_kind: str, context: str | None, search_seed: int,
                       seeds) -> dict[int, int]:
    """Per seed: how many of its test experiments were validation experiments of the search's split."""
    from models.evaluation.splits import make_split

    searched = make_split(df, split_kind, context=context, seed=search_seed).experiments("valid")
    return {s: len(make_split(df, split_kind, context=context, seed=s).experiments("test") & searched) for s in seeds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--section", type=int, required=True, help=f"make_results section ({sorted(SECTION_VARIANTS)})")
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--timeout", type=float, default=1800, help="wall seconds; no trial starts after it")
    ap.add_argument("--lpm-epochs", type=int, required=True)
    ap.add_argument("--lpm-patience", type=int, required=True)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--sampler-seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-enqueue", action="store_true",
                    help="a continuation (other --sampler-seed): skip the two queued points an earlier run measured")
    ap.add_argument("--max-hidden", type=int, default=None,
                    help="leave hidden_dim above this out of SPACE (a time-bounded continuation; say so with results)")
    ap.add_argument("--earlier", type=Path, default=None,
                    help="an earlier run's search JSON on the same split: its trials are told to the sampler first")
    ap.add_argument("--lr-rule-check", default="", metavar="SEEDS",
                    help="instead of a search: lr_rule_check of the section's stronger variant on these split seeds "
                         "(comma-separated; model seed = split seed), to <home>/results/lr_rule_<section><tag>.json")
    ap.add_argument("--tag", default="", help="suffix of the JSON name (search_<section><tag>.json)")
    args = ap.parse_args(argv)
    space = SPACE if args.max_hidden is None else {
        **SPACE, "hidden_dim": tuple(h for h in SPACE["hidden_dim"] if h <= args.max_hidden)}

    import torch

    torch.set_num_threads(max(1, args.threads))
    from make_results import BENCHMARKS

    from graph.settings import get_settings
    from models.datasets import load_input, resources_for_input
    from models.evaluation.splits import make_split
    from models.module import LPMConfig

    title, name, kwargs, split_kind, context, _, _ = BENCHMARKS[args.section]
    loaded = load_input(name, **kwargs)
    df, res = loaded.frame, resources_for_input(loaded, gene_graph=True)
    split = make_split(df, split_kind, context=context, seed=args.split_seed)
    base = LPMConfig(max_epochs=args.lpm_epochs, patience=args.lpm_patience)
    if args.lr_rule_check:
        path, rows = Path(get_settings().home) / "results" / f"lr_rule_{args.section}{args.tag}.json", []
        path.parent.mkdir(parents=True, exist_ok=True)
        for s in (int(x) for x in args.lr_rule_check.split(",") if x.strip()):
            rows += lr_rule_check(make_split(df, split_kind, context=context, seed=s), res, base,
                                  SECTION_VARIANTS[args.section][-1], model_seed=s)
            path.write_text(json.dumps(rows, indent=1))
            print("\n".join(json.dumps(r) for r in rows if r["seed"] == s), file=sys.stderr, flush=True)
        return 0
    out = Path(get_settings().home) / "results" / f"search_{args.section}{args.tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"section": args.section, "title": title, "split_seed": args.split_seed, "max_epochs": args.lpm_epochs,
            "patience": args.lpm_patience, "variants": SECTION_VARIANTS[args.section], "space": space,
            "sampler_seed": args.sampler_seed, "enqueued": not args.no_enqueue,
            "command": " ".join(sys.argv if argv is None else ["research_search.py", *argv]),
            "n_valid_experiments": len(split.experiments("valid"))}
    began, rows = time.time(), []

    def log(rec):
        rows.append(rec)
        out.write_text(json.dumps({**meta, "spent_s": time.time() - began, "trials": rows}, indent=1, default=str))
        r = f"valid r {rec['valid_r']:.4f} ({rec['epochs']} epochs, best {rec['best_epoch']}, {rec['fit_s']:.0f} s)" \
            if "valid_r" in rec else rec["error"]
        print(f"[{time.time() - began:6.0f}s] trial {rec['trial']}: {r} {rec['params']}", file=sys.stderr, flush=True)

    result = search(split, res, base, SECTION_VARIANTS[args.section], trials=args.trials, timeout=args.timeout,
                    sampler_seed=args.sampler_seed, model_seed=args.split_seed, space=space,
                    enqueue=not args.no_enqueue, on_trial=log,
                    earlier=json.loads(args.earlier.read_text())["trials"] if args.earlier else None)
    result["overlap_with_test"] = validation_overlap(df, split_kind, context, args.split_seed, range(5))
    out.write_text(json.dumps({**meta, **result}, indent=1, default=str))
    best = result["best"]
    print(f"{result['n_complete']}/{result['n_trials']} trials complete in {result['spent_s']:.0f} s "
          f"(budget {args.trials} trials, {args.timeout:.0f} s); best trial {best and best['trial']}: "
          f"valid r {best and round(best['valid_r'], 4)}\nLPM_VARIANTS entry: {best and best['overrides']}\n"
          f"seed-0 validation experiments among each seed's test experiments: {result['overlap_with_test']}\n"
          f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    raise SystemExit(main())
