"""Is there more to learn about *which lines to copy* than one weight per (target line, source line)?
(issue 17; docs/results.md "Line weights by readout or by drug, and drugs that respond alike".)

On 37 Tahoe lines the strongest baseline of every unseen-experiment target is `similar_contexts`: one ridge
regression per target line on the other lines' residual profiles, the same weights for every drug and
every readout. The untried LPM ideas "attention over lines learned end to end" and "per-drug-class line
weights" both bet that the right weights depend on the drug or the readout. This probe asks it of the data
before building a network for it: the same ridge, fitted separately per cluster of readouts or per cluster
of drugs (k-means on their residual profiles, k in {2, 3, 5}; k, ridge in {0.001, 0.01, 0.1, 1} chosen on
the validation experiments, never test rows), against `similar_contexts` (the registered class, its ridge
chosen on validation too) on the test experiments of make_results.py's sections 11-13 (150 random of the
700 readouts dense in all 37 lines, seed 0). If cluster-level weights chosen on validation gain nothing,
a network that learns per-drug attention over lines has no such signal to find either. Beside them, (c) the
registered `similar_perturbations` (the neighbour form the probe led to: the target line's errors of the drugs
that respond alike in the other lines), its K and strength chosen on validation inside its fit, and (d) the
same with a wider grid (K up to 80, strength up to 3): does its grid's edge (it often picks K 40, strength 1.5)
cost anything?

    PERTURBGRAPH_SHARED_DATA=<shared data> nice python benchmarks/research_line_weights.py --targets A498,HEC1A,LOVO
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.evaluation.baselines import SimilarContexts, SimilarPerturbations, _str, context_profiles  # noqa: E402
from models.evaluation.metrics import per_signature_pearson  # noqa: E402

KS = (2, 3, 5)
RIDGES = (0.001, 0.01, 0.1, 1.0)
MIN_CELLS = 50  # a cluster with fewer training cells in a target line keeps the global weights there


class WideNeighbours(SimilarPerturbations):
    """(d) similar_perturbations with its grid widened past the edge it often chooses."""

    NEIGHBOURS = (*SimilarPerturbations.NEIGHBOURS, 80)
    STRENGTHS = (*SimilarPerturbations.STRENGTHS, 2.0, 3.0)


class ClusteredContexts(SimilarContexts):
    """`similar_contexts` with one weight vector per (target line, cluster) instead of per target line;
    clusters of readouts (`by="readout"`) or of perturbations (`by="perturbation"`), k-means on the
    L2-normalised residual profiles of the training data."""

    def __init__(self, by: str, k: int, ridge: float, seed: int = 0):
        super().__init__(ridge=ridge)
        self.by, self.k, self.seed = by, k, seed

    def fit(self, train, valid=None):
        from sklearn.cluster import KMeans

        super().fit(train)  # R_ (C, P, G) residuals, W_ (C, C) global weights at this ridge
        if self.by == "readout":
            feats = np.nan_to_num(self.R_).transpose(2, 0, 1).reshape(self.R_.shape[2], -1)  # (G, C*P)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a readout no line measured: mean of nothing
                feats = np.nan_to_num(np.nanmean(self.R_, axis=0))  # (P, G): mean over the lines measured
        feats = feats / (np.linalg.norm(feats, axis=1, keepdims=True) + 1e-9)
        self.labels_ = KMeans(self.k, n_init=4, random_state=self.seed).fit_predict(feats)
        C = len(self.contexts_)
        self.Wk_ = np.repeat(self.W_[None], self.k, axis=0)  # (k, C, C)
        for t in range(C):
            p, g = np.nonzero(~np.isnan(self.R_[t]))
            X, has = context_profiles(self.R_, np.full(len(p), t), p, g)  # (C, n)
            others = np.arange(C) != t
            label = self.labels_[g if self.by == "readout" else p]
            for j in range(self.k):
                rows = has & (label == j)
                if rows.sum() < MIN_CELLS:
                    continue
                Xj, yj = X[others][:, rows].T, self.R_[t, p[rows], g[rows]]
                A, b = Xj.T @ Xj, Xj.T @ yj
                pen = self.ridge_ * max(float(np.mean(np.diag(A))), 1e-12)
                self.Wk_[j, t, others] = np.linalg.solve(A + pen * np.eye(C - 1), b + pen / (C - 1))
        return self

    def predict(self, rows):
        c = self.contexts_.get_indexer(_str(rows["context"]))
        p = self.perturbations_.get_indexer(_str(rows["perturbation"]))
        g = self.readout_index_.get_indexer(_str(rows["readout"]))
        resid = np.zeros(len(rows))
        ok = np.flatnonzero((p >= 0) & (g >= 0) & (c >= 0))
        X, has = context_profiles(self.R_, c[ok], p[ok], g[ok])
        W = self.Wk_[self.labels_[g[ok] if self.by == "readout" else p[ok]], c[ok]]  # (n, C)
        resid[ok] = np.where(has, np.einsum("nc,cn->n", W, X), 0.0)
        return self._context_mean(rows) + resid


def run(targets: list[str], seeds: list[int]) -> pd.DataFrame:
    from models.datasets import load_input
    from models.evaluation.splits import make_split

    df = load_input("tahoe37", n_random=150, seed=0).frame
    rows = []
    for target in targets:
        for seed in seeds:
            began = time.time()
            split = make_split(df, "unseen-experiment", context=target, seed=seed)
            yv, yt = split.valid["value"].to_numpy(float), split.test["value"].to_numpy(float)
            base = SimilarContexts().fit(split.train, split.valid)
            base_valid = per_signature_pearson(split.valid, yv, base.predict(split.valid))
            row = {"target": target, "seed": seed,
                   "similar_contexts": per_signature_pearson(split.test, yt, base.predict(split.test))}
            for by in ("readout", "perturbation"):
                scored = [(per_signature_pearson(split.valid, yv, m.predict(split.valid)), m)
                          for m in (ClusteredContexts(by, k, lam, seed=seed).fit(split.train)
                                    for k in KS for lam in RIDGES)]
                valid_r, model = max(scored, key=lambda s: s[0])
                row |= {f"{by}_k": model.k, f"{by}_ridge": model.ridge_, f"{by}_valid_gain": valid_r - base_valid,
                        by: per_signature_pearson(split.test, yt, model.predict(split.test))}
            # (c) the registered baseline, (d) its wider grid: K and beta chosen on validation inside the fit
            for name, cls in (("neighbours", SimilarPerturbations), ("neighbours_wide", WideNeighbours)):
                model = cls().fit(split.train, split.valid)
                valid_r = per_signature_pearson(split.valid, yv, model.predict(split.valid))
                row |= {f"{name}_k": f"{model.neighbours_}/{model.strength_:g}", f"{name}_valid_gain": valid_r - base_valid,
                        name: per_signature_pearson(split.test, yt, model.predict(split.test))}
            rows.append(row)
            print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()},
                  f"({time.time() - began:.0f} s)", flush=True)
    return pd.DataFrame(rows)


def table(res: pd.DataFrame) -> str:
    lines = ["| target | by | k chosen (per seed; neighbours: K/strength) | test r − `similar_contexts`, per seed | mean (higher) | "
             "validation gain, mean |", "|---|---|---|---|---|---|"]
    for target, part in res.groupby("target", sort=False):
        for by in ("readout", "perturbation", "neighbours", "neighbours_wide"):
            d = part[by] - part["similar_contexts"]
            lines.append(f"| {target} | {by} | {', '.join(map(str, part[f'{by}_k']))} | "
                         f"{', '.join(f'{x:+.4f}' for x in d)} | {d.mean():+.4f} ({int((d > 0).sum())}/{len(d)}) | "
                         f"{part[f'{by}_valid_gain'].mean():+.4f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--targets", default="A498,HEC1A,LOVO")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--out", help="also write the per-seed rows to this CSV")
    args = ap.parse_args(argv)
    res = run(args.targets.split(","), [int(s) for s in args.seeds.split(",")])
    if args.out:
        res.to_csv(args.out, index=False)
    print(table(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
