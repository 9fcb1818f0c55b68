"""Regenerate docs/results.md from the real shared data: the LPM beside every baseline.

    nice python benchmarks/make_results.py                  # the documented configuration
    python benchmarks/make_results.py --quick               # 1 seed, 2 LPM epochs: a smoke run

Every row of every run is also written as JSON under <PERTURBGRAPH_HOME>/results/ (outside the repo).
Baselines are cheap and always get all seeds; the LPM gets `--lpm-seeds` seeds and `--lpm-epochs`
epochs because training on 2 shared CPU cores is what bounds the regeneration time.
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

# (title, dataset, loader kwargs, split, context, why, LPM trained here?)
# The LPM trains at only a few thousand triples/s on 2 shared CPU cores, so it runs on the Tahoe
# benchmarks with a random 150 of the 1,382 dense readouts; the baselines run there too (same rows)
# and, on their own, on every full-size benchmark.
TAHOE_SMALL = {"n_random": 150, "seed": 0}
BENCHMARKS = [
    ("Tahoe-100M (150 random dense readouts), unseen experiment (target A498)", "tahoe", TAHOE_SMALL,
     "unseen-experiment", "A498",
     "15% of A498's drugs held out (15% more for validation); the other 9 cell lines fully in training.", True),
    ("Tahoe-100M (150 random dense readouts), unseen compound", "tahoe", TAHOE_SMALL, "unseen-compound", None,
     "15% of the 109 drugs held out of all 10 cell lines (15% more for validation).", True),
    ("Tahoe-100M (all 1,382 dense readouts), unseen experiment (target A498)", "tahoe", {}, "unseen-experiment", "A498",
     "As above, every dense readout; baselines only.", False),
    ("Tahoe-100M (all 1,382 dense readouts), unseen compound", "tahoe", {}, "unseen-compound", None,
     "As above, every dense readout; baselines only.", False),
    ("Replogle 2022 CRISPRi, unseen experiment (target RPE1)", "replogle", {"min_signatures": 50}, "unseen-experiment",
     "RPE1", "15% of RPE1's knock-downs held out; all of K562 in training. Baselines only.", False),
    ("Replogle 2022 CRISPRi, unseen gene", "replogle", {"min_signatures": 50}, "unseen-gene", None,
     "15% of the 585 knock-downs held out of both cell lines. Baselines only.", False),
    ("L1000 CMap `ds` (3 compounds x 65 cell lines), unseen context (MCF7)", "l1000-ds", {}, "unseen-context", "MCF7",
     "All of MCF7 held out; the compounds are seen in the other 64 cell lines. Baselines only.", False),
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5, help="seeds for the baselines")
    ap.add_argument("--lpm-seeds", type=int, default=1)
    ap.add_argument("--lpm-epochs", type=int, default=3)
    ap.add_argument("--lpm-config", choices=["full", "paper"], default="full",
                    help="full = LPM with compound/gene/target encoders; paper = learned embeddings only")
    ap.add_argument("--only", default="", help="comma-separated benchmark indices (0-based) to run")
    ap.add_argument("--no-lpm", action="store_true")
    ap.add_argument("--quick", action="store_true", help="1 seed, 2 LPM epochs")
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

            lpm_config = (LPMConfig.paper if args.lpm_config == "paper" else LPMConfig)(max_epochs=args.lpm_epochs)
        except ImportError as exc:
            print(f"LPM not available ({exc}); baselines only", file=sys.stderr)

    json_dir = Path(get_settings().home) / "results"
    chosen = [int(i) for i in args.only.split(",") if i.strip()] or list(range(len(BENCHMARKS)))
    sections, began = [], time.time()
    cache: dict[str, pd.DataFrame] = {}
    for i in chosen:
        title, name, kwargs, split, context, why, with_lpm = BENCHMARKS[i]
        key = f"{name}{sorted(kwargs.items())}"
        if key not in cache:
            cache[key] = load_dataset(name, **kwargs)
        df = cache[key]
        res = resources_for(df, gene_graph=with_lpm and lpm_config is not None)
        res.lpm_config = lpm_config
        t0 = time.time()
        log = lambda r, title=title: print(f"[{time.time() - began:6.0f}s] {title} seed {r['seed']} {r['model']}: "  # noqa: E731
                              f"{r['error'] or round(r['pearson_per_signature'], 3)}", file=sys.stderr, flush=True)
        parts = [run_benchmark(df, split, context=context, models=["baselines"], seeds=range(args.seeds),
                               resources=res, on_result=log)]
        if lpm_config is not None and with_lpm:
            parts.append(run_benchmark(df, split, context=context, models=["lpm"], seeds=range(args.lpm_seeds),
                                       resources=res, on_result=log))
        results = pd.concat(parts, ignore_index=True)
        write_results(results, json_dir, name=f"{i}_{name}_{split}", title=title)
        data_line = (f"{len(df):,} rows: {df['context'].nunique()} contexts, {df['perturbation'].nunique()} "
                     f"perturbations, {df['readout'].nunique()} readouts; {int(results['n_test'].iloc[0]):,} "
                     f"test rows in {int(results['n_test_experiments'].iloc[0])} held-out experiments (seed 0)")
        sections.append(f"### {title}\n\n{why} {data_line}. Wall time {time.time() - t0:.0f} s.\n\n"
                        f"{markdown_table(results)}\n")
    header = (f"<!-- generated by `python benchmarks/make_results.py "
              f"{' '.join(argv if argv is not None else sys.argv[1:])}`".rstrip() +
              f" on {datetime.now(UTC):%Y-%m-%d} ({platform.node()}, torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads); total {time.time() - began:.0f} s -->\n")
    text = header + "\n".join(sections)
    marker_start, marker_end = "<!-- tables:start -->", "<!-- tables:end -->"
    if args.out.exists() and marker_start in args.out.read_text():
        old = args.out.read_text()
        text = old[: old.index(marker_start) + len(marker_start)] + "\n" + text + old[old.index(marker_end):]
    args.out.write_text(text)
    print(f"wrote {args.out} in {time.time() - began:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
