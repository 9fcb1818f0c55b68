"""Unseen compounds through their annotations (issues 13 / 17): the checks behind docs/results.md's
"Where it loses: unseen compounds" paragraph. Tahoe sections 1 / 14 data (150 random dense readouts).

    nice python benchmarks/research_compounds.py nested --dataset tahoe     # decides production membership
    nice python benchmarks/research_compounds.py pairs                      # twin / same-MoA drug pairs
    nice python benchmarks/research_compounds.py drugs                      # per held-out drug, report only

nested: validation experiments only. mechanism_knn's shrinkage and count prior chosen on half of a
seed's validation drugs and scored on the other half (and back), against context_mean on the same rows;
its own validation score is chosen on the rows it is scored on, so it cannot say whether it helps.
pairs: per drug pair, the mean over lines of the Pearson r between their residual profiles (value minus
the line's mean over all drugs): do a salt twin or a same-mechanism drug respond alike?
drugs: per test drug with an annotated neighbour, mechanism_knn's per-signature r minus context_mean's
(test rows: explains a table, chooses nothing).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PAIRS = [("Almonertinib hydrochloride", "Almonertinib mesylate"), ("Berbamine", "Berbamine dihydrochloride"),
         ("Gallic acid", "Gallic acid hydrate"), ("Pyridoxine", "Pyridoxine hydrochloride"),
         ("Tofacitinib", "Tofacitinib citrate"), ("Trametinib", "Binimetinib"),
         ("Topotecan hydrochloride", "Irinotecan hydrochloride"), ("Afatinib", "Neratinib maleate"),
         ("Everolimus", "Temsirolimus"), ("Gemcitabine", "Cytarabine")]


def _data(name: str):
    from models.datasets import load_dataset, resources_for

    df = load_dataset(name, n_random=150, seed=0)
    return df, resources_for(df, gene_graph=False, info=lambda m: None, warn=lambda m: None).compound_annotations


def nested(name: str, seeds=range(5)) -> list[float]:
    from models.evaluation.baselines import ContextReadoutMean, MechanismKNN
    from models.evaluation.metrics import per_signature_pearson
    from models.evaluation.splits import make_split

    df, ann = _data(name)
    gains = []
    for seed in seeds:
        split = make_split(df, "unseen-compound", seed=seed)
        valid, cm = split.valid, ContextReadoutMean().fit(split.train)
        drugs = np.array(sorted(valid["perturbation"].unique()))
        np.random.default_rng(seed).shuffle(drugs)
        halves = [set(drugs[: len(drugs) // 2]), set(drugs[len(drugs) // 2:])]
        d = []
        for a, b in ((0, 1), (1, 0)):
            choose, score = valid[valid["perturbation"].isin(halves[a])], valid[valid["perturbation"].isin(halves[b])]
            m = MechanismKNN(ann).fit(split.train, choose)
            y = score["value"].to_numpy(np.float64)
            d.append(per_signature_pearson(score, y, m.predict(score)) - per_signature_pearson(score, y, cm.predict(score)))
        gains.append(float(np.mean(d)))
        m, y = MechanismKNN(ann).fit(split.train, valid), valid["value"].to_numpy(np.float64)
        same = per_signature_pearson(valid, y, m.predict(valid)) - per_signature_pearson(valid, y, cm.predict(valid))
        print(f"seed {seed}: mechanism_knn - context_mean on held-out validation halves {gains[-1]:+.4f} "
              f"({d[0]:+.4f}, {d[1]:+.4f}); on the validation rows its shrinkage was chosen on {same:+.4f}", flush=True)
    print(f"mean {np.mean(gains):+.4f}")
    return gains


def pairs(name: str) -> None:
    df, _ = _data(name)
    df = df.assign(res=df["value"] - df.groupby(["context", "readout"])["value"].transform("mean"))
    wide = df.pivot_table(index=["context", "perturbation"], columns="readout", values="res")
    contexts = wide.index.get_level_values(0).unique()
    for a, b in PAIRS:
        rs = [np.corrcoef(wide.loc[(c, a)], wide.loc[(c, b)])[0, 1] for c in contexts
              if (c, a) in wide.index and (c, b) in wide.index]
        print(f"{a} ~ {b}: mean r {np.mean(rs):+.3f} over {len(rs)} lines")


def drugs(name: str, seeds=range(5)) -> None:
    from models.evaluation.baselines import ContextReadoutMean, MechanismKNN
    from models.evaluation.splits import make_split

    df, ann = _data(name)
    for seed in seeds:
        split = make_split(df, "unseen-compound", seed=seed)
        test = split.test
        m, cm = MechanismKNN(ann).fit(split.train, split.valid), ContextReadoutMean().fit(split.train)
        v = test.assign(a=m.predict(test), b=cm.predict(test))
        r = v.groupby(["perturbation", "context"]).apply(
            lambda g: np.corrcoef(g["value"], g["a"])[0, 1] - np.corrcoef(g["value"], g["b"])[0, 1]).groupby(level=0).mean()
        parts = [f"{p} ({'/'.join(sorted(m._neighbours_of(p)))}) {d:+.3f}" for p, d in r.items() if m._neighbours_of(p)]
        print(f"seed {seed} (shrinkage {m.shrinkage_:g}, k {m.count_prior_:g}): " + "; ".join(parts), flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("check", choices=["nested", "pairs", "drugs"])
    ap.add_argument("--dataset", default="tahoe", choices=["tahoe", "tahoe37"])
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", category=RuntimeWarning)  # constant signatures' r: NaN, skipped
    {"nested": nested, "pairs": pairs, "drugs": drugs}[args.check](args.dataset)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
