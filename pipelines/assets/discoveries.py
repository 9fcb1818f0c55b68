"""Group `discoveries`: what the model learned, written back into the graph under a new ModelVersion.

Runs only after `lpm_model` passes its blocking check (it beats the per-(context, readout) mean on
validation): embeddings with vector indexes, compound→gene mechanism links, inferred gene-gene edges and
predicted effects of (perturbation, context) experiments that were never run.
"""

import dagster as dg
import pandas as pd

from graph.discovery_writer import (
    ModelVersionRecord,
    code_version,
    fetch_discovery_inputs,
    publish_discoveries,
)
from pipelines.assets.training import ModelRun, TrainingSet
from pipelines.resources import Neo4jResource, PerturbGraphSettings


class DiscoveryConfig(dg.Config):
    mechanism_top_k: int = 20
    interaction_top_k: int = 10
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
          description="A ModelVersion node and its discoveries: embeddings (vector-indexed), SHARES_MECHANISM_WITH, "
                      "PREDICTED_INTERACTION and PREDICTED_EFFECT, each carrying the model version; the new version "
                      "becomes current and versions beyond the retention are pruned.")
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
        context.log.info(f"mechanism links: {len(compound_emb)} compounds x {len(gene_pert_emb)} perturbed genes")
        mechanisms = (D.mechanism_links(compound_emb, gene_pert_emb, k=config.mechanism_top_k,
                                        n_null=config.null_samples, annotated_targets=annotated, seed=config.seed)
                      if len(compound_emb) and len(gene_pert_emb) else None)
        prior = [(str(a), str(b)) for a, b in inputs.prior_pairs]
        interactions = (D.gene_interactions(gene_pert_emb, k=config.interaction_top_k, prior_pairs=prior)
                        if len(gene_pert_emb) >= 2 else None)

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
        report = publish_discoveries(driver, record, embeddings=embeddings, mechanisms=mechanisms,
                                     interactions=interactions, effects=effects,
                                     retention=settings.model_retention, database=neo4j.db)
    summary = report.summary()
    n_links = 0 if mechanisms is None else len(mechanisms)
    top_hits = 0.0
    if mechanisms is not None and annotated:
        with_target = mechanisms[mechanisms["compound"].isin([c for c, t in annotated.items() if t])]
        firsts = with_target[with_target["rank"] == 1]
        top_hits = float(firsts["is_annotated_target"].mean()) if len(firsts) else 0.0
    moa = pd.Series({c: "annotated target: " + (",".join(t[:1]) if t else "none") for c, t in annotated.items()})
    metadata = {
        "version_id": record.version_id, "mechanism_links": n_links,
        "predicted_interactions": 0 if interactions is None else len(interactions),
        "predicted_effects": 0 if effects is None else len(effects),
        "rank1_is_annotated_target": top_hits, "pruned_versions": dg.MetadataValue.json(report.pruned),
        "writes": dg.MetadataValue.json(summary["writes"]), "simulated_data": training_set.simulated,
    }
    if len(compound_emb) >= 3:
        metadata["compound_embeddings_pca"] = _pca_plot(compound_emb, moa, "Compound embeddings (PCA)")
    if len(gene_pert_emb) >= 3:
        metadata["gene_perturbation_embeddings_pca"] = _pca_plot(
            gene_pert_emb, pd.Series(dtype=str), "Genetic perturbation embeddings (PCA)")
    context.add_output_metadata(metadata)
    return {"version_id": record.version_id, "mechanism_links": n_links,
            "rank1_is_annotated_target": top_hits, "pruned": report.pruned}

