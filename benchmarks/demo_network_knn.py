"""Why `network_knn` does not help on the simulated default world (`perturbgraph demo`'s data).

    nice -n 19 python benchmarks/demo_network_knn.py [--seeds 0,1,2,3,4]   # ~30 s; docs/results.md

Rebuilds what the demo's `evaluation_report` evaluates, without Neo4j: the seed-0 world of
`graph.simulated.generate_default_dataset` read by the `sources` assets' functions (pipelines/ingest.py)
into a throwaway PERTURBGRAPH_HOME, the side information `training_set` would read from the graph (the
STRING-like prior edges at score >= 0.7, each knock-down's target symbol); then the unseen-experiment
split in SIMBRST1 per seed (the demo runs seed 0). Prints, per seed, on the test experiments:
`context_mean` and `network_knn` (per-signature r, RMSE, its shrinkage), and the same network_knn with
its shrinkage chosen by validation r alone (the rule before 2026-12-01: `no_worse_mse=False`).
Then, once, over training knock-downs of graph neighbours in one context: the mean correlation of the
two residual profiles (value - context mean) by what the edge is in the world's answer key (a true
edge with a positive or negative weight, or a false prior edge), with and without the two knocked-down
genes' own readouts. Output: one JSON object.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd


def load_world(home: Path):
    """(long table, Resources, answer-key edges) of the demo's world, read as its `sources` assets read it
    (pipelines/ingest.py, into a store under `home`); the side information as `training_set` takes it
    from the graph: the prior edges (STRING-like, score >= 0.7, weight = score) and each genetic
    perturbation's resolved target symbols."""
    import os

    from graph.io.readers import gene_resolver
    from graph.settings import reload_settings
    from graph.store.measurements import load_training_table
    from models.registry import Resources
    from models.side_information import SideInformation
    from pipelines.ingest import read_experiment, read_reference
    from pipelines.inputs import MEASUREMENT_KINDS, resolve_inputs

    os.environ["PERTURBGRAPH_HOME"] = str(home)
    settings = reload_settings()
    specs = resolve_inputs(settings, "default")
    quiet = lambda *a, **k: None  # noqa: E731
    ref = read_reference([s for s in specs if s.kind not in MEASUREMENT_KINDS], progress=quiet)
    resolver, compound_ids = gene_resolver(ref.genes, settings.shared_data), ref.compound_ids()
    bundles = [read_experiment(s, settings, resolver=resolver, compound_ids=compound_ids, progress=quiet)
               for s in specs if s.kind in MEASUREMENT_KINDS]
    df = load_training_table(settings, [b.dataset.dataset_id for b in bundles])
    edges = [e for v in ref.prior_edges.values() for e in v]
    graph = pd.DataFrame({"source": [e.source_symbol for e in edges], "target": [e.target_symbol for e in edges],
                          "weight": [float(e.score) for e in edges]})
    targets = {p.perturbation_id: list(p.target_symbols) for b in bundles for p in b.perturbations if p.target_symbols}
    truth = pd.read_csv(settings.data_dir / "default-seed0" / "truth" / "edges.tsv", sep="\t")
    return df, Resources(side=SideInformation(gene_graph=graph, perturbation_targets=targets)), truth


def test_scores(df, resources, seed: int) -> dict:
    from models.evaluation import baselines as B
    from models.evaluation.metrics import per_signature_pearson
    from models.evaluation.splits import make_split
    from models.registry import build_model

    split = make_split(df, "unseen-experiment", context="SIMBRST1", seed=seed)
    test, y = split.test, split.test["value"].to_numpy(np.float64)

    def score(model) -> dict:
        p = model.predict(test.drop(columns="value"))
        return {"r": round(per_signature_pearson(test, y, p), 4), "rmse": round(float(np.sqrt(np.mean((y - p) ** 2))), 3)}

    out = {"context_mean": score(build_model("context_mean", seed=seed, resources=resources).fit(split.train))}
    nk = build_model("network_knn", seed=seed, resources=resources).fit(split.train, split.valid)
    out["network_knn"] = score(nk) | {"shrinkage": nk.shrinkage_, "count_prior": nk.count_prior_}
    rule = B.choose_shrinkage  # the earlier rule: validation r alone
    B.choose_shrinkage = lambda *a, **k: rule(*a, **(k | {"no_worse_mse": False}))
    try:
        old = build_model("network_knn", seed=seed, resources=resources).fit(split.train, split.valid)
    finally:
        B.choose_shrinkage = rule
    out["network_knn_by_r_alone"] = score(old) | {"shrinkage": old.shrinkage_, "count_prior": old.count_prior_}
    return out


def neighbour_similarity(df, resources, truth) -> dict:
    """Mean r of two graph neighbours' knock-down residual profiles (same context), by answer-key edge kind."""
    weight: dict[frozenset, float] = {}
    for a, b, w in truth[["source", "target", "weight"]].itertuples(index=False):
        weight[frozenset((a, b))] = weight.get(frozenset((a, b)), 0.0) + float(w)
    targets = resources.side.perturbation_targets
    kd = df[df["perturbation"].astype(str).isin(set(targets))]
    m = kd.pivot_table(index=["context", "perturbation"], columns="readout", values="value", observed=True)
    m = m - m.groupby(level=0, observed=True).transform("mean")  # residual = value - the knock-downs' context mean
    rows = []
    for ctx in m.index.get_level_values(0).unique():
        mc = m.loc[ctx]
        by_gene = {targets[p][0]: p for p in mc.index if len(targets[p]) == 1}
        for a, b in resources.gene_graph[["source", "target"]].itertuples(index=False):
            if a in by_gene and b in by_gene:
                x, z = mc.loc[by_gene[a]].to_numpy(), mc.loc[by_gene[b]].to_numpy()
                others = ~np.isin(mc.columns, [a, b])
                w = weight.get(frozenset((a, b)), 0.0)
                rows.append({"edge": "true, weight > 0" if w > 0 else "true, weight < 0" if w < 0 else "false (prior only)",
                             "r": np.corrcoef(x, z)[0, 1], "r_without_own_readouts": np.corrcoef(x[others], z[others])[0, 1]})
    table = pd.DataFrame(rows).groupby("edge").agg(pairs=("r", "size"), r=("r", "mean"),
                                                   r_without_own_readouts=("r_without_own_readouts", "mean"))
    return {k: {"pairs": int(row["pairs"]), "r": round(float(row["r"]), 3),
                "r_without_own_readouts": round(float(row["r_without_own_readouts"]), 3)} for k, row in table.iterrows()}


def main(seeds: list[int]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:  # a throwaway PERTURBGRAPH_HOME
        df, resources, truth = load_world(Path(tmp))
    return {"per_seed_test": {s: test_scores(df, resources, s) for s in seeds},
            "neighbour_knockdown_similarity": neighbour_similarity(df, resources, truth)}


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    args = sys.argv[1:]
    seeds = [int(s) for s in args[args.index("--seeds") + 1].split(",")] if "--seeds" in args else [0]
    print(json.dumps(main(seeds), indent=1))
