"""Issue 13 / 17 on Replogle: which neighbour evidence beyond STRING helps a knock-down's prediction?

    PERTURBGRAPH_SHARED_DATA=... nice -n 19 python benchmarks/research_gene_neighbours.py --only 7,6 --seeds 5

For each make_results section (default 7: Replogle 882 readouts, unseen gene; 6: the same, RPE1 unseen
experiment) and seed, every neighbour source is one `NetworkKNN` (count prior and shrinkage chosen on
the validation experiments), and convex stacks of them (models/evaluation/stacking.convex_weights) are
fitted on the validation experiments and scored on the test experiments:

- `network_knn`: STRING combined score >= 700 (the production gene graph); `string400_knn`: >= 400;
- `corum_knn`: CORUM co-complex pairs (registered; models/datasets.corum_gene_graph);
- `string_corum_knn`: one graph, the union of the two (strongest edge per pair);
- `dorothea_knn`: DoRothEA TF -> target edges (confidence A-C), undirected;
- `coexp_knn`: the 30 genes whose readout columns (their response across the training knock-downs,
  all contexts, standardised) correlate most with the held-out gene's own readout column: neighbours
  learned from the training data (`linear`'s unseen-gene feature is that column through a ridge).
Prints one markdown table per section: mean per-signature r on the test experiments by seed, the mean
on the validation experiments, and each stack's mean weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

COEXP_K = 30
STACKS = (("network_knn", "corum_knn"), ("network_knn", "coexp_knn"), ("network_knn", "dorothea_knn"),
          ("network_knn", "string400_knn"), ("network_knn", "linear", "context_mean", "other_contexts"),
          ("network_knn", "corum_knn", "linear", "context_mean", "other_contexts"),
          ("network_knn", "corum_knn", "string400_knn", "dorothea_knn", "coexp_knn", "linear", "context_mean",
           "other_contexts"))


def coexpression_graph(model, k: int = COEXP_K) -> pd.DataFrame:
    """source, target, weight: each readout's k most correlated readout columns (r > 0) of a fitted
    residual model's training matrix R (signatures x readouts)."""
    R = model.R_
    Z = (R - R.mean(0)) / (R.std(0) + 1e-9)
    C = Z.T @ Z / len(Z)  # (readouts, readouts) correlation
    np.fill_diagonal(C, -np.inf)
    genes = np.asarray(model.readout_index_)
    top = np.argsort(-C, axis=1)[:, :k]
    rows = [(genes[j], genes[t], float(C[j, t])) for j in range(len(genes)) for t in top[j] if C[j, t] > 0]
    return pd.DataFrame(rows, columns=["source", "target", "weight"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="7", help="comma-separated make_results sections (Replogle: 4-7)")
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args(argv)

    from make_results import BENCHMARKS

    from models.datasets import dorothea_gene_graph, load_input, resources_for_input, string_gene_graph
    from models.evaluation.baselines import NetworkKNN
    from models.evaluation.metrics import per_signature_pearson
    from models.evaluation.splits import make_split
    from models.evaluation.stacking import convex_weights
    from models.registry import build_model

    for section in [int(s) for s in args.only.split(",") if s.strip()]:
        title, name, kwargs, split_kind, context, _, _ = BENCHMARKS[section]
        loaded = load_input(name, **kwargs)
        df, res = loaded.frame, resources_for_input(loaded, gene_graph=True)
        genes = set(df["readout"].astype(str)) | set(df["perturbation"].astype(str))
        targets = res.perturbation_targets
        dorothea = dorothea_gene_graph("ABC", genes=genes)  # the ingest's reader and gene table
        union = (pd.concat([res.gene_graph, res.complex_graph])
                 .groupby(["source", "target"], as_index=False)["weight"].max())
        graphs = {"string400_knn": string_gene_graph(400, genes=genes), "string_corum_knn": union,
                  "dorothea_knn": dorothea}
        rows = []
        for seed in range(args.seeds):
            split = make_split(df, split_kind, context=context, seed=seed)
            models = {m: build_model(m, seed=seed, resources=res, split_kind=split_kind)
                      for m in ("context_mean", "other_contexts", "linear", "network_knn", "corum_knn")}
            models |= {m: NetworkKNN(g, targets) for m, g in graphs.items()}
            models["coexp_knn"] = NetworkKNN(None, targets)
            models["coexp_knn"]._fit_residuals(split.train)  # the training matrix its graph comes from
            models["coexp_knn"] = NetworkKNN(coexpression_graph(models["coexp_knn"]), targets)
            preds = {}
            for m, model in models.items():
                model.fit(split.train, split.valid)
                preds[m] = (model.predict(split.valid), model.predict(split.test))
            for m in (*models, *STACKS):
                members = m if isinstance(m, tuple) else (m,)
                w = convex_weights(np.column_stack([preds[x][0] for x in members]), split.valid["value"].to_numpy())
                scored = {part: per_signature_pearson(rows_, rows_["value"].to_numpy(),
                                                      np.column_stack([preds[x][i] for x in members]) @ w)
                          for i, (part, rows_) in enumerate((("valid", split.valid), ("test", split.test)))}
                rows.append({"model": " + ".join(members), "seed": seed, **scored,
                             "weights": ", ".join(f"{x} {v:.2f}" for x, v in zip(members, w, strict=True))
                             if len(members) > 1 else ""})
            print(f"{title} seed {seed} done", file=sys.stderr, flush=True)
        table = pd.DataFrame(rows)
        test = table.pivot_table(index="model", columns="seed", values="test", sort=False)
        base = test.loc["network_knn"]
        print(f"\n#### {title}\n\n| model | " + " | ".join(f"seed {s}" for s in test.columns)
              + " | mean test | mean valid | wins over network_knn (>= +0.01) | mean weights |\n|---|"
              + "---|" * (len(test.columns) + 4))
        for m, r in test.iterrows():
            d = r - base
            sub = table.loc[table["model"] == m]
            weights = ""
            if sub["weights"].iloc[0]:
                w = np.mean([[float(x.split()[-1]) for x in s.split(", ")] for s in sub["weights"]], axis=0)
                weights = ", ".join(f"{x} {v:.2f}" for x, v in zip(m.split(" + "), w, strict=True))
            print(f"| {m} | " + " | ".join(f"{v:.3f}" for v in r) + f" | {r.mean():.3f} | {sub['valid'].mean():.3f}"
                  f" | {int((d > 0).sum())}/{len(d)} ({int((d >= 0.01).sum())}/{len(d)}) | {weights} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
