"""Evaluation of discoveries: mechanism links against annotated targets, gene-gene edges against
STRING / CORUM, each against the raw-signature (CMap-style connectivity) baseline and random.

Functions the lead calls with LPM outputs:

    evaluate_mechanisms(compound_emb, gene_emb, annotated_targets) -> dict
    evaluate_gene_edges(gene_emb_or_scores, truth_pairs, prior_pairs) -> dict

`python benchmarks/discovery_results.py [--out docs/results.md]` (a benchmark tool, not a command of
the CLI) runs the real-data evaluation (baselines; LPM rows when `--lpm CHECKPOINT` is given) and
writes the markdown snippet.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from graph.io.identifiers import normalise_compound_name
from graph.io.networks import GENE_PRIOR, SHARED_NETWORK_FILES
from models.discovery import l2_normalise

# ---------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------


def similarity_scores(a: pd.DataFrame, b: pd.DataFrame, *, similarity: str = "cosine",
                      centre: bool = True) -> pd.DataFrame:
    """(len(a), len(b)) similarity of rows. 'cosine' (optionally after removing the joint mean of
    all rows, as models.discovery does) or 'pearson' (each row centred over its own features:
    the CMap-style connectivity of two signatures)."""
    if list(a.columns) != list(b.columns):
        raise ValueError("the two tables must have the same columns")
    x, y = a.to_numpy(np.float64), b.to_numpy(np.float64)
    if similarity == "pearson":
        x = x - x.mean(axis=1, keepdims=True)
        y = y - y.mean(axis=1, keepdims=True)
    elif similarity == "cosine":
        if centre:
            mu = np.vstack([x, y]).mean(axis=0, keepdims=True)
            x, y = x - mu, y - mu
    else:
        raise ValueError("similarity must be 'cosine' or 'pearson'")
    return pd.DataFrame(l2_normalise(x) @ l2_normalise(y).T, index=a.index.astype(str), columns=b.index.astype(str))


def random_embedding(names: Iterable[str], dim: int = 32, seed: int = 0) -> pd.DataFrame:
    names = [str(n) for n in names]
    return pd.DataFrame(np.random.default_rng(seed).normal(size=(len(names), dim)), index=names)


# ---------------------------------------------------------------------------------------------
# Mechanisms
# ---------------------------------------------------------------------------------------------


def evaluate_mechanisms(compound_emb: pd.DataFrame, gene_emb: pd.DataFrame,
                        annotated_targets: Mapping[str, Iterable[str]], *, similarity: str = "cosine",
                        centre: bool = True, k: int = 10) -> dict[str, Any]:
    """How well compound -> gene similarity ranks each compound's annotated targets.

    Only compounds with at least one annotated target among the genes are scored (each against all
    genes). Returns counts, pooled AUROC / AUPRC over all (compound, gene) pairs, the mean
    per-compound AUROC, recall@k (share of (compound, target) pairs ranked in the top k), hit@k
    (share of compounds with a target in the top k), the median rank of the best-ranked target, and
    the AUPRC / recall@k a random ranking would get in expectation.
    """
    genes = [str(g) for g in gene_emb.index]
    gene_set = set(genes)
    targets = {str(c): sorted({str(t) for t in ts} & gene_set) for c, ts in annotated_targets.items()}
    compounds = [str(c) for c in compound_emb.index if targets.get(str(c))]
    out: dict[str, Any] = {"n_compounds": len(compounds), "n_genes": len(genes),
                           "n_compounds_total": int(len(compound_emb)),
                           "n_positive_pairs": int(sum(len(targets[c]) for c in compounds))}
    if not compounds or len(genes) < 2:
        return out
    cemb = compound_emb.copy()
    cemb.index = cemb.index.astype(str)
    scores = similarity_scores(cemb.loc[compounds], gene_emb, similarity=similarity, centre=centre).to_numpy()
    labels = np.zeros_like(scores, dtype=bool)
    col = {g: i for i, g in enumerate(genes)}
    for i, c in enumerate(compounds):
        labels[i, [col[t] for t in targets[c]]] = True
    # rank 1 = most similar; ties broken pessimistically (the target after its equals)
    order_rank = pd.DataFrame(-scores).rank(axis=1, method="max").to_numpy()
    ranks = order_rank[labels]
    best = np.array([order_rank[i][labels[i]].min() for i in range(len(compounds))])
    per_auc = [roc_auc_score(labels[i], scores[i]) for i in range(len(compounds)) if 0 < labels[i].sum() < len(genes)]
    out.update({
        "auroc": float(roc_auc_score(labels.ravel(), scores.ravel())) if 0 < labels.sum() < labels.size else None,
        "auprc": float(average_precision_score(labels.ravel(), scores.ravel())),
        "mean_compound_auroc": float(np.mean(per_auc)) if per_auc else None,
        f"recall@{k}": float(np.mean(ranks <= k)),
        f"hit@{k}": float(np.mean(best <= k)),
        "median_rank_best_target": float(np.median(best)),
        "random_auprc": float(labels.mean()),
        f"random_recall@{k}": min(1.0, k / len(genes)),
        "random_median_rank_best_target": None,
    })
    return out


def mechanism_quality(compound_emb: pd.DataFrame, gene_emb: pd.DataFrame,
                      annotated_targets: Mapping[str, Iterable[str]], *,
                      compound_signatures: pd.DataFrame | None = None,
                      gene_signatures: pd.DataFrame | None = None,
                      links: pd.DataFrame | None = None, fdr: float | None = None) -> dict[str, Any]:
    """The quality record of a version's mechanism links: how well the LPM embeddings rank the
    annotated targets (pooled AUROC over compounds with a target among the genes) beside the simple
    answer, raw-signature connectivity (Pearson of the compound's and the knock-down's measured
    signatures, on the readouts both have), and how many links passed the FDR."""
    ours = evaluate_mechanisms(compound_emb, gene_emb, annotated_targets)
    base: dict[str, Any] = {}
    if compound_signatures is not None and gene_signatures is not None and len(compound_signatures) \
            and len(gene_signatures):
        common = sorted(set(compound_signatures.columns) & set(gene_signatures.columns))
        if common:
            base = evaluate_mechanisms(compound_signatures.loc[:, common], gene_signatures.loc[:, common],
                                       annotated_targets, similarity="pearson")
    out: dict[str, Any] = {
        "method": "lpm_embeddings", "metric": "AUROC of annotated targets (pooled over compounds)",
        "score": ours.get("auroc"), "baseline": "signature_connectivity", "baseline_score": base.get("auroc"),
        "compounds_evaluated": ours.get("n_compounds", 0), "positive_pairs": ours.get("n_positive_pairs", 0),
        "fdr": fdr,
    }
    if ours.get("n_compounds", 0) == 0:
        out["note"] = "no compound has an annotated target among the perturbed genes: nothing to validate against"
    if links is not None and len(links):
        sig = links[links["significant"].astype(bool)] if "significant" in links else links.iloc[:0]
        out["tested_pairs"] = int(len(compound_emb) * len(gene_emb))
        out["significant"] = int(len(sig))
        out["significant_compounds"] = int(sig["compound"].nunique()) if len(sig) else 0
        out["significant_annotated"] = int(sig["is_annotated_target"].sum()) if len(sig) else 0
    return out


# ---------------------------------------------------------------------------------------------
# Gene-gene edges
# ---------------------------------------------------------------------------------------------


def _pairs(pairs: Iterable[tuple[Any, Any]] | None) -> set[frozenset[str]]:
    return {frozenset((str(a), str(b))) for a, b in (pairs or ()) if str(a) != str(b)}


def evaluate_gene_edges(gene_emb_or_scores: pd.DataFrame, truth_pairs: Iterable[tuple[Any, Any]],
                        prior_pairs: Iterable[tuple[Any, Any]] | None = None, *,
                        ks: tuple[int, ...] = (100, 500, 1000), similarity: str = "cosine",
                        centre: bool = True) -> dict[str, Any]:
    """AUPRC, AUROC and precision@k of gene-gene scores against true pairs, over all unordered pairs
    of the genes given. `gene_emb_or_scores`: an embedding / profile table (rows = genes), or a
    square gene x gene score table (index == columns). Reported twice: over all pairs, and with the
    pairs of `prior_pairs` (edges the model saw in training) removed from the candidates, so a
    prior edge is never counted as a discovery."""
    x = gene_emb_or_scores
    if list(map(str, x.index)) == list(map(str, x.columns)):
        scores = x.to_numpy(np.float64)
        genes = [str(g) for g in x.index]
    else:
        s = similarity_scores(x, x, similarity=similarity, centre=centre)
        scores, genes = s.to_numpy(), list(s.index)
    iu, ju = np.triu_indices(len(genes), k=1)
    truth, prior = _pairs(truth_pairs), _pairs(prior_pairs)
    names = np.asarray(genes, dtype=object)
    keys = [frozenset((a, b)) for a, b in zip(names[iu], names[ju], strict=True)]
    y = np.fromiter((k in truth for k in keys), bool, len(keys))
    in_prior = np.fromiter((k in prior for k in keys), bool, len(keys))
    s = scores[iu, ju]

    def block(mask: np.ndarray) -> dict[str, Any]:
        yy, ss = y[mask], s[mask]
        res: dict[str, Any] = {"n_pairs": int(mask.sum()), "n_positive": int(yy.sum()),
                               "base_rate": float(yy.mean()) if len(yy) else None}
        if 0 < yy.sum() < len(yy):
            res["auprc"] = float(average_precision_score(yy, ss))
            res["auroc"] = float(roc_auc_score(yy, ss))
            order = np.argsort(-ss, kind="stable")
            for k in ks:
                res[f"precision@{k}"] = float(yy[order[:k]].mean()) if k <= len(yy) else None
        return res

    return {"n_genes": len(genes), "n_truth_pairs_among_genes": int(y.sum()),
            "n_prior_pairs_among_genes": int(in_prior.sum()),
            "all_pairs": block(np.ones_like(y)), "excluding_prior": block(~in_prior)}


# ---------------------------------------------------------------------------------------------
# Real data
# ---------------------------------------------------------------------------------------------


# The real-data tables are read by the benchmark loaders (models.datasets.read_replogle / read_tahoe: the
# ingest's names, the validation step, the loaders' scores), as make_results and the discovery LPM read them.


def replogle_table(path: Path) -> pd.DataFrame:
    """The Replogle file as read_replogle reads it (every readout): knock-downs and readouts under the ingest's
    names, `value` the up score u = 1 - (rank - 1) / n_ranked of the top-1,000 up list."""
    from models.datasets import read_replogle

    return read_replogle(path).frame


def replogle_signatures(table: pd.DataFrame | Path, fill: float = 0.0) -> pd.DataFrame:
    """Knock-down x (context|readout) up scores of replogle_table (given, or read from a path); K562 and RPE1
    side by side. Readouts outside a knock-down's top-1,000 up list are filled with `fill` (0: below the last
    listed gene, whose u is 1/n)."""
    r = table if isinstance(table, pd.DataFrame) else replogle_table(table)
    col = r["context"].astype(str) + "|" + r["readout"].astype(str)
    wide = pd.DataFrame({"perturbation": r["perturbation"].astype(str).to_numpy(), "col": col.to_numpy(),
                         "s": r["value"].to_numpy(np.float64)}).pivot_table(
        index="perturbation", columns="col", values="s", aggfunc="mean")
    return wide.fillna(fill)


def replogle_readout_signatures(table: pd.DataFrame | Path, fill: float = 0.0) -> pd.DataFrame:
    """Knock-down x readout of replogle_table (given, or read from a path), mean over the two contexts (for
    comparison with compound signatures); unlisted readouts `fill` as in replogle_signatures."""
    r = table if isinstance(table, pd.DataFrame) else replogle_table(table)
    wide = r.pivot_table(index=[r["perturbation"].astype(str), r["context"].astype(str)],
                         columns=r["readout"].astype(str), values="value", aggfunc="mean").fillna(fill)
    return wide.groupby(level=0).mean()


def tahoe_compound_signatures(path: Path, readouts: Iterable[str]) -> pd.DataFrame:
    """Compound x readout mean signed score over the Tahoe cell lines, read by read_tahoe restricted to
    `readouts` (the ingest's names, e.g. replogle_readout_signatures' columns)."""
    from models.datasets import read_tahoe

    t = read_tahoe(path, readouts=sorted(map(str, readouts))).frame
    wide = t.pivot_table(index=t["perturbation"].astype(str), columns=t["readout"].astype(str), values="value",
                         aggfunc="mean", observed=True)
    return wide.fillna(0.0)  # a readout a line did not rank counts as unchanged


def drug_targets(compounds_dir: Path) -> dict[str, set[str]]:
    """Normalised drug name -> target symbols (Repurposing Hub targets united with LINCS target_merged)."""
    out: dict[str, set[str]] = {}
    hub = pd.read_csv(compounds_dir / "repurposing_drugs_20200324.txt", sep="\t", comment="!")
    for name, tg in zip(hub["pert_iname"], hub["target"], strict=True):
        if isinstance(tg, str) and tg:
            out.setdefault(normalise_compound_name(name), set()).update(tg.split("|"))
    lincs = pd.read_csv(compounds_dir / "lincs_compoundinfo.tsv", sep="\t", usecols=["cmap_name", "target_merged"],
                        dtype=str)
    for name, tg in zip(lincs["cmap_name"], lincs["target_merged"], strict=True):
        if isinstance(name, str) and isinstance(tg, str) and tg:
            out.setdefault(normalise_compound_name(name), set()).update(tg.split("|"))
    return out


def string_pairs(path: Path, min_score: int = 0, genes: Iterable[str] | None = None) -> set[tuple[str, str]]:
    """STRING pairs with combined score >= min_score, read as the ingest reads them
    (models.datasets.string_gene_graph: current symbols; with `genes`, in the dataset's names)."""
    from models.datasets import string_gene_graph

    g = string_gene_graph(min_score, genes, path)
    return set(zip(g["source"], g["target"], strict=True))


def corum_pairs(path: Path, genes: Iterable[str] | None = None) -> set[tuple[str, str]]:
    """CORUM (human) co-complex pairs by the one pairing rule (models.datasets.corum_gene_graph)."""
    from models.datasets import corum_gene_graph

    g = corum_gene_graph(genes, path)
    return set(zip(g["source"], g["target"], strict=True))


def _fmt(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.3f}"
    return str(x)


def mtor_ranks(pert_emb: pd.DataFrame, knockdowns: Iterable[str],
               annotated: Mapping[str, Iterable[str]]) -> dict[str, int]:
    """Rank (1 = most similar, centred cosine) of the MTOR knock-down among all knock-downs for every
    compound annotated to target MTOR: the issue's worked example, reported whatever it shows."""
    kd = pert_emb.loc[[g for g in knockdowns if g in pert_emb.index]]
    compounds = [c for c, t in annotated.items() if "MTOR" in set(t) and c in pert_emb.index]
    if "MTOR" not in kd.index or not compounds:
        return {}
    scores = similarity_scores(pert_emb.loc[compounds], kd)
    return {c: int((scores.loc[c] > scores.loc[c, "MTOR"]).sum()) + 1 for c in compounds}


def discovery_training_table(shared: Path, max_readouts: int | None = None) -> pd.DataFrame:
    """Tahoe-100M drugs and Replogle knock-downs in one table, on the readouts both measure (the
    Tahoe dense readouts that are in at least 50 Replogle top-1,000 lists; with `max_readouts`, the
    ones in the most Replogle lists), so compounds and knock-downs are embedded by one model."""
    return discovery_training_input(shared, max_readouts).frame


def knockdown_gene_of(loaded) -> dict[str, str]:
    """Each CRISPRi knock-down of a loaded table (models.datasets.Loaded) -> its gene: its one target as the
    loader records it (the table's id C14ORF178 -> C14orf178, the readout's and the references' name);
    knock-downs of several genes are left out."""
    from models.side_information import target_genes

    df = loaded.frame
    kd = sorted(df.loc[df["perturbation_type"].astype(str) == "CRISPRi", "perturbation"].astype(str).unique())
    return {p: genes[0] for p in kd if len(genes := target_genes(p, "CRISPRi", loaded.perturbation_targets)) == 1}


def discovery_training_input(shared: Path, max_readouts: int | None = None):
    """discovery_training_table as a models.datasets.Loaded: the table, the two loaders' reports (summed) and
    what they recorded per perturbation (source names, knock-downs' target genes), for resources_for_input."""
    from models.datasets import Loaded, LoadReport, most_measured_readouts, read_replogle, read_tahoe

    rep_in = read_replogle(shared / "perturbseq/replogle2022_k562_rpe1_crispri_top1000.parquet", min_signatures=50)
    tah_in = read_tahoe(shared / "chemical/tahoe100m_ranked_signatures.parquet")
    rep, tah = rep_in.frame, tah_in.frame
    common = sorted(set(rep["readout"].astype(str)) & set(tah["readout"].astype(str)))
    if max_readouts is not None and len(common) > max_readouts:
        sub = rep[rep["readout"].astype(str).isin(common)]
        common = sorted(most_measured_readouts(sub, max_readouts))
    df = pd.concat([tah[tah["readout"].astype(str).isin(common)], rep[rep["readout"].astype(str).isin(common)]],
                   ignore_index=True)
    for col in ("context", "perturbation", "perturbation_type", "readout"):
        df[col] = df[col].astype(str)
    kept = set(df["perturbation"].unique())
    parts = (tah_in, rep_in)
    report = LoadReport.combined([p.report for p in parts])
    return Loaded(df, report, {k: v for p in parts for k, v in p.perturbation_names.items() if k in kept},
                  {k: list(v) for p in parts for k, v in p.perturbation_targets.items() if k in kept})


def train_discovery_lpm(shared: Path, out: Path, *, epochs: int = 8, paper: bool = False, seed: int = 0,
                        max_readouts: int | None = None, ema_decay: float = 0.0) -> Path:
    """Fit the LPM on `discovery_training_table` (all experiments; no held-out split: the
    discovery labels, annotated targets and STRING / CORUM pairs, are never inputs; STRING >= 700
    is the gene prior unless `paper`) and save it. `epochs` is a fixed count (nothing to stop on);
    `ema_decay` > 0 saves the moving average of the parameters (LPMConfig.ema_decay)."""
    from models.datasets import resources_for_input
    from models.lpm import LPM
    from models.module import LPMConfig

    loaded = discovery_training_input(shared, max_readouts)
    df, res = loaded.frame, resources_for_input(loaded, gene_graph=not paper)
    config = (LPMConfig.paper if paper else LPMConfig)(max_epochs=epochs, ema_decay=ema_decay)
    # Without cell-line features, as the discovery tables in docs/results.md were measured.
    model = LPM(config, side=replace(res.side, context_features=None), seed=seed)
    model.fit(df, None, progress=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    return out


def lpm_embeddings(checkpoint: Path) -> tuple[pd.DataFrame, str]:
    """Perturbation embeddings of a checkpoint and a one-line description of the model."""
    from models.lpm import LPM

    model = LPM.load(checkpoint)
    c = model.config
    encoders = [n for n, on in (("compound", c.use_compound_encoder), ("gene graph", c.use_gene_graph),
                                ("targets", c.use_targets)) if on]
    what = (f"LPM perturbation embeddings ({'encoders: ' + ', '.join(encoders) if encoders else 'paper model'}, "
            f"{len(model.history)} epochs)")
    return model.embeddings("perturbation"), what


def run_real(shared: Path, *, lpm_path: Path | None = None, n_random: int = 5) -> tuple[dict[str, Any], str]:
    """Evaluate on the shared data; returns (numbers, markdown)."""
    t0 = time.perf_counter()
    rep_table = replogle_table(shared / "perturbseq/replogle2022_k562_rpe1_crispri_top1000.parquet")
    kd = replogle_signatures(rep_table)
    genes = list(kd.index)
    # Truth pairs in current symbols, met by the knock-downs' names through the gene table.
    string = string_pairs(shared / SHARED_NETWORK_FILES["string"], genes=genes)
    corum = corum_pairs(shared / SHARED_NETWORK_FILES["corum"], genes=genes)
    res: dict[str, Any] = {"edges": {}, "mechanisms": {}}
    edge_rows = {"raw signature correlation (Pearson)": dict(similarity="pearson")}
    for label, kw in edge_rows.items():
        res["edges"][label] = {
            "STRING": evaluate_gene_edges(kd, string, None, **kw),
            "CORUM": evaluate_gene_edges(kd, corum, string, **kw),
        }
    rnd = [evaluate_gene_edges(random_embedding(genes, 32, seed), corum, string) for seed in range(n_random)]
    rnd_s = [evaluate_gene_edges(random_embedding(genes, 32, seed), string, None) for seed in range(n_random)]

    def mean_block(runs: list[dict], key: str) -> dict[str, Any]:
        blk = {k: v for k, v in runs[0][key].items()}
        for m in blk:
            vals = [r[key].get(m) for r in runs]
            if all(isinstance(v, float) for v in vals):
                blk[m] = float(np.mean(vals))
        return blk

    lpm = None
    if lpm_path is not None:
        pert_emb, lpm_label = lpm_embeddings(lpm_path)
        kd_emb = pert_emb.loc[[g for g in genes if g in pert_emb.index]]
        lpm = (pert_emb, lpm_label)
        # With the gene graph on, STRING shaped the knock-down embeddings: only CORUM excl. STRING is fair.
        res["edges"][lpm_label] = {"STRING": evaluate_gene_edges(kd_emb, string, None),
                                   "CORUM": evaluate_gene_edges(kd_emb, corum, string)}
    res["edges"][f"random (mean of {n_random})"] = {
        "STRING": {"all_pairs": mean_block(rnd_s, "all_pairs"), "excluding_prior": mean_block(rnd_s, "excluding_prior")},
        "CORUM": {"all_pairs": mean_block(rnd, "all_pairs"), "excluding_prior": mean_block(rnd, "excluding_prior")}}

    # mechanisms: Tahoe drugs vs Replogle knock-downs, targets from Repurposing Hub / LINCS
    kd_read = replogle_readout_signatures(rep_table)
    comp = tahoe_compound_signatures(shared / "chemical/tahoe100m_ranked_signatures.parquet", kd_read.columns)
    common = sorted(set(comp.columns) & set(kd_read.columns))
    comp, kd_read = comp.loc[:, common], kd_read.loc[:, common]
    targets_by_name = drug_targets(shared / "compounds")
    annotated = {c: targets_by_name.get(normalise_compound_name(c), set()) for c in comp.index}
    n_with_targets = sum(1 for t in annotated.values() if t)
    res["mechanisms"]["counts"] = {
        "tahoe_compounds": int(len(comp)), "with_annotated_targets": n_with_targets,
        "with_a_target_among_knockdowns": sum(1 for t in annotated.values() if t & set(kd_read.index)),
        "knockdowns": int(len(kd_read)), "shared_readouts": len(common)}
    res["mechanisms"]["raw signature connectivity (Pearson)"] = evaluate_mechanisms(
        comp, kd_read, annotated, similarity="pearson")
    if lpm is not None:
        pert_emb, lpm_label = lpm
        res["mechanisms"][lpm_label] = evaluate_mechanisms(
            pert_emb.loc[[c for c in comp.index if c in pert_emb.index]],
            pert_emb.loc[[g for g in kd_read.index if g in pert_emb.index]], annotated)
        res["mechanisms"]["mtor"] = mtor_ranks(pert_emb, kd_read.index, annotated)
    rnd_m = [evaluate_mechanisms(random_embedding(comp.index, 32, s), random_embedding(kd_read.index, 32, s + 100),
                                 annotated) for s in range(n_random)]
    res["mechanisms"][f"random (mean of {n_random})"] = {
        k: (float(np.mean([r[k] for r in rnd_m])) if isinstance(rnd_m[0].get(k), float) else rnd_m[0].get(k))
        for k in rnd_m[0]}
    res["seconds"] = time.perf_counter() - t0
    return res, to_markdown(res, lpm_pending=lpm_path is None)


def to_markdown(res: dict[str, Any], *, lpm_pending: bool = True) -> str:
    lines = ["## Discoveries (models/evaluation_discovery.py)", ""]
    if lpm_pending:
        lines += ["**LPM rows pending**: no trained LPM was available when this ran; the rows below are the",
                  "raw-signature baseline and random. Re-run with the LPM's embeddings via",
                  "`evaluate_mechanisms(compound_emb, gene_emb, annotated_targets)` and",
                  "`evaluate_gene_edges(gene_emb, truth_pairs, prior_pairs)`.", ""]
    lines += ["### Gene-gene edges (Replogle 2022 CRISPRi, 585 knock-downs, K562 + RPE1 signatures)", "",
              "Read by the benchmark loader (read_replogle: the ingest's names); up score u = 1 - (rank-1)/n_ranked "
              "on the top-1,000 up list; unlisted readouts = 0; the two contexts side by side. Candidates: all unordered pairs of the knock-downs. The STRING "
              "edges are treated as the prior the model is trained with: the CORUM rows 'excl. prior' drop "
              "every STRING pair from the candidates (a prior edge is never a discovery); for STRING as truth "
              "that exclusion would leave no positives.", "",
              "| method | truth | candidates | pairs | positives | base rate | AUPRC | AUROC | P@100 | P@500 | P@1000 |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for method, by_truth in res["edges"].items():
        for truth, blocks in by_truth.items():
            for cand in ("all_pairs", "excluding_prior"):
                b = blocks[cand]
                if truth == "STRING" and cand == "excluding_prior":
                    continue
                lines.append(f"| {method} | {truth} | {'all' if cand == 'all_pairs' else 'excl. prior (STRING)'} | "
                             f"{b.get('n_pairs')} | {b.get('n_positive')} | {_fmt(b.get('base_rate'))} | "
                             f"{_fmt(b.get('auprc'))} | {_fmt(b.get('auroc'))} | {_fmt(b.get('precision@100'))} | "
                             f"{_fmt(b.get('precision@500'))} | {_fmt(b.get('precision@1000'))} |")
    m = res["mechanisms"]
    c = m["counts"]
    lines += ["", "### Mechanism matching (Tahoe-100M drugs vs Replogle knock-downs)", "",
              f"{c['tahoe_compounds']} Tahoe drugs; {c['with_annotated_targets']} have annotated targets "
              f"(Repurposing Hub / LINCS); only **{c['with_a_target_among_knockdowns']}** have a target among the "
              f"{c['knockdowns']} knocked-down genes; {c['shared_readouts']} shared readouts. Drug signatures come "
              "from 10 cancer lines, knock-downs from K562/RPE1 and list only up-regulated genes: the task is "
              "**under-powered**, read the numbers as a sanity check, not as a benchmark.", "",
              "| method | compounds | positive pairs | AUROC | AUPRC (random exp.) | recall@10 | hit@10 | median rank of best target |",
              "|---|---|---|---|---|---|---|---|"]
    for method, r in m.items():
        if method in ("counts", "mtor"):
            continue
        lines.append(f"| {method} | {r.get('n_compounds')} | {r.get('n_positive_pairs')} | {_fmt(r.get('auroc'))} | "
                     f"{_fmt(r.get('auprc'))} ({_fmt(r.get('random_auprc'))}) | {_fmt(r.get('recall@10'))} | "
                     f"{_fmt(r.get('hit@10'))} | {_fmt(r.get('median_rank_best_target'))} |")
    if m.get("mtor"):
        ranks = ", ".join(f"{c} {r}" for c, r in sorted(m["mtor"].items()))
        lines += ["", f"Rank of the MTOR knock-down among the {c['knockdowns']} knock-downs for the compounds "
                      f"annotated to target MTOR (LPM embeddings): {ranks} (random: median "
                      f"{(c['knockdowns'] + 1) / 2:.0f})."]
    lines += ["", f"Computed in {res.get('seconds', 0):.0f} s.", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Discoveries vs the simple answer (what `discoveries` would publish, on the shared data)
# ---------------------------------------------------------------------------------------------

VS_SIMPLE_HEADING = "## Discoveries vs the simple answer"


def run_vs_simple(shared: Path, lpm_path: Path, *, max_readouts: int | None = None, fdr: float = 0.1,
                  n_null: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Score every edge source and the mechanism links of one trained LPM against the simple answer,
    exactly as the `discoveries` asset does at publish (models.edge_sources, mechanism_links with
    BH over all pairs), on `discovery_training_table` (Tahoe-100M drugs + Replogle knock-downs)."""
    from models import discovery as D
    from models import edge_sources as ES
    from models.datasets import prior_gene_graph
    from models.lpm import LPM

    t0 = time.perf_counter()
    loaded = discovery_training_input(shared, max_readouts)
    df = loaded.frame
    model = LPM.load(lpm_path)
    types = df["perturbation_type"].astype(str)
    compounds = sorted(df.loc[types == "compound", "perturbation"].astype(str).unique())
    gene_of = knockdown_gene_of(loaded)
    pert = model.embeddings("perturbation")
    # As the `discoveries` asset (pipelines/discovery_steps.embedding_groups, edge_discoveries): LPM profiles and
    # embeddings keyed by gene through gene_of, unit-normalised per perturbation (aggregate_embeddings), the imputed
    # ones within the asset's prediction budget.
    knockdown = D.aggregate_embeddings(pert, gene_of)
    compound_vectors = D.aggregate_embeddings(pert, {c: c for c in compounds})
    readout = model.embeddings("readout")
    contexts = list(model.vocab["context"])
    imputed = D.imputed_gene_profiles(model, gene_of, seed=seed)
    signatures, measured = D.signatures_and_pattern(df, gene_of)
    scores = ES.candidate_scores(signatures=signatures, measured=measured,
                                 knockdown=knockdown, readout=readout, imputed=imputed)
    genes = sorted({g for sc in scores.values() for g in sc.index})
    # The pairs given to the model as its gene prior (resources_for: prior_gene_graph, graph/io/networks.GENE_PRIOR;
    # none for a model without the gene graph), removed from the references for "without prior".
    prior = ES.given_prior(model.config, prior_gene_graph(genes, {k: shared / f for k, f in SHARED_NETWORK_FILES.items()}))
    refs = {"CORUM": corum_pairs(shared / SHARED_NETWORK_FILES["corum"], genes=genes),
            "STRING": string_pairs(shared / SHARED_NETWORK_FILES["string"], genes=genes)}
    report = ES.score_edge_sources(scores, ES.EdgeReferences.build(
        refs, None if prior is None else zip(prior["source"], prior["target"], strict=True)), seed=seed)
    edges = {**report.as_dict(), "method": report.published}
    edges["passes"], edges["gate"] = ES.edge_gate(edges)

    comp = compound_vectors
    targets_by_name = drug_targets(shared / "compounds")
    annotated = {c: targets_by_name.get(normalise_compound_name(c), set()) for c in comp.index}
    # Mechanism links from the better source, as the `discoveries` asset chooses it
    sources = {D.LPM_EMBEDDINGS: D.MechanismSource(comp, knockdown, centre=True)}
    simple = D.connectivity_source(df, {c: c for c in compounds}, gene_of)
    if simple is not None:
        sources[D.CONNECTIVITY] = simple
    choice = D.score_mechanism_sources(sources, annotated)
    src = sources[choice.published]
    links = D.published_mechanism_links(choice, sources, k=20, fdr=fdr, n_null=n_null, annotated_targets=annotated,
                                        seed=seed)
    sig = links[links["significant"]]
    mech = {**choice.as_dict(), "fdr": fdr, "tested_pairs": int(len(src.compounds) * len(src.genes)),
            "significant": int(len(sig)), "significant_compounds": int(sig["compound"].nunique()),
            "significant_annotated": int(sig["is_annotated_target"].sum())}
    rng = np.random.default_rng(seed)
    broken = src.compounds.copy()
    broken[:] = np.take_along_axis(broken.to_numpy(), np.argsort(rng.random(broken.shape), axis=1), axis=1)
    mech["significant_with_compounds_permuted"] = int(D.mechanism_links(
        broken, src.genes, k=20, fdr=fdr, n_null=n_null, centre=src.centre, seed=seed)["significant"].sum())
    mech["top20_links_stored"] = int(len(links))
    mech["min_qvalue"] = float(links["qvalue"].min()) if len(links) else None
    sig = links[links["significant"]]
    mech["significant_examples"] = [f"{c} -> {g} (q {q:.3f})" for c, g, q in
                                    sig.sort_values("qvalue").head(5)[["compound", "gene", "qvalue"]].itertuples(
                                        index=False, name=None)]
    c = model.config
    return {"edges": edges, "mechanisms": mech, "seconds": time.perf_counter() - t0,
            "data": {"rows": int(len(df)), "readouts": int(df["readout"].nunique()), "knockdowns": len(knockdown),
                     "imputed_profile_columns": 0 if imputed is None else int(imputed.shape[1]),
                     "compounds": len(comp), "contexts": len(contexts),
                     "model": f"LPM ({len(model.history)} epochs, gene graph {'on' if c.use_gene_graph else 'off'})",
                     "checkpoint": str(lpm_path)}}


def vs_simple_markdown(res: dict[str, Any], command: str) -> str:
    e, m, d = res["edges"], res["mechanisms"], res["data"]
    lines = [VS_SIMPLE_HEADING, "",
             f"Regenerate: `{command}`. What the `discoveries` asset publishes, scored the way it scores "
             "them at publish time (`models/edge_sources.py`, `models.discovery.mechanism_links`), on the shared "
             f"data: {d['model']} trained on Tahoe-100M drugs + Replogle CRISPRi knock-downs "
             f"({d['rows']:,} rows, {d['readouts']} readouts, {d['knockdowns']} knock-downs, {d['compounds']} "
             f"drugs, {d['contexts']} contexts). The LPM's gene prior is {GENE_PRIOR.describe()}; "
             "'without prior' drops those pairs from the candidates (a prior edge fed to the model is never a "
             "discovery), so the STRING rows without prior score the STRING pairs below that cut.", "",
             "### Gene-gene edges (Replogle knock-downs)", "",
             f"Every source on the same {e['genes_scored']} genes "
             f"({e['genes_scored'] * (e['genes_scored'] - 1) // 2:,} pairs). Excluded (and why): "
             + (", ".join(f"{k} ({v})" for k, v in e["excluded"].items()) or "none") + ".", "",
             "| source | reference | AUPRC with prior | AUROC with prior | AUPRC without prior | AUROC without prior "
             "| positives without prior | base rate without prior |",
             "|---|---|---|---|---|---|---|---|"]
    for src, by_ref in e["scores"].items():
        for ref, blk in by_ref.items():
            w, wo = blk["with_prior"], blk["without_prior"]
            name = f"**{src}**" if src == e["published"] else src
            lines.append(f"| {name} | {ref} | {_fmt(w['auprc'])} | {_fmt(w['auroc'])} | {_fmt(wo['auprc'])} | "
                         f"{_fmt(wo['auroc'])} | {wo['positives']} | {_fmt(wo['base_rate'])} |")
    lines += ["", f"Published: **{e['published']}** ({e['reason']}); best on the selection metric "
              f"(AUPRC without prior, mean over {', '.join(e['references']) or 'no reference'}): {e['best']}. "
              f"Published score {_fmt(e['published_score'])} vs signature correlation {_fmt(e['baseline_score'])}. "
              f"Blocking check: {'passes' if e['passes'] else 'REFUSES'} ({e['gate']}).", "",
              "### Mechanism links (Tahoe drugs -> Replogle knock-downs)", "",
              "| what | value |", "|---|---|",
              f"| pairs tested (BH over all of them) | {m.get('tested_pairs', 0):,} |",
              f"| links published at q <= {m['fdr']} | {m.get('significant', 0)} "
              f"({m.get('significant_compounds', 0)} compounds; {m.get('significant_annotated', 0)} annotated targets) |",
              f"| the same with the published source's compound vectors' coordinates permuted | "
              f"{m['significant_with_compounds_permuted']} |",
              f"| smallest q-value of any pair | {_fmt(m.get('min_qvalue'))} |",
              f"| top-20 links stored per compound (shown by `--all`) | {m['top20_links_stored']} |",
              f"| published source (`method`) | **{m['method']}** ({m['reason']}) |"]
    for name, sc in (m.get("scores") or {}).items():
        lines.append(f"| annotated-target AUROC / AUPRC, {name} ({m['compounds_evaluated']} drugs with a target "
                     f"among the knock-downs, {m['positive_pairs']} pairs, same pairs for every source) | "
                     f"{_fmt(sc['auroc'])} / {_fmt(sc['auprc'])} |")
    if m.get("significant_examples"):
        lines += ["", "Most significant links: " + "; ".join(m["significant_examples"]) + "."]
    lines += ["", NOT_COVERED, "", f"Computed in {res['seconds']:.0f} s (checkpoint `{d['checkpoint']}`).", ""]
    return "\n".join(lines)


NOT_COVERED = (
    "Not in these tables: the simulated default world (its STRING-like prior is given to the model "
    "whole, so no reference pair lies outside the prior and its edges are signature correlation by "
    "construction; `tests/test_pipelines.py` asserts that, the blocking check both ways, and the "
    "mechanism permutation check on the published source; its mechanism numbers follow in their own "
    "section), the other Tahoe cell lines, and a converged "
    "LPM: this is a bounded CPU run (few epochs, capped readouts); the 8-epoch model on all shared "
    "readouts is in 'Discoveries on the real data', and its knock-down embeddings also score below "
    "correlation "
    "outside the prior.")


def replace_section(text: str, heading: str, body: str, *, before: str | None = None) -> str:
    """`text` with the section starting at `heading` (up to the next '## ' heading) replaced by
    `body`; a missing section is inserted before the heading `before` (or appended)."""
    if heading in text:
        start = text.index(heading)
        nxt = text.find("\n## ", start + len(heading))
        end = len(text) if nxt < 0 else nxt + 1
        return text[:start] + body.rstrip("\n") + "\n\n" + text[end:].lstrip("\n")
    if before and before in text:
        i = text.index(before)
        return text[:i] + body.rstrip("\n") + "\n\n" + text[i:]
    return text.rstrip("\n") + "\n\n" + body
