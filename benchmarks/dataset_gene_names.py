"""How the shared datasets' gene names meet the gene table and the prior networks.

Per dataset: distinct readouts and genetic perturbations, how many the ingest's naming rule
(graph/io/identifiers.stored_gene_names) renames to a current symbol, keeps under its source name because
another of the file's names already has that gene, or does not resolve; then the genes with at least one
gene prior (graph/io/networks.GENE_PRIOR: STRING >= 700) / CORUM pair among the dataset's genes, and the pairs, three
ways: names as written matched directly to the networks' current symbols, the benchmarks' route before
the loaders renamed (models.datasets.dataset_gene_names re-resolves every name), and the stored names.

    PYTHONPATH=. PERTURBGRAPH_SHARED_DATA=/work/shared/data python benchmarks/dataset_gene_names.py
"""

from __future__ import annotations

import sys

import pandas as pd


def _pairs(frame: pd.DataFrame, names: set[str] | None = None) -> set[frozenset]:
    if names is not None:
        frame = frame[frame["source"].isin(names) & frame["target"].isin(names)]
    return {frozenset(p) for p in zip(frame["source"], frame["target"], strict=True) if p[0] != p[1]}


def _genes(pairs: set[frozenset]) -> int:
    return len(set().union(*pairs)) if pairs else 0


def main() -> int:
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
