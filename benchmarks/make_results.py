"""Regenerate the tables of docs/results.md from the real shared data: the LPM beside every baseline.

    nice python benchmarks/make_results.py                  # every benchmark (hours on 2 CPU cores)
    nice python benchmarks/make_results.py --only 0,1       # just those sections; the others are kept
    nice python benchmarks/make_results.py --only 0,1 --add-models lpm_stacked
                                  # run one model and merge it into those sections' stored rows
    python benchmarks/make_results.py --quick               # 1 seed, 2 LPM epochs: a smoke run

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
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "results.md")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.lpm_seeds, args.lpm_epochs = 1, 1, 2

    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    from graph.settings import get_settings
    from models.cli import resources_for
    from models.datasets import load_dataset
    from models.evaluation.harness import markdown_table, run_benchmark, write_results

    lpm_config = None
    if not args.no_lpm:
        try:
            from models.module import LPMConfig

            epochs = {} if args.lpm_epochs is None else {"max_epochs": args.lpm_epochs}
            lpm_config = (LPMConfig.paper if args.lpm_config == "paper" else LPMConfig)(**epochs)
        except ImportError as exc:
            print(f"LPM not available ({exc}); baselines only", file=sys.stderr)

    json_dir = Path(get_settings().home) / "results"
    chosen = [int(i) for i in args.only.split(",") if i.strip()] or list(range(len(BENCHMARKS)))
    sections, began = {}, time.time()
    cache: dict[str, pd.DataFrame] = {}
    for i in chosen:
        title, name, kwargs, split, context, why, lpm_models = BENCHMARKS[i]
        if args.lpm_models and lpm_models:
            lpm_models = tuple(m.strip() for m in args.lpm_models.split(",") if m.strip())
        key = f"{name}{sorted(kwargs.items())}"
        if key not in cache:
            cache[key] = load_dataset(name, **kwargs)
        df = cache[key]
        res = resources_for(df, gene_graph=bool(lpm_models) and lpm_config is not None)
        res.lpm_config = lpm_config
        t0 = time.time()
        added = [m.strip() for m in args.add_models.split(",") if m.strip()]
        log = lambda r, title=title: print(f"[{time.time() - began:6.0f}s] {title} seed {r['seed']} {r['model']}: "  # noqa: E731
                              f"{r['error'] or round(r['pearson_per_signature'], 3)}", file=sys.stderr, flush=True)
        stored = json_dir / f"{i}_{name}_{split}.json"
        if added:
            if not stored.exists():
                raise SystemExit(f"--add-models needs the stored rows of section {i} ({stored}); "
                                 f"run `--only {i}` once without --add-models first")
            kept = pd.read_json(stored, orient="records")
            kept = kept.loc[~kept["model"].isin(added)]
            parts = [kept, run_benchmark(df, split, context=context, models=added, seeds=range(args.lpm_seeds),
                                         resources=res, on_result=log)]
        else:
            parts = [run_benchmark(df, split, context=context, models=["baselines"], seeds=range(args.seeds),
                                   resources=res, on_result=log)]
        if lpm_config is not None and lpm_models and not added:
            parts.append(run_benchmark(df, split, context=context, models=list(lpm_models), seeds=range(args.lpm_seeds),
                                       resources=res, on_result=log))
        results = pd.concat(parts, ignore_index=True)
        write_results(results, json_dir, name=f"{i}_{name}_{split}", title=title)
        data_line = (f"{len(df):,} rows: {df['context'].nunique()} contexts, {df['perturbation'].nunique()} "
                     f"perturbations, {df['readout'].nunique()} readouts; {int(results['n_test'].iloc[0]):,} "
                     f"test rows in {int(results['n_test_experiments'].iloc[0])} held-out experiments (seed 0)")
        ran = f" for {', '.join(added)}; the other rows are the stored ones of an earlier run" if added else ""
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
                           f"\n\n{markdown_table(results)}\n{weights}")
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


if __name__ == "__main__":
    raise SystemExit(main())
