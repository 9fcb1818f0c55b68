"""Group `discoveries`: what the model learned, written back into the graph under a new ModelVersion.

Runs only after `lpm_model` passes its blocking check `production_not_below_strongest_baseline` (what
the production predictor publishes is not below the strongest baseline on validation): compound→gene
mechanism links, inferred gene-gene edges, predicted effects of (perturbation, context) experiments that
were never run, and (when the version becomes current) embeddings with vector indexes.

Publish only what beats the simple answer: `discoveries` writes the version NON-current, with its
quality record (per discovery type: source, validation score, the simple answer's score, status); the
blocking check `edges_beat_signature_correlation` refuses versions whose edges score below signature
correlation (unless they are correlation, tagged so) and marks them status 'refused' with the reason
(no named query reads a refused version; `perturbgraph prune-versions` deletes it); only a version that
passed is made current by `current_model_version`, which also writes its embeddings (they live on the
nodes, so a refused version never overwrites the current one's). Mechanism links are published when
q <= the FDR (BH over every pair tested).
"""

import dagster as dg
import pandas as pd

from graph.db.discovery_reads import fetch_discovery_inputs, fetch_edge_references
from graph.db.discovery_writer import DiscoveryWriter
from graph.db.model_versions import ModelVersionRecord, ModelVersions, code_version
from models import edge_sources as ES
from pipelines.assets.training import ModelRun, TrainingSet, published_vs_strongest_baseline
from pipelines.resources import Neo4jResource, PerturbGraphSettings


class DiscoveryConfig(dg.Config):
    mechanism_top_k: int = 20  # links stored per compound (significant ones are published, --all shows the rest)
    mechanism_fdr: float | None = None  # BH over every (compound, gene) pair; None = settings.mechanism_fdr
    interaction_top_k: int = 10
    # "auto": the best-scoring edge source that beats signature correlation (else correlation); a source
    # name (models.edge_sources.SOURCES) forces it, and the blocking check then decides.
    edge_source: str = "auto"
    max_imputed_rows: int = 3_000_000  # LPM predictions for the imputed-profile edge source
    effects_top_n: int = 10
    max_effect_pairs: int = 2000  # unmeasured (perturbation, context) pairs imputed per version
    null_samples: int = 1000
    seed: int = 0


def _pca_plot(emb: pd.DataFrame, labels: pd.Series, title: str) -> dg.MetadataValue:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    from pipelines.assets.training import _png

    xy = PCA(n_components=2, random_state=0).fit_transform(emb.to_numpy())
    fig, ax = plt.subplots(figsize=(5, 4))
    labels = labels.reindex(emb.index).fillna("unannotated").astype(str)
    top = labels.value_counts().index[:8]
    for name in top:
        mask = (labels == name).to_numpy()
        ax.scatter(xy[mask, 0], xy[mask, 1], s=12, label=name[:30])
    rest = ~labels.isin(top).to_numpy()
    ax.scatter(xy[rest, 0], xy[rest, 1], s=6, c="lightgrey", label="other")
    ax.set_title(title), ax.legend(fontsize=6, loc="best")
    value = _png(fig)
    plt.close(fig)
    return value


@dg.asset(group_name="discoveries", kinds={"neo4j", "pytorch"}, pool="neo4j_writes",
          deps=[dg.AssetKey("graph_experiments")],
          description="A ModelVersion node (written non-current) and its discoveries: embeddings (vector-indexed), "
                      "SHARES_MECHANISM_WITH from the better mechanism source (`method`; significant when q <= FDR), PREDICTED_INTERACTION from the best edge "
                      "source (`method`) and PREDICTED_EFFECT, each carrying the model version, plus the quality "
                      "record per discovery type; `current_model_version` makes it current after the check.")
def discoveries(context: dg.AssetExecutionContext, neo4j: Neo4jResource, perturbgraph: PerturbGraphSettings,
                lpm_model: ModelRun, training_set: TrainingSet, evaluation_report: dict,
                config: DiscoveryConfig) -> dict:
    from models import discovery as D
    from models.lpm import LPM

    settings = perturbgraph.settings()
    model = LPM.load(lpm_model.checkpoint)
    table = training_set.table()
    with neo4j.guarded(context) as driver:
        inputs = fetch_discovery_inputs(driver, database=neo4j.db)
        pert_emb = model.embeddings("perturbation")
        compound_perts = {p: c for p, c in inputs.perturbation_compound.items() if p in pert_emb.index}
        compound_emb = D.aggregate_embeddings(pert_emb, compound_perts)
        genetic = {p: g for p, g in inputs.genetic_groups().items() if p in pert_emb.index}
        gene_pert_emb = D.aggregate_embeddings(pert_emb, genetic)  # index: Entrez id as text
        annotated = {c: [str(g) for g in genes] for c, genes in inputs.annotated_targets.items()}
        fdr = config.mechanism_fdr if config.mechanism_fdr is not None else settings.mechanism_fdr
        mechanisms, mech_quality = _mechanism_discoveries(context, table, inputs, compound_emb, gene_pert_emb,
                                                          annotated, fdr, config)
        edge_quality, interactions = _edge_discoveries(context, driver, neo4j.db, model, table, genetic,
                                                       gene_pert_emb, training_set, config)
        quality = {"predictions": _prediction_quality(lpm_model.selection), "edges": edge_quality,
                   "mechanisms": mech_quality}

        measured = table[["perturbation", "context"]].astype(str).drop_duplicates()
        pairs = D.unmeasured_pairs(model.vocab["perturbation"], model.vocab["context"],
                                   measured.itertuples(index=False, name=None))
        pairs = pairs[~pairs["perturbation"].str.startswith("control:")]
        if len(pairs) > config.max_effect_pairs:
            pairs = pairs.sample(n=config.max_effect_pairs, random_state=config.seed).sort_index()
        context.log.info(f"imputing {len(pairs)} unmeasured (perturbation, context) experiments")
        # Effects come from the production predictor (the candidate that won on validation experiments).
        effects = D.impute_effects(lpm_model.predictor().predict, pairs, model.vocab["gene"],
                                   top_n=config.effects_top_n) if len(pairs) else None

        embeddings = {"perturbation": pert_emb, "readout": model.embeddings("readout"),
                      "context": model.embeddings("context")}
        if len(compound_emb):
            embeddings["compound"] = compound_emb
        if len(gene_pert_emb):
            embeddings["gene_perturbation"] = gene_pert_emb
        metrics = {"valid": lpm_model.valid_metrics, "evaluation": evaluation_report}
        record = ModelVersionRecord(
            config=lpm_model.config, dataset_ids=training_set.dataset_ids,
            dataset_hashes=training_set.dataset_hashes, metrics=metrics, trained_at=lpm_model.trained_at,
            code_version=code_version(), version_id=lpm_model.version_id, embedding_dim=int(pert_emb.shape[1]),
            checkpoint_path=lpm_model.checkpoint, predictor=lpm_model.selection,
        )
        # Written non-current: `current_model_version` promotes it (and writes these embeddings) once
        # the blocking check passed.
        embeddings_dir = _save_embeddings(embeddings, lpm_model)
        report = DiscoveryWriter(driver, neo4j.db).publish(
            record, mechanisms=mechanisms, interactions=interactions, effects=effects, quality=quality,
            interaction_basis=_BASIS.get(edge_quality["method"], "profile"), retention=settings.model_retention,
            make_current=False)
    summary = report.summary()
    n_links = 0 if mechanisms is None else int(mechanisms["significant"].sum())
    top_hits = 0.0
    if mechanisms is not None and annotated:
        with_target = mechanisms[mechanisms["compound"].isin([c for c, t in annotated.items() if t])]
        firsts = with_target[with_target["rank"] == 1]
        top_hits = float(firsts["is_annotated_target"].mean()) if len(firsts) else 0.0
    moa = pd.Series({c: "annotated target: " + (",".join(t[:1]) if t else "none") for c, t in annotated.items()})
    metadata = {
        "version_id": record.version_id, "mechanism_links": n_links,
        "mechanism_links_stored": 0 if mechanisms is None else len(mechanisms),
        "edge_method": edge_quality["method"], "edge_score": _num(edge_quality.get("score")),
        "edge_correlation_score": _num(edge_quality.get("baseline_score")), "edge_reason": edge_quality["reason"],
        "mechanism_method": str(mech_quality.get("method")), "mechanism_reason": str(mech_quality.get("reason")),
        "mechanism_score": _num(mech_quality.get("score")),
        "mechanism_connectivity_score": _num(mech_quality.get("baseline_score")),
        "discovery_quality": dg.MetadataValue.json(_jsonable(quality)),
        "quality_vs_simple_answer": dg.MetadataValue.md(quality_table(quality)),
        "predictor": quality["predictions"]["method"], "predictor_score": _num(quality["predictions"]["score"]),
        "predictor_baseline_score": _num(quality["predictions"]["baseline_score"]),
        "predictor_status": quality["predictions"]["status"],
        "predicted_interactions": 0 if interactions is None else len(interactions),
        "predicted_effects": 0 if effects is None else len(effects),
        "rank1_is_annotated_target": top_hits,
        "writes": dg.MetadataValue.json(summary["writes"]), "simulated_data": training_set.simulated,
    }
    if len(compound_emb) >= 3:
        metadata["compound_embeddings_pca"] = _pca_plot(compound_emb, moa, "Compound embeddings (PCA)")
    if len(gene_pert_emb) >= 3:
        metadata["gene_perturbation_embeddings_pca"] = _pca_plot(
            gene_pert_emb, pd.Series(dtype=str), "Genetic perturbation embeddings (PCA)")
    context.add_output_metadata(metadata)
    return {"version_id": record.version_id, "mechanism_links": n_links,
            "rank1_is_annotated_target": top_hits, "embedding_kinds": sorted(embeddings),
            "embeddings_dir": embeddings_dir, "quality": _jsonable(quality)}


def _save_embeddings(embeddings: dict[str, pd.DataFrame], lpm_model: ModelRun) -> str:
    """One parquet per kind beside the model (index = node name); `current_model_version` writes them."""
    from pathlib import Path

    folder = Path(lpm_model.predictor_dir or Path(lpm_model.checkpoint).parent) / "embeddings"
    folder.mkdir(parents=True, exist_ok=True)
    for kind, emb in embeddings.items():
        frame = emb.copy()
        frame.columns = [str(c) for c in frame.columns]
        frame.index = frame.index.astype(str)
        frame.to_parquet(folder / f"{kind}.parquet")
    return str(folder)


def _load_embeddings(folder: str, kinds: list[str]) -> dict[str, pd.DataFrame]:
    from pathlib import Path

    return {kind: pd.read_parquet(Path(folder) / f"{kind}.parquet") for kind in kinds}


def _prediction_quality(selection: dict) -> dict:
    """The predictions' quality record: the production predictor's choice on validation experiments
    against the strongest baseline (models.predictor.Selection), with the rule's verdict."""
    passed, meta = published_vs_strongest_baseline(selection)
    return {"method": meta["chosen"], "metric": f"{meta['metric']} on validation experiments",
            "score": meta["chosen_score"], "baseline": meta["strongest_baseline"],
            "baseline_score": meta["strongest_baseline_score"], "margin": meta["margin"], "passes": passed,
            "status": meta["verdict"]}


def quality_table(quality: dict) -> str:
    """Per discovery type: source published, its validation score, the simple answer and its score, status."""
    p, e, m = quality.get("predictions") or {}, quality.get("edges") or {}, quality.get("mechanisms") or {}
    mech_status = (f"{m.get('significant', 0)} links significant at q <= {m.get('fdr')}; {m.get('reason', '')}"
                   if m.get("method") else str(m.get("reason", "not computed")))
    rows = [("predictions (PREDICTED_EFFECT)", p.get("method"), p.get("metric"), p.get("score"), p.get("baseline"),
             p.get("baseline_score"), p.get("status")),
            ("gene-gene edges (PREDICTED_INTERACTION)", e.get("method"), e.get("metric"), e.get("score"),
             e.get("baseline"), e.get("baseline_score"), e.get("gate") or e.get("reason")),
            ("mechanism links (SHARES_MECHANISM_WITH)", m.get("method"), m.get("metric"), m.get("score"),
             m.get("baseline"), m.get("baseline_score"), mech_status)]
    lines = ["| discovery | source | metric | validation score | simple answer | its score | status |",
             "|---|---|---|---|---|---|---|"]
    for name, source, metric, score, base, base_score, status in rows:
        lines.append(f"| {name} | {source or '–'} | {metric or '–'} | {_fmt(score)} | {base or '–'} | "
                     f"{_fmt(base_score)} | {status or '–'} |")
    return "\n".join(lines)


def _fmt(x) -> str:
    return "–" if x is None else f"{float(x):.4f}"


def _mechanism_discoveries(context: dg.AssetExecutionContext, table: pd.DataFrame, inputs, compound_emb: pd.DataFrame,
                           gene_pert_emb: pd.DataFrame, annotated: dict[str, list[str]], fdr: float,
                           config: DiscoveryConfig) -> tuple[pd.DataFrame | None, dict]:
    """Score the mechanism sources (LPM embeddings, signature connectivity from the training table) on
    the annotated targets, publish links from the better one (`method`), calibrated by BH over every
    pair; return (links, quality record)."""
    from models import discovery as D

    sources: dict[str, D.MechanismSource] = {}
    if len(compound_emb) and len(gene_pert_emb):
        sources[D.LPM_EMBEDDINGS] = D.MechanismSource(compound_emb, gene_pert_emb, centre=True,
                                                      note="centred cosine of LPM perturbation embeddings")
    simple = D.connectivity_source(table, inputs.perturbation_compound, inputs.genetic_groups(),
                                   perturbation_types=inputs.perturbation_types)
    if simple is not None:
        sources[D.CONNECTIVITY] = simple
    if not sources:
        return None, {"method": None, "reason": "no compound and perturbed gene to link", "fdr": fdr}
    report = D.score_mechanism_sources(sources, annotated)
    src = sources[report.published]
    context.log.info(f"mechanism links from {report.published} ({report.reason}): {len(src.compounds)} compounds "
                     f"x {len(src.genes)} perturbed genes, FDR {fdr}")
    links = D.published_mechanism_links(report, sources, k=config.mechanism_top_k, fdr=fdr,
                                        n_null=config.null_samples, annotated_targets=annotated, seed=config.seed)
    sig = links[links["significant"]]
    quality = {**report.as_dict(), "fdr": fdr, "tested_pairs": int(len(src.compounds) * len(src.genes)),
               "significant": int(len(sig)), "significant_compounds": int(sig["compound"].nunique()),
               "significant_annotated": int(sig["is_annotated_target"].sum()),
               "direction": D.CONNECTIVITY_DIRECTION if report.published == D.CONNECTIVITY else src.note}
    return links, quality


_BASIS = {"lpm_knockdown": "embedding", "lpm_readout": "embedding"}


def _num(x) -> float | None:
    return None if x is None else float(x)


def _jsonable(x):
    import json

    return json.loads(json.dumps(x, default=str))


def _edge_discoveries(context: dg.AssetExecutionContext, driver, database: str, model, table: pd.DataFrame,
                      genetic: dict[str, str], gene_pert_emb: pd.DataFrame, training_set: TrainingSet,
                      config: DiscoveryConfig) -> tuple[dict, pd.DataFrame | None]:
    """Score every edge source on the graph's references and return (quality record, edges of the
    source published). Gene keys are Entrez ids as text throughout."""
    from graph.db.symbols import SymbolMap
    from models import discovery as D

    symbols = SymbolMap.from_graph(driver, database=database)

    def entrez(name: str) -> str | None:
        e = symbols.resolve(str(name))
        return None if e is None else str(e)

    signatures = D.knockdown_signatures(table, genetic)
    readout = model.embeddings("readout")
    readout.index = [entrez(n) for n in readout.index]
    readout = readout[readout.index.notna() & ~readout.index.duplicated()]
    perts = [p for p in genetic if p in set(model.vocab["perturbation"])]
    contexts, readouts = list(model.vocab["context"]), list(model.vocab["gene"])
    per_pert = max(1, len(contexts) * len(readouts))
    if len(perts) * per_pert > config.max_imputed_rows:  # a seeded subset of readouts keeps it bounded
        n = max(1, config.max_imputed_rows // (len(perts) * len(contexts)))
        readouts = sorted(pd.Series(readouts).sample(n=min(n, len(readouts)), random_state=config.seed))
    imputed = (D.aggregate_embeddings(D.response_profiles(model.predict, perts, contexts, readouts), genetic)
               if perts and readouts else None)
    scores = ES.candidate_scores(signatures=signatures, knockdown=gene_pert_emb, readout=readout, imputed=imputed)
    if ES.CORRELATION not in scores:
        context.log.info("fewer than 2 knocked-down genes with signatures: no gene-gene edges")
        return {"method": None, "reason": "fewer than 2 knocked-down genes with signatures", "scores": {},
                "references": []}, None
    genes = sorted({int(g) for s in scores.values() for g in s.index})
    refs = fetch_edge_references(driver, genes, database=database)
    graph = training_set.gene_graph()
    prior = [] if graph is None else [(entrez(a), entrez(b)) for a, b in zip(graph["source"], graph["target"],
                                                                             strict=True)]
    references = ES.EdgeReferences.build(refs, [(a, b) for a, b in prior if a and b])
    force = None if config.edge_source == "auto" else config.edge_source
    result = ES.score_edge_sources(scores, references, force=force, seed=config.seed)
    quality = {**result.as_dict(), "method": result.published,
               "metric": "AUPRC outside the prior (mean over references)", "baseline": ES.CORRELATION,
               "score": result.as_dict()["published_score"], "reference_pairs": {r: len(p) for r, p in refs.items()}}
    quality["passes"], quality["gate"] = ES.edge_gate(quality)
    context.log.info(f"edge sources: published {result.published} ({result.reason})")
    edges = ES.edges_from_scores(scores[result.published], k=config.interaction_top_k, method=result.published)
    return quality, edges


@dg.asset_check(asset=discoveries, blocking=True,
                description="Published gene-gene edges must score at least as well as signature correlation on "
                            "every reference outside the model's prior (CORUM, STRING), or be correlation and "
                            "tagged so; otherwise the version is not made current and is marked status 'refused' "
                            "with the reason.")
def edges_beat_signature_correlation(context: dg.AssetCheckExecutionContext, neo4j: Neo4jResource,
                                     discoveries: dict) -> dg.AssetCheckResult:
    edges = discoveries["quality"]["edges"]
    if edges.get("method") is None:
        return dg.AssetCheckResult(passed=True, metadata={"reason": edges.get("reason", "no edges")})
    passed, why = ES.edge_gate(edges)
    if not passed:  # the refused version is marked so: queries never read it, prune-versions deletes it
        with neo4j.guarded(context) as driver:
            ModelVersions(driver, neo4j.db).refuse(discoveries["version_id"],
                                                   f"edges_beat_signature_correlation: {why}")
    return dg.AssetCheckResult(passed=passed, metadata={
        "reason": why, "method": edges["method"], "score": _num(edges.get("score")),
        "correlation_score": _num(edges.get("baseline_score")),
        "references": dg.MetadataValue.json(edges.get("references") or [])})


@dg.asset(group_name="discoveries", kinds={"neo4j"}, pool="neo4j_writes",
          description="Writes the version's embeddings (vector-indexed) and makes the version `discoveries` wrote "
                      "current (exactly one current version), clears embeddings of names it lacks and prunes "
                      "versions beyond the retention. Runs only when the blocking check on `discoveries` passed.")
def current_model_version(context: dg.AssetExecutionContext, neo4j: Neo4jResource,
                          perturbgraph: PerturbGraphSettings, discoveries: dict) -> dict:
    settings = perturbgraph.settings()
    with neo4j.guarded(context) as driver:
        embeddings = _load_embeddings(discoveries["embeddings_dir"], discoveries["embedding_kinds"])
        report = DiscoveryWriter(driver, neo4j.db).promote(discoveries["version_id"], embeddings=embeddings,
                                                           retention=settings.model_retention)
    writes = {k: {"rows": s.rows, "written": s.written} for k, s in report.stats.items()}
    context.add_output_metadata({"version_id": discoveries["version_id"], "embedding_writes": dg.MetadataValue.json(writes),
                                 "pruned_versions": dg.MetadataValue.json(report.pruned),
                                 "stale_embeddings_cleared": report.stale_embeddings_cleared})
    return {"version_id": discoveries["version_id"], "pruned": report.pruned}

