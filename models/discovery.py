"""Discoveries from LPM embeddings and predictions: pure numpy / pandas, no Neo4j.

Three kinds of discovery, each returned as a long DataFrame that `graph.db.discovery_writer` writes
back as relationships:

* `mechanism_links` — for every compound, the genes whose genetic-perturbation embedding is most
  similar (cosine) to the compound's embedding (the compound's perturbations aggregated over doses
  with `aggregate_embeddings`). Each link gets a rank, a z-score and an empirical p-value against a
  null of the same compound scored against null gene vectors that keep the genes' covariance but no
  gene's identity (`permuted_null`: principal-component scores drawn from independent random genes),
  and a Benjamini-Hochberg q-value over ALL (compound, gene) pairs tested for the
  version; `significant` (q <= fdr) marks the links that are published as discoveries.
* `gene_interactions` — for every gene, its top-k most similar genes (cosine of genetic
  perturbation embeddings, or of any other per-gene profile such as imputed response profiles).
* `predicted_effects` — for unmeasured (perturbation, context) pairs, the top up- and
  down-regulated readouts of the model's prediction (`impute_effects` calls `LPM.predict`).

Names are strings throughout (perturbation ids, compound ids, gene symbols or Entrez ids as text);
mapping them onto graph keys is the writer's job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

MECHANISM_COLUMNS = ("compound", "gene", "score", "rank", "zscore", "pvalue", "qvalue", "significant",
                     "is_annotated_target")
INTERACTION_COLUMNS = ("source", "target", "score", "rank", "in_prior")
EFFECT_COLUMNS = ("perturbation", "context", "readout", "value", "direction", "rank")


# ---------------------------------------------------------------------------------------------
# Basics
# ---------------------------------------------------------------------------------------------


def _as_frame(emb: pd.DataFrame | Mapping[str, Any]) -> pd.DataFrame:
    if isinstance(emb, pd.DataFrame):
        frame = emb
    else:
        frame = pd.DataFrame.from_dict({k: np.asarray(v, dtype=np.float64) for k, v in emb.items()}, orient="index")
    frame = frame.astype(np.float64)
    frame.index = frame.index.astype(str)
    if frame.index.has_duplicates:
        raise ValueError("embedding index has duplicate names")
    if not np.isfinite(frame.to_numpy()).all():
        raise ValueError("embedding contains NaN or infinite values")
    return frame


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) cosine similarities; a zero vector has similarity 0 with everything."""
    return l2_normalise(a) @ l2_normalise(b).T


def aggregate_embeddings(emb: pd.DataFrame, groups: Mapping[str, str], how: str = "mean") -> pd.DataFrame:
    """Rows of `emb` grouped by `groups[name]` (e.g. perturbation id -> compound id, aggregating doses).

    Names without a group are dropped. `how` is "mean" (of unit-normalised vectors, so a dose with a
    large norm does not dominate) or "first".
    """
    emb = _as_frame(emb)
    keys = pd.Series({n: groups[n] for n in emb.index if n in groups}, dtype=object)
    if keys.empty:
        return pd.DataFrame(columns=emb.columns, dtype=np.float64)
    sub = emb.loc[keys.index]
    if how == "mean":
        sub = pd.DataFrame(l2_normalise(sub.to_numpy()), index=sub.index, columns=sub.columns)
        out = sub.groupby(keys.to_numpy()).mean()
    elif how == "first":
        out = sub.groupby(keys.to_numpy()).first()
    else:
        raise ValueError(f"how must be 'mean' or 'first', not {how!r}")
    out.index = out.index.astype(str)
    out.index.name = "name"
    return out


def _centre(*frames: pd.DataFrame) -> list[np.ndarray]:
    """Subtract the mean of all rows of all frames (one shared offset, so equal vectors stay equal)."""
    stacked = np.vstack([f.to_numpy() for f in frames if len(f)])
    mu = stacked.mean(axis=0, keepdims=True) if len(stacked) else 0.0
    return [f.to_numpy() - mu for f in frames]


def bh_qvalues(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values along `axis`."""
    p = np.asarray(p, dtype=np.float64)
    p = np.moveaxis(p, axis, -1)
    n = p.shape[-1]
    order = np.argsort(p, axis=-1)
    ranked = np.take_along_axis(p, order, axis=-1) * n / np.arange(1, n + 1)
    ranked = np.minimum.accumulate(ranked[..., ::-1], axis=-1)[..., ::-1]
    q = np.empty_like(ranked)
    np.put_along_axis(q, order, np.minimum(ranked, 1.0), axis=-1)
    return np.moveaxis(q, -1, axis)


def _top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the k largest entries per row, best first (stable on ties)."""
    k = min(k, scores.shape[1])
    if k <= 0:
        return np.zeros((scores.shape[0], 0), int), np.zeros((scores.shape[0], 0))
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else np.tile(
        np.arange(scores.shape[1]), (scores.shape[0], 1))
    vals = np.take_along_axis(scores, part, axis=1)
    # sort by value desc, then by column index asc for determinism
    order = np.lexsort((part, -vals), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(scores, idx, axis=1)


# ---------------------------------------------------------------------------------------------
# Mechanism links: compound -> gene
# ---------------------------------------------------------------------------------------------


def permuted_null(gene_vectors: np.ndarray, n_null: int, rng: np.random.Generator) -> np.ndarray:
    """`n_null` null gene vectors with the genes' covariance but no gene's identity: in the genes'
    principal-component basis each coordinate of a null vector is that component's score of an
    independently drawn random gene. A compound aligned with a main axis of variation of the genes is
    then as similar to null vectors as to real genes, so it is not called significant for that alone
    (a null of coordinate-shuffled vectors is isotropic and would call it so for many genes)."""
    if len(gene_vectors) == 0:
        raise ValueError("no gene vectors to build a null from")
    g = np.asarray(gene_vectors, dtype=np.float64)
    mu = g.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(g - mu, full_matrices=False)
    z = (g - mu) @ vt.T  # (G, r) component scores
    pick = rng.integers(0, len(g), size=(n_null, z.shape[1]))
    return mu + np.take_along_axis(z, pick, axis=0) @ vt


def mechanism_links(
    compound_emb: pd.DataFrame,
    gene_emb: pd.DataFrame,
    *,
    k: int = 20,
    n_null: int = 2000,
    fdr: float = 0.1,
    centre: bool = True,
    annotated_targets: Mapping[str, Iterable[str]] | None = None,
    seed: int = 0,
    chunk: int = 512,
) -> pd.DataFrame:
    """Compound -> gene links by cosine similarity of embeddings, calibrated against a null, with a
    false-discovery rate over ALL (compound, gene) pairs tested.

    compound_emb: one row per compound (index = compound id), e.g. `aggregate_embeddings` of the
    LPM's perturbation embeddings over each compound's doses. gene_emb: one row per gene (index =
    gene name) from the gene's genetic perturbation(s). Both must have the same columns.

    Returned rows: each compound's top-k genes, plus every pair with qvalue <= `fdr` beyond them.
    Columns: compound, gene, score (cosine), rank (1 = most similar gene of the compound), zscore
    ((score - null mean) / null sd for this compound), pvalue ((1 + #null >= score) / (1 + n_null),
    the null being this compound scored against `permuted_null` gene vectors; beyond the null's
    maximum the Gaussian tail of z, at most 1 / (1 + n_null)), qvalue
    (Benjamini-Hochberg over every compound x gene pair tested, not per compound), significant
    (qvalue <= fdr: what is published as a discovery), is_annotated_target.
    """
    if not 0.0 < fdr <= 1.0:
        raise ValueError(f"fdr must be in (0, 1], not {fdr!r}")
    compound_emb, gene_emb = _as_frame(compound_emb), _as_frame(gene_emb)
    if list(compound_emb.columns) != list(gene_emb.columns):
        raise ValueError("compound and gene embeddings must have the same columns")
    if len(compound_emb) == 0 or len(gene_emb) == 0:
        return pd.DataFrame(columns=list(MECHANISM_COLUMNS))
    if centre:
        c_vec, g_vec = _centre(compound_emb, gene_emb)
    else:
        c_vec, g_vec = compound_emb.to_numpy(), gene_emb.to_numpy()
    rng = np.random.default_rng(seed)
    null_unit = l2_normalise(permuted_null(g_vec, n_null, rng))
    g_unit = l2_normalise(g_vec)
    targets = {str(c): {str(g) for g in gs} for c, gs in (annotated_targets or {}).items()}
    genes = gene_emb.index.to_numpy()
    compounds = compound_emb.index.to_numpy()

    # Every pair's score, z and p (8 bytes each per pair: 64k pairs on the shared data), then one BH.
    n_c, n_g = len(compounds), len(genes)
    scores, z, p = (np.empty((n_c, n_g)) for _ in range(3))
    for start in range(0, n_c, chunk):
        rows = slice(start, start + chunk)
        cu = l2_normalise(c_vec[rows])
        s = cu @ g_unit.T  # (C, G)
        null = np.sort(cu @ null_unit.T, axis=1)  # (C, N)
        mu, sd = null.mean(axis=1, keepdims=True), null.std(axis=1, keepdims=True)
        n_ge = np.stack([n_null - np.searchsorted(null[i], s[i] - 1e-12, side="left") for i in range(len(cu))])
        zz = np.divide(s - mu, sd, out=np.zeros_like(s), where=sd > 0)
        # Empirical p where the null reaches the score; beyond the null's maximum, its Gaussian tail
        # (never above the empirical floor): n_null samples alone cannot give p < 1/(1 + n_null),
        # far above what BH over thousands of pairs needs.
        emp = (1.0 + n_ge) / (1.0 + n_null)
        p[rows] = np.where(n_ge == 0, np.minimum(emp, norm.sf(zz)), emp)
        scores[rows], z[rows] = s, zz
    q = bh_qvalues(p.ravel()).reshape(p.shape)
    order = np.lexsort((np.broadcast_to(np.arange(n_g), scores.shape), -scores), axis=1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(1, n_g + 1), scores.shape), axis=1)
    keep = (rank <= k) | (q <= fdr)
    rows_i, cols = np.nonzero(keep)
    by_rank = np.lexsort((rank[rows_i, cols], rows_i))  # compounds in input order, each by rank
    rows_i, cols = rows_i[by_rank], cols[by_rank]
    comp, gene = compounds[rows_i], genes[cols]
    parts = [pd.DataFrame({
        "compound": comp,
        "gene": gene,
        "score": scores[rows_i, cols],
        "rank": rank[rows_i, cols],
        "zscore": z[rows_i, cols],
        "pvalue": p[rows_i, cols],
        "qvalue": q[rows_i, cols],
        "significant": q[rows_i, cols] <= fdr,
        "is_annotated_target": [g in targets.get(c, ()) for c, g in zip(comp, gene, strict=True)],
    })]
    out = pd.concat(parts, ignore_index=True)
    out["rank"] = out["rank"].astype(np.int64)
    out["significant"] = out["significant"].astype(bool)
    return out.loc[:, list(MECHANISM_COLUMNS)]


# ---------------------------------------------------------------------------------------------
# Gene-gene edges
# ---------------------------------------------------------------------------------------------


def _pair_set(pairs: Iterable[tuple[str, str]] | None) -> set[frozenset[str]]:
    return {frozenset((str(a), str(b))) for a, b in (pairs or ()) if str(a) != str(b)}


def gene_interactions(
    gene_profiles: pd.DataFrame,
    *,
    k: int = 20,
    centre: bool = True,
    prior_pairs: Iterable[tuple[str, str]] | None = None,
    min_score: float | None = None,
) -> pd.DataFrame:
    """For each gene, its top-k most similar other genes (cosine of the rows of `gene_profiles`).

    `gene_profiles` is an embedding (genetic perturbation embeddings) or any per-gene profile (e.g.
    imputed response profiles, genes x readouts). Edges are directed source -> target (target is in
    source's top-k); `in_prior` says whether the unordered pair is in `prior_pairs`.
    """
    prof = _as_frame(gene_profiles)
    if len(prof) < 2:
        return pd.DataFrame(columns=list(INTERACTION_COLUMNS))
    vec = _centre(prof)[0] if centre else prof.to_numpy()
    unit = l2_normalise(vec)
    names = prof.index.to_numpy()
    prior = _pair_set(prior_pairs)
    parts = []
    for start in range(0, len(names), 1024):
        s = unit[start:start + 1024] @ unit.T
        s[np.arange(len(s)), np.arange(start, start + len(s))] = -np.inf  # no self edges
        idx, vals = _top_k(s, min(k, len(names) - 1))
        rows = np.repeat(np.arange(start, start + len(s)), idx.shape[1])
        parts.append(pd.DataFrame({"source": names[rows], "target": names[idx.ravel()], "score": vals.ravel(),
                                   "rank": np.tile(np.arange(1, idx.shape[1] + 1), len(s))}))
    out = pd.concat(parts, ignore_index=True)
    if min_score is not None:
        out = out[out["score"] >= min_score].reset_index(drop=True)
    out["in_prior"] = [frozenset((a, b)) in prior for a, b in zip(out["source"], out["target"], strict=True)]
    out["rank"] = out["rank"].astype(np.int64)
    return out.loc[:, list(INTERACTION_COLUMNS)]


# ---------------------------------------------------------------------------------------------
# Predicted effects for unmeasured (perturbation, context) pairs
# ---------------------------------------------------------------------------------------------


def unmeasured_pairs(perturbations: Iterable[str], contexts: Iterable[str],
                     measured: Iterable[tuple[str, str]]) -> pd.DataFrame:
    """All (perturbation, context) combinations not in `measured`, as a DataFrame."""
    seen = {(str(p), str(c)) for p, c in measured}
    rows = [(str(p), str(c)) for p in perturbations for c in contexts if (str(p), str(c)) not in seen]
    return pd.DataFrame(rows, columns=["perturbation", "context"])


def top_effects(predictions: pd.DataFrame, *, top_n: int = 10) -> pd.DataFrame:
    """Top `top_n` up and top `top_n` down readouts per (perturbation, context).

    predictions: columns perturbation, context, readout, value. Result columns: perturbation,
    context, readout, value, direction ('up' | 'down'), rank (1 = strongest within its direction).
    Values of exactly 0 are neither up nor down and are left out.
    """
    need = {"perturbation", "context", "readout", "value"}
    if missing := need - set(predictions.columns):
        raise ValueError(f"predictions lack columns {sorted(missing)}")
    df = predictions.loc[:, ["perturbation", "context", "readout", "value"]].copy()
    for col in ("perturbation", "context", "readout"):
        df[col] = df[col].astype(str)
    df["value"] = df["value"].astype(np.float64)
    up = df[df["value"] > 0].sort_values(["perturbation", "context", "value", "readout"],
                                         ascending=[True, True, False, True])
    up["rank"] = up.groupby(["perturbation", "context"]).cumcount() + 1
    up["direction"] = "up"
    down = df[df["value"] < 0].sort_values(["perturbation", "context", "value", "readout"],
                                           ascending=[True, True, True, True])
    down["rank"] = down.groupby(["perturbation", "context"]).cumcount() + 1
    down["direction"] = "down"
    out = pd.concat([up[up["rank"] <= top_n], down[down["rank"] <= top_n]], ignore_index=True)
    out["rank"] = out["rank"].astype(np.int64)
    return out.loc[:, list(EFFECT_COLUMNS)].sort_values(
        ["perturbation", "context", "direction", "rank"], ignore_index=True)


def impute_effects(
    predict: Callable[[pd.DataFrame], np.ndarray],
    pairs: pd.DataFrame,
    readouts: Iterable[str],
    *,
    top_n: int = 10,
    max_rows: int = 2_000_000,
) -> pd.DataFrame:
    """Predict every readout for each (perturbation, context) pair and keep the top up/down genes.

    `predict` is e.g. `LPM.predict` (rows with context, perturbation, readout -> values). Pairs are
    processed in chunks of at most `max_rows` predicted rows.
    """
    readouts = [str(r) for r in readouts]
    if len(pairs) == 0 or not readouts:
        return pd.DataFrame(columns=list(EFFECT_COLUMNS))
    per_chunk = max(1, max_rows // len(readouts))
    parts = []
    for start in range(0, len(pairs), per_chunk):
        sub = pairs.iloc[start:start + per_chunk]
        rows = pd.DataFrame({
            "context": np.repeat(sub["context"].astype(str).to_numpy(), len(readouts)),
            "perturbation": np.repeat(sub["perturbation"].astype(str).to_numpy(), len(readouts)),
            "readout": np.tile(np.asarray(readouts, dtype=object), len(sub)),
        })
        if "perturbation_type" in sub:  # a predictor's member may need it (network_knn: genetic perturbations)
            rows["perturbation_type"] = np.repeat(sub["perturbation_type"].astype(str).to_numpy(), len(readouts))
        rows["value"] = np.asarray(predict(rows), dtype=np.float64)
        parts.append(top_effects(rows, top_n=top_n))
    return pd.concat(parts, ignore_index=True)


def response_profiles(
    predict: Callable[[pd.DataFrame], np.ndarray],
    perturbations: Iterable[str],
    contexts: Iterable[str],
    readouts: Iterable[str],
    *,
    chunk_rows: int = 1_000_000,
) -> pd.DataFrame:
    """Imputed response profiles: one row per perturbation, columns (context, readout) predictions.

    Lets `gene_interactions` compare genetic perturbations by what the model predicts they do, also
    in contexts where they were never run. Predicted a few perturbations at a time (at most `chunk_rows`
    query rows), so memory is the (perturbations, contexts x readouts) result, not the query table.
    """
    perts, ctxs, reads = [str(p) for p in perturbations], [str(c) for c in contexts], [str(r) for r in readouts]
    width = len(ctxs) * len(reads)
    values = np.empty((len(perts), width), dtype=np.float64)
    step = max(1, chunk_rows // max(1, width))
    for lo in range(0, len(perts), step):
        grid = pd.MultiIndex.from_product([perts[lo:lo + step], ctxs, reads], names=["perturbation", "context", "readout"])
        values[lo:lo + step] = np.asarray(predict(grid.to_frame(index=False)), dtype=np.float64).reshape(-1, width)
    cols = pd.MultiIndex.from_product([ctxs, reads], names=["context", "readout"])
    return pd.DataFrame(values, index=pd.Index(perts, name="name"), columns=[f"{c}|{r}" for c, r in cols])


# lpm_imputed's budget: (perturbations x contexts x genes) predictions, ~160 MB of float64 at the cap. Above it a
# seeded subset of genes is used. The shared data's discovery table is 585 knock-downs x 12 contexts x 1,640 genes of
# the model's vocabulary (readouts and targets) = 11.5M; the source beats signature correlation on STRING on all
# readouts and loses on 200 (docs/results.md), so a subset is not harmless (the former 3M cap meant 427 of the 1,640).
MAX_IMPUTED_PREDICTIONS = 20_000_000


def imputed_gene_profiles(model, genetic: Mapping[str, str], *, max_rows: int = MAX_IMPUTED_PREDICTIONS,
                          seed: int = 0) -> pd.DataFrame | None:
    """The `lpm_imputed` edge source's profiles: every genetic perturbation the model knows (`genetic`: its id ->
    its gene) predicted in every context on every gene of the model's vocabulary, unit-normalised and averaged per gene
    (aggregate_embeddings); at most `max_rows` predictions (a seeded subset of genes beyond). None when
    nothing can be predicted. One function for the `discoveries` asset and the benchmarks."""
    known = set(model.vocab["perturbation"])
    perts = [p for p in genetic if p in known]
    contexts, readouts = list(model.vocab["context"]), list(model.vocab["gene"])
    if len(perts) * max(1, len(contexts) * len(readouts)) > max_rows:
        n = max(1, max_rows // (len(perts) * len(contexts)))
        readouts = sorted(pd.Series(readouts).sample(n=min(n, len(readouts)), random_state=seed))
    if not (perts and readouts):
        return None
    return aggregate_embeddings(response_profiles(model.predict, perts, contexts, readouts), genetic)


# ---------------------------------------------------------------------------------------------
# Mechanism-link sources: LPM embeddings vs the simple answer (signature connectivity)
# ---------------------------------------------------------------------------------------------

LPM_EMBEDDINGS = "lpm_embeddings"
CONNECTIVITY = "signature_connectivity"
MECHANISM_METRIC = "auroc"
MIN_ANNOTATED_COMPOUNDS = 5  # fewer compounds with a target among the perturbed genes: nothing to compare
GAIN_OF_FUNCTION = frozenset({"ORF", "CRISPRa"})  # over-expression / activation: its signature is negated (opposite of a loss of function)
CONNECTIVITY_DIRECTION = ("compound signature vs the gene's loss-of-function signature (knock-down / knock-out "
                          "as measured, over-expression negated): an inhibitor is expected to correlate "
                          "positively, so links are one-sided (positive); activators are not called")


@dataclass(frozen=True)
class MechanismSource:
    """One candidate source of compound -> gene similarity: per-compound and per-gene vectors with the
    same columns, and whether `mechanism_links` removes their joint mean (embeddings) or not
    (row-centred signatures, whose cosine is then their Pearson correlation)."""

    compounds: pd.DataFrame
    genes: pd.DataFrame
    centre: bool = True
    note: str = ""


def _row_centred(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    f = frame.loc[:, columns]
    return f.sub(f.mean(axis=1), axis=0)


def knockdown_signatures(table: pd.DataFrame, gene_of: Mapping[str, str], *, by_context: bool = True) -> pd.DataFrame:
    """Per-gene knock-down signature vectors from a training table (long: context, perturbation,
    readout, value): rows = genes (`gene_of[perturbation]`), columns = "context|readout", the mean
    over the gene's perturbations and replicates; a (context, readout) a gene was not measured in is
    0 (no change). With by_context=False the columns are readouts (mean over contexts), so groups
    measured in different cell lines (compounds vs knock-downs) can be compared; `gene_of` may then
    map any perturbation to any group (a compound's doses to the compound). Which cells were measured:
    `measured_pattern` (the same pivot)."""
    return _signature_pivot(table, gene_of, by_context=by_context).fillna(0.0)


def _signature_pivot(table: pd.DataFrame, gene_of: Mapping[str, str], *, by_context: bool) -> pd.DataFrame:
    """The one pivot behind `knockdown_signatures` and `measured_pattern`: NaN where a gene has no value."""
    need = {"context", "perturbation", "readout", "value"}
    if missing := need - set(table.columns):
        raise ValueError(f"training table lacks columns {sorted(missing)}")
    pert = table["perturbation"].astype(str)
    keep = pert.isin(set(gene_of))
    if not keep.any():
        return pd.DataFrame(dtype=np.float64)
    sub = pd.DataFrame({"gene": pert[keep].map(gene_of).to_numpy(),
                        "col": ((table.loc[keep, "context"].astype(str) + "|" if by_context else "")
                                + table.loc[keep, "readout"].astype(str)).to_numpy(),
                        "value": table.loc[keep, "value"].to_numpy(np.float64)})
    if not by_context:  # each (group, context) signature first, so a context with many rows does not dominate
        ctx = table.loc[keep, "context"].astype(str).to_numpy()
        sub = sub.assign(ctx=ctx).groupby(["gene", "ctx", "col"], observed=True)["value"].mean().reset_index()
    wide = sub.pivot_table(index="gene", columns="col", values="value", aggfunc="mean")
    wide.index = wide.index.astype(str)
    return wide


def measured_pattern(table: pd.DataFrame, gene_of: Mapping[str, str], *, by_context: bool = True) -> pd.DataFrame:
    """The 0/1 pattern of which cells `knockdown_signatures` measured: the same rows and columns, 1.0 where the
    gene's signature has a value for that context|readout, 0.0 where knockdown_signatures fills 0 (on
    truncated signatures such as Replogle's top-1,000 lists: the readouts a knock-down does not list)."""
    return _signature_pivot(table, gene_of, by_context=by_context).notna().astype(np.float64)


def signatures_and_pattern(table: pd.DataFrame, gene_of: Mapping[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(knockdown_signatures, measured_pattern) of one table from one pivot (the edge sources need both; the
    pivot is the costly step on a large training table)."""
    wide = _signature_pivot(table, gene_of, by_context=True)
    return wide.fillna(0.0), wide.notna().astype(np.float64)


def connectivity_source(table: pd.DataFrame, compound_of: Mapping[str, str], gene_of: Mapping[str, str], *,
                        perturbation_types: Mapping[str, str] | None = None) -> MechanismSource | None:
    """The simple answer from a version's own training table (long: context, perturbation, readout,
    value): each compound's consensus signature (mean over its doses and replicates) and each gene's
    loss-of-function consensus signature (over-expression negated, `GAIN_OF_FUNCTION`), compared on
    the (context, readout) columns both were measured in when they share a context, else on readouts
    averaged over contexts (compounds and knock-downs from different cell lines). Rows are centred, so
    the cosine `mechanism_links` takes with centre=False is the Pearson correlation. None when there
    is no shared column."""
    types = perturbation_types or {}
    flip = [p for p in gene_of if types.get(p) in GAIN_OF_FUNCTION]
    if flip:
        neg = table["perturbation"].astype(str).isin(set(flip)).to_numpy()
        table = table.assign(value=np.where(neg, -table["value"].to_numpy(np.float64), table["value"]))
    for by_context, how in ((True, "context x readout"), (False, "readout (mean over contexts)")):
        comp = knockdown_signatures(table, compound_of, by_context=by_context)
        genes = knockdown_signatures(table, gene_of, by_context=by_context)
        common = sorted(set(comp.columns) & set(genes.columns))
        if len(common) >= 2 and len(comp) and len(genes):
            note = f"Pearson over {len(common)} shared {how} columns; {CONNECTIVITY_DIRECTION}"
            return MechanismSource(_row_centred(comp, common), _row_centred(genes, common), centre=False, note=note)
    return None


def _source_scores(src: MechanismSource, compounds: list[str], genes: list[str],
                   labels: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    c, g = src.compounds.loc[compounds], src.genes.loc[genes]
    if src.centre:
        c_vec, g_vec = _centre(c, g)
    else:
        c_vec, g_vec = c.to_numpy(), g.to_numpy()
    s = cosine_matrix(c_vec, g_vec)
    rank = pd.DataFrame(-s).rank(axis=1, method="max").to_numpy()  # ties pessimistic
    best = [rank[i][labels[i]].min() for i in range(len(compounds))]
    # pooled AUROC selects (one threshold for all compounds, as BH over all pairs); the per-compound mean
    # is recorded beside it (ranking within each compound only)
    per = [roc_auc_score(labels[i], s[i]) for i in range(len(compounds)) if 0 < labels[i].sum() < len(genes)]
    return {"auroc": float(roc_auc_score(labels.ravel(), s.ravel())),
            "auprc": float(average_precision_score(labels.ravel(), s.ravel())),
            "mean_compound_auroc": float(np.mean(per)) if per else None,
            "target_rank1": float(np.mean(np.asarray(best) <= 1)), "note": src.note}


@dataclass(frozen=True)
class MechanismSourceReport:
    """Every source scored on the same (compound, gene) pairs: the compounds with an annotated target
    among the genes all sources cover, against all those genes."""

    scores: Mapping[str, Mapping[str, Any]]
    compounds_scored: int
    genes_scored: int
    positive_pairs: int
    best: str | None
    published: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        s = self.scores
        return {"method": self.published, "best": self.best, "reason": self.reason,
                "metric": "AUROC of annotated targets (pooled over compounds; same pairs for every source)",
                "score": s.get(self.published, {}).get(MECHANISM_METRIC), "baseline": CONNECTIVITY,
                "baseline_score": s.get(CONNECTIVITY, {}).get(MECHANISM_METRIC),
                "compounds_evaluated": self.compounds_scored, "genes_evaluated": self.genes_scored,
                "positive_pairs": self.positive_pairs, "scores": {k: dict(v) for k, v in s.items()}}


def score_mechanism_sources(sources: Mapping[str, MechanismSource], annotated_targets: Mapping[str, Iterable[str]],
                            *, min_compounds: int = MIN_ANNOTATED_COMPOUNDS) -> MechanismSourceReport:
    """Score each source on the annotated targets and choose what to publish: the best AUROC if it
    beats signature connectivity (ties go to connectivity), else connectivity; with fewer than
    `min_compounds` compounds to score on, connectivity (the simple answer), saying why. Without a
    connectivity source (no shared readouts) the only source left is published and the reason says so."""
    if not sources:
        raise ValueError("no mechanism source to score")
    genes = sorted(set.intersection(*(set(s.genes.index.astype(str)) for s in sources.values())))
    gset = set(genes)
    comps = set.intersection(*(set(s.compounds.index.astype(str)) for s in sources.values()))
    targets = {str(c): {str(t) for t in ts} & gset for c, ts in annotated_targets.items()}
    compounds = sorted(c for c in comps if targets.get(c))
    labels = np.zeros((len(compounds), len(genes)), bool)
    col = {g: i for i, g in enumerate(genes)}
    for i, c in enumerate(compounds):
        labels[i, [col[t] for t in targets[c]]] = True
    base = dict(compounds_scored=len(compounds), genes_scored=len(genes), positive_pairs=int(labels.sum()))
    fallback = CONNECTIVITY if CONNECTIVITY in sources else next(iter(sources))
    if len(compounds) < min_compounds or labels.all():
        why = (f"{len(compounds)} compound(s) with an annotated target among the {len(genes)} perturbed genes "
               f"(< {min_compounds}): nothing to compare, {fallback} published")
        return MechanismSourceReport(scores={}, best=None, published=fallback, reason=why, **base)
    scores = {n: _source_scores(s, compounds, genes, labels) for n, s in sources.items()}
    best = sorted(scores, key=lambda n: (-scores[n][MECHANISM_METRIC], n != CONNECTIVITY, n))[0]
    if CONNECTIVITY not in scores:
        published, reason = best, f"no signature connectivity (no shared readouts): {best} is the only source"
    elif best == CONNECTIVITY:
        published, reason = CONNECTIVITY, "signature connectivity ranks annotated targets at least as well"
    else:
        published, reason = best, f"{best} ranks annotated targets better than signature connectivity"
    return MechanismSourceReport(scores=scores, best=best, published=published, reason=reason, **base)


def published_mechanism_links(report: MechanismSourceReport, sources: Mapping[str, MechanismSource],
                              **kwargs: Any) -> pd.DataFrame:
    """`mechanism_links` (BH over every pair, q <= fdr flagged significant) on the published source,
    with a `method` column naming it."""
    src = sources[report.published]
    links = mechanism_links(src.compounds, src.genes, centre=src.centre, **kwargs)
    return links.assign(method=report.published)
