"""How well a pipeline run recovered the simulated default dataset's hidden truth.

Only meaningful on the SIMULATED default dataset, whose answers are written to `truth/` by the
generator (and never ingested).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from graph.db import pipeline_queries as PQ
from graph.simulated import read_ground_truth


def recovery_report(driver, database: str, dataset_dir: Path) -> dict[str, float]:
    """Mechanism hit rates and novel-edge precision of the current model version, beside chance."""
    truth = read_ground_truth(dataset_dir)
    knocked = set(truth["knockdown_genes"])
    links = pd.DataFrame(PQ.current_mechanism_links(driver, database=database))
    k = int(links["rank"].max()) if len(links) else 0
    n = top1 = topk = planted = planted_sig = 0
    for compound, targets in truth["compound_targets"].items():
        sub = links[links["compound"] == compound.lower()] if len(links) else links
        planted += len(set(targets) & knocked)
        if set(targets) & knocked and len(sub):
            n += 1
            topk += bool(set(sub["gene"]) & set(targets))
            top1 += bool(set(sub.loc[sub["rank"] == 1, "gene"]) & set(targets))
            planted_sig += len(set(sub.loc[sub["significant"].astype(bool), "gene"]) & set(targets) & knocked)
    edges = pd.read_csv(dataset_dir / "truth" / "edges.tsv", sep="\t")
    hidden = {frozenset(e) for e in edges.loc[~edges["in_prior"].astype(bool), ["source", "target"]]
              .itertuples(index=False, name=None)}
    predicted = PQ.current_predicted_interactions(driver, database=database)
    novel = [frozenset((r["a"], r["b"])) for r in predicted if not r["in_prior"]]
    pairs = len(knocked) * (len(knocked) - 1) / 2
    return {
        "compounds_with_knocked_down_target": n,
        "top_k": k,
        "target_at_rank1": top1 / n if n else float("nan"),
        "target_in_top_k": topk / n if n else float("nan"),
        "chance_rank1": 1 / len(knocked),
        "chance_top_k": k / len(knocked),
        # planted (compound, knocked-down target) pairs published as significant links (q <= FDR)
        "planted_targets_significant": planted_sig,
        "planted_target_pairs": planted,
        "significant_links": int(links["significant"].astype(bool).sum()) if len(links) else 0,
        "novel_predicted_edges": len(novel),
        "novel_edge_precision_vs_hidden": sum(e in hidden for e in novel) / len(novel) if novel else float("nan"),
        "hidden_edge_base_rate": sum(e <= knocked for e in hidden) / pairs,
    }
