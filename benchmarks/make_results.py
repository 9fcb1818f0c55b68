"""Regenerate the tables of docs/results.md from the real shared data: the LPM beside every baseline.

    nice python benchmarks/make_results.py                  # every benchmark (hours on 2 CPU cores)
    nice python benchmarks/make_results.py --only 0,1       # just those sections; the others are kept
    nice python benchmarks/make_results.py --only 0,1 --add-models lpm_stacked
                                  # run one model and merge it into those sections' stored rows
    python benchmarks/make_results.py --quick               # 1 seed, 2 LPM epochs: a smoke run
    nice python benchmarks/make_results.py --research residual --only 0 --lpm-epochs 20 --lpm-patience 3
                                  # research: residual LPM vs lpm vs the best baselines, paired by seed

Every row of every run is also written as JSON under <PERTURBGRAPH_HOME>/results/ (outside the repo).
Baselines always get `--seeds` seeds; the LPM variants named per benchmark get `--lpm-seeds` seeds
and train to convergence (LPMConfig: up to 50 epochs, early stopping on the validation split).
Each benchmark is one `### title` section between the tables markers; a run replaces only the
sections it ran.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# (title, dataset, loader kwargs, split, context, why, LPM variants trained here)
# The LPM trains at about 50,000 triples/s on 2 idle CPU cores, so it runs on reduced readout sets
# (Tahoe: a random 150 of the 1,382 dense readouts; Replogle: the 882 readouts in at least 300 of the
# 1,170 top-1,000 lists); the baselines run there too (same rows) and, on their own, at full size.
TAHOE_SMALL = {"n_random": 150, "seed": 0}
REPLOGLE_SMALL = {"min_signatures": 300}
BOTH = ("lpm", "lpm_paper", "lpm_stacked")
BENCHMARKS = [
    ("Tahoe-100M (150 random dense readouts), unseen experiment (target A498)", "tahoe", TAHOE_SMALL,
     "unseen-experiment", "A498",
     "15% of A498's drugs held out (15% more for validation); the other 9 cell lines fully in training.", BOTH),
    ("Tahoe-100M (150 random dense readouts), unseen compound", "tahoe", TAHOE_SMALL, "unseen-compound", None,
     "15% of the 109 drugs held out of all 10 cell lines (15% more for validation).", BOTH),
    ("Tahoe-100M (all 1,382 dense readouts), unseen experiment (target A498)", "tahoe", {}, "unseen-experiment", "A498",
     "As above, every dense readout; baselines only.", ()),
    ("Tahoe-100M (all 1,382 dense readouts), unseen compound", "tahoe", {}, "unseen-compound", None,
     "As above, every dense readout; baselines only.", ()),
    ("Replogle 2022 CRISPRi, unseen experiment (target RPE1)", "replogle", {"min_signatures": 50}, "unseen-experiment",
     "RPE1", "15% of RPE1's knock-downs held out; all of K562 in training. Baselines only.", ()),
    ("Replogle 2022 CRISPRi, unseen gene", "replogle", {"min_signatures": 50}, "unseen-gene", None,
     "15% of the 585 knock-downs held out of both cell lines. Baselines only.", ()),
    ("Replogle 2022 CRISPRi (882 readouts in >= 300 lists), unseen experiment (target RPE1)", "replogle",
     REPLOGLE_SMALL, "unseen-experiment", "RPE1",
     "15% of RPE1's knock-downs held out; all of K562 in training.", ("lpm", "lpm_stacked")),
    ("Replogle 2022 CRISPRi (882 readouts in >= 300 lists), unseen gene", "replogle", REPLOGLE_SMALL,
     "unseen-gene", None, "15% of the 585 knock-downs held out of both cell lines; the LPM embeds them "
     "through their target gene (gene graph); `lpm_zeroshot` is trained with the learned knock-down vectors "
     "dropped half the time, so that encoding learns to stand alone.", ("lpm", "lpm_zeroshot", "lpm_stacked")),
    ("L1000 CMap `ds` (3 compounds x 65 cell lines), unseen context (MCF7)", "l1000-ds", {}, "unseen-context", "MCF7",
     "All of MCF7 held out; the compounds are seen in the other 64 cell lines.", BOTH),
]
# Issues 13 and 17: more Tahoe targets and the 37-line Tahoe. Sections are appended (stored JSONs are named
# by index). The two extra targets were fixed by a rule before any result: the lines of the 10-line file
# with the most drugs after A498 (HEC1A, LOVO and MIAPACA2 have all 109), ties alphabetical.
TAHOE_TARGETS = ("A498", "HEC1A", "LOVO")
TAHOE10_LINES = ("A498", "HCT15", "HEC1A", "LOVO", "MIAPACA2", "NCIH23", "PANC0327", "SNU1", "SNU423", "SW48")
# load_dataset("tahoe37"): both Tahoe files; TAHOE_SMALL's rule over the 700 readouts dense in all 37 lines
TAHOE37_SMALL = {"n_random": 150, "seed": 0}
# the same 150 readouts on the first file's 10 lines only: 10 vs 37 training lines, nothing else changed
TAHOE10_ON_37 = {**TAHOE37_SMALL, "keep_contexts": TAHOE10_LINES}
PRODUCTION = ("production",)  # with production, its LPM member is scored too (row `lpm`, no second fit)
BENCHMARKS += [
    *[(f"Tahoe-100M (150 random dense readouts), unseen experiment (target {t})", "tahoe", TAHOE_SMALL,
       "unseen-experiment", t, f"15% of {t}'s drugs held out (15% more for validation); the other 9 cell lines "
       "fully in training.", PRODUCTION) for t in TAHOE_TARGETS[1:]],
    *[(f"Tahoe-100M, 37 lines (150 random of the 700 readouts dense in all 37), unseen experiment (target {t})",
       "tahoe37", TAHOE37_SMALL, "unseen-experiment", t, f"15% of {t}'s drugs held out (15% more for validation); "
       "the other 36 cell lines fully in training.", PRODUCTION) for t in TAHOE_TARGETS],
    ("Tahoe-100M, 37 lines (150 random of the 700 readouts dense in all 37), unseen compound", "tahoe37",
     TAHOE37_SMALL, "unseen-compound", None, "15% of the 109 drugs held out of all 37 cell lines (15% more for "
     "validation).", PRODUCTION),
    *[(f"Tahoe-100M, the first file's 10 lines on the 37-line readouts, unseen experiment (target {t})", "tahoe37",
       TAHOE10_ON_37, "unseen-experiment", t, f"Control for the 37-line section: the same 150 readouts and the same "
       f"held-out drugs of {t}, 10 lines only.", PRODUCTION) for t in TAHOE_TARGETS],
    ("Tahoe-100M, the first file's 10 lines on the 37-line readouts, unseen compound", "tahoe37", TAHOE10_ON_37,
     "unseen-compound", None, "Control for the 37-line section: the same 150 readouts and held-out drugs, 10 lines "
     "only.", PRODUCTION),
]

# Issue 17, "many contexts with all dense readouts": 37 lines on every readout dense in all 37 (700); baselines
# by default (an LPM fit is ~5x the 150-readout one on 2 CPU cores); the LPM rows come from --research graph.
BENCHMARKS += [
    ("Tahoe-100M, 37 lines (all 700 readouts dense in all 37), unseen experiment (target A498)", "tahoe37", {},
     "unseen-experiment", "A498", "15% of A498's drugs held out (15% more for validation); the other 36 cell lines "
     "fully in training; every readout dense in all 37 lines.", ()),
]
# The shape of the data users bring that we do not have (a few cell types, e.g. an immune-cell screen in four):
# 4 of the first file's lines, the same 150 readouts as sections 0, 9 and 10. The lines were fixed by a rule
# before any result: the three targets and the next line with all 109 drugs (MIAPACA2; see TAHOE_TARGETS).
TAHOE4_LINES = ("A498", "HEC1A", "LOVO", "MIAPACA2")
BENCHMARKS += [
    (f"Tahoe-100M, 4 lines (150 random dense readouts), unseen experiment (target {t})", "tahoe",
     {**TAHOE_SMALL, "keep_contexts": TAHOE4_LINES}, "unseen-experiment", t,
     f"Few contexts: the readouts of sections 0, 9 and 10 on A498, HEC1A, LOVO and MIAPACA2 only; 15% of {t}'s "
     "drugs held out (15% more for validation), the other 3 lines fully in training.", PRODUCTION)
    for t in TAHOE_TARGETS
]


def merge_sections(old_block: str, new_sections: dict[str, str]) -> list[str]:
    """Sections of the tables block in BENCHMARKS order: the ones just run, else the old ones."""
    old: dict[str, str] = {}
    for part in old_block.split("\n### ")[1:]:
        title = part.split("\n", 1)[0].strip()
        old[title] = "### " + part.rstrip() + "\n"
    out = []
    for title, *_ in BENCHMARKS:
        if title in new_sections:
            out.append(new_sections[title])
        elif title in old:
            out.append(old[title])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5, help="seeds for the baselines")
    ap.add_argument("--lpm-seeds", type=int, default=5)
    ap.add_argument("--lpm-epochs", type=int, default=None, help="max epochs (default: LPMConfig, 50 + early stopping)")
    ap.add_argument("--lpm-config", choices=["full", "paper"], default="full",
                    help="full = LPM with compound/gene/target encoders; paper = learned embeddings only")
    ap.add_argument("--only", default="", help="comma-separated benchmark indices (0-based) to run")
    ap.add_argument("--no-lpm", action="store_true")
    ap.add_argument("--quick", action="store_true", help="1 seed, 2 LPM epochs")
    ap.add_argument("--add-models", default="",
                    help="comma-separated models to run alone (with --lpm-seeds seeds) and merge into each chosen "
                         "section's stored rows (<home>/results/*.json), replacing earlier rows of those models")
    ap.add_argument("--lpm-models", default="",
                    help="comma-separated models that replace each chosen section's LPM variants (e.g. production)")
    ap.add_argument("--research", choices=["residual", "graph"], default=None,
                    help="residual: lpm, lpm with LPMConfig.residual and the strongest baselines per seed on the "
                         "chosen sections (default 0); rows merge into <home>/results/research_residual_*.json "
                         "(--add-models reruns only those), tables go to the 'Research: residual LPM' markers; "
                         "graph: the same for the LPM variants of benchmarks/research_lpm_graph.py (default "
                         "section 7), to the 'Research: LPM on Replogle' markers")
    ap.add_argument("--lpm-patience", type=int, default=None, help="early-stopping patience (default: LPMConfig)")
    ap.add_argument("--research-seeds", default="", help="comma-separated seeds for --research (default: --lpm-seeds)")
    ap.add_argument("--lpm-seed-list", default="",
                    help="comma-separated LPM seeds to run instead of range(--lpm-seeds), e.g. 3,4 to complete a "
                         "section; its stored baselines and the LPM rows of the other seeds are kept")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (1 is faster on a busy machine)")
    ap.add_argument("--render-stored", action="store_true",
                    help="run nothing: write the chosen sections from their stored rows (<home>/results/*.json; "
                         "a production run stores its rows after every seed, so a stopped run's seeds are kept)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "results.md")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.lpm_seeds, args.lpm_epochs = 1, 1, 2

    import torch

    torch.set_num_threads(max(1, min(args.threads, os.cpu_count() or 1)))
    if args.research == "residual":
        return research_residual(args, argv)
    if args.research == "graph":
        from research_lpm_graph import research_graph

        return research_graph(args, argv, BENCHMARKS)
    from graph.settings import get_settings
    from models.datasets import load_input, resources_for_input
    from models.evaluation.harness import markdown_table, run_benchmark, write_results
    from models.evaluation.splits import GENETIC_TYPES

    lpm_config = None
    if not args.no_lpm:
        try:
            from models.module import LPMConfig

            epochs = {k: v for k, v in (("max_epochs", args.lpm_epochs), ("patience", args.lpm_patience))
                      if v is not None}  # --lpm-patience was ignored here before 2026-11-30 (patience 5)
            lpm_config = (LPMConfig.paper if args.lpm_config == "paper" else LPMConfig)(**epochs)
        except ImportError as exc:
            print(f"LPM not available ({exc}); baselines only", file=sys.stderr)

    json_dir = Path(get_settings().home) / "results"
    chosen = [int(i) for i in args.only.split(",") if i.strip()] or list(range(len(BENCHMARKS)))
    sections, began = {}, time.time()
    cache: dict = {}  # key -> Loaded (the table and what its reader recorded: source names, targets)
    for i in chosen:
        title, name, kwargs, split, context, why, lpm_models = BENCHMARKS[i]
        if args.lpm_models and lpm_models:
            lpm_models = tuple(m.strip() for m in args.lpm_models.split(",") if m.strip())
        key = f"{name}{sorted(kwargs.items())}"
        if key not in cache:
            cache[key] = load_input(name, **kwargs)
        df = cache[key].frame
        # the gene graph: for the LPM's gene encoder and network_knn (genetic perturbations)
        graph = (bool(lpm_models) and lpm_config is not None) or df["perturbation_type"].astype(str).isin(GENETIC_TYPES).any()
        res = replace(resources_for_input(cache[key], gene_graph=graph), lpm_config=lpm_config)
        t0 = time.time()
        added = [m.strip() for m in args.add_models.split(",") if m.strip()]
        lpm_seeds = [int(s) for s in args.lpm_seed_list.split(",") if s.strip()] or list(range(args.lpm_seeds))
        log = lambda r, title=title: print(f"[{time.time() - began:6.0f}s] {title} seed {r['seed']} {r['model']}: "  # noqa: E731
                              f"{r['error'] or round(r['pearson_per_signature'], 3)}"
                              f"{' ' + r['detail'] if r.get('detail') else ''}", file=sys.stderr, flush=True)
        stored = json_dir / f"{i}_{name}_{split}.json"
        if args.render_stored:
            if not stored.exists():
                raise SystemExit(f"--render-stored: section {i} has no stored rows ({stored})")
            results = pd.read_json(stored, orient="records").fillna({"error": "", "detail": ""})
            parts, lpm_models, added = [results], (), []
        elif added or args.lpm_seed_list:
            if not stored.exists():
                raise SystemExit(f"--add-models / --lpm-seed-list need the stored rows of section {i} ({stored}); "
                                 f"run `--only {i}` once without them first")
            kept = pd.read_json(stored, orient="records").fillna({"error": "", "detail": ""})
            rerun = added or [*lpm_models, "lpm"]  # with production its member `lpm` is rerun too
            parts = [rows_not_rerun(kept, rerun, lpm_seeds)]
            if added:
                parts.append(run_benchmark(df, split, context=context, models=added, seeds=lpm_seeds, resources=res,
                                           on_result=log))
        else:
            parts = [run_benchmark(df, split, context=context, models=["baselines"], seeds=range(args.seeds),
                                   resources=res, on_result=log)]
        if lpm_config is not None and lpm_models and not added and not args.render_stored:
            with_member = "production" in lpm_models and "lpm" not in lpm_models
            rest = [m for m in lpm_models if not (with_member and m == "production")]
            if rest:
                parts.append(run_benchmark(df, split, context=context, models=rest, seeds=lpm_seeds,
                                           resources=res, on_result=log))
            if with_member:
                def keep(rows, done=tuple(parts), stem=f"{i}_{name}_{split}", title=title):  # after every seed
                    write_results(pd.concat([*done, rows], ignore_index=True), json_dir, name=stem, title=title)
                parts.append(production_and_lpm(df, split, context, lpm_seeds, res, log, keep))
        results = pd.concat(parts, ignore_index=True)
        write_results(results, json_dir, name=f"{i}_{name}_{split}", title=title)
        data_line = (f"{len(df):,} rows: {df['context'].nunique()} contexts, {df['perturbation'].nunique()} "
                     f"perturbations, {df['readout'].nunique()} readouts; {int(results['n_test'].iloc[0]):,} "
                     f"test rows in {int(results['n_test_experiments'].iloc[0])} held-out experiments (seed 0)")
        ran = f" for {', '.join(added)}; the other rows are the stored ones of an earlier run" if added else ""
        if args.render_stored:
            ran = f" to write from the stored rows; they were run in {results['fit_s'].sum():.0f} s of fits"
        weights = ""
        if "detail" in results and (results["model"] == "lpm_stacked").any():
            st = results.loc[results["model"] == "lpm_stacked"]
            weights = "\n`lpm_stacked` weights (fitted on validation experiments) by seed: " + "; ".join(
                f"{int(r.seed)}: {r.detail}" for r in st.itertuples()) + ".\n"
        if "detail" in results and (results["model"] == "production").any():
            st = results.loc[results["model"] == "production"]
            weights += "\n`production` choice (on validation experiments) by seed: " + "; ".join(
                f"{int(r.seed)}: {r.detail}" for r in st.itertuples()) + ".\n"
        sections[title] = (f"### {title}\n\n{why} {data_line}. Wall time {time.time() - t0:.0f} s{ran} "
                           f"({datetime.now(UTC):%Y-%m-%d}, `{' '.join(argv if argv is not None else sys.argv[1:])}`)."
                           f"\n\n{markdown_table(results)}\n{weights}{paired_vs_baseline(results)}")
    header = (f"<!-- generated by `python benchmarks/make_results.py`, sections run on their own dates; "
              f"last run {datetime.now(UTC):%Y-%m-%d} ({platform.node()}, torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads, sections {chosen}, {time.time() - began:.0f} s) -->\n")
    marker_start, marker_end = "<!-- tables:start -->", "<!-- tables:end -->"
    old = args.out.read_text() if args.out.exists() else ""
    if marker_start in old:
        block = old[old.index(marker_start) + len(marker_start): old.index(marker_end)]
        text = (old[: old.index(marker_start) + len(marker_start)] + "\n" + header
                + "\n".join(merge_sections(block, sections)) + old[old.index(marker_end):])
    else:
        text = header + "\n".join(merge_sections("", sections))
    args.out.write_text(text)
    print(f"wrote {args.out} in {time.time() - began:.0f} s", file=sys.stderr)
    return 0


def rows_not_rerun(stored: pd.DataFrame, models, seeds) -> pd.DataFrame:
    """The stored rows a run keeps: all but the (model, seed) pairs it is about to run."""
    return stored.loc[~(stored["model"].isin(list(models)) & stored["seed"].isin(list(seeds)))]


def production_and_lpm(df, split_kind, context, seeds, res, log, keep=None) -> pd.DataFrame:
    """Per seed, `production` and its LPM member scored on the same test rows (row `lpm`), one LPM fit
    (models.evaluation.harness.evaluate_production_and_lpm). Records as run_benchmark writes them;
    keep(rows so far) is called after every seed (to store them)."""
    from models.evaluation.harness import evaluate_production_and_lpm
    from models.evaluation.splits import make_split

    rows = []
    for seed in seeds:
        split = make_split(df, split_kind, context=context, seed=seed)
        base = {"seed": seed, "split": split_kind, "context": context or "", "n_train": len(split.train),
                "n_test": len(split.test), "n_test_experiments": len(split.experiments("test")),
                "description": split.description, "error": ""}
        member, prod = evaluate_production_and_lpm(split, seed=seed, resources=res, split_kind=split_kind)
        for rec in ({"model": "lpm", **base, **member}, {"model": "production", **base, **prod}):
            rows.append(rec)
            log(rec)
        if keep is not None:
            keep(pd.DataFrame(rows))
    return pd.DataFrame(rows)


def _strongest_of() -> tuple[str, ...]:
    """Every registered baseline but the two that predict no effect: a new baseline joins the bar by registering."""
    from models.registry import BASELINE_NAMES

    return tuple(n for n in BASELINE_NAMES if n not in ("global_mean", "no_change"))


STRONGEST_OF = _strongest_of()


def paired_vs_baseline(results: pd.DataFrame, metric: str = "pearson_per_signature") -> str:
    """Per seed, `lpm` and `production` against the strongest baseline (best mean `metric` over seeds among
    STRONGEST_OF): the values, wins > 0 and >= +0.01, the mean margin. Empty without those models."""
    r = results.loc[~results["error"].astype(bool)].pivot_table(index="seed", columns="model", values=metric)
    base = [m for m in STRONGEST_OF if m in r]
    shown = [m for m in ("lpm", "production") if m in r]
    if not base or not shown:
        return ""
    best = max(base, key=lambda m: r[m].mean())
    lines = [f"\nPaired by seed ({metric}; strongest baseline by mean: `{best}`):\n",
             "| model | " + " | ".join(f"seed {s}" for s in r.index) + " | wins > 0 (>= +0.01) | mean margin |",
             "|---|" + "---|" * (len(r.index) + 2)]
    lines.append(f"| {best} | " + " | ".join(f"{v:.3f}" for v in r[best]) + " | | |")
    for m in shown:
        d = (r[m] - r[best]).dropna()
        cells = " | ".join("–" if pd.isna(v) else f"{v:.3f}" for v in r[m])
        lines.append(f"| {m} | {cells} | {int((d > 0).sum())}/{len(d)} ({int((d >= 0.01).sum())}/{len(d)}) "
                     f"| {d.mean():+.4f} |")
    return "\n".join(lines) + "\n"


RESIDUAL_MODELS = ("context_mean", "other_contexts", "linear", "lpm_residual", "lpm")
RESIDUAL_MARKERS = ("<!-- research-residual:start -->", "<!-- research-residual:end -->")


def research_residual(args, argv) -> int:
    """Issue 17, residual parametrisation: per seed (sequentially) the simple baselines, the LPM with
    `LPMConfig(residual=True)` and the plain LPM on the same split; a table per section, the paired
    per-seed pearson_per_signature / RMSE and the residual LPM's wins against the strongest baseline."""
    from graph.settings import get_settings
    from models.datasets import load_input, resources_for_input
    from models.evaluation.harness import build_model, evaluate_model, markdown_table, write_results
    from models.evaluation.metrics import METRIC_NAMES
    from models.evaluation.splits import make_split
    from models.module import LPMConfig

    overrides = {k: v for k, v in (("max_epochs", args.lpm_epochs), ("patience", args.lpm_patience)) if v is not None}
    config = LPMConfig(**overrides)
    models = [m.strip() for m in args.add_models.split(",") if m.strip()] or list(RESIDUAL_MODELS)
    json_dir = Path(get_settings().home) / "results"
    chosen = [int(i) for i in args.only.split(",") if i.strip()] or [0]
    out: list[str] = []
    for i in chosen:
        title, name, kwargs, split_kind, context, why, _ = BENCHMARKS[i]
        loaded = load_input(name, **kwargs)
        df, res = loaded.frame, resources_for_input(loaded, gene_graph=True)
        stored = json_dir / f"research_residual_{i}.json"
        rows = pd.read_json(stored, orient="records") if stored.exists() else pd.DataFrame()
        seeds = [int(s) for s in args.research_seeds.split(",") if s.strip()] or list(range(args.lpm_seeds))
        if len(rows):  # rows of the (model, seed) pairs about to run are replaced
            rows = rows_not_rerun(rows, models, seeds)
        new, t0 = [], time.time()
        for seed in seeds:
            split = make_split(df, split_kind, context=context, seed=seed)
            for model in models:
                res = replace(res, lpm_config=replace(config, residual=model == "lpm_residual"))
                m = build_model("lpm" if model == "lpm_residual" else model, seed=seed, resources=res,
                                split_kind=split_kind)
                rec = {"model": model, "seed": seed, "split": split_kind, "context": context or "", "error": "",
                       "n_test": len(split.test), "description": split.description}
                rec.update(evaluate_model(m, split))
                if hasattr(m, "history") and m.history:
                    best = min(m.history, key=lambda h: h.get("valid_loss", h["train_loss"]))
                    rec["detail"] = f"{len(m.history)} epochs, best {best['epoch']}"
                new.append(rec)
                print(f"[{time.time() - t0:6.0f}s] section {i} seed {seed} {model}: r {rec['pearson_per_signature']:.4f} "
                      f"rmse {rec['rmse']:.4f} {rec.get('detail', '')}", file=sys.stderr, flush=True)
                rows_now = pd.concat([rows, pd.DataFrame(new)], ignore_index=True)
                write_results(rows_now, json_dir, name=f"research_residual_{i}", title=title)  # keep what is done
        rows = pd.concat([rows, pd.DataFrame(new)], ignore_index=True)
        rows = rows.loc[rows["model"].isin(RESIDUAL_MODELS)]
        out.append(f"#### {title}\n\n{why} Config: `LPMConfig({', '.join(f'{k}={v}' for k, v in overrides.items())})` "
                   f"for both LPMs ({datetime.now(UTC):%Y-%m-%d}, "
                   f"`{' '.join(argv if argv is not None else sys.argv[1:])}`, {time.time() - t0:.0f} s).\n\n"
                   f"{markdown_table(rows, [m for m in METRIC_NAMES if m in rows])}\n\n{paired_by_seed(rows)}\n")
    write_marked_block(args.out, RESIDUAL_MARKERS, "\n".join(out))
    return 0


def write_marked_block(path: Path, markers: tuple[str, str], body: str) -> None:
    """Replace what lies between the two marker comments of `path` (a generated block) with `body`."""
    start, end = markers
    text = path.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{path} has no {start} ... {end} block to write into")
    path.write_text(text[: text.index(start) + len(start)] + "\n" + body + text[text.index(end):])


def paired_by_seed(rows: pd.DataFrame) -> str:
    """Per-seed pearson_per_signature / RMSE per model, and the residual LPM minus the strongest baseline
    (the baseline with the best mean per-signature r) and minus the plain LPM."""
    r = rows.pivot_table(index="seed", columns="model", values="pearson_per_signature")
    e = rows.pivot_table(index="seed", columns="model", values="rmse")
    base = [m for m in ("context_mean", "other_contexts", "linear") if m in r]
    best = max(base, key=lambda m: r[m].mean())
    cols = [m for m in RESIDUAL_MODELS if m in r]
    det = rows.loc[rows["model"] == "lpm_residual"].set_index("seed")["detail"] if "detail" in rows else pd.Series()
    lines = ["| seed | " + " | ".join(f"{m} r / rmse" for m in cols) + f" | residual − {best} (r) | residual − lpm (r) "
             "| residual LPM epochs |", "|---|" + "---|" * (len(cols) + 3)]
    for seed in r.index:
        cells = [f"{r.at[seed, m]:.3f} / {e.at[seed, m]:.3f}" if pd.notna(r.at[seed, m]) else "–" for m in cols]
        d = [r.at[seed, "lpm_residual"] - r.at[seed, o] if {"lpm_residual", o} <= set(r) else float("nan")
             for o in (best, "lpm")]
        lines.append(f"| {seed} | " + " | ".join(cells) + " | " + " | ".join("–" if pd.isna(x) else f"{x:+.4f}" for x in d)
                     + f" | {det.get(seed, '') if isinstance(det.get(seed, ''), str) else ''} |")
    if "lpm_residual" in r:
        paired = r[["lpm_residual", best]].dropna()
        diff = paired["lpm_residual"] - paired[best]
        rm = e.loc[paired.index, "lpm_residual"] < e.loc[paired.index, best]
        lines.append(f"\nResidual LPM vs {best} (strongest baseline by mean r), paired over {len(diff)} seeds: "
                     f"r higher on {int((diff > 0).sum())}, by >= 0.01 on {int((diff >= 0.01).sum())}, lower on "
                     f"{int((diff < 0).sum())}; mean difference {diff.mean():+.4f}; RMSE lower on {int(rm.sum())}.")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
