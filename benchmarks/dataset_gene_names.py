"""How the shared datasets' gene names meet the gene table and the prior networks.

Per dataset: distinct readouts and genetic perturbations, how many the ingest's naming rule
(graph/io/identifiers.stored_gene_names) renames to a current symbol, keeps under its source name because
another of the file's names already has that gene, or does not resolve; then the genes with at least one
gene prior (graph/io/networks.GENE_PRIOR: STRING >= 700) / CORUM pair among the dataset's genes, and the pairs, three
ways: names as written matched directly to the networks' current symbols, the benchmarks' route before
the loaders renamed (models.datasets.dataset_gene_names re-resolves every name), and the stored names.

    PYTHONPATH=. PERTURBGRAPH_SHARED_DATA=/work/shared/data python benchmarks/dataset_gene_names.py
    ... dataset_gene_names.py --sections [4,6]       # per make_results section: readouts / knock-downs
                                                     # renamed, held-out experiments (seeds 0-4) that differ
    ... dataset_gene_names.py --baselines 6,7        # those sections' baselines per seed, names as the files
                                                     # write them vs the stored names (same rows)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _pairs(frame: pd.DataFrame, names: set[str] | None = None) -> set[frozenset]:
    if names is not None:
        frame = frame[frame["source"].isin(names) & frame["target"].isin(names)]
    return {frozenset(p) for p in zip(frame["source"], frame["target"], strict=True) if p[0] != p[1]}


def _genes(pairs: set[frozenset]) -> int:
    return len(set().union(*pairs)) if pairs else 0


def _as_written(name: str, kwargs: dict):
    """(loaded, the same table under the files' names: readouts and knock-downs mapped back)."""
    from models import datasets as D

    loaded = D.load_input(name, **kwargs)
    raw = (D._read_ranked_files([D.shared_path(f) for f in D.TAHOE_FILES[name]]) if name in D.TAHOE_FILES
           else pd.read_parquet(D.shared_path(D.SHARED_DATASETS[name]), columns=["readout"]))
    source_of = {v: k for k, v in D.ingest_gene_names(raw)[0].items()}
    df = loaded.frame
    return loaded, df.assign(readout=df["readout"].map(lambda r: source_of.get(r, r)),
                             perturbation=df["perturbation"].map(lambda p: loaded.perturbation_names.get(p, p)))


def sections(only: list[int] | None, baselines: list[str] | None) -> None:
    import make_results as M

    from models import datasets as D
    from models.evaluation.harness import run_benchmark
    from models.evaluation.splits import make_split

    for i, (title, name, kwargs, split, context, *_rest) in enumerate(M.BENCHMARKS):
        if (only is not None and i not in only) or name.startswith("l1000"):
            continue  # L1000 GCTX: load_gctx read it with the gene table before, unchanged
        loaded, old = _as_written(name, kwargs)
        new, names = loaded.frame, loaded.perturbation_names
        if baselines is None:
            pairs = pd.DataFrame({"new": new["readout"], "old": old["readout"]}).drop_duplicates()
            renamed = int((pairs["new"] != pairs["old"]).sum())
            differ = [len({(c, names.get(p, p)) for c, p in make_split(new, split, context=context, seed=s)
                           .experiments("test")} ^ make_split(old, split, context=context, seed=s).experiments("test")) // 2
                      for s in range(5)]
            print(f"{i} {title}: {new['readout'].nunique()} readouts, {renamed} renamed; "
                  f"{sum(1 for p in new['perturbation'].unique() if p in names)} perturbations "
                  f"renamed; held-out experiments that differ, seeds 0-4: {differ} of "
                  f"{len(make_split(new, split, context=context, seed=0).experiments('test'))}", flush=True)
            continue
        quiet = {"info": lambda m: None, "warn": lambda m: None}
        for label, df, kw in (("files' names", old, {}), ("stored names", new, {
                "perturbation_names": names, "perturbation_targets": loaded.perturbation_targets})):
            res = run_benchmark(df, split, context=context, models=baselines, seeds=range(5),
                                resources=D.resources_for(df, **kw, **quiet))
            table = res.pivot(index="model", columns="seed", values="pearson_per_signature")
            table["mean"] = table.mean(axis=1)
            print(f"## {i} {title}, {label}\n{table.round(4).to_string()}\n", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", nargs="?", const="all", default="",
                    help="comma-separated make_results section indices (all without a value)")
    ap.add_argument("--baselines", default="", help="comma-separated make_results section indices")
    ap.add_argument("--models", default="context_mean,other_contexts,linear,network_knn,corum_knn")
    args = ap.parse_args()
    if args.sections or args.baselines:
        import torch

        torch.set_num_threads(1)
        chosen = args.baselines or args.sections
        sections(None if chosen == "all" else [int(i) for i in chosen.split(",")],
                 args.models.split(",") if args.baselines else None)
        return 0
    from graph.io.identifiers import canonical_gene_symbol, split_combination, stored_gene_names
    from models import datasets as D
    from models.evaluation.splits import GENETIC_TYPES

    resolver = D.gene_table_resolver()
    string_all = D.prior_gene_graph()
    corum_all = D.corum_gene_graph()
    cases = {
        "tahoe (10 lines, all readouts)": lambda: D._read_ranked_files([D.shared_path(D.SHARED_DATASETS["tahoe"])]),
        "tahoe37 (readouts of both files)": lambda: D._read_ranked_files([D.shared_path(f) for f in D.TAHOE_FILES["tahoe37"]]),
        "replogle": lambda: pd.read_parquet(D.shared_path(D.SHARED_DATASETS["replogle"]), columns=D.RANKED_COLUMNS),
    }
    print("| dataset | readouts | renamed | kept source name | unknown | genetic perturbations | renamed | unknown "
          "| gene prior genes / pairs: as written | benchmarks' re-resolving route | stored names "
          "| CORUM genes / pairs: as written | re-resolving route | stored names |")
    print("|---|" + "---:|" * 14)
    for name, read in cases.items():
        raw = read()
        readouts = set(raw["readout"].astype(str).unique())
        stored, routes = stored_gene_names(readouts, resolver)
        unknown = sum(1 for r in readouts if not resolver.resolve(r).ok)
        types = raw["perturbation_type"].astype(str)
        genetic = set(raw.loc[types.isin(GENETIC_TYPES).to_numpy(), "perturbation"].astype(str).unique())
        members = {g: split_combination(g, keep_prefix=False) for g in genetic}
        g_stored = {g: "+".join(stored.get(m) or canonical_gene_symbol(m, resolver) for m in ms)
                    for g, ms in members.items()}
        g_unknown = sum(1 for ms in members.values() if any(not resolver.resolve(m).ok for m in ms))
        written = readouts | {m for ms in members.values() for m in ms}
        after = {stored.get(r, r) for r in readouts} | {t for v in g_stored.values() for t in v.split("+")}
        cells = []
        for full, route in ((string_all, lambda g: D.prior_gene_graph(genes=g)),
                            (corum_all, lambda g: D.corum_gene_graph(genes=g))):
            for pairs in (_pairs(full, written), _pairs(route(written)), _pairs(full, after)):
                cells.append(f"{_genes(pairs):,} / {len(pairs):,}")
        print(f"| {name} | {len(readouts):,} | {routes.get('resolved to a different current symbol', 0):,} | "
              f"{sum(1 for k, v in stored.items() if k == v and canonical_gene_symbol(k, resolver) != k):,} | "
              f"{unknown:,} | {len(genetic):,} | {sum(1 for g, s in g_stored.items() if g != s):,} | {g_unknown:,} | "
              + " | ".join(cells) + " |", flush=True)
        renamed = sorted((k, v) for k, v in stored.items() if k != v)
        print(f"  e.g. {renamed[:6]}; genetic renamed: "
              f"{sorted((g, s) for g, s in g_stored.items() if g != s)[:6]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
