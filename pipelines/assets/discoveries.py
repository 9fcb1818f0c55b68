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

The assets wire: they read the graph (graph/db), call pipelines/discovery_steps.py (the computation) and
pipelines/quality.py (the quality records), write through DiscoveryWriter and attach metadata.
"""

import dagster as dg
import pandas as pd

from graph.db.discovery_reads import fetch_discovery_inputs, fetch_edge_references
from graph.db.discovery_writer import DiscoveryWriter
from graph.db.model_versions import ModelVersionRecord, ModelVersions, code_version
from graph.db.symbols import SymbolMap
from models import discovery as D
from models import edge_sources as ES
from pipelines import discovery_steps as steps
from pipelines import plots
from pipelines import quality as Q
from pipelines.resources import Neo4jResource, PerturbGraphSettings
from pipelines.training_steps import ModelRun, TrainingSet


class DiscoveryConfig(dg.Config):
    mechanism_top_k: int = 20  # links stored per compound (significant ones are published, --all shows the rest)
    mechanism_fdr: float | None = None  # BH over every (compound, gene) pair; None = settings.mechanism_fdr
    interaction_top_k: int = 10
    # "auto": the best-scoring edge source that beats signature correlation (else correlation); a source
    # name (models.edge_sources.SOURCES) forces it, and the blocking check then decides.
    edge_source: str = "auto"
    max_imputed_rows: int = D.MAX_IMPUTED_PREDICTIONS  # LPM predictions for the imputed-profile edge source
    effects_top_n: int = 10
    max_effect_pairs: int = 2000  # unmeasured (perturbation, context) pairs imputed per version
    null_samples: int = 1000
    seed: int = 0


def _pca_plot(emb: pd.DataFrame, labels: pd.Series, title: str) -> dg.MetadataValue:
    return dg.MetadataValue.md(plots.markdown_image(plots.embedding_pca(emb, labels, title)))


@dg.asset(group_name="discoveries", kinds={"neo4j", "pytorch"}, pool="neo4j_writes",
          deps=[dg.AssetKey("graph_experiments")],
          description="A ModelVersion node (written non-current) and its discoveries: embeddings (vector-indexed), "
                      "SHARES_MECHANISM_WITH from the better mechanism source (`method`; significant when q <= FDR), PREDICTED_INTERACTION from the best edge "
                      "source (`method`) and PREDICTED_EFFECT, each carrying the model version, plus the quality "
                      "record per discovery type; `current_model_version` makes it current after the check.")
def discoveries(context: dg.AssetExecutionContext, neo4j: Neo4jResource, perturbgraph: PerturbGraphSettings,
                lpm_model: ModelRun, training_set: TrainingSet, evaluation_report: dict,
                config: DiscoveryConfig) -> dict:
    from models.lpm import LPM

    settings = perturbgraph.settings()
    model = LPM.load(lpm_model.checkpoint)
    table = training_set.table()
    fdr = config.mechanism_fdr if config.mechanism_fdr is not None else settings.mechanism_fdr
    with neo4j.guarded(context) as driver:
        inputs = fetch_discovery_inputs(driver, database=neo4j.db)
        groups = steps.embedding_groups(model, inputs)
        annotated = steps.annotated_targets(inputs)
        mechanisms, mech_quality = steps.mechanism_discoveries(
            table, inputs, groups, annotated, fdr=fdr, top_k=config.mechanism_top_k,
            null_samples=config.null_samples, seed=config.seed, log=context.log.info)
        edge_quality, interactions = steps.edge_discoveries(
            model, table, groups, resolve=SymbolMap.from_graph(driver, database=neo4j.db).resolve,
            references_for=lambda genes: fetch_edge_references(driver, genes, database=neo4j.db),
            prior=ES.given_prior(model.config, training_set.gene_graph()), top_k=config.interaction_top_k,
            max_imputed_rows=config.max_imputed_rows, edge_source=config.edge_source, seed=config.seed,
            log=context.log.info)
        quality = {"predictions": Q.prediction_quality(lpm_model.selection), "edges": edge_quality,
                   "mechanisms": mech_quality}

        # Effects come from the production predictor (the candidate that won on validation experiments).
        effects = steps.predicted_effects(lpm_model.predictor().predict, model, table,
                                          max_pairs=config.max_effect_pairs, top_n=config.effects_top_n,
                                          seed=config.seed, log=context.log.info)

        embeddings = groups.to_save()
        metrics = {"valid": lpm_model.valid_metrics, "evaluation": evaluation_report}
        record = ModelVersionRecord(
            config=lpm_model.config, dataset_ids=training_set.dataset_ids,
            dataset_hashes=training_set.dataset_hashes, metrics=metrics, trained_at=lpm_model.trained_at,
            code_version=code_version(), version_id=lpm_model.version_id,
            embedding_dim=int(groups.perturbation.shape[1]), checkpoint_path=lpm_model.checkpoint,
            predictor=lpm_model.selection,
        )
        # Written non-current: `current_model_version` promotes it (and writes these embeddings, saved
        # beside the model) once the blocking check passed.
        embeddings_dir = steps.save_embeddings(embeddings, lpm_model.folder() / "embeddings")
        report = DiscoveryWriter(driver, neo4j.db).publish(
            record, mechanisms=mechanisms, interactions=interactions, effects=effects, quality=quality,
            interaction_basis=steps.interaction_basis(edge_quality["method"]), retention=settings.model_retention,
            make_current=False)
    mech = steps.mechanism_summary(mechanisms, annotated)
    metadata = {
        "version_id": record.version_id, "mechanism_links": mech.significant,
        "mechanism_links_stored": mech.stored,
        "edge_method": edge_quality["method"], "edge_score": Q.num(edge_quality.get("score")),
        "edge_correlation_score": Q.num(edge_quality.get("baseline_score")), "edge_reason": edge_quality["reason"],
        "mechanism_method": str(mech_quality.get("method")), "mechanism_reason": str(mech_quality.get("reason")),
        "mechanism_score": Q.num(mech_quality.get("score")),
        "mechanism_connectivity_score": Q.num(mech_quality.get("baseline_score")),
        "discovery_quality": dg.MetadataValue.json(steps.jsonable(quality)),
        "quality_vs_simple_answer": dg.MetadataValue.md(Q.quality_table(quality)),
        "predictor": quality["predictions"]["method"], "predictor_score": Q.num(quality["predictions"]["score"]),
        "predictor_baseline_score": Q.num(quality["predictions"]["baseline_score"]),
        "predictor_status": quality["predictions"]["status"],
        "predicted_interactions": 0 if interactions is None else len(interactions),
        "predicted_effects": 0 if effects is None else len(effects),
        "rank1_is_annotated_target": mech.rank1_is_annotated_target,
        "writes": dg.MetadataValue.json(report.summary()["writes"]), "simulated_data": training_set.simulated,
    }
    if len(groups.compound) >= 3:
        metadata["compound_embeddings_pca"] = _pca_plot(groups.compound, steps.moa_labels(annotated),
                                                        "Compound embeddings (PCA)")
    if len(groups.gene_perturbation) >= 3:
        metadata["gene_perturbation_embeddings_pca"] = _pca_plot(
            groups.gene_perturbation, pd.Series(dtype=str), "Genetic perturbation embeddings (PCA)")
    context.add_output_metadata(metadata)
    return {"version_id": record.version_id, "mechanism_links": mech.significant,
            "rank1_is_annotated_target": mech.rank1_is_annotated_target, "embedding_kinds": sorted(embeddings),
            "embeddings_dir": embeddings_dir, "quality": steps.jsonable(quality)}


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
        "reason": why, "method": edges["method"], "score": Q.num(edges.get("score")),
        "correlation_score": Q.num(edges.get("baseline_score")),
        "references": dg.MetadataValue.json(edges.get("references") or [])})


@dg.asset(group_name="discoveries", kinds={"neo4j"}, pool="neo4j_writes",
          description="Writes the version's embeddings (vector-indexed) and makes the version `discoveries` wrote "
                      "current (exactly one current version), clears embeddings of names it lacks and prunes "
                      "versions beyond the retention. Runs only when the blocking check on `discoveries` passed.")
def current_model_version(context: dg.AssetExecutionContext, neo4j: Neo4jResource,
                          perturbgraph: PerturbGraphSettings, discoveries: dict) -> dict:
    settings = perturbgraph.settings()
    with neo4j.guarded(context) as driver:
        embeddings = steps.load_embeddings(discoveries["embeddings_dir"], discoveries["embedding_kinds"])
        report = DiscoveryWriter(driver, neo4j.db).promote(discoveries["version_id"], embeddings=embeddings,
                                                           retention=settings.model_retention)
    writes = {k: {"rows": s.rows, "written": s.written} for k, s in report.stats.items()}
    context.add_output_metadata({"version_id": discoveries["version_id"], "embedding_writes": dg.MetadataValue.json(writes),
                                 "pruned_versions": dg.MetadataValue.json(report.pruned),
                                 "stale_embeddings_cleared": report.stale_embeddings_cleared})
    return {"version_id": discoveries["version_id"], "pruned": report.pruned}

