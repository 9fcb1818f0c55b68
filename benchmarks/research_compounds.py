"""Unseen compounds through their annotations (issues 13 / 17): the checks behind docs/results.md's
"Where it loses: unseen compounds" paragraph. Tahoe sections 1 / 14 data (150 random dense readouts).

    nice python benchmarks/research_compounds.py nested --dataset tahoe     # decides production membership
    nice python benchmarks/research_compounds.py pairs                      # twin / same-MoA drug pairs
    nice python benchmarks/research_compounds.py drugs                      # per held-out drug, report only
    nice python benchmarks/research_compounds.py kernels --dataset tahoe    # shrunk similarity kernels (issue 13)
    nice python benchmarks/research_compounds.py similarity                 # does similarity predict response?

nested: validation experiments only. mechanism_knn's shrinkage and count prior chosen on half of a
seed's validation drugs and scored on the other half (and back), against context_mean on the same rows;
its own validation score is chosen on the rows it is scored on, so it cannot say whether it helps.
pairs: per drug pair, the mean over lines of the Pearson r between their residual profiles (value minus
the line's mean over all drugs): do a salt twin or a same-mechanism drug respond alike?
drugs: per test drug with an annotated neighbour, mechanism_knn's per-signature r minus context_mean's
(test rows: explains a table, chooses nothing).
kernels: issue 13's hypotheses H-a/H-b/H-c. Per seed, context_mean + lam * sum_j w_j R_j / (sum_j w_j + k)
over the training drugs j (R_j: drug j's residual, value minus the context-readout mean, same line), w from
a kernel on compound similarity: Morgan Tanimoto, RDKit physicochemical descriptors (DESCRIPTORS,
standardised over the drugs with a SMILES; RMS distance d), the annotation similarity of mechanism_knn, or
annotation + descriptors. (kernel width, k, lam) chosen on the validation drugs alone ("valid") and on
the validation drugs pooled with the training drugs left out one at a time ("valid+loo": each training
drug predicted from the others, its own values out of the context mean too); never on test rows.
Test per-signature r (models.evaluation.metrics.per_signature_pearson) against context_mean and
mechanism_knn (the registered classes) on the same split.
similarity: all drugs, no split (describes, chooses nothing): per drug pair the mean over lines of the r
between their residual profiles (value minus the line's mean over all drugs), its Spearman correlation
with each similarity, and each drug's reproducibility (mean r of its residual profile between two lines).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PAIRS = [("Almonertinib hydrochloride", "Almonertinib mesylate"), ("Berbamine", "Berbamine dihydrochloride"),
         ("Gallic acid", "Gallic acid hydrate"), ("Pyridoxine", "Pyridoxine hydrochloride"),
         ("Tofacitinib", "Tofacitinib citrate"), ("Trametinib", "Binimetinib"),
         ("Topotecan hydrochloride", "Irinotecan hydrochloride"), ("Afatinib", "Neratinib maleate"),
         ("Everolimus", "Temsirolimus"), ("Gemcitabine", "Cytarabine")]


def _data(name: str):
    from models.datasets import load_input, resources_for_input

    loaded = load_input(name, n_random=150, seed=0)
    df = loaded.frame
    return df, resources_for_input(loaded, gene_graph=False, info=lambda m: None, warn=lambda m: None).compound_annotations


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


# RDKit physicochemical descriptors for H-b (cationic amphiphilic drugs: logP, basic amines, charge)
DESCRIPTORS = ("logp", "mw", "tpsa", "hbd", "hba", "rot_bonds", "rings", "aromatic_rings", "fsp3", "basic_amines",
               "formal_charge", "heavy_atoms", "molar_refractivity", "halogens")
# an aliphatic amine that is not an amide, aniline, sulfonamide, nitrile, imine, hydrazine or hydroxylamine
BASIC_AMINE = "[NX3;H2,H1,H0;!$(NC=[O,S,N]);!$(N-a);!$(N-[SX4]);!$(NC#N);!$(N=*);!$(N-N);!$(N-O)]"


def descriptor_table(smiles: dict[str, str]) -> dict[str, np.ndarray]:
    """name -> DESCRIPTORS of the SMILES's largest fragment (the salt's counter-ion left out)."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem import Crippen, Descriptors, rdMolDescriptors

    RDLogger.DisableLog("rdApp.*")
    amine, out = Chem.MolFromSmarts(BASIC_AMINE), {}
    for name, smi in smiles.items():
        mol = Chem.MolFromSmiles(smi) if smi else None
        if mol is None:
            continue
        m = max(Chem.GetMolFrags(mol, asMols=True), key=lambda f: f.GetNumHeavyAtoms())
        out[name] = np.array([
            Crippen.MolLogP(m), Descriptors.MolWt(m), rdMolDescriptors.CalcTPSA(m), rdMolDescriptors.CalcNumHBD(m),
            rdMolDescriptors.CalcNumHBA(m), rdMolDescriptors.CalcNumRotatableBonds(m), rdMolDescriptors.CalcNumRings(m),
            rdMolDescriptors.CalcNumAromaticRings(m), rdMolDescriptors.CalcFractionCSP3(m),
            len(m.GetSubstructMatches(amine)), Chem.GetFormalCharge(m), m.GetNumHeavyAtoms(), Crippen.MolMR(m),
            sum(a.GetSymbol() in ("F", "Cl", "Br", "I") for a in m.GetAtoms())], dtype=np.float64)
    return out


def _kernels(perts: list[str], smiles: dict, ann: dict) -> dict[str, list[np.ndarray]]:
    """family -> [W (P, P), one per grid point of the kernel width], 0 on the diagonal and for drugs
    without the information (no SMILES / annotation)."""
    from rdkit import DataStructs

    from models.evaluation.baselines import MechanismKNN, morgan_fingerprints

    n = len(perts)
    fps = morgan_fingerprints({p: smiles[p] for p in perts if p in smiles})
    T = np.full((n, n), np.nan)
    for i, p in enumerate(perts):
        if p in fps:
            T[i] = [DataStructs.TanimotoSimilarity(fps[p], fps[q]) if q in fps else np.nan for q in perts]
    desc = descriptor_table({p: smiles[p] for p in perts if p in smiles})
    X = np.array([desc.get(p, np.full(len(DESCRIPTORS), np.nan)) for p in perts])
    has = ~np.isnan(X[:, 0])
    sd = X[has].std(0)
    Z = np.clip((X - X[has].mean(0)) / np.where(sd > 0, sd, 1.0), -5, 5)
    d = np.sqrt(((Z[:, None] - Z[None]) ** 2).mean(-1))  # NaN where either drug lacks a SMILES
    mk = MechanismKNN(ann)
    A = np.array([[mk.similarity(p, q) for q in perts] for p in perts])  # 0..3

    def clean(W):
        W = np.nan_to_num(W, nan=0.0)
        np.fill_diagonal(W, 0.0)
        return W

    tani = [clean(np.exp(-(1 - T) / h)) for h in (0.05, 0.1, 0.2)]
    descr = [clean(np.exp(-(d / h) ** 2)) for h in (0.1, 0.2, 0.4)]
    annot = [clean(np.where(A > 0, np.exp(-(3 - A) / h), 0.0)) for h in (0.25, 0.5, 1.0)]
    return {"tanimoto": tani, "descriptors": descr, "annotation": annot,
            "annotation+descriptors": [a + b for a in annot for b in descr]}


def _signature_r(Y: np.ndarray, P: np.ndarray) -> np.ndarray:
    """(C, Q) Pearson r of Y and P (C, Q, G) over readouts, NaN in Y masked; flat: 0; < 3 values: NaN."""
    m = ~np.isnan(Y)
    n = np.maximum(m.sum(-1, keepdims=True), 1)
    y, p = np.where(m, Y, 0.0), np.where(m, P, 0.0)
    yc, pc = np.where(m, y - y.sum(-1, keepdims=True) / n, 0.0), np.where(m, p - p.sum(-1, keepdims=True) / n, 0.0)
    den = np.sqrt((yc ** 2).sum(-1) * (pc ** 2).sum(-1))
    r = np.where(den > 1e-12, (yc * pc).sum(-1) / np.where(den > 1e-12, den, 1.0), 0.0)
    return np.where(m.sum(-1) >= 3, r, np.nan)


KS, LAMS = (0.0, 0.5, 1.0, 2.0, 4.0), (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5)


def _grid_scores(Y, W, tr, q, loo: bool) -> dict[tuple[float, float], np.ndarray]:
    """(k, lam) -> (C, len(q)) per-signature r of the shrunk kernel mean for drugs q from training
    drugs tr; loo (q = tr): each drug's own values out of the context mean and its neighbours."""
    Ytr = Y[:, tr]
    cnt, tot = (~np.isnan(Ytr)).sum(1), np.nansum(Ytr, 1)  # (C, G)
    out = {}
    preds = {}
    for j, d in enumerate(q):
        if loo:
            own = np.nan_to_num(Ytr[:, j])
            cm = (tot - own) / np.maximum(cnt - ~np.isnan(Ytr[:, j]), 1)
        else:
            cm = tot / np.maximum(cnt, 1)
        w = W[d, tr]
        R = np.nan_to_num(Ytr - cm[:, None])  # (C, J, G); the query's own column has w = 0
        preds[j] = (cm, np.einsum("j,cjg->cg", w, R), w.sum())
    for k in KS:
        for lam in LAMS:
            P = np.stack([cm + lam * z / (s + k + 1e-12) for cm, z, s in (preds[j] for j in range(len(q)))], 1)
            out[k, lam] = _signature_r(Y[:, q], P)
    return out


def _drug_cube(name: str):
    """The dataset's rows, its lines / drugs / readouts, their values as a (lines, drugs, readouts) cube
    (NaN where unmeasured) and the side information (no gene graph)."""
    from models.datasets import load_input, resources_for_input

    loaded = load_input(name, n_random=150, seed=0)
    df = loaded.frame
    res = resources_for_input(loaded, gene_graph=False, info=lambda m: None, warn=lambda m: None)
    c, ctx = pd.factorize(df["context"].astype(str))
    p, perts = pd.factorize(df["perturbation"].astype(str))
    g, rds = pd.factorize(df["readout"].astype(str))
    Y = np.full((len(ctx), len(perts), len(rds)), np.nan)  # (C, P, G)
    Y[c, p, g] = df["value"].to_numpy(np.float64)
    return df, (ctx, perts, rds), Y, res


def kernels(name: str, seeds=range(5)) -> None:
    """H-a/H-b/H-c per seed: test r of each kernel family (settings chosen on validation drugs, or on
    validation + left-out training drugs) minus context_mean's and mechanism_knn's."""
    from models.evaluation.baselines import ContextReadoutMean, MechanismKNN
    from models.evaluation.metrics import per_signature_pearson
    from models.evaluation.splits import make_split

    df, (ctx, perts, rds), Y, res = _drug_cube(name)
    fams = _kernels(list(perts), res.compound_smiles, res.compound_annotations)
    print(f"{name}: {Y.shape[0]} lines, {Y.shape[1]} drugs ({len(res.compound_smiles)} with a SMILES), "
          f"{Y.shape[2]} readouts", flush=True)
    rows = []
    for seed in seeds:
        split = make_split(df, "unseen-compound", seed=seed)
        idx = {q: i for i, q in enumerate(perts)}
        tr, va, te = (np.array(sorted(idx[q] for q in part["perturbation"].astype(str).unique()))
                      for part in (split.train, split.valid, split.test))
        test, y = split.test, split.test["value"].to_numpy(np.float64)
        r_cm = per_signature_pearson(test, y, ContextReadoutMean().fit(split.train).predict(test))
        r_mk = per_signature_pearson(test, y, MechanismKNN(res.compound_annotations).fit(split.train, split.valid)
                                     .predict(test))
        rows.append({"seed": seed, "model": "context_mean", "r": r_cm})
        rows.append({"seed": seed, "model": "mechanism_knn", "r": r_mk})
        ti, tj, tk = (pd.Index(x).get_indexer(test[col].astype(str)) for x, col in
                      ((ctx, "context"), (perts, "perturbation"), (rds, "readout")))
        for fam, Ws in fams.items():
            scores = {}  # (width index, k, lam) -> {part: mean r}
            for h, W in enumerate(Ws):
                for part, q, loo in (("valid", va, False), ("loo", tr, True)):
                    for (k, lam), r in _grid_scores(Y, W, tr, q, loo).items():
                        scores.setdefault((h, k, lam), {})[part] = r
            for rule in ("valid", "valid+loo"):
                parts = ("valid",) if rule == "valid" else ("valid", "loo")
                pooled = {key: round(float(np.nanmean(np.concatenate([s[x].ravel() for x in parts]))), 6)
                          for key, s in scores.items()}  # mean r over the pooled drugs' signatures
                h, k, lam = max(pooled, key=lambda key: (pooled[key], -key[2], key[1], -key[0]))  # ties: smaller lam
                W = Ws[h]
                cm = np.nanmean(Y[:, tr], 1)
                w = W[np.ix_(te, tr)]
                Z = np.einsum("qj,cjg->cqg", w, np.nan_to_num(Y[:, tr] - cm[:, None])) / (w.sum(1) + k + 1e-12)[None, :, None]
                P = cm[:, None] + lam * Z  # (C, len(te), G)
                pos = pd.Index(te).get_indexer(tj)
                r = per_signature_pearson(test, y, P[ti, pos, tk])
                rows.append({"seed": seed, "model": f"{fam} ({rule})", "r": r, "chosen": f"w{h} k{k:g} lam{lam:g}"})
        done = [x for x in rows if x["seed"] == seed]
        print(f"seed {seed}: " + "; ".join(f"{x['model']} {x['r']:.4f}" + (f" [{x['chosen']}]" if "chosen" in x else "")
                                           for x in done), flush=True)
    t = pd.DataFrame(rows)
    r = t.pivot_table(index="model", columns="seed", values="r", sort=False)
    print("\n| model | " + " | ".join(f"seed {s}" for s in r.columns) + " | mean | − context_mean (wins) | "
          "− mechanism_knn (wins) |\n|---|" + "---|" * (len(r.columns) + 3))
    for m in r.index:
        d1, d2 = r.loc[m] - r.loc["context_mean"], r.loc[m] - r.loc["mechanism_knn"]
        print(f"| {m} | " + " | ".join(f"{v:.4f}" for v in r.loc[m]) + f" | {r.loc[m].mean():.4f} | "
              f"{d1.mean():+.4f} ({int((d1 > 0).sum())}/5) | {d2.mean():+.4f} ({int((d2 > 0).sum())}/5) |")


def similarity(name: str) -> None:
    """Does any compound similarity predict which drugs respond alike? (describes the data)"""
    from scipy.stats import spearmanr

    df, (ctx, perts, rds), Y, res = _drug_cube(name)
    R = np.nan_to_num(Y - np.nanmean(Y, 1, keepdims=True))
    R -= R.mean(-1, keepdims=True)
    R /= np.linalg.norm(R, axis=-1, keepdims=True) + 1e-12
    pair = np.einsum("cpg,cqg->pq", R, R) / len(ctx)  # mean over lines of the residual-profile r
    lines = np.triu_indices(len(ctx), 1)
    rep = np.einsum("cpg,dpg->pcd", R, R)[:, lines[0], lines[1]].mean(1)  # per drug, between two lines
    W = _kernels(list(perts), res.compound_smiles, res.compound_annotations)
    iu = np.triu_indices(len(perts), 1)
    has = np.array([q in res.compound_smiles for q in perts])
    both = has[iu[0]] & has[iu[1]]
    y = pair[iu]
    print(f"{name}: {len(perts)} drugs, {len(iu[0])} pairs ({int(both.sum())} with two SMILES); pair response r: mean "
          f"{y.mean():+.3f}, 95% {np.quantile(y, 0.95):.3f}, 99% {np.quantile(y, 0.99):.3f}, max {y.max():.3f}")
    for fam in ("tanimoto", "descriptors", "annotation"):
        x = W[fam][-1][iu]
        mask = both if fam != "annotation" else np.ones_like(both)
        print(f"Spearman(pair response r, {fam} similarity): {spearmanr(y[mask], x[mask])[0]:+.3f}")
    top = np.argsort(-y)[:50]
    ann_sim = W["annotation"][-1][iu]
    print(f"top 50 responding-alike pairs: {int((ann_sim[top] > 0).sum())} share any annotation, "
          f"{int((W['tanimoto'][-1][iu][top] > np.exp(-0.6 / 0.2)).sum())} have Tanimoto > 0.4")
    print(f"reproducibility between lines: median {np.median(rep):.2f}, 10-90% {np.quantile(rep, 0.1):.2f}-"
          f"{np.quantile(rep, 0.9):.2f}; most reproducible: " + ", ".join(
              f"{perts[i]} {rep[i]:.2f}" for i in np.argsort(-rep)[:8]))
    for a, b in PAIRS[:5]:  # salt / hydrate twins
        if a in perts and b in perts:
            i, j = perts.get_loc(a), perts.get_loc(b)
            print(f"twin {a} ~ {b}: pair r {pair[i, j]:+.2f}; rank among {a}'s {len(perts) - 1} partners "
                  f"{int((pair[i] > pair[i, j]).sum()) :d}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("check", choices=["nested", "pairs", "drugs", "kernels", "similarity"])
    ap.add_argument("--dataset", default="tahoe", choices=["tahoe", "tahoe37"])
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", category=RuntimeWarning)  # constant signatures' r: NaN, skipped
    {"nested": nested, "pairs": pairs, "drugs": drugs, "kernels": kernels,
     "similarity": similarity}[args.check](args.dataset)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
