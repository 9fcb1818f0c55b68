"""What the `discoveries` assets compute, as functions of plain values: a fitted LPM, the training
table, the graph's discovery inputs (graph.db.discovery_reads.DiscoveryInputs, read by the asset) and
settings in; links, edges, effects and their quality records out. No Dagster and no driver: where a
step needs the graph (gene symbols, reference pairs), the asset hands in a function that reads it.

Gene keys are Entrez ids as text throughout.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from models import discovery as D
from models import edge_sources as ES

Log = Callable[[str], None]
# Edge sources read from embeddings (the rest from profiles): the `basis` the writer records on edges.
EMBEDDING_EDGE_SOURCES = ("lpm_knockdown", "lpm_readout")


def _quiet(line: str) -> None:
    pass


@dataclass(frozen=True)
class EmbeddingGroups:
    """The LPM's embeddings by node kind: its own (perturbation, readout, context) and two aggregates,
    compound (mean over a compound's perturbations) and gene_perturbation (mean over the single-gene
    genetic perturbations of a gene, index Entrez id as text)."""

    perturbation: pd.DataFrame
    readout: pd.DataFrame
    context: pd.DataFrame
    compound: pd.DataFrame
    gene_perturbation: pd.DataFrame
    genetic: dict[str, str]  # genetic perturbation id in the model -> Entrez id as text

    def to_save(self) -> dict[str, pd.DataFrame]:
        """Kind -> embeddings written to the graph (the aggregates only when there are any)."""
        out = {"perturbation": self.perturbation, "readout": self.readout, "context": self.context}
        out.update({k: e for k, e in (("compound", self.compound), ("gene_perturbation", self.gene_perturbation))
                    if len(e)})
        return out


def embedding_groups(model, inputs) -> EmbeddingGroups:
    pert = model.embeddings("perturbation")
    compounds = {p: c for p, c in inputs.perturbation_compound.items() if p in pert.index}
    genetic = {p: g for p, g in inputs.genetic_groups().items() if p in pert.index}
    return EmbeddingGroups(pert, model.embeddings("readout"), model.embeddings("context"),
                           D.aggregate_embeddings(pert, compounds), D.aggregate_embeddings(pert, genetic), genetic)


def annotated_targets(inputs) -> dict[str, list[str]]:
    """Compound id -> its annotated target genes (Entrez ids as text)."""
    return {c: [str(g) for g in genes] for c, genes in inputs.annotated_targets.items()}


# ----------------------------------------------------------------------------------- mechanisms
def mechanism_discoveries(table: pd.DataFrame, inputs, groups: EmbeddingGroups, annotated: dict[str, list[str]], *,
                          fdr: float, top_k: int, null_samples: int, seed: int,
                          log: Log = _quiet) -> tuple[pd.DataFrame | None, dict]:
    """Score the mechanism sources (LPM embeddings, signature connectivity from the training table) on
    the annotated targets, publish links from the better one (`method`), calibrated by BH over every
    pair; return (links, quality record)."""
    sources: dict[str, D.MechanismSource] = {}
    if len(groups.compound) and len(groups.gene_perturbation):
        sources[D.LPM_EMBEDDINGS] = D.MechanismSource(groups.compound, groups.gene_perturbation, centre=True,
                                                      note="centred cosine of LPM perturbation embeddings")
    simple = D.connectivity_source(table, inputs.perturbation_compound, inputs.genetic_groups(),
                                   perturbation_types=inputs.perturbation_types)
    if simple is not None:
        sources[D.CONNECTIVITY] = simple
    if not sources:
        return None, {"method": None, "reason": "no compound and perturbed gene to link", "fdr": fdr}
    report = D.score_mechanism_sources(sources, annotated)
    src = sources[report.published]
    log(f"mechanism links from {report.published} ({report.reason}): {len(src.compounds)} compounds "
        f"x {len(src.genes)} perturbed genes, FDR {fdr}")
    links = D.published_mechanism_links(report, sources, k=top_k, fdr=fdr, n_null=null_samples,
                                        annotated_targets=annotated, seed=seed)
    sig = links[links["significant"]]
    quality = {**report.as_dict(), "fdr": fdr, "tested_pairs": int(len(src.compounds) * len(src.genes)),
               "significant": int(len(sig)), "significant_compounds": int(sig["compound"].nunique()),
               "significant_annotated": int(sig["is_annotated_target"].sum()),
               "direction": D.CONNECTIVITY_DIRECTION if report.published == D.CONNECTIVITY else src.note}
    return links, quality


@dataclass(frozen=True)
class MechanismSummary:
    significant: int  # links published (q <= FDR)
    stored: int  # links stored (top k per compound)
    rank1_is_annotated_target: float  # share of compounds with targets whose rank-1 link is one of them


def mechanism_summary(links: pd.DataFrame | None, annotated: dict[str, list[str]]) -> MechanismSummary:
    if links is None:
        return MechanismSummary(0, 0, 0.0)
    top_hits = 0.0
    if annotated:
        firsts = links[links["compound"].isin([c for c, t in annotated.items() if t]) & (links["rank"] == 1)]
        top_hits = float(firsts["is_annotated_target"].mean()) if len(firsts) else 0.0
    return MechanismSummary(int(links["significant"].sum()), len(links), top_hits)


def moa_labels(annotated: dict[str, list[str]]) -> pd.Series:
    """Compound id -> 'annotated target: <first target>' (the colours of the compound PCA plot)."""
    return pd.Series({c: "annotated target: " + (",".join(t[:1]) if t else "none") for c, t in annotated.items()},
                     dtype=str)


# ---------------------------------------------------------------------------------------- edges
def edge_discoveries(model, table: pd.DataFrame, groups: EmbeddingGroups, *, resolve: Callable[[str], int | None],
                     references_for: Callable[[list[int]], dict[str, list[tuple[int, int]]]],
                     prior: pd.DataFrame | None, top_k: int, max_imputed_rows: int, edge_source: str = "auto",
                     seed: int = 0, log: Log = _quiet) -> tuple[dict, pd.DataFrame | None]:
    """Score every edge source on the graph's references and return (quality record, edges of the
    source published). resolve: gene symbol -> Entrez id (None when unknown); references_for: Entrez
    ids -> reference pairs among them by reference name; prior: the gene network given to the model
    (source, target symbols); edge_source 'auto' (best that beats correlation) or a source to force."""
    def entrez(name: str) -> str | None:
        e = resolve(str(name))
        return None if e is None else str(e)

    readout = groups.readout.copy()
    readout.index = [entrez(n) for n in readout.index]
    readout = readout[readout.index.notna() & ~readout.index.duplicated()]
    imputed = D.imputed_gene_profiles(model, groups.genetic, max_rows=max_imputed_rows, seed=seed)
    # (context, gene) columns the imputed profiles cover: fewer than all when the budget forced a subset of genes
    imputed_columns = {"used": 0 if imputed is None else int(imputed.shape[1]),
                       "of": len(model.vocab["context"]) * len(model.vocab["gene"]), "budget": int(max_imputed_rows)}
    if 0 < imputed_columns["used"] < imputed_columns["of"]:
        log(f"lpm_imputed scored on {imputed_columns['used']:,} of {imputed_columns['of']:,} (context, gene) columns: "
            f"the prediction budget max_imputed_rows={max_imputed_rows:,} chose a seeded subset of genes; raise it "
            f"(DiscoveryConfig.max_imputed_rows, the discoveries asset's run config) to score every gene")
    signatures, measured = D.signatures_and_pattern(table, groups.genetic)
    scores = ES.candidate_scores(signatures=signatures, measured=measured,
                                 knockdown=groups.gene_perturbation, readout=readout, imputed=imputed)
    if ES.CORRELATION not in scores:
        log("fewer than 2 knocked-down genes with signatures: no gene-gene edges")
        return {"method": None, "reason": "fewer than 2 knocked-down genes with signatures", "scores": {},
                "references": []}, None
    refs = references_for(sorted({int(g) for s in scores.values() for g in s.index}))
    pairs = [] if prior is None else [(entrez(a), entrez(b)) for a, b in zip(prior["source"], prior["target"],
                                                                             strict=True)]
    references = ES.EdgeReferences.build(refs, [(a, b) for a, b in pairs if a and b])
    result = ES.score_edge_sources(scores, references, force=None if edge_source == "auto" else edge_source,
                                   seed=seed)
    quality = {**result.as_dict(), "method": result.published,
               "metric": "AUPRC outside the prior (mean over references)", "baseline": ES.CORRELATION,
               "score": result.as_dict()["published_score"], "reference_pairs": {r: len(p) for r, p in refs.items()},
               "imputed_columns": imputed_columns}
    quality["passes"], quality["gate"] = ES.edge_gate(quality)
    log(f"edge sources: published {result.published} ({result.reason})")
    return quality, ES.edges_from_scores(scores[result.published], k=top_k, method=result.published)


def interaction_basis(method: str | None) -> str:
    """What the published edges were computed from, as the writer records it."""
    return "embedding" if method in EMBEDDING_EDGE_SOURCES else "profile"


# -------------------------------------------------------------------------------------- effects
def unmeasured_experiments(model, table: pd.DataFrame, *, max_pairs: int, seed: int) -> pd.DataFrame:
    """(perturbation, context, perturbation_type) of the pairs the model knows but the table never measured,
    controls left out (the one rule, graph/io/validation.drop_controls, on each perturbation's type in the
    table, else the type its id names); a seeded sample of `max_pairs` when there are more."""
    from graph.io.perturbations import type_in_id
    from graph.io.validation import drop_controls

    measured = table[["perturbation", "context"]].astype(str).drop_duplicates()
    pairs = D.unmeasured_pairs(model.vocab["perturbation"], model.vocab["context"],
                               measured.itertuples(index=False, name=None))
    typed = table[["perturbation", "perturbation_type"]].astype(str).drop_duplicates() if "perturbation_type" in table \
        else pd.DataFrame(columns=["perturbation", "perturbation_type"])
    types = dict(zip(typed["perturbation"], typed["perturbation_type"], strict=True))
    pairs = pairs.assign(perturbation_type=[types.get(p) or type_in_id(p) or "" for p in pairs["perturbation"]])
    pairs = drop_controls(pairs)[0]  # the type stays: predictors that read it (network_knn) get it
    if len(pairs) > max_pairs:
        pairs = pairs.sample(n=max_pairs, random_state=seed).sort_index()
    return pairs


def predicted_effects(predict: Callable[[pd.DataFrame], object], model, table: pd.DataFrame, *, max_pairs: int,
                      top_n: int, seed: int = 0, log: Log = _quiet) -> pd.DataFrame | None:
    """The top `top_n` readouts of each unmeasured experiment (unmeasured_experiments) as `predict`
    (the production predictor's) imputes them over the model's readouts; None when there is none."""
    pairs = unmeasured_experiments(model, table, max_pairs=max_pairs, seed=seed)
    log(f"imputing {len(pairs)} unmeasured (perturbation, context) experiments")
    return D.impute_effects(predict, pairs, model.vocab["gene"], top_n=top_n) if len(pairs) else None


# ----------------------------------------------------------------------------------- embeddings
def save_embeddings(embeddings: dict[str, pd.DataFrame], folder: Path) -> str:
    """One parquet per kind (index = node name, columns as text) in `folder`; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for kind, emb in embeddings.items():
        frame = emb.copy()
        frame.columns = [str(c) for c in frame.columns]
        frame.index = frame.index.astype(str)
        frame.to_parquet(folder / f"{kind}.parquet")
    return str(folder)


def load_embeddings(folder: str | Path, kinds: Iterable[str]) -> dict[str, pd.DataFrame]:
    return {kind: pd.read_parquet(Path(folder) / f"{kind}.parquet") for kind in kinds}


def jsonable(x):
    """x as plain JSON data (what Dagster metadata and the IO manager keep); unknown objects as text."""
    return json.loads(json.dumps(x, default=str))
